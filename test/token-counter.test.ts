/**
 * Token counting on a worker thread (pipeline/token-counter.ts) must change the speed only: the same counts as
 * counting inline, and byte-identical files from a run with the worker and one without.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { TokenCounter } from '../pipeline/token-counter.js';
import { countExampleTokens, getTokenizer } from '../pipeline/tokens.js';
import { tempDir } from './support/tmp.js';
import { curate, prng, words } from './support/pipeline.js';

const dir = tempDir('logcurate-token-counter-');

function conversations(n: number): Record<string, unknown>[] {
  const rand = prng(5);
  return Array.from({ length: n }, (_, k) => ({
    id: `w${k}`,
    messages: [
      { role: 'user', content: `${words(rand, 5 + Math.floor(rand() * 30)).join(' ')} <|endoftext|> ${k}` },
      { role: 'assistant', content: `${words(rand, 10 + Math.floor(rand() * 80)).join(' ')} 日本語 🙂 ${k}`, ...(k % 9 === 0 ? { name: 'bot' } : {}) },
    ],
  }));
}

describe('token counting on a worker thread', () => {
  it('counts exactly what counting inline gives, and uses the worker for a large batch', async () => {
    const tok = getTokenizer('o200k_base');
    const examples = conversations(700).map((c) => JSON.stringify(c.messages));
    const counter = new TokenCounter('o200k_base', tok);
    try {
      // While no worker runs, a small batch is counted inline: starting one would cost more.
      const first = await counter.count(examples.slice(0, 10));
      expect(counter.threaded).toBe(0);
      const counts = await counter.count(examples);
      expect(counter.threaded).toBe(1);
      examples.forEach((json, k) => {
        const c = countExampleTokens(JSON.parse(json), tok);
        expect([counts[2 * k], counts[2 * k + 1]]).toEqual([c.total, c.assistant]);
      });
      expect(Array.from(first)).toEqual(Array.from(counts.subarray(0, 20)));
      // Once the worker runs, every batch goes to it (the tokenizer is never loaded on this thread for a few).
      const small = await counter.count(examples.slice(0, 10));
      expect(counter.threaded).toBe(2);
      expect(Array.from(small)).toEqual(Array.from(counts.subarray(0, 20)));
    } finally {
      await counter.close();
    }
  });

  it('a counter warmed up ahead sends even a small batch to its worker, with the same counts', async () => {
    const examples = conversations(12).map((c) => JSON.stringify(c.messages));
    // A main-thread tokenizer that fails when touched: everything must be counted on the worker.
    const untouchable = new Proxy({}, {
      get: () => {
        throw new Error('the main-thread tokenizer was used');
      },
    }) as never;
    const counter = new TokenCounter('o200k_base', untouchable);
    try {
      counter.warm();
      const counts = await counter.count(examples);
      expect(counter.threaded).toBe(1);
      const tok = getTokenizer('o200k_base');
      examples.forEach((json, k) => {
        const c = countExampleTokens(JSON.parse(json), tok);
        expect([counts[2 * k], counts[2 * k + 1]]).toEqual([c.total, c.assistant]);
      });
    } finally {
      await counter.close();
    }
  });

  it('a run with the worker writes the same files and manifest figures as one without', async () => {
    const logs = conversations(5000);
    const stages = [{ system_prompt: { text: 'Be brief.' } }, { split: { test_fraction: 0.1 } }];
    const read = (out: string): Record<string, string> => Object.fromEntries(['train.jsonl', 'test.jsonl'].map((f) => [f, readFileSync(join(out, f), 'utf8')]));
    const withWorker = await curate(dir, { logs, stages });
    const db = new Database(join(withWorker.out, '..', 'store.db'), { readonly: true });
    const stats = JSON.parse(db.prepare(`SELECT stats_json FROM run_stages WHERE name = 'emit'`).pluck().get() as string);
    db.close();
    expect(stats.token_cache.misses).toBe(5000);
    expect(stats.token_cache.batches_on_worker).toBeGreaterThan(0);
    process.env.LOGCURATE_TOKEN_WORKER = '0';
    try {
      const inline = await curate(dir, { logs, stages });
      expect(read(inline.out)).toEqual(read(withWorker.out));
      // Lineage names each run's own input folder; everything else in it is the same.
      const decisions = (c: typeof inline): unknown[] => c.lineage.map((r) => [r.id, r.status, r.reason, r.line]);
      expect(decisions(inline)).toEqual(decisions(withWorker));
      expect(inline.manifest.files).toEqual(withWorker.manifest.files);
    } finally {
      delete process.env.LOGCURATE_TOKEN_WORKER;
    }
  });
});
