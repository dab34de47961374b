/**
 * Near-duplicate detection benchmark: throughput of normalisation + MinHash signatures, clustering time and
 * memory, and recall/precision against planted near-duplicates whose exact Jaccard similarity is known.
 *
 *   npx tsc -p tsconfig.json && node --expose-gc dist/bench/minhash-bench.js [docs=100000] [threshold=0.85]
 *
 * The corpus: base texts of 50–70 words drawn from a Zipf-like 20k-word vocabulary (so unrelated texts share
 * common words, as real prompts do), and ≈ 15% planted variants of earlier texts: case/whitespace copies,
 * 1–3 word edits (substitutions, insertions, deletions: true Jaccard mostly above 0.85) and 6–12 word edits
 * (mostly below). Ground truth is the exact Jaccard of word-bigram sets computed here, independently.
 */

import { NearDuplicateIndex, signature } from '../pipeline/minhash.js';
import { normalizeText } from '../pipeline/normalize.js';
import { mulberry32 } from '../data/random.js';

const docs = Number(process.argv[2] ?? 100_000);
const threshold = Number(process.argv[3] ?? 0.85);


const rand = mulberry32(2024);
const VOCAB = 20_000;
const word = () => `w${Math.floor(rand() ** 3 * VOCAB)}`;

function edit(words: string[], edits: number): string[] {
  const out = [...words];
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * out.length);
    const kind = rand();
    if (kind < 0.6) out[at] = word();
    else if (kind < 0.8) out.splice(at, 0, word());
    else if (out.length > 2) out.splice(at, 1);
  }
  return out;
}

function bigrams(words: string[]): Set<string> {
  const s = new Set<string>();
  for (let i = 0; i + 1 < words.length; i++) s.add(`${words[i]} ${words[i + 1]}`);
  return s;
}

function exactJaccard(a: string[], b: string[]): number {
  const A = bigrams(a);
  const B = bigrams(b);
  let inter = 0;
  for (const x of A) if (B.has(x)) inter++;
  return inter / (A.size + B.size - inter);
}

// --- corpus ------------------------------------------------------------------------------------------------
const words: string[][] = [];
const raw: string[] = [];
const family = new Int32Array(docs); // planted family id = the base document's index
const planted: Array<{ base: number; variant: number; jaccard: number }> = [];
for (let i = 0; i < docs; i++) {
  const r = rand();
  if (i > 100 && r < 0.15) {
    const base = Math.floor(rand() * i);
    const b = words[base];
    let w: string[];
    let text: string;
    if (r < 0.02) {
      w = b;
      text = `  ${b.join('  ').toUpperCase()}\n`; // same text once normalised
    } else if (r < 0.11) {
      w = edit(b, 1 + Math.floor(rand() * 3));
      text = w.join(' ');
    } else {
      w = edit(b, 6 + Math.floor(rand() * 7));
      text = w.join(' ');
    }
    words.push(w);
    raw.push(text);
    family[i] = family[base];
    planted.push({ base, variant: i, jaccard: exactJaccard(b, w) });
  } else {
    const w = Array.from({ length: 50 + Math.floor(rand() * 21) }, word);
    words.push(w);
    raw.push(w.join(' '));
    family[i] = i;
  }
}

// --- timing ------------------------------------------------------------------------------------------------
const mb = (x: number) => `${(x / 1048576).toFixed(0)} MB`;
// Run with --expose-gc for memory figures free of not-yet-collected garbage.
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
gc();
const memBefore = process.memoryUsage();
const index = new NearDuplicateIndex({ threshold, expectedDocs: docs });
let t0 = performance.now();
const normalised = raw.map(normalizeText);
const tNormalise = performance.now() - t0;
t0 = performance.now();
for (let i = 0; i < docs; i++) index.add(i, signature(normalised[i], index.config));
const tSign = performance.now() - t0;
gc();
const memAfterAdd = process.memoryUsage();
t0 = performance.now();
const clusters = index.clusters();
const tCluster = performance.now() - t0;
const memAfterClusters = process.memoryUsage();

// --- quality -----------------------------------------------------------------------------------------------
type Bin = { label: string; lo: number; hi: number; n: number; hit: number };
const bins: Bin[] = [
  { label: 'J = 1 (normalised copy)', lo: 1, hi: Infinity, n: 0, hit: 0 },
  { label: `J in [0.95, 1)`, lo: 0.95, hi: 1, n: 0, hit: 0 },
  { label: `J in [0.90, 0.95)`, lo: 0.9, hi: 0.95, n: 0, hit: 0 },
  { label: `J in [${threshold}, 0.90)`, lo: threshold, hi: 0.9, n: 0, hit: 0 },
  { label: `J in [0.75, ${threshold})`, lo: 0.75, hi: threshold, n: 0, hit: 0 },
  { label: 'J < 0.75', lo: -Infinity, hi: 0.75, n: 0, hit: 0 },
];
let positives = 0;
let found = 0;
for (const p of planted) {
  const together = clusters[p.base] === clusters[p.variant];
  const bin = bins.find((b) => p.jaccard >= b.lo && p.jaccard < b.hi)!;
  bin.n++;
  if (together) bin.hit++;
  if (p.jaccard >= threshold) {
    positives++;
    if (together) found++;
  }
}

// Precision over every pair the clustering puts together.
const members = new Map<number, number[]>();
for (let i = 0; i < docs; i++) {
  const root = clusters[i];
  let list = members.get(root);
  if (!list) members.set(root, (list = []));
  list.push(i);
}
let pairs = 0;
let pairsAbove = 0;
let pairsSameFamily = 0;
let largest = 0;
for (const list of members.values()) {
  largest = Math.max(largest, list.length);
  for (let x = 0; x < list.length; x++) {
    for (let y = x + 1; y < list.length; y++) {
      pairs++;
      if (family[list[x]] === family[list[y]]) pairsSameFamily++;
      if (exactJaccard(words[list[x]], words[list[y]]) >= threshold) pairsAbove++;
    }
  }
}

const { numPerm, bands, rows, shingleSize } = index.config;
const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : 'n/a');
console.log(`near-duplicate bench: ${docs} docs, threshold ${threshold}, ${numPerm} perms = ${bands} bands x ${rows} rows, ${shingleSize}-word shingles`);
console.log('');
console.log('| step                         | time      | rate            |');
console.log('|------------------------------|-----------|-----------------|');
console.log(`| normalizeText                | ${(tNormalise / 1000).toFixed(2).padStart(7)} s | ${Math.round(docs / (tNormalise / 1000)).toString().padStart(9)} docs/s |`);
console.log(`| signature + add              | ${(tSign / 1000).toFixed(2).padStart(7)} s | ${Math.round(docs / (tSign / 1000)).toString().padStart(9)} sigs/s |`);
console.log(`| clusters()                   | ${(tCluster / 1000).toFixed(2).padStart(7)} s | ${Math.round(docs / (tCluster / 1000)).toString().padStart(9)} docs/s |`);
console.log('');
console.log(`index holds ${mb(index.byteLength)} (${(index.byteLength / docs).toFixed(0)} B/doc) between calls`);
console.log(`process RSS: ${mb(memBefore.rss)} with the corpus loaded, ${mb(memAfterAdd.rss)} after add, ${mb(memAfterClusters.rss)} after clusters()`);
console.log('');
console.log('| planted pair (exact Jaccard) | pairs  | clustered |');
console.log('|------------------------------|--------|-----------|');
for (const b of bins) console.log(`| ${b.label.padEnd(28)} | ${String(b.n).padStart(6)} | ${fmt(b.hit / b.n).padStart(9)} |`);
console.log('');
console.log(`recall (planted pairs with J >= ${threshold} clustered together): ${fmt(found / positives)} (${found}/${positives})`);
console.log(`precision (clustered pairs with exact J >= ${threshold}):          ${fmt(pairsAbove / pairs)} (${pairsAbove}/${pairs})`);
console.log(`clustered pairs from the same planted family:                 ${fmt(pairsSameFamily / pairs)} (${pairsSameFamily}/${pairs})`);
console.log(`clusters with more than one doc: ${[...members.values()].filter((l) => l.length > 1).length}, largest ${largest}`);
