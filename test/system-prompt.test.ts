import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './support/tmp.js';
import systemPromptStage, { systemPromptParams } from '../stages/system-prompt.js';
import { UsageError } from '../pipeline/errors.js';
import { chat, curate, type Curated } from './support/pipeline.js';

const root = tempDir('logcurate-sysprompt-');

const PROMPT = "You are Acme's support assistant.";
const logs = [
  chat('none', 'hello', 'hi'),
  { id: 'one', messages: [{ role: 'system', content: 'Old prompt.' }, { role: 'user', content: 'hello' }, { role: 'assistant', content: 'hi' }] },
  {
    id: 'two',
    messages: [
      { role: 'system', content: 'First.' },
      { role: 'user', content: 'hello' },
      { role: 'system', content: 'Mid-conversation note.' },
      { role: 'assistant', content: 'hi' },
    ],
  },
];

const roles = (r: Curated, id: string) => r.example(id).messages.map((m) => `${m.role}:${m.content}`);

describe('system_prompt', () => {
  it('replace removes every system message and puts the chosen one first', async () => {
    const r = await curate(root, { logs, stages: [{ system_prompt: { mode: 'replace', text: PROMPT } }] });
    expect(roles(r, 'none')).toEqual([`system:${PROMPT}`, 'user:hello', 'assistant:hi']);
    expect(roles(r, 'one')).toEqual([`system:${PROMPT}`, 'user:hello', 'assistant:hi']);
    expect(roles(r, 'two')).toEqual([`system:${PROMPT}`, 'user:hello', 'assistant:hi']);
  });

  it('replace is the default mode', async () => {
    const r = await curate(root, { logs, stages: [{ system_prompt: { text: PROMPT } }] });
    expect(roles(r, 'two')).toEqual([`system:${PROMPT}`, 'user:hello', 'assistant:hi']);
  });

  it('prepend puts it before any existing system messages', async () => {
    const r = await curate(root, { logs, stages: [{ system_prompt: { mode: 'prepend', text: PROMPT } }] });
    expect(roles(r, 'none')).toEqual([`system:${PROMPT}`, 'user:hello', 'assistant:hi']);
    expect(roles(r, 'one')).toEqual([`system:${PROMPT}`, 'system:Old prompt.', 'user:hello', 'assistant:hi']);
    expect(roles(r, 'two')).toEqual([`system:${PROMPT}`, 'system:First.', 'user:hello', 'system:Mid-conversation note.', 'assistant:hi']);
  });

  it('if_missing adds it only where there is none', async () => {
    const r = await curate(root, { logs, stages: [{ system_prompt: { mode: 'if_missing', text: PROMPT } }] });
    expect(roles(r, 'none')).toEqual([`system:${PROMPT}`, 'user:hello', 'assistant:hi']);
    expect(roles(r, 'one')).toEqual(['system:Old prompt.', 'user:hello', 'assistant:hi']);
    expect(roles(r, 'two')).toEqual(['system:First.', 'user:hello', 'system:Mid-conversation note.', 'assistant:hi']);
  });

  it('remove removes all of them', async () => {
    const r = await curate(root, { logs, stages: [{ system_prompt: { mode: 'remove' } }] });
    for (const id of ['none', 'one', 'two']) expect(roles(r, id)).toEqual(['user:hello', 'assistant:hi']);
  });

  it('file reads the prompt relative to the config (a trailing newline is not part of it; inner lines are)', async () => {
    const text = 'You are Acme.\nBe brief.';
    const r = await curate(root, {
      logs,
      files: { 'prompt.txt': `${text}\n` },
      stages: [{ system_prompt: { mode: 'if_missing', file: 'prompt.txt' } }],
    });
    expect(roles(r, 'none')).toEqual([`system:${text}`, 'user:hello', 'assistant:hi']);
    expect(roles(r, 'one')[0]).toBe('system:Old prompt.');
  });

  it('file: a leading byte-order mark is not part of the prompt', async () => {
    const r = await curate(root, { logs, files: { 'bom.txt': '\uFEFFBOM prompt\n' }, stages: [{ system_prompt: { file: 'bom.txt' } }] });
    for (const id of ['none', 'one', 'two']) expect(roles(r, id)[0]).toBe('system:BOM prompt');
  });

  it('file: bytes that are not UTF-8 are a config error naming the key path, the file and the line', () => {
    const dir = join(root, 'not-utf8');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'bad.txt'), Buffer.concat([Buffer.from('fine\n\u00e9 fine too\n'), Buffer.from([0xff, 0xfe, 0x20]), Buffer.from(' bad utf\n')]));
    const params = systemPromptParams.parse({ file: 'bad.txt' });
    const prepare = () => systemPromptStage.prepare!(params, { configDir: dir, path: 'stages[2].system_prompt' });
    expect(prepare).toThrow(UsageError);
    expect(prepare).toThrow(`stages[2].system_prompt.file: ${join(dir, 'bad.txt')} is not valid UTF-8 (line 3); expected the system prompt as UTF-8 text`);
  });

  it('a later stage sees the rewritten messages (dedupe on conversation ignores system turns either way)', async () => {
    // After remove, "one" and "none" are identical conversations: dedupe must see that.
    const r = await curate(root, { logs, stages: [{ system_prompt: { mode: 'remove' } }, { dedupe: { key: 'conversation' } }] });
    expect(Object.keys(r.dropped)).toHaveLength(2);
    expect(r.train).toHaveLength(1);
  });

  it('two system_prompt stages compose in order', async () => {
    const r = await curate(root, {
      logs,
      stages: [{ system_prompt: { mode: 'remove' } }, { system_prompt: { mode: 'if_missing', text: PROMPT } }],
    });
    for (const id of ['none', 'one', 'two']) expect(roles(r, id)).toEqual([`system:${PROMPT}`, 'user:hello', 'assistant:hi']);
  });
});
