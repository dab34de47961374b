/**
 * Issue 4: emit end to end. Real configs run by the built CLI over real SQLite stores; every emitted file is
 * re-read and re-counted here independently — js-tiktoken itself for the tokens, SPEC §5's formula and table
 * written out again below — and the manifest must agree exactly.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { checkExample } from '../pipeline/validate.js';
import { manifestSchema, type Manifest } from '../schemas/manifest.js';
import { main } from '../pipeline/cli.js';
import { toTrainingMessage, truncateTurns } from '../stages/emit.js';
import type { Message } from '../pipeline/stage.js';
import { cli, jsonl, tempDir, type CliResult } from './support/tmp.js';
import { tok, type Enc } from './support/reference-tokens.js';
import { locateRealdata, writeRealdataInputs } from './support/realdata.js';

const root = tempDir('logcurate-emit-');

// ---------------------------------------------------------------------------------------------------------
// The independent re-check


/** SPEC §5's table, written out again (not imported from pipeline/models.ts). */
const TABLE: Record<string, { enc: Enc; limit: number | null; price: number | null }> = {
  'gpt-4o-mini-2024-07-18': { enc: 'o200k_base', limit: 65536, price: 3 },
  'gpt-4.1-nano-2025-04-14': { enc: 'o200k_base', limit: 32768, price: 1.5 },
  'gpt-3.5-turbo-0613': { enc: 'cl100k_base', limit: 4096, price: 8 },
  'davinci-002': { enc: 'cl100k_base', limit: 4096, price: 6 },
  'babbage-002': { enc: 'cl100k_base', limit: 4096, price: 0.4 },
};

function specEpochs(n: number): number {
  if (3 * n < 100) return Math.min(25, Math.floor(100 / n));
  if (3 * n > 25000) return Math.max(1, Math.floor(25000 / n));
  return 3;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p: { text?: unknown }) => (typeof p?.text === 'string' ? p.text : '')).join('');
  return '';
}

interface Msg {
  role: string;
  content?: unknown;
  name?: string;
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
  function_call?: { name: string; arguments: string };
  weight?: number;
}

/** SPEC §5: per message 3 + role + content (+ name + 1) + each call's name and arguments; 3 per example. */
function specTokens(enc: Enc, ex: { messages?: Msg[]; prompt?: string; completion?: string }): { total: number; assistant: number } {
  if (ex.messages === undefined) {
    const completion = tok(enc, ex.completion!);
    return { total: tok(enc, ex.prompt!) + completion, assistant: completion };
  }
  let total = 3;
  let assistant = 0;
  for (const m of ex.messages) {
    const content = tok(enc, textOf(m.content));
    total += 3 + tok(enc, m.role) + content + (m.name ? tok(enc, m.name) + 1 : 0);
    for (const c of m.tool_calls ?? []) total += tok(enc, c.function.name) + tok(enc, c.function.arguments);
    if (m.function_call) total += tok(enc, m.function_call.name) + tok(enc, m.function_call.arguments);
    if (m.role === 'assistant') assistant += content;
  }
  return { total, assistant };
}

/** Nearest-rank percentiles, mean to one decimal: the manifest's documented summary. */
function summary(values: number[], assistant: number) {
  const n = values.length;
  if (n === 0) return { total: 0, assistant: 0, min: 0, mean: 0, p50: 0, p95: 0, max: 0 };
  const s = [...values].sort((a, b) => a - b);
  const total = s.reduce((a, b) => a + b, 0);
  return {
    total,
    assistant,
    min: s[0]!,
    mean: Math.round((total / n) * 10) / 10,
    p50: s[Math.ceil(0.5 * n) - 1]!,
    p95: s[Math.ceil(0.95 * n) - 1]!,
    max: s[n - 1]!,
  };
}

/** SPEC §3's comparison form of the prompt (all user turns): NFKC, case folded, whitespace collapsed. */
function normalisedPrompt(ex: { messages?: Msg[]; prompt?: string }): string {
  const text = ex.messages ? ex.messages.filter((m) => m.role === 'user').map((m) => textOf(m.content)).join('\n') : ex.prompt!;
  return text.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
}

/** A training file as a reader sees it: strict UTF-8, `\n` endings, one JSON object and nothing else per line. */
function readJsonl(path: string): { lines: string[]; bytes: Buffer } {
  const bytes = readFileSync(path);
  const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  expect(bytes.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf])), `${path} starts with a BOM`).toBe(false);
  if (text === '') return { lines: [], bytes };
  expect(text.endsWith('\n'), `${path} ends with \\n`).toBe(true);
  const lines = text.slice(0, -1).split('\n');
  for (const line of lines) {
    // No \r, and nothing that a Unicode-aware reader (Python's str.splitlines) would take for a line break.
    expect(line).not.toMatch(/[\r\u0085\u2028\u2029]/);
    const value = JSON.parse(line) as unknown;
    expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
    // Nothing else on the line: the line is exactly the compact JSON of its value (with U+2028/9 escaped).
    expect(line).toBe(JSON.stringify(value).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029').replace(/\u0085/g, '\\u0085'));
  }
  return { lines, bytes };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Expect {
  model: string;
  format?: 'openai_chat' | 'openai_completion';
  price?: number | null;
  epochs?: number;
  name: string;
  seed?: number;
  overLimit?: 'drop' | 'truncate' | 'fail';
}

type Example = { messages?: Msg[]; prompt?: string; completion?: string; tools?: unknown[] };

/** Re-reads train/test, recounts everything, and checks the manifest against it field by field. */
function recheck(out: string, manifest: Manifest, e: Expect): { train: Example[]; test: Example[] } {
  expect(manifestSchema.safeParse(manifest).success).toBe(true);
  expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'))).toEqual(manifest);
  const base = e.model.startsWith('ft:') ? e.model.split(':')[1]! : e.model;
  const row = TABLE[base] ?? { enc: 'o200k_base' as Enc, limit: null, price: null };
  const price = e.price !== undefined ? e.price : row.price;
  expect(manifest.model).toMatchObject({ name: e.model, base, encoding: row.enc, max_tokens_per_example: row.limit, price_per_1m_training_tokens: price });

  const parsed: Record<'train' | 'test', Example[]> = { train: [], test: [] };
  let billing = 0;
  for (const split of ['train', 'test'] as const) {
    const { lines, bytes } = readJsonl(join(out, `${split}.jsonl`));
    const examples = lines.map((l) => JSON.parse(l) as Example);
    parsed[split] = examples;
    const totals: number[] = [];
    let assistant = 0;
    for (const ex of examples) {
      if (e.format === 'openai_completion') {
        expect(Object.keys(ex).sort()).toEqual(['completion', 'prompt']);
        expect(typeof ex.prompt).toBe('string');
        expect(typeof ex.completion === 'string' && ex.completion !== '').toBe(true);
      } else {
        expect(checkExample(ex)).toEqual([]);
        expect(Object.keys(ex).every((k) => k === 'messages' || k === 'tools')).toBe(true);
      }
      const t = specTokens(row.enc, ex);
      if (row.limit !== null && e.overLimit !== undefined) expect(t.total).toBeLessThanOrEqual(row.limit);
      totals.push(t.total);
      assistant += t.assistant;
      if (split === 'train') billing += row.limit === null ? t.total : Math.min(row.limit, t.total);
    }
    const entry = manifest.files[split];
    expect(entry.path).toBe(`${split}.jsonl`);
    expect(entry.examples).toBe(examples.length);
    expect(entry.bytes).toBe(bytes.length);
    expect(entry.sha256).toBe(sha256(bytes));
    expect(entry.tokens).toEqual(summary(totals, assistant));
  }

  // No normalised prompt on both sides of the split.
  const trainPrompts = new Set(parsed.train.map(normalisedPrompt));
  for (const ex of parsed.test) expect(trainPrompts.has(normalisedPrompt(ex)), `test prompt also in train: ${normalisedPrompt(ex)}`).toBe(false);

  const n = parsed.train.length;
  const epochs = e.epochs ?? specEpochs(n);
  expect(manifest.cost).toEqual({
    currency: 'USD',
    n_epochs: epochs,
    epochs_source: e.epochs === undefined ? 'auto' : 'config',
    billing_tokens: billing,
    estimated_usd: price === null ? null : Math.round(billing * epochs * price) / 1e6,
  });
  expect(manifest.job_request).toEqual({
    model: e.model,
    training_file: 'train.jsonl',
    validation_file: parsed.test.length > 0 ? 'test.jsonl' : null,
    suffix: e.name,
    seed: e.seed ?? 0,
    method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: epochs } } },
  });
  return parsed;
}

interface LineageRow {
  id: string;
  status: 'train' | 'test' | 'dropped';
  stage: string | null;
  reason: string | null;
  line: number | null;
}

function lineage(out: string): LineageRow[] {
  return readJsonl(join(out, 'lineage.jsonl')).lines.map((l) => {
    const row = JSON.parse(l) as LineageRow;
    // Each line is exactly the compact JSON of its record, keys in SPEC order, line-break characters escaped.
    expect(Object.keys(row)).toEqual(['id', 'status', 'stage', 'reason', 'line', 'source']);
    expect(l).toBe(JSON.stringify(row).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029').replace(/\u0085/g, '\\u0085'));
    return row;
  });
}

/** Lineage agrees with the files: every kept conversation points at its own line, each line once. */
function checkLineage(out: string, manifest: Manifest, conversations: number): LineageRow[] {
  const rows = lineage(out);
  expect(rows).toHaveLength(conversations);
  for (const split of ['train', 'test'] as const) {
    const lines = rows.filter((r) => r.status === split).map((r) => r.line!);
    expect(lines.sort((a, b) => a - b)).toEqual(Array.from({ length: manifest.files[split].examples }, (_, k) => k + 1));
  }
  for (const r of rows.filter((x) => x.status === 'dropped')) {
    expect(r.line).toBeNull();
    expect(typeof r.reason === 'string' && r.reason !== '').toBe(true);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------
// Projects: an input file, a JSON config and its store in a folder of their own

type Ran = CliResult & { manifest: Manifest };

interface Project {
  dir: string;
  config: string;
  out: string;
  /** `logcurate run <config> --json --quiet`, in this process (the CLI's own main(), no spawn). */
  run(...args: string[]): Promise<Ran>;
  /** The same through the built CLI in a child process. */
  cli(...args: string[]): Ran;
}

function withManifest(r: CliResult): Ran {
  return { ...r, manifest: (r.code === 0 ? JSON.parse(r.stdout) : undefined) as Manifest };
}

async function runInProcess(args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

let projects = 0;
function project(name: string, records: unknown[], stages: unknown[], extra: Record<string, unknown> = {}): Project {
  const dir = join(root, `${name}-${++projects}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'in.jsonl'), jsonl(records));
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ name, store: 'store.db', inputs: ['in.jsonl'], stages, ...extra }, null, 2));
  return {
    dir,
    config,
    out: join(dir, 'out'),
    run: async (...args: string[]) => withManifest(await runInProcess(['run', config, '--json', '--quiet', ...args])),
    cli: (...args: string[]) => withManifest(cli(['run', config, '--json', '--quiet', ...args])),
  };
}

const emit = (params: Record<string, unknown>) => ({ emit: { dir: 'out', model: 'gpt-4o-mini-2024-07-18', min_examples: 0, report: false, ...params } });

function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) if (statSync(join(dir, f)).isFile()) files[f] = sha256(readFileSync(join(dir, f)));
  return files;
}

const stagingLeft = (dir: string): string[] => readdirSync(dir).filter((f) => f.startsWith('.staging'));

const user = (content: unknown, extra: Record<string, unknown> = {}) => ({ role: 'user', content, ...extra });
const assistant = (content: unknown, extra: Record<string, unknown> = {}) => ({ role: 'assistant', content, ...extra });
const system = (content: string) => ({ role: 'system', content });

/** ~n cl100k/o200k tokens of plain words (each " word" one short piece, so js-tiktoken stays fast). */
const words = (n: number, w = 'hello'): string => Array.from({ length: n }, () => w).join(' ');

const TOPICS = ['a refund', 'late shipping', 'a password reset', 'an invoice', 'API key rotation', 'a broken zipper', 'two-factor login'];

/** A mixed corpus with known traps: duplicate prompts that differ in case and spacing, tools, content parts,
 *  names, unicode, U+2028, special-token text, and examples that can never be valid. */
function corpus(): unknown[] {
  const recs: unknown[] = [];
  for (let k = 0; k < 36; k++) {
    const id = `c${k}`;
    const messages: unknown[] = [];
    if (k % 3 === 0) messages.push(system('You are Acme support. Be brief.'));
    messages.push(user(`[${id}] I need help with ${TOPICS[k % TOPICS.length]} (case ${k * 7919}).`, k % 5 === 0 ? { name: 'alice' } : {}));
    messages.push(assistant(`Sure — for ${TOPICS[k % TOPICS.length]}, open Settings › Billing and follow step ${k}.`));
    if (k % 4 === 1) {
      messages.push(user(`[${id}] And if that fails?`));
      messages.push(assistant(`Then write to help@acme.example quoting case ${k}.`));
    }
    recs.push({ id, messages });
  }
  // Five groups of prompts that are equal after NFKC, case folding and whitespace collapsing.
  for (let g = 0; g < 5; g++) {
    const forms = [`Where is my order #${g}?`, `WHERE   is my\norder #${g}?`, ` where is MY order #${g}? `, `Ｗhere is my order #${g}?`];
    forms.forEach((form, v) => recs.push({ id: `dup-${g}-${v}`, messages: [user(form), assistant(`Tracking for order ${g}, variant ${v}.`)] }));
  }
  recs.push({
    id: 'tools-1',
    tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
    messages: [
      user([{ type: 'text', text: 'Weather in ' }, { type: 'text', text: 'Paris?' }]),
      assistant(null, { tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }] }),
      { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
      assistant('18°C and sunny.'),
    ],
  });
  recs.push({ id: 'unicode-1', messages: [user('日本語で説明して 🙂 — café, naïve, עברית'), assistant('はい。Line\u2028separator and paragraph\u2029separator and NEL\u0085here.')] });
  recs.push({ id: 'special-1', messages: [user('What does <|endoftext|> mean?'), assistant('<|endoftext|> and <|im_start|> are just text here.')] });
  recs.push({
    id: 'hostile-1',
    messages: [
      user('Lone \ud83d surrogate, tabs\t\tand  spaces   \r\n\n  indented\n\n\n digits 1234567890 12,345.67 HE\'S we\'ll I\'M \u017Fs \u00a0nbsp\u3000ideographic'),
      assistant('```ts\nconst x = { a: 1 };\n  return x;\n```\n\n- item\r\n- item 2   \n'),
    ],
  });
  recs.push({ id: 'fn-1', messages: [user('Call it'), assistant(null, { function_call: { name: 'lookup', arguments: { q: 'x', n: 2 } } })] });
  // Never valid: dropped by emit with a reason.
  recs.push({ id: 'bad-empty', messages: [user('Hello?'), assistant('')] });
  recs.push({ id: 'bad-noid', messages: [user('Use the tool'), assistant(null, { tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] })] });
  return recs;
}

// ---------------------------------------------------------------------------------------------------------

describe('emit: an independent re-check of the files and the manifest', () => {
  const stages = [{ split: { test_fraction: 0.3 } }, emit({})];
  const p = project('recheck', corpus(), stages, { seed: 11 });
  let first: Ran;

  it('re-counts every example with js-tiktoken and agrees with the manifest exactly', async () => {
    first = p.cli();
    expect(first.code, first.stderr).toBe(0);
    const m = first.manifest;
    const files = recheck(p.out, m, { model: 'gpt-4o-mini-2024-07-18', name: 'recheck', seed: 11 });
    expect(files.train.length).toBeGreaterThan(10);
    expect(files.test.length).toBeGreaterThan(3);
    const rows = checkLineage(p.out, m, corpus().length);
    // Lineage points at the right line: each kept c<k> conversation's line carries its own marker.
    for (const r of rows) {
      if (!/^c\d+$/.test(r.id) || r.status === 'dropped') continue;
      const ex = files[r.status][r.line! - 1]!;
      expect(JSON.stringify(ex)).toContain(`[${r.id}]`);
    }
    expect(rows.find((r) => r.id === 'bad-empty')).toMatchObject({ status: 'dropped', stage: 'emit', reason: 'invalid:missing_content' });
    expect(rows.find((r) => r.id === 'bad-noid')).toMatchObject({ status: 'dropped', stage: 'emit' });
    expect(rows.find((r) => r.id === 'bad-noid')!.reason).toMatch(/^invalid:/);
    expect(m.stages.at(-1)).toEqual({ name: 'emit', in: corpus().length, out: corpus().length - 2, dropped: { 'invalid:data_type': 1, 'invalid:missing_content': 1 } });
    expect(m.store.conversations).toBe(corpus().length);
    expect(m.run).toMatchObject({ name: 'recheck', seed: 11, dry_run: false });
    expect(m.run.config_sha256).toBe(sha256(readFileSync(p.config)));
  });

  it('writes byte-identical train, test and lineage when the same config runs again on the same store', async () => {
    const before = snapshot(p.out);
    const again = await p.run();
    expect(again.code, again.stderr).toBe(0);
    const after = snapshot(p.out);
    for (const f of ['train.jsonl', 'test.jsonl', 'lineage.jsonl']) expect(after[f], f).toBe(before[f]);
    expect(again.manifest.files).toEqual(first.manifest.files);
    expect(again.manifest.run.id).not.toBe(first.manifest.run.id);
    expect(stagingLeft(p.out)).toEqual([]);
  });

  it('writes the same train and test from a fresh store built from the same inputs', async () => {
    const other = join(p.dir, 'other-out');
    const r = cli(['run', p.config, '--json', '--quiet', '--db', join(p.dir, 'fresh.db'), '--out', other]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['train.jsonl', 'test.jsonl', 'lineage.jsonl']) expect(readFileSync(join(other, f)).equals(readFileSync(join(p.out, f))), f).toBe(true);
  });

  it('re-checks the openai_completion shape the same way', async () => {
    const c = project('recheck-completion', corpus(), [{ split: { test_fraction: 0.3 } }, emit({ format: 'openai_completion' })], { seed: 11 });
    const r = await c.run();
    expect(r.code, r.stderr).toBe(0);
    const files = recheck(c.out, r.manifest, { model: 'gpt-4o-mini-2024-07-18', name: 'recheck-completion', seed: 11, format: 'openai_completion' });
    expect(files.train.length + files.test.length).toBeGreaterThan(30);
    checkLineage(c.out, r.manifest, corpus().length);
  });
});

describe('emit: the format of each line', () => {
  it('carries tools through, flattens content parts, serialises object arguments, keeps only OpenAI keys', async () => {
    const tools = [
      { type: 'function', function: { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
    ];
    const p = project(
      'format-chat',
      [
        {
          id: 'f1',
          tools,
          metadata: { not: 'copied' },
          messages: [
            system('Use tools.'),
            user([{ type: 'text', text: 'Weather in ' }, { type: 'text', text: 'Paris?' }], { name: 'bob' }),
            assistant(null, { tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris', units: ['c'] } } }] }),
            { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
            assistant('18°C in Paris.', { refusal: null, annotations: [], weight: 1 }),
          ],
        },
        {
          id: 'f2',
          request: { model: 'gpt-4o', messages: [user('Weather in Rome?')], tools, temperature: 0 },
          response: { model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'Sunny.' }, finish_reason: 'stop' }] },
        },
        { id: 'f3', messages: [user('Legacy call'), assistant(null, { function_call: { name: 'lookup', arguments: { q: 'x' } } })] },
        { id: 'f4', messages: [user('no tools here'), assistant('fine')] },
        // A picture cannot be written as text: its words alone would train an answer to a question that lost it.
        { id: 'f5', messages: [user([{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: 'https://example.com/x.png' } }]), assistant('a cat')] },
      ],
      [emit({})],
    );
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const { train } = recheck(p.out, r.manifest, { model: 'gpt-4o-mini-2024-07-18', name: 'format-chat' });
    expect(train).toEqual([
      {
        messages: [
          { role: 'system', content: 'Use tools.' },
          { role: 'user', content: 'Weather in Paris?', name: 'bob' },
          { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","units":["c"]}' } }] },
          { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
          { role: 'assistant', content: '18°C in Paris.', weight: 1 },
        ],
        tools,
      },
      { messages: [{ role: 'user', content: 'Weather in Rome?' }, { role: 'assistant', content: 'Sunny.' }], tools },
      { messages: [{ role: 'user', content: 'Legacy call' }, { role: 'assistant', content: null, function_call: { name: 'lookup', arguments: '{"q":"x"}' } }] },
      { messages: [{ role: 'user', content: 'no tools here' }, { role: 'assistant', content: 'fine' }] },
    ]);
    expect(lineage(p.out).find((x) => x.id === 'f5')).toMatchObject({ status: 'dropped', stage: 'emit', reason: 'non_text_content:image_url' });
  });

  it('drops an empty tool_calls list rather than writing one OpenAI rejects', async () => {
    const p = project('format-empty-calls', [{ id: 'e1', messages: [user('hi'), assistant('hello', { tool_calls: [] })] }], [emit({})]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(p.out, 'train.jsonl'), 'utf8')).toBe('{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n');
  });

  it('keeps special-token strings as ordinary text and counts them as ordinary tokens', async () => {
    const text = 'Say <|endoftext|> then <|im_start|>user and <|fim_prefix|>.';
    const p = project('format-special', [{ id: 's1', messages: [user('<|endoftext|>'), assistant(text)] }], [emit({ model: 'gpt-3.5-turbo-0613' })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const line = readFileSync(join(p.out, 'train.jsonl'), 'utf8');
    expect(line).toBe(`${JSON.stringify({ messages: [{ role: 'user', content: '<|endoftext|>' }, { role: 'assistant', content: text }] })}\n`);
    const e: Enc = 'cl100k_base';
    expect(tok(e, '<|endoftext|>')).toBeGreaterThan(1);
    const expected = 3 + (3 + tok(e, 'user') + tok(e, '<|endoftext|>')) + (3 + tok(e, 'assistant') + tok(e, text));
    expect(r.manifest.files.train.tokens).toMatchObject({ total: expected, assistant: tok(e, text), min: expected, max: expected });
    recheck(p.out, r.manifest, { model: 'gpt-3.5-turbo-0613', name: 'format-special' });
  });

  it('writes UTF-8 as is and escapes the characters other readers take for line breaks', async () => {
    const content = 'naïve 日本語 🙂 a\u2028b\u2029c\u0085d';
    // The id reaches lineage.jsonl, which follows the same rule.
    const p = project('format-utf8', [{ id: 'u1\u2028x', messages: [user('Unicode, please'), assistant(content)] }], [emit({ lineage: true })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const bytes = readFileSync(join(p.out, 'train.jsonl'));
    expect(bytes.includes(Buffer.from('naïve 日本語 🙂', 'utf8'))).toBe(true);
    expect(bytes.toString('utf8')).toContain('a\\u2028b\\u2029c\\u0085d');
    const { train } = recheck(p.out, r.manifest, { model: 'gpt-4o-mini-2024-07-18', name: 'format-utf8' });
    expect(train[0]!.messages![1]!.content).toBe(content);
    expect(lineage(p.out).map((x) => x.id)).toEqual(['u1\u2028x']);
  });

  it('openai_completion: one turn becomes prompt and completion; earlier turns are labelled in the prompt', async () => {
    const p = project(
      'format-completion',
      [
        { id: 'p1', messages: [user('What is 2+2?'), assistant('4')] },
        { id: 'p2', messages: [system('Be terse.'), user('Hi'), assistant('Hello.'), user('Bye'), assistant('Goodbye.')] },
        { id: 'p3', prompt: 'Translate: chat', completion: ' cat' },
      ],
      [emit({ format: 'openai_completion', model: 'babbage-002' })],
    );
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(p.out, 'train.jsonl'), 'utf8')).toBe(
      [
        { prompt: 'What is 2+2?', completion: '4' },
        { prompt: 'system: Be terse.\n\nuser: Hi\n\nassistant: Hello.\n\nuser: Bye', completion: 'Goodbye.' },
        { prompt: 'Translate: chat', completion: ' cat' },
      ]
        .map((x) => `${JSON.stringify(x)}\n`)
        .join(''),
    );
    recheck(p.out, r.manifest, { model: 'babbage-002', name: 'format-completion', format: 'openai_completion' });
  });
});

describe('emit: building blocks', () => {
  it('toTrainingMessage treats SDK nulls as absent and keeps only OpenAI keys', () => {
    const m = { role: 'assistant', content: 'x', tool_calls: null, function_call: null, name: null, weight: null, refusal: null, audio: null } as unknown as Message;
    expect(toTrainingMessage(m)).toEqual({ role: 'assistant', content: 'x' });
    expect(toTrainingMessage({ role: 'assistant', tool_calls: [{ id: 'c', function: { name: 'f', arguments: {} } }] })).toEqual({
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }],
    });
  });

  it('truncateTurns keeps system messages where they are, and what follows the last assistant turn', () => {
    const ms = [
      { role: 'system', content: 's1' },
      { role: 'user', content: 'u1' },
      { role: 'assistant', content: 'a1' },
      { role: 'system', content: 's2' },
      { role: 'user', content: 'u2' },
      { role: 'assistant', content: 'a2' },
      { role: 'user', content: 'u3' },
    ];
    const contents = (x: { content: string }[] | null) => x && x.map((m) => m.content);
    expect(contents(truncateTurns(ms, (k) => k.length <= 5))).toEqual(['s1', 's2', 'u2', 'a2', 'u3']);
    expect(contents(truncateTurns(ms, () => true))).toEqual(['s1', 'u1', 'a1', 's2', 'u2', 'a2', 'u3']);
    expect(truncateTurns(ms, (k) => k.length <= 4)).toBeNull();
    expect(truncateTurns([{ role: 'user', content: 'u' }], () => true)).toBeNull();
  });
});

describe('emit: examples that cannot be valid are dropped with a reason, never written', () => {
  it('drops each kind with invalid:<kind>, shows it in lineage, the funnel and explain', async () => {
    const records = [
      { id: 'ok-1', messages: [user('fine'), assistant('yes')] },
      // hh-rlhf has transcripts that end in an empty assistant turn.
      { id: 'empty-assistant', messages: [user('Hi'), assistant('Hello'), user('And?'), assistant('')] },
      { id: 'call-without-id', messages: [user('Use it'), assistant(null, { tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] })] },
      { id: 'weight-half', messages: [user('w'), assistant('x', { weight: 0.5 })] },
      { id: 'weight-on-user', messages: [user('w', { weight: 1 }), assistant('x')] },
      { id: 'no-assistant', messages: [system('s'), user('only a question')] },
      { id: 'image-only', messages: [user('Describe'), assistant([{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }])] },
      { id: 'bad-tools', tools: [{ type: 'function', function: { description: 'no name' } }], messages: [user('t'), assistant('u')] },
      { id: 'ok-2', messages: [user('fine again'), assistant('yes again')] },
    ];
    const p = project('invalid', records, [emit({})]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const { train } = recheck(p.out, r.manifest, { model: 'gpt-4o-mini-2024-07-18', name: 'invalid' });
    expect(train.map((x) => textOf(x.messages![0]!.content))).toEqual(['fine', 'fine again']);
    const rows = checkLineage(p.out, r.manifest, records.length);
    const reasons = Object.fromEntries(rows.map((x) => [x.id, x.status === 'dropped' ? `${x.stage} ${x.reason}` : x.status]));
    expect(reasons).toEqual({
      'ok-1': 'train',
      'empty-assistant': 'emit invalid:missing_content',
      'call-without-id': 'emit invalid:data_type',
      'weight-half': 'emit invalid:invalid_weight',
      'weight-on-user': 'emit invalid:invalid_weight',
      'no-assistant': 'emit invalid:example_missing_assistant_message',
      'image-only': 'emit non_text_content:image_url',
      'bad-tools': 'emit invalid:data_type',
      'ok-2': 'train',
    });
    expect(r.manifest.stages).toEqual([
      {
        name: 'emit',
        in: 9,
        out: 2,
        dropped: { 'invalid:data_type': 2, 'invalid:example_missing_assistant_message': 1, 'invalid:invalid_weight': 2, 'invalid:missing_content': 1, 'non_text_content:image_url': 1 },
      },
    ]);
    const ex = cli(['explain', 'empty-assistant', '--db', join(p.dir, 'store.db'), '--json']);
    expect(ex.code, ex.stderr).toBe(0);
    expect(JSON.parse(ex.stdout)).toMatchObject({ id: 'empty-assistant', status: 'dropped', stage: 'emit', reason: 'invalid:missing_content', line: null });
  });
});

describe('emit: over the per-example limit (davinci-002, 4096 tokens)', () => {
  const S = system('You answer questions.');
  const records = [
    { id: 'short', messages: [S, user('What is up?'), assistant('Not much.')] },
    // Over by the first turn: dropping it fits.
    { id: 'cut-one', messages: [S, user(`T1 ${words(2500)}`), assistant('A1'), user(`T2 ${words(2000, 'world')}`), assistant('A2'), user('T3 short'), assistant('A3 short')] },
    // Needs two turns removed.
    { id: 'cut-two', messages: [user(`T1 ${words(1000)}`), assistant('A1'), user(`T2 ${words(1000)}`), assistant('A2'), user(`T3 ${words(1000)}`), assistant('A3'), user(`T4 ${words(2500)}`), assistant('A4')] },
    // A turn with a tool call and its result goes whole.
    {
      id: 'cut-tool',
      messages: [
        S,
        user(`T1 ${words(4200)}`),
        assistant(null, { tool_calls: [{ id: 'c1', type: 'function', function: { name: 'search', arguments: '{"q":"x"}' } }] }),
        { role: 'tool', tool_call_id: 'c1', content: 'result' },
        assistant('A1'),
        user('T2 short'),
        assistant('A2 short'),
      ],
    },
    // The last turn alone is over the limit: nothing to keep.
    { id: 'last-too-long', messages: [S, user('T1 hi'), assistant('A1'), user(`T2 ${words(4200)}`), assistant('A2')] },
    // One turn only, its question over the limit: the answer alone is not an example worth training on.
    { id: 'single-too-long', messages: [user(`T1 ${words(4300)}`), assistant('A1 short')] },
    { id: 'short-2', messages: [user('And now?'), assistant('Still fine.')] },
  ];
  const overIds = ['cut-one', 'cut-two', 'cut-tool', 'last-too-long', 'single-too-long'];

  it('drop: over-limit examples are dropped with reason over_limit and a warning', async () => {
    const p = project('limit-drop', records, [emit({ model: 'davinci-002', over_limit: 'drop' })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const { train } = recheck(p.out, r.manifest, { model: 'davinci-002', name: 'limit-drop', overLimit: 'drop' });
    expect(train).toHaveLength(2);
    const rows = checkLineage(p.out, r.manifest, records.length);
    for (const id of overIds) expect(rows.find((x) => x.id === id)).toMatchObject({ status: 'dropped', stage: 'emit', reason: 'over_limit' });
    expect(r.manifest.files.train).toMatchObject({ over_limit: 0, dropped_over_limit: 5, truncated: 0 });
    expect(r.manifest.warnings.some((w) => w.includes('5 example(s)') && w.includes('4096'))).toBe(true);
    // explain says how far over it was.
    const ex = cli(['explain', 'single-too-long', '--db', join(p.dir, 'store.db'), '--json']);
    expect(ex.code, ex.stderr).toBe(0);
    const original = records.find((x) => x.id === 'single-too-long')!.messages as Msg[];
    expect(JSON.parse(ex.stdout)).toMatchObject({ status: 'dropped', stage: 'emit', reason: 'over_limit', tokens: specTokens('cl100k_base', { messages: original }).total });
  });

  it('truncate: whole turns go from the front; system message and last turn stay; every result fits', async () => {
    const p = project('limit-truncate', records, [emit({ model: 'davinci-002', over_limit: 'truncate' })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const { train } = recheck(p.out, r.manifest, { model: 'davinci-002', name: 'limit-truncate', overLimit: 'truncate' });
    const shape = (ex: Example) => ex.messages!.map((m) => `${m.role}:${textOf(m.content).split(' ')[0]}`);
    expect(train.map(shape)).toEqual([
      ['system:You', 'user:What', 'assistant:Not'],
      ['system:You', 'user:T2', 'assistant:A2', 'user:T3', 'assistant:A3'],
      ['user:T3', 'assistant:A3', 'user:T4', 'assistant:A4'],
      ['system:You', 'user:T2', 'assistant:A2'],
      ['user:And', 'assistant:Still'],
    ]);
    const rows = checkLineage(p.out, r.manifest, records.length);
    expect(rows.find((x) => x.id === 'last-too-long')).toMatchObject({ status: 'dropped', reason: 'over_limit' });
    expect(rows.find((x) => x.id === 'single-too-long')).toMatchObject({ status: 'dropped', reason: 'over_limit' });
    expect(r.manifest.warnings.some((w) => w.includes('3 example(s)') && w.includes('truncated'))).toBe(true);
    // The file holds no example over the limit (validate agrees); the manifest says what was truncated or dropped.
    expect(r.manifest.files.train).toMatchObject({ examples: 5, over_limit: 0, truncated: 3, dropped_over_limit: 2 });
    const v = cli(['validate', join(p.out, 'train.jsonl'), '--model', 'davinci-002', '--json']);
    expect(JSON.parse(v.stdout).tokens.over_limit).toBe(0);
  });

  it('truncate works for openai_completion too, by the same turns', async () => {
    const p = project('limit-truncate-completion', records, [emit({ model: 'davinci-002', over_limit: 'truncate', format: 'openai_completion' })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const { train } = recheck(p.out, r.manifest, { model: 'davinci-002', name: 'limit-truncate-completion', overLimit: 'truncate', format: 'openai_completion' });
    expect(train.map((x) => x.completion)).toEqual(['Not much.', 'A3 short', 'A4', 'A2 short', 'Still fine.']);
    expect(train[1]!.prompt!.startsWith('system: You answer questions.\n\nuser: T2 world')).toBe(true);
  });

  it('truncate keeps an example\'s tools, byte for byte, beside the turns that remain', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup', description: 'Finds "things"\u2028fast', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }];
    const withTools = [
      { id: 'tools-cut', tools, messages: [S, user(`T1 ${words(4200)}`), assistant('A1'), user('T2 short'), assistant('A2 short')] },
      { id: 'tools-fit', tools, messages: [user('Fits?'), assistant('Yes.')] },
    ];
    const p = project('limit-truncate-tools', withTools, [emit({ model: 'davinci-002', over_limit: 'truncate', min_examples: 0 })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const { train, test } = recheck(p.out, r.manifest, { model: 'davinci-002', name: 'limit-truncate-tools', overLimit: 'truncate' });
    const all = [...train, ...test];
    expect(all).toHaveLength(2);
    for (const ex of all) expect(ex.tools).toEqual(tools);
    const cut = all.find((ex) => ex.messages!.some((m) => m.content === 'A2 short'))!;
    expect(cut.messages!.map((m) => `${m.role}:${textOf(m.content)}`)).toEqual(['system:You answer questions.', 'user:T2 short', 'assistant:A2 short']);
    // The raw lines: the tools JSON as serialised for the untruncated example, U+2028 escaped.
    const lines = ['train', 'test'].flatMap((s) => readFileSync(join(p.out, `${s}.jsonl`), 'utf8').split('\n').filter((l) => l !== ''));
    const toolsJson = JSON.stringify(tools).replace(/\u2028/g, '\\u2028');
    for (const line of lines) expect(line.endsWith(`,"tools":${toolsJson}}`)).toBe(true);
    expect(r.manifest.warnings.some((w) => w.includes('1 example(s)') && w.includes('truncated'))).toBe(true);
  });

  it('truncate: prompts that truncation makes equal were already kept in one split (the last user turn links them)', async () => {
    // A and B differ in their first turns; truncated, both are "What now?". split links conversations that share
    // their last user turn, which truncation always keeps, so the two can never straddle train and test.
    const both = [
      { id: 'A', messages: [user(`First topic ${words(4200)}`), assistant('ok A'), user('What now?'), assistant('Answer A')] },
      { id: 'B', messages: [user(`Second topic ${words(4200)}`), assistant('ok B'), user('What now?'), assistant('Answer B')] },
    ];
    for (const seed of [0, 1, 2, 3]) {
      const p = project(`limit-truncate-leak-${seed}`, both, [{ split: { test_fraction: 0.5 } }, emit({ model: 'davinci-002', over_limit: 'truncate', min_examples: 0 })], { seed });
      const r = await p.run();
      expect(r.code, r.stderr).toBe(0);
      const statuses = new Set(lineage(p.out).map((x) => x.status));
      expect(statuses.size).toBe(1);
      expect(r.manifest.warnings.join('\n')).not.toMatch(/in both train and test/);
    }
  });

  it('truncate: a prompt that truncation leaves on both sides of the split is reported', async () => {
    // 60 conversations share only their last user turn, which is then boilerplate to split (LINK_CAP): nothing
    // links them, so they fall on both sides. Truncated to that turn, their prompts become one.
    const many = Array.from({ length: 60 }, (_, k) => ({
      id: `M${k}`,
      messages: [user(`Topic ${k} ${words(4200)}`), assistant(`ok ${k}`), user('What now?'), assistant(`Answer ${k}`)],
    }));
    const p = project('limit-truncate-both', many, [{ split: { test_fraction: 0.5 } }, emit({ model: 'davinci-002', over_limit: 'truncate', min_examples: 0 })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const statuses = lineage(p.out).map((x) => x.status);
    expect(statuses.filter((s) => s === 'train').length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 'test').length).toBeGreaterThan(0);
    expect(r.manifest.warnings).toContain('1 prompt(s) are in both train and test after truncation: a truncated example\'s remaining prompt matches one in the other split');
  });

  it('counts the lines of test.jsonl that train.jsonl also holds, and their distinct texts', async () => {
    // Redaction after the split makes 60 different conversations one text: it lands on both sides, many times.
    const same = Array.from({ length: 60 }, (_, k) => ({ id: `E${k}`, messages: [user(`Mail me at person${k}@example.com`), assistant('Done.')] }));
    const other = Array.from({ length: 20 }, (_, k) => ({ id: `O${k}`, messages: [user(`Question ${k} ${words(6)}`), assistant(`Answer ${k}`)] }));
    const p = project('train-test-overlap', [...same, ...other], [{ split: { test_fraction: 0.3 } }, { redact_pii: {} }, emit({ min_examples: 0 })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const testLines = readFileSync(join(p.out, 'test.jsonl'), 'utf8').split('\n').filter(Boolean);
    const trainLines = new Set(readFileSync(join(p.out, 'train.jsonl'), 'utf8').split('\n').filter(Boolean));
    const overlapping = testLines.filter((l) => trainLines.has(l));
    expect(overlapping.length).toBeGreaterThan(1);
    const distinct = new Set(overlapping).size;
    expect(distinct).toBe(1);
    expect(r.manifest.warnings).toContain(`${overlapping.length} example(s) of test.jsonl also appear in train.jsonl (${distinct} distinct)`);
  });

  it('truncate: a truncated prompt equal to untruncated ones in the other split is reported, and only then', async () => {
    // 55 single-turn conversations asking "What now?" are one component (same prompt). 55 short multi-turn ones
    // end with that turn too, which makes it boilerplate to split: it links nothing. X, truncated to that last
    // turn, is then linked to none of them and falls on either side by the seed.
    const singles = Array.from({ length: 55 }, (_, k) => ({ id: `S${k}`, messages: [user('What now?'), assistant(`Answer ${k}`)] }));
    const shorts = Array.from({ length: 55 }, (_, k) => ({ id: `T${k}`, messages: [user(`Hello ${k}`), assistant('Hi'), user('What now?'), assistant(`Reply ${k}`)] }));
    const x = { id: 'X', messages: [user(`Long topic ${words(4200)}`), assistant('ok'), user('What now?'), assistant('Answer X')] };
    const seen = new Set<boolean>();
    for (const seed of [0, 1, 2, 3, 4, 5]) {
      const p = project(`limit-truncate-untruncated-${seed}`, [...singles, ...shorts, x], [{ split: { test_fraction: 0.5 } }, emit({ model: 'davinci-002', over_limit: 'truncate', min_examples: 0 })], { seed });
      const r = await p.run();
      expect(r.code, r.stderr).toBe(0);
      const rows = lineage(p.out);
      const xSide = rows.find((row) => row.id === 'X')!.status;
      const singleSides = new Set(rows.filter((row) => row.id.startsWith('S')).map((row) => row.status));
      expect(singleSides.size).toBe(1);
      const apart = !singleSides.has(xSide);
      seen.add(apart);
      expect(r.manifest.warnings.some((w) => /^1 prompt\(s\) are in both train and test after truncation/.test(w))).toBe(apart);
    }
    // Both cases occurred among these seeds, so the test checks the warning's presence and its absence.
    expect([...seen].sort()).toEqual([false, true]);
  });

  it('fail: exit 1 naming the conversation; the previous files stay as they were', async () => {
    const p = project('limit-fail', records, [emit({ model: 'davinci-002', over_limit: 'drop' })]);
    const ok = await p.run();
    expect(ok.code, ok.stderr).toBe(0);
    const before = snapshot(p.out);
    writeFileSync(p.config, JSON.stringify({ name: 'limit-fail', store: 'store.db', inputs: ['in.jsonl'], stages: [emit({ model: 'davinci-002', over_limit: 'fail', lineage: true, report: true })] }));
    const r = p.cli();
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ error: expect.stringContaining('over_limit: fail'), exit_code: 1 });
    expect(r.stderr).toContain('"cut-one"');
    expect(r.stderr).toContain('4096');
    expect(r.stderr).toContain('over_limit: fail');
    expect(snapshot(p.out)).toEqual(before);
    expect(stagingLeft(p.out)).toEqual([]);
  });
});

describe('emit: a failed run leaves the previous run in place', () => {
  const records = Array.from({ length: 5 }, (_, k) => ({ id: `m${k}`, messages: [user(`question ${k}`), assistant(`answer ${k}`)] }));

  it('min_examples: fewer train examples → exit 1, nothing written, the previous files untouched', async () => {
    const p = project('min-examples', records, [emit({ min_examples: 5 })]);
    const ok = await p.run();
    expect(ok.code, ok.stderr).toBe(0);
    const before = snapshot(p.out);
    writeFileSync(p.config, JSON.stringify({ name: 'min-examples', store: 'store.db', inputs: ['in.jsonl'], stages: [emit({ min_examples: 6, lineage: true })] }));
    const r = p.cli();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('5 train example(s), fewer than min_examples 6');
    expect(snapshot(p.out)).toEqual(before);
    expect(stagingLeft(p.out)).toEqual([]);
  });

  it('min_examples on a first run: no output folder appears at all', async () => {
    const p = project('min-examples-fresh', records, [emit({})]);
    writeFileSync(p.config, JSON.stringify({ name: 'min-examples-fresh', store: 'store.db', inputs: ['in.jsonl'], stages: [emit({ min_examples: 10 })] }));
    const r = p.cli();
    expect(r.code).toBe(1);
    expect(existsSync(p.out)).toBe(false);
  });

  it('min_examples on an empty store (a mistyped store path): the error names the store', async () => {
    const p = project('min-examples-empty', records, [emit({})]);
    writeFileSync(p.config, JSON.stringify({ name: 'min-examples-empty', store: 'stroe.db', stages: [emit({ min_examples: 1 })] }));
    const r = p.cli();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`fewer than min_examples 1; no files were written (the previous run's files are untouched); the store ${join(p.dir, 'stroe.db')} holds no conversations`);
    // --json: stdout still holds exactly one JSON document, the error (SPEC §1), not nothing.
    expect(JSON.parse(r.stdout)).toEqual({ error: expect.stringContaining('fewer than min_examples 1'), exit_code: 1 });
    // A store with conversations, all dropped or too few: no such hint.
    const few = project('min-examples-few', records, [emit({ min_examples: 6 })]);
    const r2 = few.cli();
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('fewer than min_examples 6');
    expect(r2.stderr).not.toContain('holds no conversations');
  });

  it('the default min_examples is 10', async () => {
    const p = project('min-examples-default', records, [{ emit: { dir: 'out', model: 'gpt-4o-mini-2024-07-18' } }]);
    const r = await p.run();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('fewer than min_examples 10');
  });

  it('a failure while the files are put in place rolls back: the previous files are byte-identical', async () => {
    const p = project('atomic', records, [emit({ report: false })]);
    const ok = await p.run();
    expect(ok.code, ok.stderr).toBe(0);
    const before = snapshot(p.out);
    expect(Object.keys(before)).toEqual(['lineage.jsonl', 'manifest.json', 'test.jsonl', 'train.jsonl']);
    // Something in the way of report.html (created after the first run): the new run cannot put it in place.
    mkdirSync(join(p.out, 'report.html', 'in-the-way'), { recursive: true });
    const changed = [...records, { id: 'm-new', messages: [user('a new question'), assistant('a new answer')] }];
    writeFileSync(join(p.dir, 'in.jsonl'), jsonl(changed));
    writeFileSync(p.config, JSON.stringify({ name: 'atomic', store: 'store.db', inputs: ['in.jsonl'], stages: [emit({ report: true })] }));
    const r = p.cli();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('report.html');
    const after = snapshot(join(p.out));
    for (const f of ['lineage.jsonl', 'manifest.json', 'test.jsonl', 'train.jsonl']) expect(after[f], f).toBe(before[f]);
    expect(stagingLeft(p.out)).toEqual([]);
  });

  it('an output directory that cannot be written: exit 1 naming it', async () => {
    const p = project('unwritable', records, [emit({})]);
    // A file where the output folder should be (permissions do not stop root).
    writeFileSync(p.out, 'not a folder');
    const r = p.cli();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(p.out);
    expect(readFileSync(p.out, 'utf8')).toBe('not a folder');
  });
});

describe('emit: epochs and cost from real runs', () => {
  const many = (n: number) => Array.from({ length: n }, (_, k) => ({ id: `e${k}`, messages: [user(`Q${k}: how many epochs?`), assistant(`A${k}`)] }));

  for (const [n, epochs] of [
    [1, 25],
    [20, 5],
    [33, 3],
    [34, 3],
  ] as const) {
    it(`epochs: auto with ${n} train example(s) → ${epochs}`, async () => {
      const p = project(`epochs-${n}`, many(n), [emit({})]);
      const r = await p.run();
      expect(r.code, r.stderr).toBe(0);
      expect(r.manifest.cost.n_epochs).toBe(epochs);
      recheck(p.out, r.manifest, { model: 'gpt-4o-mini-2024-07-18', name: `epochs-${n}` });
    });
  }

  it('explicit epochs and a price override', async () => {
    const p = project('epochs-explicit', many(12), [emit({ epochs: 7, price_per_1m_training_tokens: 2.5, model: 'gpt-4.1-nano-2025-04-14' })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    recheck(p.out, r.manifest, { model: 'gpt-4.1-nano-2025-04-14', name: 'epochs-explicit', epochs: 7, price: 2.5 });
    expect(r.manifest.cost.estimated_usd).toBe(Math.round(r.manifest.cost.billing_tokens * 7 * 2.5) / 1e6);
  });

  it('a model not in the table: cost null, no limit, a warning naming it', async () => {
    const p = project('epochs-unknown', many(12), [emit({ model: 'acme-llama-3-8b' })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    recheck(p.out, r.manifest, { model: 'acme-llama-3-8b', name: 'epochs-unknown' });
    expect(r.manifest.cost.estimated_usd).toBeNull();
    expect(r.manifest.model.max_tokens_per_example).toBeNull();
    expect(r.manifest.warnings.some((w) => w.includes('acme-llama-3-8b') && w.includes('not in the price and limit table'))).toBe(true);
  });

  it('a fine-tuned model name resolves to its base; the job request keeps the name', async () => {
    const model = 'ft:gpt-4o-mini-2024-07-18:org::id123';
    const p = project('epochs-ft', many(12), [emit({ model })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    recheck(p.out, r.manifest, { model, name: 'epochs-ft' });
    expect(r.manifest.model).toMatchObject({ base: 'gpt-4o-mini-2024-07-18', encoding: 'o200k_base', max_tokens_per_example: 65536, price_per_1m_training_tokens: 3 });
    expect(r.manifest.warnings).toEqual([]);
  });
});

describe('emit: real data', () => {
  const realdata = locateRealdata();
  if (!realdata) {
    if (process.env.CI) it('real data is required on CI', () => expect.fail('../shared/realdata is missing'));
    else {
      console.warn('emit.test.ts: ../shared/realdata not found; the real-data re-check is skipped');
      it.skip('real data (not present)', () => undefined);
    }
    return;
  }

  it('runs a realistic config over hh-rlhf, OpenAssistant and Arena-Hard and re-checks the files', async () => {
    const dir = join(root, 'realdata');
    const { files } = await writeRealdataInputs(join(dir, 'inputs'), realdata);
    const config = join(dir, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        name: 'realdata',
        store: 'store.db',
        seed: 3,
        inputs: files.map((f) => (f.format === 'feedback' ? { path: f.path, format: 'feedback' } : f.path)),
        stages: [
          { filter: { feedback: { name: 'score', min: 4 } } },
          { redact_pii: {} },
          { dedupe: { method: 'near', key: 'prompt', threshold: 0.85 } },
          { rebalance_refusals: { target_rate: 0.05 } },
          { system_prompt: { mode: 'if_missing', text: 'You are a helpful assistant.' } },
          { split: { test_fraction: 0.1 } },
          { emit: { dir: 'out', model: 'gpt-3.5-turbo-0613', over_limit: 'truncate', report: false } },
        ],
      }),
    );
    const r = cli(['run', config, '--json', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const manifest = JSON.parse(r.stdout) as Manifest;
    const out = join(dir, 'out');
    const parsed = recheck(out, manifest, { model: 'gpt-3.5-turbo-0613', name: 'realdata', seed: 3, overLimit: 'truncate' });
    expect(parsed.train.length).toBeGreaterThan(100);
    const rows = checkLineage(out, manifest, manifest.store.conversations);
    // hh-rlhf transcripts with an empty final assistant turn never reach the files.
    const hhEmpty = rows.filter((x) => x.id.startsWith('hh-') && x.reason === 'invalid:missing_content');
    expect(hhEmpty.length).toBeGreaterThan(0);
    for (const ex of [...parsed.train, ...parsed.test]) for (const m of ex.messages!) if (m.role === 'assistant' && !m.tool_calls) expect(textOf(m.content)).not.toBe('');
    // `validate` on the same files counts what the manifest says.
    for (const split of ['train', 'test'] as const) {
      const v = await runInProcess(['validate', join(out, `${split}.jsonl`), '--model', 'gpt-3.5-turbo-0613', '--json']);
      expect(v.code, v.stdout.slice(0, 500)).toBe(0);
      const report = JSON.parse(v.stdout) as { tokens: Record<string, number> };
      const { over_limit: _o, ...tokens } = report.tokens;
      expect(tokens).toEqual(manifest.files[split].tokens);
    }
  });
});
