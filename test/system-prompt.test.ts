import { describe, expect, it } from 'vitest';
import { tempDir } from './support/tmp.js';
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
