/**
 * StageDefinition.warm (pipeline/runner.ts): a stage's set-up starts when the stage two places before it starts,
 * not when the run starts, so a warmed worker does not hold its memory through the stages far ahead of it; and
 * whatever a warm-up started that its stage did not take over is released when the run ends, even a failed one.
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

const dir = tempDir('logcurate-warm-');

async function runWith(names: string[], failAt?: string): Promise<string[]> {
  const events: string[] = [];
  writeFileSync(join(dir, 'logs.jsonl'), jsonl(Array.from({ length: 12 }, (_, k) => chat(`w${k}`, `question ${k}`, `answer ${k}`))));
  writeFileSync(
    join(dir, 'warm.json'),
    JSON.stringify({ name: 'warm', inputs: ['logs.jsonl'], stages: [{ emit: { dir: 'out', min_examples: 0, report: false, model: 'gpt-4o-mini-2024-07-18' } }] }),
  );
  const loaded = loadConfig(join(dir, 'warm.json'));
  const probes = names.map((name) => ({
    name,
    path: name,
    params: {},
    def: defineStage({
      name,
      params: z.object({}),
      warm() {
        events.push(`warm ${name}`);
        return { done: async () => void events.push(`done ${name}`) };
      },
      run() {
        events.push(`run ${name}`);
        if (name === failAt) throw new Error(`${name} failed`);
      },
    }),
  }));
  const config = { ...loaded, stages: [...probes, loaded.stages[0]!] } as typeof loaded;
  const store = openStore(join(dir, `${names.join('-')}-${failAt ?? 'ok'}.db`));
  try {
    await runConfig(store, config, {});
  } catch (err) {
    events.push(`error ${(err as Error).message}`);
  } finally {
    await store.close();
  }
  return events;
}

describe('stage warm-up', () => {
  it('starts each stage two places ahead of its turn, and releases every warm-up when the run ends', async () => {
    expect(await runWith(['a', 'b', 'c', 'd', 'e'])).toEqual([
      'warm a',
      'warm b',
      'warm c',
      'run a',
      'warm d',
      'run b',
      'warm e',
      'run c',
      'run d',
      'run e',
      'done a',
      'done b',
      'done c',
      'done d',
      'done e',
    ]);
  });

  it('a failed run releases what was warmed and warms nothing after the failure', async () => {
    expect(await runWith(['a', 'b', 'c', 'd', 'e'], 'b')).toEqual(['warm a', 'warm b', 'warm c', 'run a', 'warm d', 'run b', 'done a', 'done b', 'done c', 'done d', 'error b failed']);
  });
});
