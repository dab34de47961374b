import { describe, expect, it } from 'vitest';
import {
  NearDuplicateIndex,
  candidateProbability,
  estimateJaccard,
  minhashConfig,
  signature,
} from '../pipeline/minhash.js';
import { normalizeText } from '../pipeline/normalize.js';
import { mulberry32 } from '../data/random.js';


/** Random prose over a Zipf-ish vocabulary, so unrelated texts still share common words as real ones do. */
function makeWords(rand: () => number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`w${Math.floor(rand() ** 2 * 3000)}`);
  return out;
}

let freshCounter = 0;
/** A word that occurs nowhere else, to control exactly which shingles two texts share. */
function fresh(): string {
  return `u${(freshCounter++).toString(36)}`;
}

/** Exact Jaccard similarity of word-bigram sets, computed independently of the implementation. */
function exactJaccard(a: string[], b: string[]): number {
  const set = (w: string[]) => new Set(w.slice(0, -1).map((x, i) => `${x} ${w[i + 1]}`));
  const A = set(a);
  const B = set(b);
  let inter = 0;
  for (const x of A) if (B.has(x)) inter++;
  return inter / (A.size + B.size - inter);
}

/** Clusters of a list of texts (already normalised) through the public API, as the dedupe stage uses it. */
function clusterTexts(texts: string[], threshold = 0.85, order?: number[]): Int32Array {
  const index = new NearDuplicateIndex({ threshold });
  for (const i of order ?? texts.map((_, j) => j)) index.add(i, signature(texts[i], index.config));
  return index.clusters();
}

function pairClustered(a: string, b: string, threshold = 0.85): boolean {
  const c = clusterTexts([a, b], threshold);
  return c[1] === 0;
}

describe('minhashConfig', () => {
  it('uses 256 permutations, word bigrams and 28 bands of 9 rows at the default threshold', () => {
    expect(minhashConfig(0.85)).toEqual({ numPerm: 256, bands: 28, rows: 9, shingleSize: 2 });
  });

  it('picks the largest rows per band that keep the threshold itself a candidate with probability ≥ 0.999', () => {
    for (const t of [0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1]) {
      const { numPerm, bands, rows } = minhashConfig(t);
      expect(bands * rows).toBeLessThanOrEqual(numPerm);
      expect(candidateProbability(t, bands, rows)).toBeGreaterThanOrEqual(0.999);
      if (rows < numPerm) {
        expect(candidateProbability(t, Math.floor(numPerm / (rows + 1)), rows + 1)).toBeLessThan(0.999);
      }
    }
    // The S-curve at the default: clearly similar pairs are near-certain candidates, unrelated ones rare.
    const { bands, rows } = minhashConfig(0.85);
    expect(candidateProbability(0.9, bands, rows)).toBeGreaterThan(0.99999);
    expect(candidateProbability(0.3, bands, rows)).toBeLessThan(0.001);
  });

  it('rejects thresholds outside (0, 1]', () => {
    for (const bad of [0, -0.1, 1.01, Number.NaN]) expect(() => minhashConfig(bad)).toThrow(RangeError);
    expect(() => new NearDuplicateIndex({ threshold: 0 })).toThrow(/threshold/);
  });
});

describe('signature', () => {
  const cfg = minhashConfig(0.85);

  it('is deterministic, seed-dependent and has one value per permutation', () => {
    const text = 'how do i reset my password for the admin console';
    const a = signature(text, cfg);
    expect(a).toHaveLength(256);
    expect(signature(text, cfg)).toEqual(a);
    expect(signature(text, { ...cfg, seed: 1 })).not.toEqual(a);
  });

  it('ignores punctuation between words', () => {
    expect(signature('hello, world! how are you?', cfg)).toEqual(signature('hello world how are you', cfg));
  });

  it('treats texts shorter than a shingle as one shingle of all their words', () => {
    expect(signature('thanks', cfg)).toEqual(signature('thanks!', cfg));
    expect(estimateJaccard(signature('thanks', cfg), signature('thanks a lot', cfg))).toBeLessThan(0.1);
    expect(estimateJaccard(signature('yes', cfg), signature('no', cfg))).toBe(0);
  });

  it('gives the empty text the all-ones signature and word-less text a signature of its own', () => {
    expect(Array.from(signature('', cfg)).every((v) => v === 0xffffffff)).toBe(true);
    expect(signature('???', cfg)).toEqual(signature('???', cfg));
    expect(estimateJaccard(signature('???', cfg), signature('!!!', cfg))).toBe(0);
    expect(estimateJaccard(signature('???', cfg), signature('', cfg))).toBe(0);
  });

  it('shingles scripts written without spaces by character', () => {
    const a = signature(normalizeText('今天天气很好，我们去公园散步吧'), cfg);
    const b = signature(normalizeText('今天天气很好，我们去公园散步'), cfg);
    const c = signature(normalizeText('请帮我翻译这封邮件'), cfg);
    expect(estimateJaccard(a, b)).toBeGreaterThan(0.75); // exact: 12 of 13 character bigrams shared
    expect(estimateJaccard(a, c)).toBeLessThan(0.1);
  });

  it('estimates Jaccard without bias and with the binomial spread', () => {
    const rand = mulberry32(3);
    const estimates: number[] = [];
    let exact = 0;
    for (let t = 0; t < 300; t++) {
      const shared = makeWords(rand, 40);
      const a = [...shared, fresh(), fresh(), fresh()];
      const b = [...shared, fresh(), fresh(), fresh()];
      exact = exactJaccard(a, b); // 39 / (39 + 6) whatever the words, as the tails are fresh
      estimates.push(estimateJaccard(signature(a.join(' '), cfg), signature(b.join(' '), cfg)));
    }
    const mean = estimates.reduce((x, y) => x + y, 0) / estimates.length;
    const sd = Math.sqrt(estimates.reduce((x, y) => x + (y - mean) ** 2, 0) / estimates.length);
    const binomialSd = Math.sqrt((exact * (1 - exact)) / 256);
    expect(Math.abs(mean - exact)).toBeLessThan(0.006); // standard error of the mean ≈ 0.0013
    expect(sd).toBeGreaterThan(binomialSd * 0.8);
    expect(sd).toBeLessThan(binomialSd * 1.2);
  });
});

describe('NearDuplicateIndex', () => {
  it('clusters identical texts under the smallest docIndex and leaves unique texts alone', () => {
    const texts = ['alpha beta gamma delta', 'completely different words here', 'alpha beta gamma delta', 'alpha beta gamma delta'];
    expect(Array.from(clusterTexts(texts))).toEqual([0, 1, 0, 0]);
  });

  it('clusters case, whitespace and NFKC variants once normalised', () => {
    const variants = [
      'Please summarise the attached report for the board',
      '  PLEASE  summarise the\tattached report\nfor the board ',
      'Ｐｌｅａｓｅ summarise the attached report for the board',
      'Please summarise the attached report for the board\u00a0',
    ].map(normalizeText);
    expect(new Set(variants).size).toBe(1);
    expect(Array.from(clusterTexts(variants))).toEqual([0, 0, 0, 0]);
  });

  it('clusters texts differing by one word in 40 at 0.85, but not clearly different texts', () => {
    const rand = mulberry32(40);
    let clustered = 0;
    let falseMerges = 0;
    const trials = 200;
    for (let t = 0; t < trials; t++) {
      const a = makeWords(rand, 40);
      const b = [...a];
      b[5 + Math.floor(rand() * 30)] = fresh();
      if (pairClustered(a.join(' '), b.join(' '))) clustered++;
      if (pairClustered(a.join(' '), makeWords(rand, 40).join(' '))) falseMerges++;
    }
    // True Jaccard ≈ 0.90, one standard error (0.019) from the verification needs 0.85: ≈ 99% expected.
    expect(clustered / trials).toBeGreaterThanOrEqual(0.96);
    expect(falseMerges).toBe(0);
  });

  it('behaves around the threshold as the estimate says', () => {
    const rand = mulberry32(85);
    // Pairs built from a shared run plus fresh tails have an exact, known Jaccard similarity of bigrams.
    const rate = (sharedWords: number, tail: number, trials: number) => {
      let hits = 0;
      let exact = 0;
      for (let t = 0; t < trials; t++) {
        const shared = makeWords(rand, sharedWords);
        const a = [...shared, ...Array.from({ length: tail }, fresh)];
        const b = [...shared, ...Array.from({ length: tail }, fresh)];
        exact = exactJaccard(a, b);
        if (pairClustered(a.join(' '), b.join(' '))) hits++;
      }
      return { exact, rate: hits / trials };
    };
    const high = rate(77, 2, 200); // 76 / 80 = 0.95
    expect(high.exact).toBeCloseTo(0.95, 5);
    expect(high.rate).toBe(1);
    const at = rate(69, 6, 300); // 68 / 80 = 0.85: the estimate lands on either side about equally often
    expect(at.exact).toBeCloseTo(0.85, 5);
    expect(at.rate).toBeGreaterThan(0.3);
    expect(at.rate).toBeLessThan(0.75);
    const below = rate(61, 10, 200); // 60 / 80 = 0.75, 4.4 standard errors below the threshold
    expect(below.exact).toBeCloseTo(0.75, 5);
    expect(below.rate).toBeLessThan(0.02);
    const half = rate(41, 20, 200); // 40 / 80 = 0.5
    expect(half.exact).toBeCloseTo(0.5, 5);
    expect(half.rate).toBe(0);
    // A lower threshold takes the pairs a higher one rejects.
    let lowerHits = 0;
    for (let t = 0; t < 100; t++) {
      const shared = makeWords(rand, 41);
      const a = [...shared, ...Array.from({ length: 20 }, fresh)].join(' ');
      const b = [...shared, ...Array.from({ length: 20 }, fresh)].join(' ');
      if (pairClustered(a, b, 0.4)) lowerHits++;
    }
    expect(lowerHits).toBeGreaterThanOrEqual(98);
  });

  it('is deterministic and independent of insertion order', () => {
    const rand = mulberry32(9);
    const texts: string[] = [];
    for (let f = 0; f < 60; f++) {
      const base = makeWords(rand, 30);
      texts.push(base.join(' '));
      const copies = Math.floor(rand() * 4);
      for (let c = 0; c < copies; c++) {
        const v = [...base];
        v[Math.floor(rand() * 30)] = fresh();
        texts.push(v.join(' '));
      }
    }
    const forward = clusterTexts(texts);
    const order = texts.map((_, i) => i);
    for (let s = 0; s < 5; s++) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      expect(clusterTexts(texts, 0.85, order)).toEqual(forward);
    }
    expect(clusterTexts(texts)).toEqual(forward);
    // Sanity: families merged, so there are fewer clusters than texts, and every root is its own root.
    const roots = new Set(forward);
    expect(roots.size).toBeLessThan(texts.length);
    for (const r of roots) expect(forward[r]).toBe(r);
  });

  it('merges through chains: clusters are connected components of verified pairs', () => {
    // b is one edit from a and one from c, while a and c are two edits apart. Many permutations make the
    // estimates tight enough (sd ≈ 0.007) that a threshold between the two similarities separates them.
    const base = makeWords(mulberry32(5), 40);
    const a = [...base];
    const b = [...base];
    b[12] = fresh();
    const c = [...b];
    c[28] = fresh();
    expect(exactJaccard(a, b)).toBeGreaterThan(0.89);
    expect(exactJaccard(b, c)).toBeGreaterThan(0.89);
    expect(exactJaccard(a, c)).toBeLessThan(0.82);
    const run = (words: string[][]) => {
      const index = new NearDuplicateIndex({ threshold: 0.855, numPerm: 2048 });
      words.forEach((w, i) => index.add(i, signature(w.join(' '), index.config)));
      return Array.from(index.clusters());
    };
    expect(run([c, a, b])).toEqual([0, 0, 0]);
    expect(run([c, a])).toEqual([0, 1]);
  });

  it('clusters empty texts with each other and with nothing else', () => {
    expect(Array.from(clusterTexts(['', 'some words here', '', 'x']))).toEqual([0, 1, 0, 3]);
  });

  it('still finds a late near-duplicate pair among many templated texts that crowd the same buckets', () => {
    const rand = mulberry32(77);
    const boilerplate = makeWords(rand, 40);
    const texts: string[] = [];
    for (let i = 0; i < 2000; i++) texts.push([...boilerplate, ...Array.from({ length: 12 }, fresh)].join(' '));
    // Template texts share ≈ 62% of their bigrams: far below 0.85, but enough to fill buckets past the cap.
    const late = texts[1500].split(' ');
    late[46] = fresh();
    texts.push(late.join(' '));
    const clusters = clusterTexts(texts);
    expect(clusters[2000]).toBe(1500);
    const merged = Array.from(clusters).filter((root, i) => root !== i);
    expect(merged).toEqual([1500]);
  });

  it('validates its input', () => {
    const index = new NearDuplicateIndex({ threshold: 0.85 });
    expect(() => index.add(0, new Uint32Array(10))).toThrow(/expects 256/);
    expect(() => index.add(-1, signature('a', index.config))).toThrow(RangeError);
    index.add(0, signature('a b', index.config));
    expect(() => index.add(0, signature('a b', index.config))).toThrow(/already added/);
    index.add(2, signature('c d', index.config));
    expect(() => index.clusters()).toThrow(/docIndex 1 was never added/);
    index.add(1, signature('a b', index.config));
    expect(Array.from(index.clusters())).toEqual([0, 0, 2]);
    expect(new NearDuplicateIndex({ threshold: 0.85 }).clusters()).toHaveLength(0);
  });

  it('honours a custom number of permutations and grows past its initial capacity', () => {
    const index = new NearDuplicateIndex({ threshold: 0.9, numPerm: 130, seed: 3, expectedDocs: 2 });
    expect(index.config.numPerm).toBe(130);
    expect(index.config.bands * index.config.rows).toBeLessThanOrEqual(130);
    const texts = Array.from({ length: 100 }, (_, i) => (i % 10 === 0 ? 'the same words every tenth time' : `unique text number ${i} ${fresh()}`));
    texts.forEach((t, i) => index.add(i, signature(t, index.config)));
    const clusters = index.clusters();
    for (let i = 0; i < 100; i++) expect(clusters[i]).toBe(i % 10 === 0 ? 0 : i);
  });
});
