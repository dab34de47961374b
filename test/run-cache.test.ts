/**
 * A run's SQLite page cache (pipeline/runner.ts RUN_CACHE_KB): 16 MB while the run works, the connection's own (64 MB,
 * openStore) for the ingest of its inputs and again once it ends, also when it fails.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { loadConfig } from '../pipeline/config.js';
import { openStore } from '../pipeline/store.js';
import { runConfig } from '../pipeline/runner.js';
import { defineStage } from '../pipeline/stage.js';
import { chat } from './support/pipeline.js';
import { jsonl, tempDir } from './support/tmp.js';

const dir = tempDir('logcurate-run-cache-');

async function cacheSizes(fail: boolean): Promise<{ during: unknown; after: unknown; error?: string }> {
  writeFileSync(join(dir, 'logs.jsonl'), jsonl(Array.from({ length: 8 }, (_, k) => chat(`c${k}`, `question ${k}`, `answer ${k}`))));
  writeFileSync(
    join(dir, 'cache.json'),
    JSON.stringify({ name: 'cache', inputs: ['logs.jsonl'], stages: [{ emit: { dir: 'out', min_examples: 0, report: false, model: 'gpt-4o-mini-2024-07-18' } }] }),
  );
  const loaded = loadConfig(join(dir, 'cache.json'));
  const store = openStore(join(dir, `cache-${fail}.db`));
  let during: unknown;
  const probe = {
    name: 'probe',
    path: 'probe',
    params: {},
    def: defineStage({
      name: 'probe',
      params: z.object({}),
      run() {
        during = store.sqlite.pragma('cache_size', { simple: true });
        if (fail) throw new Error('probe failed');
      },
    }),
  };
  let error: string | undefined;
  try {
    await runConfig(store, { ...loaded, stages: [probe, loaded.stages[0]!] } as typeof loaded, {});
  } catch (err) {
    error = (err as Error).message;
  }
  const after = store.sqlite.pragma('cache_size', { simple: true });
  await store.close();
  return { during, after, error };
}

describe("a run's page cache", () => {
  it('is 16 MB while the run works, and the connection has its own again after', async () => {
    expect(await cacheSizes(false)).toEqual({ during: -16_384, after: -65_536, error: undefined });
  });

  it('is given back after a failed run too', async () => {
    expect(await cacheSizes(true)).toMatchObject({ during: -16_384, after: -65_536, error: expect.stringMatching(/probe failed/) });
  });
});
