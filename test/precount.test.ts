/**
 * Counting tokens ahead of emit (pipeline/precount.ts) must change the speed only. A count made ahead is of the
 * stored messages with the run's system prompts applied and made training messages; emit's own count is of the
 * JSON text of those messages. The two must agree on every shape a log can hold, and a run that counts ahead must
 * write the same files as one that counts nothing on a worker.
 */
import { describe, expect, it } from 'vitest';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore } from '../pipeline/store.js';
import { ingest } from '../pipeline/ingest.js';
import { Precount, precountPlan, precountRows, type PrecountChannel, type PrecountInput, type SystemPrompt } from '../pipeline/precount.js';
import { countBatch, TokenCounter } from '../pipeline/token-counter.js';
import { getTokenizer } from '../pipeline/tokens.js';
import { applySystemPrompt, toTrainingMessage } from '../pipeline/training-message.js';
import { WorkingSet } from '../pipeline/working-set.js';
import type { Message } from '../pipeline/stage.js';
import { curate, prng, words } from './support/pipeline.js';
import { locateRealdata, REALDATA_PATH, writeRealdataInputs } from './support/realdata.js';
import { runConfigFile } from '../pipeline/runner.js';
import { jsonl, tempDir } from './support/tmp.js';

const dir = tempDir('logcurate-precount-');
const realdata = locateRealdata();
if (!realdata && !process.env.CI) console.warn(`[precount.test] real-data run SKIPPED: ${REALDATA_PATH} not found (set CI=1 to make this a failure)`);

/** Conversations in every shape emit turns into training messages. */
function shapes(): Record<string, unknown>[] {
  return [
    { id: 's1', messages: [{ role: 'system', content: 'Old prompt.' }, { role: 'user', content: 'hi <|endoftext|>' }, { role: 'assistant', content: 'hello 日本語 🙂' }] },
    { id: 's2', messages: [{ role: 'user', content: [{ type: 'text', text: 'part one ' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'two' }] }, { role: 'assistant', content: 'ok', name: 'bot' }] },
    {
      id: 's3',
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris', days: 3 } } }] },
        { role: 'tool', tool_call_id: 'c1', content: '{"t": 21}' },
        { role: 'assistant', content: 'Sunny, 21.' },
      ],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
    },
    { id: 's4', messages: [{ role: 'user', content: 'do it' }, { role: 'assistant', content: null, refusal: 'I cannot help with that.' }] },
    { id: 's5', messages: [{ role: 'system', content: 'A' }, { role: 'system', content: 'B' }, { role: 'user', content: '' }, { role: 'assistant', content: '\u0000\uffff\u{1F600}'.repeat(50) }] },
    { id: 's6', messages: [{ role: 'user', content: 'q', name: null, tool_calls: [] }, { role: 'assistant', content: 'a', function_call: null }] },
    { id: 's7', messages: [{ role: 'user', content: 'old style' }, { role: 'assistant', content: null, function_call: { name: 'f', arguments: '{"a":1}' } }, { role: 'function', name: 'f', content: '2' }, { role: 'assistant', content: 'two' }] },
    { id: 's8', messages: [{ role: 'user', content: 'x'.repeat(30_000) }, { role: 'assistant', content: ' '.repeat(5000) + '\n\n\r\n' }] },
  ];
}

/** What emit counts: the transformed messages made training messages, as JSON text, counted by countBatch. */
function emitCount(stored: readonly Message[], prompts: readonly SystemPrompt[]): [number, number] {
  let m = stored;
  for (const p of prompts) m = applySystemPrompt(m, p.mode, p.text);
  const counts = countBatch([JSON.stringify(m.map(toTrainingMessage))], getTokenizer('o200k_base'));
  return [counts[0]!, counts[1]!];
}

async function storeOf(name: string, records: Record<string, unknown>[]): Promise<{ path: string; pks: Int32Array; messages: Map<number, Message[]> }> {
  const path = join(dir, `${name}.db`);
  const logs = join(dir, `${name}.jsonl`);
  writeFileSync(logs, jsonl(records));
  const store = openStore(path);
  try {
    await ingest(store, [logs], { cwd: dir });
    const rows = store.sqlite.prepare(`SELECT pk, messages FROM conversations ORDER BY pk`).raw().all() as [number, string][];
    return { path, pks: Int32Array.from(rows, (r) => r[0]), messages: new Map(rows.map(([pk, m]) => [pk, JSON.parse(m) as Message[]])) };
  } finally {
    await store.close();
  }
}

describe('counting tokens ahead of emit', () => {
  it('counts what emit counts, for every message shape and every system prompt mode', async () => {
    const { path, pks, messages } = await storeOf('shapes', shapes());
    expect(pks.length).toBe(8);
    const tok = getTokenizer('o200k_base');
    const plans: SystemPrompt[][] = [
      [],
      [{ mode: 'replace', text: 'You are Acme.' }],
      [{ mode: 'prepend', text: 'Be brief. <|im_start|>' }],
      [{ mode: 'if_missing', text: 'Fallback prompt' }],
      [{ mode: 'remove', text: undefined }],
      [{ mode: 'remove', text: undefined }, { mode: 'if_missing', text: 'Then this one' }],
    ];
    // A pk the store lacks answers -1; the others in the order asked.
    const asked = Int32Array.from([...pks, 999_999]);
    for (const prompts of plans) {
      const counts = precountRows({ db: path, pks: asked.slice(), prompts }, tok);
      pks.forEach((pk, k) => {
        expect([counts[2 * k], counts[2 * k + 1]], `pk ${pk}, ${JSON.stringify(prompts)}`).toEqual(emitCount(messages.get(pk)!, prompts));
      });
      expect([counts[2 * pks.length], counts[2 * pks.length + 1]]).toEqual([-1, -1]);
    }
  });

  it('plans only runs whose stages before emit rewrite nothing but system messages', () => {
    expect(precountPlan([{ name: 'filter', params: {} }, { name: 'dedupe', params: {} }, { name: 'split', params: {} }])).toEqual([]);
    expect(
      precountPlan([
        { name: 'system_prompt', params: { mode: 'replace', text: 'A' } },
        { name: 'rebalance_refusals', params: {} },
        { name: 'system_prompt', params: { mode: 'remove' } },
      ]),
    ).toEqual([
      { mode: 'replace', text: 'A' },
      { mode: 'remove', text: undefined },
    ]);
    expect(precountPlan([{ name: 'filter', params: {} }, { name: 'redact_pii', params: {} }])).toBeNull();
  });

  it('hands over what is alive, takes back what the worker has not started, and counts each survivor exactly', async () => {
    const rand = prng(11);
    const records = Array.from({ length: 3000 }, (_, k) => ({
      id: `p${k}`,
      messages: [
        { role: 'user', content: `${words(rand, 3 + (k % 17)).join(' ')} ${k}` },
        { role: 'assistant', content: `${words(rand, 5 + (k % 29)).join(' ')} ${k}` },
      ],
    }));
    const { path, pks, messages } = await storeOf('settle', records);
    const prompts: SystemPrompt[] = [{ mode: 'replace', text: 'Short.' }];
    const counter = new TokenCounter('o200k_base', getTokenizer('o200k_base'));
    const channel = counter.precountChannel();
    expect(channel).not.toBeNull();
    try {
      const ws = new WorkingSet(pks, (pk) => `p${pk}`);
      const pre = new Precount(channel!, path, prompts, ws.size);
      pre.settle(ws);
      // Before the worker thread has even started, a stage drops every other conversation: what it has not
      // started is taken back and the survivors handed over again.
      for (let i = 0; i < ws.size; i += 2) ws.drop(i, 0, 'test');
      pre.settle(ws);
      const alive = Array.from({ length: ws.size }, (_, i) => i).filter((i) => ws.isAlive(i));
      await pre.ready(alive);
      for (const i of alive) {
        const t = pre.tokens(i);
        expect(t, `index ${i}`).not.toBeNull();
        expect([t!.total, t!.assistant]).toEqual(emitCount(messages.get(ws.pks[i]!)!, prompts));
      }
      expect(pre.used).toBe(alive.length);
      // Taken back, then handed over again: at most the batch the worker had begun is counted for the dropped.
      const droppedCounted = Array.from({ length: ws.size }, (_, i) => i).filter((i) => !ws.isAlive(i) && pre.tokens(i) !== null).length;
      expect(droppedCounted).toBeLessThanOrEqual(1024);
      // Emit lets the batches go as it passes them: a count is no longer held once its batch lies wholly behind.
      pre.releaseBefore(alive.at(-1)!);
      expect(pre.tokens(alive[0]!)).toBeNull();
      expect(pre.tokens(alive.at(-1)!)).not.toBeNull();
      pre.releaseBefore(ws.size);
      expect(alive.filter((i) => pre.tokens(i) !== null)).toEqual([]);
    } finally {
      await counter.close();
    }
  });

  it('keeps within the room of the worker ring, and hands the rest over as answers come back', async () => {
    const posted: { input: PrecountInput; answer: (counts: Int32Array | undefined) => void }[] = [];
    const channel: PrecountChannel = {
      post: (input) => {
        let answer!: (counts: Int32Array | undefined) => void;
        const output = new Promise<Int32Array | undefined>((resolve) => (answer = resolve));
        posted.push({ input, answer });
        return { seq: posted.length - 1, output };
      },
      // The worker has started nothing: every batch can be taken back.
      steal: () => true,
      capacity: 4,
    };
    const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const n = 1024 * 20;
    const ws = new WorkingSet(Int32Array.from({ length: n }, (_, k) => k + 1), (pk) => `c${pk}`);
    const pre = new Precount(channel, join(dir, 'none.db'), [], n);
    pre.settle(ws);
    // Twenty batches' worth, of which the ring has room for four.
    expect(posted.map((p) => p.input.pks.length)).toEqual([1024, 1024, 1024, 1024]);
    expect(Array.from(posted[1]!.input.pks.subarray(0, 2))).toEqual([1025, 1026]);
    // Taken back, but outstanding until the worker reaches them: nothing more is posted.
    pre.settle(ws);
    expect(posted.length).toBe(4);
    // The worker skips them (no output): each answer makes room for the next, from the first conversation again.
    for (const p of posted.slice(0, 4)) p.answer(undefined);
    await settled();
    expect(posted.length).toBe(8);
    expect(posted[4]!.input.pks[0]).toBe(1);
    // An answer with counts: they are kept, and the queue goes on in order.
    posted[4]!.answer(new Int32Array(2 * 1024).fill(7));
    await settled();
    expect(posted.length).toBe(9);
    expect(posted[8]!.input.pks[0]).toBe(4 * 1024 + 1);
    expect(pre.tokens(0)).toEqual({ total: 7, assistant: 7 });
    // Not yet handed over: emit counts it as before.
    expect(pre.tokens(n - 1)).toBeNull();
  });

  it('a first run counts ahead, and writes what a run without a token worker writes; a later run does not', async () => {
    const rand = prng(3);
    const logs = Array.from({ length: 6000 }, (_, k) => ({
      id: `r${k}`,
      messages: [
        ...(k % 4 === 0 ? [{ role: 'system', content: `stored prompt ${k % 3}` }] : []),
        // Some prompts repeat, so exact dedupe drops conversations after counting has begun.
        { role: 'user', content: k % 5 === 0 ? `the same question ${k % 40}` : `${words(rand, 4 + (k % 23)).join(' ')} ${k}` },
        { role: 'assistant', content: `${words(rand, 6 + (k % 41)).join(' ')} <|endoftext|> ${k}` },
      ],
    }));
    const stages = [{ dedupe: { method: 'exact', key: 'prompt' } }, { system_prompt: { text: 'You are Acme.' } }, { split: { test_fraction: 0.1 } }];
    const files = (out: string): Record<string, string> => Object.fromEntries(['train.jsonl', 'test.jsonl'].map((f) => [f, readFileSync(join(out, f), 'utf8')]));
    const emitStats = (out: string): { token_cache: { misses: number; counted_ahead: number } }[] => {
      const db = new Database(join(out, '..', 'store.db'), { readonly: true });
      try {
        return (db.prepare(`SELECT s.stats_json FROM run_stages s JOIN runs r ON r.id = s.run_id WHERE s.name = 'emit' ORDER BY r.started_at, r.id`).pluck().all() as string[]).map((s) => JSON.parse(s));
      } finally {
        db.close();
      }
    };
    const ahead = await curate(dir, { logs, stages });
    const first = emitStats(ahead.out)[0]!;
    expect(ahead.manifest.stages[0]!.out).toBeLessThan(6000);
    expect(first.token_cache.counted_ahead).toBeGreaterThan(0);
    expect(first.token_cache.counted_ahead).toBe(first.token_cache.misses);
    process.env.LOGCURATE_TOKEN_WORKER = '0';
    try {
      const inline = await curate(dir, { logs, stages });
      expect(emitStats(inline.out)[0]!.token_cache.counted_ahead).toBe(0);
      expect(files(inline.out)).toEqual(files(ahead.out));
      expect(inline.manifest.files).toEqual(ahead.manifest.files);
    } finally {
      delete process.env.LOGCURATE_TOKEN_WORKER;
    }
    // The same store again: its token cache has the counts, so nothing is counted ahead.
    const again = await curate(dir, { logs, stages, db: join(ahead.out, '..', 'store.db') });
    expect(emitStats(ahead.out).at(-1)!.token_cache.counted_ahead).toBe(0);
    expect(files(again.out)).toEqual(files(ahead.out));
  });

  it('a run whose stages rewrite text does not count ahead, and writes what a run without a token worker writes', async () => {
    const logs = Array.from({ length: 5000 }, (_, k) => ({
      id: `x${k}`,
      messages: [
        { role: 'user', content: `mail me at person${k}@example.com or call +1 415 555 ${String(1000 + (k % 9000)).padStart(4, '0')}` },
        { role: 'assistant', content: `Sure, person${k}@example.com noted.` },
      ],
    }));
    const stages = [{ redact_pii: {} }, { system_prompt: { text: 'Be careful.' } }];
    const ahead = await curate(dir, { logs, stages });
    const db = new Database(join(ahead.out, '..', 'store.db'), { readonly: true });
    const stats = JSON.parse(db.prepare(`SELECT stats_json FROM run_stages WHERE name = 'emit'`).pluck().get() as string);
    db.close();
    expect(stats.token_cache.counted_ahead).toBe(0);
    process.env.LOGCURATE_TOKEN_WORKER = '0';
    try {
      const inline = await curate(dir, { logs, stages });
      expect(readFileSync(join(inline.out, 'train.jsonl'), 'utf8')).toBe(readFileSync(join(ahead.out, 'train.jsonl'), 'utf8'));
      expect(inline.manifest.files).toEqual(ahead.manifest.files);
    } finally {
      delete process.env.LOGCURATE_TOKEN_WORKER;
    }
  });

  it.skipIf(!realdata && !process.env.CI)('on the public datasets, a first run counting ahead writes what a run without a token worker writes', async () => {
    expect(realdata, `real data missing at ${REALDATA_PATH}`).not.toBeNull();
    const base = join(dir, 'realdata');
    const { files } = await writeRealdataInputs(join(base, 'in'));
    const run = async (name: string): Promise<{ out: string; stats: { counted_ahead: number; misses: number } }> => {
      const at = join(base, name);
      cpSync(join(base, 'in'), join(at, 'in'), { recursive: true });
      const config = {
        name: 'realdata-ahead',
        seed: 3,
        inputs: [...files.filter((f) => f.format !== 'feedback').map((f) => `in/${f.path.split('/').pop()}`), { path: 'in/realdata-feedback.jsonl', format: 'feedback' }],
        stages: [
          { dedupe: { method: 'exact', key: 'prompt' } },
          { system_prompt: { mode: 'if_missing', text: 'You are a helpful assistant.' } },
          { split: { test_fraction: 0.1 } },
          { emit: { dir: 'out', model: 'gpt-4o-mini-2024-07-18', report: false } },
        ],
      };
      writeFileSync(join(at, 'config.json'), JSON.stringify(config));
      await runConfigFile(join(at, 'config.json'), { db: join(at, 'store.db') });
      const db = new Database(join(at, 'store.db'), { readonly: true });
      try {
        const stats = JSON.parse(db.prepare(`SELECT stats_json FROM run_stages WHERE name = 'emit'`).pluck().get() as string);
        return { out: join(at, 'out'), stats: stats.token_cache };
      } finally {
        db.close();
      }
    };
    const ahead = await run('ahead');
    expect(ahead.stats.counted_ahead).toBeGreaterThan(1000);
    expect(ahead.stats.counted_ahead).toBe(ahead.stats.misses);
    process.env.LOGCURATE_TOKEN_WORKER = '0';
    try {
      const inline = await run('inline');
      expect(inline.stats.counted_ahead).toBe(0);
      for (const f of ['train.jsonl', 'test.jsonl', 'manifest.json']) {
        const text = (out: string): string => readFileSync(join(out, f), 'utf8').replace(/"(id|started_at|finished_at|path)": "[^"]*"/g, '');
        expect(text(inline.out), f).toBe(text(ahead.out));
      }
    } finally {
      delete process.env.LOGCURATE_TOKEN_WORKER;
    }
  }, 120_000);
});
