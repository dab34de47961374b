/**
 * Precision and recall of the DEFAULT refusal detector (pipeline/refusal.ts) on real refusals: the final
 * Assistant turns of hh-rlhf harmless-base/test.jsonl.gz (2312 lines × chosen/rejected = 4624 texts),
 * against our hand labels in test/fixtures/hh-refusal-labels.json.
 *
 * Run:   npx tsc -p tsconfig.json && node dist/bench/refusal-eval.js [path/to/harmless-base-test.jsonl.gz]
 * (default data path: ../shared/realdata/hh-rlhf/harmless-base-test.jsonl.gz relative to the repo root).
 * test/refusal.test.ts runs the same evaluation and guards the numbers.
 *
 * How the numbers are estimated. Two labelled sets:
 * - every text the detector flags is labelled, so TP and FP (and precision) are exact counts over the
 *   whole population;
 * - a uniform random sample of 400 texts, drawn without looking at the detector, is labelled too. Its
 *   unflagged members are a uniform random sample of the unflagged stratum, so the refusal rate among
 *   them, times the number of unflagged texts in the population, estimates FN (and TN the rest).
 *   Recall = TP / (TP + FN̂); the interval comes from a Wilson 95% interval on that rate.
 * Because the random sample does not depend on the detector, it stays valid when the phrase list
 * changes; only texts that a new version newly flags need labels (reported as "unlabelled flagged").
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { createRefusalDetector } from '../pipeline/refusal.js';

export type Side = 'chosen' | 'rejected';

export interface FinalTurn {
  /** 1-based line in the .jsonl.gz file. */
  readonly line: number;
  readonly side: Side;
  readonly text: string;
}

export interface RefusalLabel {
  readonly line: number;
  readonly side: Side;
  readonly refusal: boolean;
  /** Part of the detector-independent uniform random sample. */
  readonly random: boolean;
}

export interface RefusalEval {
  readonly population: number;
  readonly flagged: number;
  readonly unflagged: number;
  /** Flagged texts that have no label (a changed detector flags something new). */
  readonly unlabelledFlagged: readonly string[];
  readonly tp: number;
  readonly fp: number;
  readonly precision: number;
  /** Random-sample members the detector does not flag, and how many of them are refusals. */
  readonly sampleUnflagged: number;
  readonly sampleUnflaggedRefusals: number;
  readonly sampleFlagged: number;
  readonly fnEstimate: number;
  readonly tnEstimate: number;
  readonly recall: number;
  readonly recallLow: number;
  readonly recallHigh: number;
  readonly labelled: number;
}

/** The repo root: the nearest ancestor of this module that holds package.json (works from dist/ too). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

export function defaultDataPath(): string {
  return path.resolve(repoRoot(), '../shared/realdata/hh-rlhf/harmless-base-test.jsonl.gz');
}

export function defaultLabelsPath(): string {
  return path.join(repoRoot(), 'test/fixtures/hh-refusal-labels.json');
}

const ASSISTANT = '\n\nAssistant:';

/** The final Assistant turn of every chosen/rejected transcript. */
export function loadFinalTurns(gzPath: string): FinalTurn[] {
  const lines = zlib.gunzipSync(fs.readFileSync(gzPath)).toString('utf8').split('\n');
  const out: FinalTurn[] = [];
  lines.forEach((raw, i) => {
    if (raw.trim() === '') return;
    const rec = JSON.parse(raw) as Record<Side, string>;
    for (const side of ['chosen', 'rejected'] as const) {
      const t = rec[side];
      const k = t.lastIndexOf(ASSISTANT);
      out.push({ line: i + 1, side, text: k === -1 ? '' : t.slice(k + ASSISTANT.length).trim() });
    }
  });
  return out;
}

export function loadLabels(labelsPath: string): RefusalLabel[] {
  const doc = JSON.parse(fs.readFileSync(labelsPath, 'utf8')) as { labels: RefusalLabel[] };
  return doc.labels;
}

const key = (line: number, side: Side): string => `${line}:${side}`;

/** Wilson score interval for a binomial proportion (95%). */
function wilson(k: number, n: number): [number, number] {
  if (n === 0) return [0, 1];
  const z = 1.96;
  const p = k / n;
  const denom = 1 + (z * z) / n;
  const centre = p + (z * z) / (2 * n);
  const margin = z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return [Math.max(0, (centre - margin) / denom), Math.min(1, (centre + margin) / denom)];
}

export function evaluate(
  turns: readonly FinalTurn[],
  labels: readonly RefusalLabel[],
  detect: (text: string) => boolean = createRefusalDetector(),
): RefusalEval {
  const byKey = new Map(labels.map((l) => [key(l.line, l.side), l]));
  let flagged = 0;
  let tp = 0;
  let fp = 0;
  let sampleUnflagged = 0;
  let sampleUnflaggedRefusals = 0;
  let sampleFlagged = 0;
  const unlabelledFlagged: string[] = [];
  for (const t of turns) {
    const f = detect(t.text);
    const l = byKey.get(key(t.line, t.side));
    if (f) {
      flagged++;
      if (l === undefined) unlabelledFlagged.push(key(t.line, t.side));
      else if (l.refusal) tp++;
      else fp++;
    }
    if (l?.random) {
      if (f) sampleFlagged++;
      else {
        sampleUnflagged++;
        if (l.refusal) sampleUnflaggedRefusals++;
      }
    }
  }
  const unflagged = turns.length - flagged;
  const rate = sampleUnflagged === 0 ? 0 : sampleUnflaggedRefusals / sampleUnflagged;
  const [rateLow, rateHigh] = wilson(sampleUnflaggedRefusals, sampleUnflagged);
  const fnEstimate = rate * unflagged;
  const recallAt = (fn: number): number => (tp + fn === 0 ? 1 : tp / (tp + fn));
  return {
    population: turns.length,
    flagged,
    unflagged,
    unlabelledFlagged,
    tp,
    fp,
    precision: tp + fp === 0 ? 1 : tp / (tp + fp),
    sampleUnflagged,
    sampleUnflaggedRefusals,
    sampleFlagged,
    fnEstimate,
    tnEstimate: unflagged - fnEstimate,
    recall: recallAt(fnEstimate),
    // More refusals hiding among the unflagged means lower recall, so the bounds swap.
    recallLow: recallAt(rateHigh * unflagged),
    recallHigh: recallAt(rateLow * unflagged),
    labelled: labels.length,
  };
}

export function formatTable(r: RefusalEval): string {
  const pct = (x: number): string => (x * 100).toFixed(1) + '%';
  const rows: Array<[string, string, string]> = [
    ['population (final assistant turns)', String(r.population), ''],
    ['labelled texts', String(r.labelled), 'all flagged + uniform random sample'],
    ['flagged by detector', String(r.flagged), r.unlabelledFlagged.length ? `${r.unlabelledFlagged.length} UNLABELLED` : 'all labelled'],
    ['TP (flagged, refusal)', String(r.tp), 'exact, n = all flagged'],
    ['FP (flagged, not refusal)', String(r.fp), 'exact, n = all flagged'],
    [
      'FN (unflagged, refusal)',
      r.fnEstimate.toFixed(0),
      `est.: ${r.sampleUnflaggedRefusals}/${r.sampleUnflagged} of random unflagged × ${r.unflagged}`,
    ],
    [
      'TN (unflagged, not refusal)',
      r.tnEstimate.toFixed(0),
      `est.: ${r.sampleUnflagged - r.sampleUnflaggedRefusals}/${r.sampleUnflagged} of random unflagged × ${r.unflagged}`,
    ],
    ['precision', pct(r.precision), `TP/(TP+FP) = ${r.tp}/${r.tp + r.fp}`],
    ['recall', pct(r.recall), `TP/(TP+FN̂), 95% CI ${pct(r.recallLow)}–${pct(r.recallHigh)} (Wilson on FN rate)`],
  ];
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  return rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`).join('\n');
}

function main(): void {
  const dataPath = process.argv[2] ?? defaultDataPath();
  if (!fs.existsSync(dataPath)) {
    console.error(`hh-rlhf data not found: ${dataPath}`);
    process.exitCode = 1;
    return;
  }
  const turns = loadFinalTurns(dataPath);
  const labels = loadLabels(defaultLabelsPath());
  const t0 = performance.now();
  const r = evaluate(turns, labels);
  const ms = performance.now() - t0;
  console.log(`refusal detector (default phrases) on ${path.basename(dataPath)}\n`);
  console.log(formatTable(r));
  console.log(`\n(${turns.length} texts classified in ${ms.toFixed(0)} ms)`);
  if (r.unlabelledFlagged.length > 0) {
    console.log(`\nlabel these flagged texts in test/fixtures/hh-refusal-labels.json: ${r.unlabelledFlagged.join(' ')}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) main();
