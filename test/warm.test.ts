/**
 * StageDefinition.warm (pipeline/runner.ts): a stage's set-up starts when the run starts, so it overlaps every
 * stage before it — except a stage where memory peaks (StageDefinition.peaksMemory: near dedupe): what comes
 * after one is warmed only as the stage after it starts, so a warmed worker does not add to that peak. Whatever
 * a warm-up started that its stage did not take over is released when the run ends, even a failed one.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { loadConfig } from '../pipeline/config.js';
import { openStore } from '../pipeline/store.js';
import { runConfig } from '../pipeline/runner.js';
import { defineStage } from '../pipeline/stage.js';
import dedupe, { dedupeParams } from '../stages/dedupe.js';
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
      // Named with a trailing "!": a stage where memory peaks.
      peaksMemory: () => name.endsWith('!'),
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
  it('starts every later stage when the run starts, and releases every warm-up when the run ends', async () => {
    expect(await runWith(['a', 'b', 'c', 'd', 'e'])).toEqual([
      'warm b',
      'warm c',
      'warm d',
      'warm e',
      'run a',
      'run b',
      'run c',
      'run d',
      'run e',
      'done b',
      'done c',
      'done d',
      'done e',
    ]);
  });

  it('warms nothing across a stage where memory peaks: what follows it waits until the stage after it starts', async () => {
    expect(await runWith(['a', 'b', 'c!', 'd', 'e', 'f'])).toEqual([
      'warm b',
      'warm c!',
      'run a',
      'run b',
      'run c!',
      'warm e',
      'warm f',
      'run d',
      'run e',
      'run f',
      'done b',
      'done c!',
      'done e',
      'done f',
    ]);
    // Two such stages: what follows each one waits for it.
    expect(await runWith(['a!', 'b', 'c!', 'd', 'e'])).toEqual(['run a!', 'warm c!', 'run b', 'run c!', 'warm e', 'run d', 'run e', 'done c!', 'done e']);
  });

  it('a failed run releases what was warmed and warms nothing after the failure', async () => {
    expect(await runWith(['a', 'b', 'c!', 'd', 'e'], 'b')).toEqual(['warm b', 'warm c!', 'run a', 'run b', 'done b', 'done c!', 'error b failed']);
  });
});

describe('peaksMemory', () => {
  it('is near dedupe, not exact dedupe', () => {
    expect(dedupe.peaksMemory?.(dedupeParams.parse({ method: 'near' }))).toBe(true);
    expect(dedupe.peaksMemory?.(dedupeParams.parse({ method: 'exact' }))).toBe(false);
    expect(dedupe.peaksMemory?.(dedupeParams.parse({}))).toBe(false);
  });
});
