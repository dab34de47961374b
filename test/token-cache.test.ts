import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { runConfigFile } from '../pipeline/runner.js';
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

function emitStats(): { hits: number; misses: number; batches_on_worker: number } {
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
    expect(emitStats()).toEqual({ hits: 0, misses: 30, batches_on_worker: 0 });
    const train1 = readFileSync(join(dir, 'out', 'train.jsonl'), 'utf8');
    // Into another folder, so every example is built again (into the same one, emit copies the lines it wrote:
    // test/emit-reuse.test.ts) and each count is looked up.
    const second = await runConfigFile(config('You are helpful.'), { out: join(dir, 'out2') });
    expect(emitStats()).toEqual({ hits: 30, misses: 0, batches_on_worker: 0 });
    expect(readFileSync(join(dir, 'out2', 'train.jsonl'), 'utf8')).toBe(train1);
    expect(second.manifest.files).toEqual(first.manifest.files);
    // Another system prompt: every example's text changed, so every count is made afresh (and is larger).
    const third = await runConfigFile(config('You are a very helpful and precise assistant.'), {});
    expect(emitStats()).toEqual({ hits: 0, misses: 30, batches_on_worker: 0 });
    const t1 = (first.manifest.files as { train: { tokens: { total: number } } }).train.tokens.total;
    const t3 = (third.manifest.files as { train: { tokens: { total: number } } }).train.tokens.total;
    expect(t3).toBeGreaterThan(t1);
  });
});
