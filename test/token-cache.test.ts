import { describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { runConfigFile } from '../pipeline/runner.js';
import { countExampleTokens, getTokenizer } from '../pipeline/tokens.js';
import { jsonl, tempDir } from './support/tmp.js';

const dir = tempDir('logcurate-token-cache-');

function config(systemText: string): string {
  const path = join(dir, 'c.json');
  writeFileSync(
    path,
    JSON.stringify({
      name: 'cache',
      store: 'store.db',
      inputs: ['in.jsonl'],
      stages: [{ system_prompt: { mode: 'replace', text: systemText } }, { emit: { dir: 'out', model: 'gpt-4o-mini-2024-07-18', min_examples: 0 } }],
    }),
  );
  return path;
}

function cachedCounts(): number {
  const db = new Database(join(dir, 'store.db'), { readonly: true });
  const n = db.prepare('SELECT count(*) FROM token_cache').pluck().get() as number;
  db.close();
  return n;
}

function emitStats(): { hits: number; misses: number; batches_on_worker: number; counted_ahead: number } {
  const db = new Database(join(dir, 'store.db'), { readonly: true });
  const row = db
    .prepare(`SELECT stats_json FROM run_stages WHERE name = 'emit' AND run_id = (SELECT id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1)`)
    .pluck()
    .get() as string;
  db.close();
  return JSON.parse(row).token_cache;
}

describe('token counts are reused across runs, keyed so they never go stale', () => {
  it('a second run counts nothing again and writes the same files; a changed system prompt counts again', async () => {
    writeFileSync(
      join(dir, 'in.jsonl'),
      jsonl(Array.from({ length: 30 }, (_, k) => ({ id: `t${k}`, messages: [{ role: 'user', content: `question ${k} <|endoftext|>` }, { role: 'assistant', content: `answer ${k}` }] }))),
    );
    const first = await runConfigFile(config('You are helpful.'), {});
    expect(emitStats()).toEqual({ hits: 0, misses: 30, batches_on_worker: 0, counted_ahead: 0 });
    expect(cachedCounts()).toBe(30);
    const train1 = readFileSync(join(dir, 'out', 'train.jsonl'), 'utf8');
    // Into another folder, so every example is built again (into the same one, emit copies the lines it wrote:
    // test/emit-reuse.test.ts) and each count is looked up.
    const second = await runConfigFile(config('You are helpful.'), { out: join(dir, 'out2') });
    expect(emitStats()).toEqual({ hits: 30, misses: 0, batches_on_worker: 0, counted_ahead: 0 });
    expect(readFileSync(join(dir, 'out2', 'train.jsonl'), 'utf8')).toBe(train1);
    expect(second.manifest.files).toEqual(first.manifest.files);
    // Another system prompt: every example's text changed, so every count is made afresh (and is larger).
    const third = await runConfigFile(config('You are a very helpful and precise assistant.'), {});
    expect(emitStats()).toEqual({ hits: 0, misses: 30, batches_on_worker: 0, counted_ahead: 0 });
    const t1 = (first.manifest.files as { train: { tokens: { total: number } } }).train.tokens.total;
    const t3 = (third.manifest.files as { train: { tokens: { total: number } } }).train.tokens.total;
    expect(t3).toBeGreaterThan(t1);
  });

  it('a count made earlier in the same run is reused before it is saved, on a store with no counts yet', async () => {
    // 2,048 examples fill emit's first window; the 52 after it repeat the first 52 exactly (other ids, the same
    // messages), so they are looked up once the first window's counts are kept — and none is in the table yet.
    const base = Array.from({ length: 2048 }, (_, k) => ({ id: `w${k}`, messages: [{ role: 'user', content: `window question ${k}` }, { role: 'assistant', content: `answer ${k}` }] }));
    const repeats = base.slice(0, 52).map((c, k) => ({ ...c, id: `again${k}` }));
    const sub = join(dir, 'within');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'in.jsonl'), jsonl([...base, ...repeats]));
    const path = join(sub, 'c.json');
    writeFileSync(path, JSON.stringify({ name: 'within', store: 'store.db', inputs: ['in.jsonl'], stages: [{ emit: { dir: 'out', model: 'gpt-4o-mini-2024-07-18' } }] }));
    const run = await runConfigFile(path, {});
    const db = new Database(join(sub, 'store.db'), { readonly: true });
    const stats = JSON.parse(db.prepare(`SELECT stats_json FROM run_stages WHERE name = 'emit'`).pluck().get() as string).token_cache;
    const saved = db.prepare('SELECT count(*) FROM token_cache').pluck().get() as number;
    db.close();
    expect(stats.hits).toBe(52);
    expect(stats.misses).toBe(2048);
    expect(saved).toBe(2048);
    const lines = readFileSync(join(sub, 'out', 'train.jsonl'), 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(2100);
    expect(lines.slice(2048)).toEqual(lines.slice(0, 52));
    // The counts taken from the ones kept are the counts: the manifest's total is every line counted afresh.
    const tok = getTokenizer('o200k_base');
    const expected = lines.reduce((a, l) => a + countExampleTokens(JSON.parse(l).messages, tok).total, 0);
    expect((run.manifest.files as { train: { tokens: { total: number } } }).train.tokens.total).toBe(expected);
  });
});
