/**
 * Emit reuses what the run whose files are in the folder made of each conversation (pipeline/emit-reuse.ts): a
 * next night must write exactly what a run from scratch writes, and must never reuse a line that could differ.
 * Every test compares against a cold run: the same store (a copy) and config into a fresh folder.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, closeSync, writeSync, readSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeSample } from '../data/generate.js';
import { openStore, type Store } from '../pipeline/store.js';
import { ingest } from '../pipeline/ingest.js';
import { runConfigFile, type RunResult } from '../pipeline/runner.js';
import { OutcomeRecorder, OutcomeStore, renderKey, ReuseSource, type RenderKeyParts } from '../pipeline/emit-reuse.js';
import { lineDigest } from '../pipeline/outputs.js';
import { SPLIT_NONE, SPLIT_TEST, SPLIT_TRAIN } from '../pipeline/working-set.js';
import { createHash } from 'node:crypto';
import { jsonl, tempDir } from './support/tmp.js';
import { prng, words } from './support/pipeline.js';

const root = tempDir('logcurate-reuse-');

interface Night {
  dir: string;
  db: string;
}

async function ingestInto(db: string, inputs: string[], cwd: string): Promise<void> {
  const store = openStore(db);
  try {
    await ingest(store, inputs, { cwd });
  } finally {
    await store.close();
  }
}

function config(dir: string, name: string, stages: unknown[], emit: Record<string, unknown> = {}): string {
  const path = join(dir, `${name}.json`);
  writeFileSync(
    path,
    JSON.stringify({ name, seed: 5, stages: [...stages, { emit: { dir: 'unused', model: 'gpt-4o-mini-2024-07-18', min_examples: 0, report: false, ...emit } }] }),
  );
  return path;
}

async function run(configPath: string, db: string, out: string, dryRun = false): Promise<RunResult> {
  return runConfigFile(configPath, { db, out, dryRun });
}

type EmitStats = { reuse: { examples: number; built?: number; from_run?: string; why?: string }; truncated: number };

/** A query on the store, opened and closed around it. */
async function query<T>(db: string, q: (sqlite: Store['sqlite']) => T): Promise<T> {
  const store = openStore(db);
  try {
    return q(store.sqlite);
  } finally {
    await store.close();
  }
}

function emitStats(db: string, runId: string): Promise<EmitStats> {
  return query(db, (s) => JSON.parse((s.prepare(`SELECT stats_json FROM run_stages WHERE run_id = ? AND name = 'emit'`).get(runId) as { stats_json: string }).stats_json) as EmitStats);
}

/** Runs a copy of `db` into a fresh folder: what the same store and config give from scratch. */
async function cold(configPath: string, db: string, tag: string, dryRun = false): Promise<{ out: string; result: RunResult }> {
  const copy = join(root, `cold-${tag}.db`);
  const s = openStore(db);
  await s.sqlite.backup(copy);
  await s.close();
  const out = join(root, `cold-${tag}-out`);
  rmSync(out, { recursive: true, force: true });
  const result = await run(configPath, copy, out, dryRun);
  return { out, result };
}

function expectSameOutputs(a: { out: string; result: RunResult }, b: { out: string; result: RunResult }): void {
  for (const f of ['train.jsonl', 'test.jsonl', 'lineage.jsonl']) {
    if (!existsSync(join(a.out, f))) continue;
    expect(readFileSync(join(a.out, f)).equals(readFileSync(join(b.out, f))), f).toBe(true);
  }
  const strip = (m: Record<string, unknown>): Record<string, unknown> => ({ ...m, run: null, store: null });
  expect(strip(a.result.manifest)).toEqual(strip(b.result.manifest));
}

/** New score events for some earlier conversations: later ones, so they replace the old scores. */
function feedbackFor(ids: string[], seed: number): string {
  const rand = prng(seed);
  return jsonl(ids.map((id) => ({ log_id: id, name: 'score', value: rand() < 0.5 ? 1 : 5, created_at: '2030-01-01T00:00:00Z' })));
}

const NIGHTLY = [
  { filter: { feedback: { name: 'score', min: 4 } } },
  { dedupe: { method: 'exact', key: 'prompt' } },
  { rebalance_refusals: { target_rate: 0.05 } },
  { system_prompt: { mode: 'replace', text: 'You are a helpful assistant.' } },
  { split: { test_fraction: 0.2 } },
];

describe('emit reuse', () => {
  let night: Night;
  let ids: string[];

  beforeAll(async () => {
    const dir = join(root, 'nights');
    mkdirSync(dir, { recursive: true });
    await writeSample(join(dir, 'n1'), { n: 1500, seed: 3, largeMessageChars: 20_000 });
    await writeSample(join(dir, 'n2'), { n: 150, seed: 4, anomalies: false, largeMessageChars: 20_000 });
    night = { dir, db: join(dir, 'store.db') };
    await ingestInto(night.db, ['n1/*.{jsonl,jsonl.gz,csv}'], dir);
    ids = (await query(night.db, (s) => s.prepare(`SELECT id FROM conversations ORDER BY pk`).pluck().all() as string[])).filter((_, k) => k % 9 === 0);
    writeFileSync(join(dir, 'n2', 'late-feedback.jsonl'), feedbackFor(ids, 8));
  });

  it('a next night copies the unchanged lines and writes what a run from scratch writes', async () => {
    const db = join(root, 'a.db');
    copyFileSync(night.db, db);
    const cfg = config(night.dir, 'nightly', NIGHTLY);
    const out = join(root, 'a-out');
    const first = await run(cfg, db, out);
    expect((await emitStats(db, first.runId)).reuse.examples).toBe(0);
    expectSameOutputs({ out, result: first }, await cold(cfg, db, 'a1'));

    await ingestInto(db, ['n2/*.{jsonl,jsonl.gz,csv}', { path: 'n2/late-feedback.jsonl', format: 'feedback' } as never], night.dir);
    const coldRun = await cold(cfg, db, 'a2');
    const second = await run(cfg, db, out);
    const stats = (await emitStats(db, second.runId)).reuse;
    expect(stats.from_run).toBe(first.runId);
    // Most examples are copied; the new conversations, and those whose late feedback let them in, are built.
    expect(stats.examples).toBeGreaterThan(0.8 * (second.manifest.files as { train: { examples: number } }).train.examples);
    expect(stats.built).toBeGreaterThan(0);
    expectSameOutputs({ out, result: second }, coldRun);

    // A third night with nothing new copies every example, still to the same bytes.
    const third = await run(cfg, db, out);
    expect((await emitStats(db, third.runId)).reuse.built).toBe(0);
    expectSameOutputs({ out, result: third }, coldRun);
  });

  it('never reuses a line from a file that changed, or under another config', async () => {
    const db = join(root, 'b.db');
    copyFileSync(night.db, db);
    const cfg = config(night.dir, 'nightly-b', NIGHTLY);
    const out = join(root, 'b-out');
    await run(cfg, db, out);

    // One byte of train.jsonl changed in place, the size kept: nothing from it may be copied.
    const fd = openSync(join(out, 'train.jsonl'), 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, 20);
    writeSync(fd, Buffer.from([byte[0] === 0x61 ? 0x62 : 0x61]), 0, 1, 20);
    closeSync(fd);
    const edited = await run(cfg, db, out);
    expect((await emitStats(db, edited.runId)).reuse).toMatchObject({ examples: 0, why: expect.stringContaining('train.jsonl is not the file') });
    expectSameOutputs({ out, result: edited }, await cold(cfg, db, 'b1'));

    // Another system prompt: another render key, nothing reused, and the files say the new prompt.
    const other = config(night.dir, 'nightly-b2', NIGHTLY.map((s) => ('system_prompt' in s ? { system_prompt: { mode: 'replace', text: 'Be brief.' } } : s)));
    const changed = await run(other, db, out);
    expect((await emitStats(db, changed.runId)).reuse).toMatchObject({ examples: 0, why: expect.stringContaining('render key') });
    expectSameOutputs({ out, result: changed }, await cold(other, db, 'b2'));
    expect(readFileSync(join(out, 'train.jsonl'), 'utf8')).toContain('"Be brief."');

    // A folder the store never wrote to (a copy of the outputs elsewhere) is not trusted either.
    const moved = join(root, 'b-moved');
    mkdirSync(moved, { recursive: true });
    for (const f of ['train.jsonl', 'test.jsonl', 'manifest.json']) copyFileSync(join(out, f), join(moved, f));
    const elsewhere = await run(other, db, moved);
    expect((await emitStats(db, elsewhere.runId)).reuse).toMatchObject({ examples: 0, why: expect.stringContaining('no succeeded run') });
  });

  it('reuses truncated examples, over-limit drops and duplicate lines exactly; a dry run reuses but records nothing', async () => {
    // Long multi-turn conversations against a 4,096-token model: some are truncated (or dropped), and without
    // dedupe the same example appears more than once.
    const rand = prng(21);
    const long = (k: number): Record<string, unknown> => ({
      id: `long-${k}`,
      messages: Array.from({ length: 2 + 2 * (k % 6) }, (_, t) => ({ role: t % 2 === 0 ? 'user' : 'assistant', content: words(rand, 150 + (k % 7) * 120).join(' ') })),
    });
    const dup = (k: number): Record<string, unknown> => ({ id: `dup-${k}`, messages: [{ role: 'user', content: 'same question' }, { role: 'assistant', content: 'same answer' }] });
    const dir = join(root, 'long');
    mkdirSync(dir, { recursive: true });
    // And answers with no question: the manifest warns of examples without a system or user message.
    const lonely = (k: number): Record<string, unknown> => ({ id: `lonely-${k}`, messages: [{ role: 'assistant', content: `Hello number ${k}.` }] });
    writeFileSync(
      join(dir, 'a.jsonl'),
      jsonl([...Array.from({ length: 120 }, (_, k) => long(k)), ...Array.from({ length: 4 }, (_, k) => dup(k)), ...Array.from({ length: 3 }, (_, k) => lonely(k))]),
    );
    writeFileSync(join(dir, 'b.jsonl'), jsonl([...Array.from({ length: 20 }, (_, k) => long(200 + k)), dup(9)]));
    for (const overLimit of ['truncate', 'drop'] as const) {
      const db = join(root, `long-${overLimit}.db`);
      rmSync(db, { force: true });
      await ingestInto(db, ['a.jsonl'], dir);
      const cfg = config(dir, `long-${overLimit}`, [{ split: { test_fraction: 0.3 } }], { model: 'gpt-3.5-turbo-0613', over_limit: overLimit });
      const out = join(root, `long-${overLimit}-out`);
      const first = await run(cfg, db, out);
      const firstStats = await emitStats(db, first.runId);
      if (overLimit === 'truncate') expect(firstStats.truncated).toBeGreaterThan(0);
      else expect(first.funnel.at(-1)!.dropped.over_limit).toBeGreaterThan(0);
      expect((first.manifest.warnings as string[]).some((w) => w.includes('exact duplicate'))).toBe(true);
      expect((first.manifest.warnings as string[]).some((w) => w.includes('no system or user message'))).toBe(true);

      await ingestInto(db, ['b.jsonl'], dir);
      const coldRun = await cold(cfg, db, `long-${overLimit}`);
      const recorded = (): Promise<unknown> => query(db, (s) => s.prepare(`SELECT run_id, sum(n) AS n FROM emit_reuse GROUP BY run_id`).all());
      const before = await recorded();
      expect(before).toEqual([{ run_id: first.runId, n: expect.any(Number) }]);
      const dry = await run(cfg, db, out, true);
      expect((await emitStats(db, dry.runId)).reuse.examples).toBeGreaterThan(0);
      expect(dry.manifest.files).toEqual(coldRun.result.manifest.files);
      expect(await recorded()).toEqual(before);

      const second = await run(cfg, db, out);
      const stats = await emitStats(db, second.runId);
      expect(stats.reuse.examples).toBeGreaterThan(100);
      expect(stats.reuse.built).toBeGreaterThan(0);
      expect(stats.truncated).toBe((await emitStats(join(root, `cold-long-${overLimit}.db`), coldRun.result.runId)).truncated);
      expectSameOutputs({ out, result: second }, coldRun);
    }
  });

  it('outcomes of several chunks come back exactly, even if replaced meanwhile; an incomplete set is not used', async () => {
    // Straight through the recorder and the source, with files and a run record as a run leaves them.
    const db = join(root, 'chunks.db');
    const out = join(root, 'chunks-out');
    mkdirSync(out, { recursive: true });
    const rand = prng(5);
    const n = 2 * 16_384 + 777;
    const lines: Buffer[][] = [[], [], []];
    const expected: { pk: number; file: number; total: number; assistant: number; flags: number; reason: string | null; line: Buffer | null; digest: string }[] = [];
    const key = 'k'.repeat(64);
    await query(db, (sqlite) => {
      sqlite.prepare(`INSERT INTO runs (id, name, config_json, config_sha256, seed, status, started_at, out_dir) VALUES ('r1', 'n', '{}', 'x', 0, 'running', 'now', ?)`).run(out);
    });
    const store = openStore(db);
    try {
      const saved = new OutcomeStore(store, 'r1', out, key);
      const recorder = new OutcomeRecorder(false, (c) => saved.save(c));
      const sizes = [0, 0, 0];
      for (let k = 0; k < n; k++) {
        const pk = 3 * k + 1 + (k % 3);
        if (rand() < 0.05) {
          const reason = rand() < 0.5 ? 'over_limit' : `invalid:kind${k % 4}`;
          const over = reason === 'over_limit' ? 70_000 + k : undefined;
          recorder.dropped(pk, reason, over);
          expected.push({ pk, file: SPLIT_NONE, total: over ?? -1, assistant: 0, flags: over === undefined ? 0 : 4, reason, line: null, digest: '' });
          continue;
        }
        const file = rand() < 0.8 ? SPLIT_TRAIN : SPLIT_TEST;
        const line = Buffer.from(`{"n":${k},"t":"${'é'.repeat(k % 7)}"}\n`);
        const digest = lineDigest(line);
        const flags = k % 11 === 0 ? 1 : k % 13 === 0 ? 2 : 0;
        recorder.written(pk, file, sizes[file]!, line.length, k + 10, k % 50, flags, digest, null);
        lines[file]!.push(line);
        sizes[file]! += line.length;
        expected.push({ pk, file, total: k + 10, assistant: k % 50, flags, reason: null, line, digest: Buffer.from(digest).toString('hex') });
      }
      recorder.finish();
      expect(saved.complete).toBe(true);
      const files: Record<string, { bytes: number; sha256: string }> = {};
      for (const [name, f] of [['train', SPLIT_TRAIN], ['test', SPLIT_TEST]] as const) {
        const bytes = Buffer.concat(lines[f]!);
        writeFileSync(join(out, `${name}.jsonl`), bytes);
        files[name] = { bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
      }
      writeFileSync(join(out, 'manifest.json'), JSON.stringify({ run: { id: 'r1' } }));
      store.sqlite.prepare(`UPDATE runs SET status = 'succeeded', manifest_json = ? WHERE id = 'r1'`).run(JSON.stringify({ files }));

      const { source, why } = ReuseSource.open(store, out, key, false);
      expect(why).toBe('');
      const r = source!;
      // Another run into the folder replaces the outcomes while this one reads them: it read them all at open.
      store.sqlite.prepare(`DELETE FROM emit_reuse WHERE chunk = 1`).run();
      expect(r.size).toBe(n);
      // Working-set pks: every recorded one, and others between them.
      const wsPks = Int32Array.from({ length: 3 * n + 3 }, (_, k) => k + 1);
      const at = r.indexFor(wsPks);
      let found = 0;
      for (let i = 0; i < wsPks.length; i++) {
        if (at[i] === -1) continue;
        const e = at[i]!;
        const want = expected[e]!;
        expect(wsPks[i]).toBe(want.pk);
        const got = {
          pk: wsPks[i]!,
          file: r.file(e),
          total: r.total(e),
          assistant: r.assistant(e),
          flags: r.flags(e),
          reason: r.file(e) === SPLIT_NONE ? r.dropReason(e) : null,
          line: r.file(e) === SPLIT_NONE ? null : Buffer.from(r.bytes(e)),
          digest: r.file(e) === SPLIT_NONE ? '' : Buffer.from(r.digest(e)).toString('hex'),
        };
        expect(got).toEqual(want);
        found++;
      }
      expect(found).toBe(n);
      r.close();

      // The second of three chunks gone: nothing is reused.
      expect(ReuseSource.open(store, out, key, false)).toMatchObject({ source: null, why: expect.stringContaining('incomplete') });
    } finally {
      await store.close();
    }
  });

  it('the render key changes with every part of it', () => {
    const base: RenderKeyParts = {
      format: 'openai_chat',
      model: 'gpt-4o-mini',
      encoding: 'o200k_base',
      limit: 65536,
      overLimit: 'drop',
      seed: 1,
      transforms: [{ stage: 'system_prompt', params: '{"mode":"replace","text":"a"}' }],
    };
    const keys = new Set([
      renderKey(base),
      renderKey({ ...base, format: 'openai_completion' }),
      renderKey({ ...base, model: 'gpt-4o' }),
      renderKey({ ...base, encoding: 'cl100k_base' }),
      renderKey({ ...base, limit: 4096 }),
      renderKey({ ...base, overLimit: 'truncate' }),
      renderKey({ ...base, seed: 2 }),
      renderKey({ ...base, transforms: [] }),
      renderKey({ ...base, transforms: [{ stage: 'system_prompt', params: '{"mode":"replace","text":"b"}' }] }),
      renderKey({ ...base, transforms: [...base.transforms, { stage: 'redact_pii', params: '{}' }] }),
    ]);
    expect(keys.size).toBe(10);
    expect(renderKey({ ...base })).toBe(renderKey(base));
  });
});
