/**
 * Running a whole curation (ingest → stages → emit) in-process over real files and a real SQLite store, for the
 * stage tests: the same `runConfigFile` the CLI calls, without paying a process start per run.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runConfigFile, type RunResult } from '../../pipeline/runner.js';
import type { Manifest } from '../../schemas/manifest.js';
import { jsonl } from './tmp.js';

export interface LineageRow {
  id: string;
  status: 'train' | 'test' | 'dropped';
  stage: string | null;
  reason: string | null;
  line: number | null;
}

export interface Example {
  messages: { role: string; content: string | null; [k: string]: unknown }[];
  tools?: unknown[];
}

export interface Curated {
  result: RunResult;
  manifest: Manifest;
  out: string;
  train: Example[];
  test: Example[];
  lineage: LineageRow[];
  byId: Map<string, LineageRow>;
  /** Ids in the files, by split. */
  trainIds: string[];
  testIds: string[];
  /** The reason each dropped id was dropped for. */
  dropped: Record<string, string>;
  /** The emitted example of an id (from its lineage line). */
  example(id: string): Example;
}

const DEFAULT_EMIT = { dir: 'out', model: 'gpt-4o-mini-2024-07-18', min_examples: 0, report: false };

let seq = 0;

/**
 * Writes `logs` (records or raw JSONL text) and a config into a fresh folder under `root`, runs it and reads the
 * outputs back. `stages` are the stages before emit; `emit` overrides emit's params.
 */
export async function curate(
  root: string,
  o: {
    logs: unknown[] | string;
    stages: unknown[];
    emit?: Record<string, unknown>;
    seed?: number;
    /** Reuse a store (and its folder) across calls. */
    db?: string;
    /** Extra files written next to the config, by name. */
    files?: Record<string, string>;
    /** More inputs besides logs.jsonl. */
    inputs?: unknown[];
  },
): Promise<Curated> {
  const dir = join(root, `c${++seq}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'logs.jsonl'), typeof o.logs === 'string' ? o.logs : jsonl(o.logs));
  for (const [name, text] of Object.entries(o.files ?? {})) writeFileSync(join(dir, name), text);
  const config = {
    name: 'stage-test',
    seed: o.seed ?? 0,
    inputs: ['logs.jsonl', ...(o.inputs ?? [])],
    stages: [...o.stages, { emit: { ...DEFAULT_EMIT, ...o.emit } }],
  };
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const out = join(dir, 'out');
  const result = await runConfigFile(configPath, { db: o.db ?? join(dir, 'store.db'), out });
  return readOutputs(out, result);
}

export function readJsonl<T = unknown>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as T);
}

export function readOutputs(out: string, result: RunResult): Curated {
  const train = readJsonl<Example>(join(out, 'train.jsonl'));
  const test = readJsonl<Example>(join(out, 'test.jsonl'));
  const lineage = readJsonl<LineageRow>(join(out, 'lineage.jsonl'));
  const byId = new Map(lineage.map((r) => [r.id, r]));
  const trainIds = lineage.filter((r) => r.status === 'train').sort((a, b) => a.line! - b.line!).map((r) => r.id);
  const testIds = lineage.filter((r) => r.status === 'test').sort((a, b) => a.line! - b.line!).map((r) => r.id);
  const dropped = Object.fromEntries(lineage.filter((r) => r.status === 'dropped').map((r) => [r.id, r.reason!]));
  return {
    result,
    manifest: result.manifest as unknown as Manifest,
    out,
    train,
    test,
    lineage,
    byId,
    trainIds,
    testIds,
    dropped,
    example(id) {
      const row = byId.get(id);
      if (!row || row.status === 'dropped') throw new Error(`${id} is not in the files (${JSON.stringify(row)})`);
      return (row.status === 'train' ? train : test)[row.line! - 1]!;
    },
  };
}

/** A plain two-turn chat record. */
export function chat(id: string, user: string, assistant: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    messages: [
      { role: 'user', content: user },
      { role: 'assistant', content: assistant },
    ],
    ...extra,
  };
}

export { mulberry32 as prng } from '../../data/random.js';

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'xe', 'zu', 'pa', 'do', 'fi', 'gu', 'he', 'jo', 'qui', 'wy', 'ba', 'ce'];

/** `n` pseudo-random words (two or three syllables each, from a large space), so unrelated texts share no bigrams. */
export function words(rand: () => number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = 2 + Math.floor(rand() * 2);
    let w = '';
    for (let j = 0; j < k; j++) w += SYLLABLES[Math.floor(rand() * SYLLABLES.length)];
    out.push(w);
  }
  return out;
}

/** Counts of each value. */
export function tally<T>(xs: Iterable<T>): Map<T, number> {
  const m = new Map<T, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}
