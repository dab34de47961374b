/**
 * `logcurate validate` through the built CLI: OpenAI's error kinds line by line, exit codes, exact token counts
 * (re-counted here with js-tiktoken itself) that agree with the manifest emit wrote for the same file.
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../pipeline/cli.js';
import type { Manifest } from '../schemas/manifest.js';
import { cli, jsonl, tempDir } from './support/tmp.js';
import { tok, type Enc } from './support/reference-tokens.js';

const dir = tempDir('logcurate-validate-cli-');


/** SPEC §5 for plain text messages (the files below have no names or calls). */
function exampleTokens(enc: Enc, messages: { role: string; content: string }[]): number {
  return 3 + messages.reduce((a, m) => a + 3 + tok(enc, m.role) + tok(enc, m.content), 0);
}

let files = 0;
function file(text: string, name = `f${++files}.jsonl`): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

interface Report {
  valid: boolean;
  examples: number;
  errors: { line: number; kind: string; message: string }[];
  warnings: string[];
  tokens: { total: number; assistant: number; min: number; mean: number; p50: number; p95: number; max: number; over_limit: number };
  cost: { currency: string; n_epochs: number; epochs_source: string; billing_tokens: number; estimated_usd: number | null };
  model: { name: string; encoding: Enc; max_tokens_per_example: number | null; price_per_1m_training_tokens: number | null };
}

function validate(path: string, ...args: string[]): { code: number; stdout: string; stderr: string; report: Report } {
  const r = cli(['validate', path, '--json', ...args]);
  return { ...r, report: (r.stdout.trim() === '' ? undefined : JSON.parse(r.stdout)) as Report };
}

const u = (content: string) => ({ role: 'user', content });
const a = (content: string) => ({ role: 'assistant', content });
const line = (v: unknown) => JSON.stringify(v);

describe('logcurate validate: every error kind on its line', () => {
  const lines = [
    line({ messages: [u('What is the capital of France?'), a('Paris.')] }),
    line([1, 2, 3]),
    line({ prompt: 'legacy shape', completion: 'no messages' }),
    line({ messages: [{ role: 'user' }, a('an answer')] }),
    line({ messages: [{ role: 'user', content: 'q', foo: 1 }, a('a')] }),
    line({ messages: [{ role: 'bot', content: 'q' }, a('a')] }),
    line({ messages: [u('q'), a('')] }),
    line({ messages: [{ role: 'system', content: 's' }, u('only a question')] }),
    line({ messages: [u('q'), { role: 'assistant', content: 'a', weight: 2 }] }),
    '{"messages": [{"role": "user", "content": "cut off',
    line({ messages: [u('q', ), { role: 'assistant', content: 'a' }, { role: 'user', content: 'w', weight: 1 }, a('b')] }),
    line({ messages: [u('Thanks!'), a('You are welcome.')] }),
  ];
  const path = file(`${lines.join('\n')}\n`, 'errors.jsonl');

  it('--json lists each error with its line and kind, and exits 1', () => {
    const r = validate(path);
    expect(r.code).toBe(1);
    expect(r.report.valid).toBe(false);
    expect(r.report.examples).toBe(12);
    expect(r.report.errors.map((e) => [e.line, e.kind])).toEqual([
      [2, 'data_type'],
      [3, 'missing_messages_list'],
      [4, 'message_missing_key'],
      [5, 'message_unrecognized_key'],
      [6, 'unrecognized_role'],
      [7, 'missing_content'],
      [8, 'example_missing_assistant_message'],
      [9, 'invalid_weight'],
      [10, 'invalid_json'],
      [11, 'invalid_weight'],
    ]);
    const byLine = Object.fromEntries(r.report.errors.map((e) => [e.line, e.message]));
    expect(byLine[4]).toContain('messages[0]');
    expect(byLine[4]).toContain('"content"');
    expect(byLine[5]).toContain('"foo"');
    expect(byLine[6]).toContain('"bot"');
    expect(byLine[7]).toContain('messages[1].content');
    expect(byLine[9]).toContain('messages[1].weight');
    expect(byLine[11]).toContain('messages[2].weight');
    // Tokens and cost cover the valid lines only (1 and 12).
    const t1 = exampleTokens('o200k_base', [u('What is the capital of France?'), a('Paris.')]);
    const t12 = exampleTokens('o200k_base', [u('Thanks!'), a('You are welcome.')]);
    expect(r.report.tokens).toMatchObject({ total: t1 + t12, assistant: tok('o200k_base', 'Paris.') + tok('o200k_base', 'You are welcome.'), min: Math.min(t1, t12), max: Math.max(t1, t12), over_limit: 0 });
    expect(r.report.cost).toMatchObject({ n_epochs: 25, billing_tokens: t1 + t12, estimated_usd: Math.round((t1 + t12) * 25 * 3) / 1e6 });
  });

  it('the human summary names each line and kind, and also exits 1', () => {
    const r = cli(['validate', path]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('line 2: data_type');
    expect(r.stdout).toContain('line 10: invalid_json');
    expect(r.stdout).toMatch(/valid\s+no \(10 errors\)/);
  });
});

describe('logcurate validate: valid files', () => {
  const records = Array.from({ length: 14 }, (_, k) => ({
    id: `v${k}`,
    messages: [
      ...(k % 2 ? [{ role: 'system', content: 'You are terse.' }] : []),
      u(`Question ${k}: ${'why '.repeat(k + 1)}?`),
      a(`Answer ${k}: ${'because '.repeat(2 * k + 1)}.`),
    ],
  }));
  const project = join(dir, 'emitted');
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'in.jsonl'), jsonl(records));

  async function emitWith(model: string): Promise<{ out: string; manifest: Manifest }> {
    const name = model.replace(/[^a-z0-9.-]/g, '-');
    const config = join(project, `${name}.json`);
    const out = join(project, `out-${name}`);
    writeFileSync(
      config,
      JSON.stringify({ name, store: `${name}.db`, inputs: ['in.jsonl'], stages: [{ split: { test_size: 3, method: 'exact' } }, { emit: { dir: out, model, report: false } }] }),
    );
    let stdout = '';
    const code = await main(['run', config, '--json', '--quiet'], { stdout: (s) => void (stdout += s), stderr: () => undefined });
    expect(code).toBe(0);
    return { out, manifest: JSON.parse(stdout) as Manifest };
  }

  for (const model of ['gpt-4o-mini-2024-07-18', 'davinci-002']) {
    it(`exits 0 with exactly the tokens and cost of emit's manifest (${model})`, async () => {
      const { out, manifest } = await emitWith(model);
      for (const split of ['train', 'test'] as const) {
        const r = validate(join(out, `${split}.jsonl`), '--model', model);
        expect(r.code, r.stderr).toBe(0);
        expect(r.report.valid).toBe(true);
        expect(r.report.errors).toEqual([]);
        expect(r.report.examples).toBe(manifest.files[split].examples);
        expect(r.report.tokens).toEqual({ ...manifest.files[split].tokens, over_limit: 0 });
        if (split === 'train') {
          const { currency, n_epochs, billing_tokens, estimated_usd } = manifest.cost;
          expect(r.report.cost).toEqual({ currency, n_epochs, epochs_source: 'auto', billing_tokens, estimated_usd });
        }
      }
      // And both agree with js-tiktoken on the file as written.
      const enc: Enc = manifest.model.encoding;
      const text = readFileSync(join(out, 'train.jsonl'), 'utf8');
      const total = text
        .trimEnd()
        .split('\n')
        .reduce((s, l) => s + exampleTokens(enc, (JSON.parse(l) as { messages: { role: string; content: string }[] }).messages), 0);
      expect(manifest.files.train.tokens.total).toBe(total);
    });
  }

  it('--model picks the encoding, limit and price', () => {
    const messages = [u('日本語のテキストを数えてください。Zusammenarbeit, naïveté.'), a('はい、数えます。Überraschung!')];
    const path = file(jsonl([{ messages }]));
    const o200k = exampleTokens('o200k_base', messages);
    const cl100k = exampleTokens('cl100k_base', messages);
    expect(o200k).not.toBe(cl100k);

    const byDefault = validate(path);
    expect(byDefault.code).toBe(0);
    expect(byDefault.report.model).toEqual({ name: 'gpt-4o-mini-2024-07-18', encoding: 'o200k_base', max_tokens_per_example: 65536, price_per_1m_training_tokens: 3 });
    expect(byDefault.report.tokens.total).toBe(o200k);

    const turbo = validate(path, '--model', 'gpt-3.5-turbo-0613');
    expect(turbo.report.model).toEqual({ name: 'gpt-3.5-turbo-0613', encoding: 'cl100k_base', max_tokens_per_example: 4096, price_per_1m_training_tokens: 8 });
    expect(turbo.report.tokens.total).toBe(cl100k);
    expect(turbo.report.cost.estimated_usd).toBe(Math.round(cl100k * 25 * 8) / 1e6);

    const ft = validate(path, '--model', 'ft:gpt-4o-mini-2024-07-18:org::abc');
    expect(ft.report.model.encoding).toBe('o200k_base');
    expect(ft.report.tokens.total).toBe(o200k);

    const unknown = validate(path, '--model', 'acme-llama-3-8b');
    expect(unknown.code).toBe(0);
    expect(unknown.report.cost.estimated_usd).toBeNull();
    expect(unknown.report.warnings.some((w) => w.includes('acme-llama-3-8b'))).toBe(true);
  });

  it('warns about over-limit examples, duplicates, missing prompts and small files, and stays valid', () => {
    const long = [u(Array.from({ length: 4200 }, () => 'hello').join(' ')), a('ok')];
    const path = file(
      jsonl([
        { messages: [u('one'), a('1')] },
        { messages: long },
        { messages: [u('one'), a('1')] },
        { messages: [a('An answer nobody asked for.')] },
      ]),
    );
    const r = validate(path, '--model', 'davinci-002');
    expect(r.code).toBe(0);
    expect(r.report.valid).toBe(true);
    const tLong = exampleTokens('cl100k_base', long);
    expect(tLong).toBeGreaterThan(4096);
    expect(r.report.tokens.over_limit).toBe(1);
    expect(r.report.tokens.max).toBe(tLong);
    const small = exampleTokens('cl100k_base', [u('one'), a('1')]);
    const lonely = exampleTokens('cl100k_base', [a('An answer nobody asked for.')]);
    expect(r.report.cost.billing_tokens).toBe(2 * small + 4096 + lonely);
    const w = r.report.warnings.join('\n');
    expect(w).toMatch(/exceeds davinci-002's limit of 4096 tokens.*line 2/);
    expect(w).toMatch(/line 3 repeats line 1/);
    expect(w).toMatch(/no system or user message \(line 4\)/);
    expect(w).toMatch(/at least 10/);
  });
});

describe('logcurate validate: files that cannot be read', () => {
  it('a missing file exits 1 with its name', () => {
    const missing = join(dir, 'no-such-file.jsonl');
    const r = cli(['validate', missing, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ error: `${missing}: cannot read: ENOENT`, exit_code: 1 });
    expect(r.stderr).toContain(missing);
  });

  it('a folder exits 1 with its name', () => {
    const r = cli(['validate', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(dir);
  });

  it('no file argument is a usage error (exit 2)', () => {
    expect(cli(['validate']).code).toBe(2);
  });
});

describe('logcurate validate: the legacy prompt/completion format', () => {
  it('accepts a file emit wrote as openai_completion, with the same token totals as its manifest', async () => {
    const root = join(dir, 'legacy');
    mkdirSync(root, { recursive: true });
    const logs = Array.from({ length: 12 }, (_, k) => ({ id: `p${k}`, prompt: `Question ${k}: how do refunds work?`, completion: `Answer ${k}: within 30 days.` }));
    writeFileSync(join(root, 'in.jsonl'), jsonl(logs));
    writeFileSync(
      join(root, 'c.json'),
      JSON.stringify({ name: 'legacy', store: 'store.db', inputs: ['in.jsonl'], stages: [{ emit: { dir: 'out', format: 'openai_completion', model: 'davinci-002' } }] }),
    );
    const run = cli(['run', join(root, 'c.json'), '--json', '--quiet']);
    expect(run.code, run.stderr).toBe(0);
    const manifest = JSON.parse(run.stdout) as Manifest;
    const v = validate(join(root, 'out', 'train.jsonl'), '--model', 'davinci-002');
    expect(v.code).toBe(0);
    expect(v.report.valid).toBe(true);
    expect(v.report.errors).toEqual([]);
    expect(v.report.tokens.total).toBe(manifest.files.train.tokens.total);
    expect(v.report.tokens.assistant).toBe(manifest.files.train.tokens.assistant);
    // Independently: tok(prompt) + tok(completion), cl100k for davinci-002.
    const expected = logs.reduce((acc, l) => acc + tok('cl100k_base', l.prompt) + tok('cl100k_base', l.completion), 0);
    expect(v.report.tokens.total).toBe(expected);
  });

  it('reports an empty completion and unknown keys on their lines', () => {
    const path = file([line({ prompt: 'a', completion: 'b' }), line({ prompt: 'c', completion: '' }), line({ prompt: 'd', completion: 'e', extra: 1 })].join('\n') + '\n');
    const v = validate(path);
    expect(v.code).toBe(1);
    expect(v.report.errors.map((e) => [e.line, e.kind])).toEqual([
      [2, 'missing_content'],
      [3, 'message_unrecognized_key'],
    ]);
  });

  it('a chat line in a prompt/completion file names the missing keys, not "a undefined"', () => {
    const path = file([line({ prompt: 'a', completion: 'b' }), line({ messages: [u('q'), a('x')] })].join('\n') + '\n');
    const v = validate(path);
    expect(v.code).toBe(1);
    expect(v.report.errors).toEqual([
      { line: 2, kind: 'message_unrecognized_key', message: 'messages: unrecognized key in a prompt/completion example; expected only prompt and completion' },
      { line: 2, kind: 'data_type', message: 'prompt: expected a string, got no "prompt" key' },
      { line: 2, kind: 'missing_content', message: 'completion: expected a non-empty string, got no "completion" key' },
    ]);
    const human = cli(['validate', path]);
    expect(human.code).toBe(1);
    expect(human.stdout).toContain('line 2: data_type: prompt: expected a string, got no "prompt" key');
    expect(human.stdout).not.toMatch(/undefined/);
  });
});
