/**
 * Near-duplicate detection for the `dedupe` stage (`method: near`): MinHash signatures of word shingles,
 * LSH banding to find candidate pairs, and verification of every candidate by its estimated Jaccard
 * similarity, so that clusters are the connected components of pairs whose estimate reaches the threshold.
 *
 * ## Choices and why
 *
 * Words. A text (already passed through `normalizeText`) is split into words: maximal runs of letters,
 * digits and marks, so punctuation does not separate "hello, world" from "hello world". Scripts written
 * without spaces (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) would otherwise make a whole sentence one
 * word; each of their characters is a word instead, which turns the shingles into character n-grams there.
 *
 * Shingles: 2 consecutive words, whatever the threshold. Chat prompts are short (often 5–60 words). One changed
 * word removes k shingles and adds k, so a 40-word prompt with one word changed has Jaccard 0.90 with k = 2
 * but only 0.85 with k = 3 and 0.80 with k = 4: larger k would make the default threshold reject what users
 * call "the same prompt with a typo fixed". k = 1 (bags of words) ignores word order and gives unrelated
 * texts a high baseline from shared stop-words. The shingle size does not vary with the threshold so that
 * a threshold always means the same similarity. Texts with fewer words than the shingle size are one shingle
 * (all their words, in order), so "thanks" and "thanks!" are identical and "thanks" and "thanks a lot" are not.
 * A non-empty text with no words at all (only punctuation or symbols) is one shingle of its whole text; the
 * empty text has no shingles and gets the all-ones signature, so empty texts cluster with each other (they are
 * exact copies) and with nothing else.
 *
 * Permutations: 256. The verification decides on the estimate Ĵ = matches / k, whose standard error is
 * sqrt(J(1−J)/k): 0.022 at J = 0.85 for k = 256 (0.032 for 128). A pair at J = 0.90 (one word in 40) then
 * clears 0.85 with probability ≈ 99.8% (≈ 97.7% with 128 perms). Cost is linear in shingles × perms: about
 * 35k signatures/s for 60-word texts on one core (bench/minhash-bench.ts).
 * Each permutation is h_i(x) = fmix32(x ⊕ s_i) with the shingle hash x and a per-permutation salt s_i drawn
 * from a PRNG seeded by `seed`. fmix32 is a bijection with full avalanche, so this needs no modular arithmetic
 * (nothing can overflow) and its low bits are as good as its high bits, which the b-bit storage below needs.
 *
 * Banding: b bands of r rows; a pair with similarity s becomes a candidate with probability
 * P(s) = 1 − (1 − s^r)^b. Candidates are verified, so false positives cost only time, while a pair that
 * never becomes a candidate is lost for good. `minhashConfig` therefore picks the LARGEST r (fewest spurious
 * candidates) for which P(threshold) ≥ 0.999, with b = ⌊k / r⌋. For the default 0.85: r = 9, b = 28, so
 * P(0.85) = 0.9994, P(0.90) > 0.99999, P(0.80) = 0.98, P(0.70) = 0.68, P(0.50) = 0.053, P(0.30) = 0.0006.
 * Above the threshold the misses come from the estimate itself (≈ 50/50 at exactly the threshold, as for any
 * estimate).
 *
 * ## Memory (1M documents must fit well under 1 GB)
 *
 * The index keeps 1 byte per permutation per document: the low 8 bits of each MinHash value (b-bit MinHash,
 * Li & König 2010). Two differing minima then still agree with probability 1/256, which the estimator corrects:
 * Ĵ = (m/k − 1/256) / (1 − 1/256); the variance grows by well under 1%. That is 256 bytes per document in
 * one growable Uint8Array, plus a 1-byte presence flag. `clusters()` adds transient arrays: the union-find
 * parent (4 B/doc), one band's bucket chains (4 B/doc) and one band's open-addressing table (13 B per slot,
 * 1.5–3 slots per doc), reused band after band: at most ≈ 310 bytes per document at the peak. Band keys are
 * recomputed from the stored bytes rather than stored. Measured with 1M documents: the index holds 257 MB and
 * the whole process peaks at 510 MB RSS. Growing by doubling briefly holds the old and the new store; pass
 * `expectedDocs` to size it once.
 *
 * ## Cost control and determinism
 *
 * `add` only stores; all the work happens in `clusters()`, which walks documents in docIndex order. The result
 * is therefore the same for any insertion order. Each bucket remembers only its first BUCKET_CAP (32) members
 * (in docIndex order); a document is verified against those, skipping members already in its component. Huge
 * buckets come from shared boilerplate (templated prompts whose band rows all land on template shingles);
 * true near-duplicates among them also share many content-bearing bands, whose buckets are small, so the cap
 * bounds the worst case at N · b · BUCKET_CAP verifications while costing next to no recall. The cap also
 * bounds low thresholds, where few rows of 8-bit values make coarse band keys that unrelated texts share.
 */

import { fmix32 } from './normalize.js';

export interface MinHashParams {
  /** Minimum estimated Jaccard similarity of word shingles for two texts to be near-duplicates, in (0, 1]. */
  readonly threshold: number;
  /** Seeds the permutation salts; signatures are only comparable when computed with the same seed. Default 0. */
  readonly seed?: number;
  /** Overrides the number of permutations (default 256). */
  readonly numPerm?: number;
  /** Overrides the shingle size in words (default 2). */
  readonly shingleSize?: number;
  /** Expected number of documents: sizes the signature store up front instead of growing it by doubling. */
  readonly expectedDocs?: number;
}

export interface MinHashConfig {
  readonly numPerm: number;
  readonly bands: number;
  readonly rows: number;
  readonly shingleSize: number;
}

/** What `signature` needs; `NearDuplicateIndex.config` is one, so `signature(text, index.config)` matches. */
export interface SignatureConfig {
  readonly numPerm: number;
  readonly shingleSize: number;
  readonly seed?: number;
}

export const DEFAULT_THRESHOLD = 0.85;
const DEFAULT_NUM_PERM = 256;
const DEFAULT_SHINGLE_SIZE = 2;
/** Required candidate probability at the threshold itself when choosing bands × rows. */
const MIN_CANDIDATE_PROBABILITY = 0.999;
/** Members a bucket remembers, and hence the most verifications one document makes per band. */
const BUCKET_CAP = 32;
/** b-bit MinHash: bits of each MinHash value the index keeps. */
const STORED_BITS = 8;
const RANDOM_AGREEMENT = 1 / (1 << STORED_BITS);

function checkThreshold(threshold: number): void {
  if (!(typeof threshold === 'number' && threshold > 0 && threshold <= 1)) {
    throw new RangeError(`minhash: threshold must be a number in (0, 1], got ${String(threshold)}`);
  }
}

function checkPositiveInt(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(`minhash: ${name} must be an integer in [1, ${max}], got ${String(value)}`);
  }
}

/** Probability that a pair of similarity s shares at least one band: the LSH S-curve. */
export function candidateProbability(s: number, bands: number, rows: number): number {
  return 1 - Math.pow(1 - Math.pow(s, rows), bands);
}

function chooseBanding(threshold: number, numPerm: number): { bands: number; rows: number } {
  // Larger r makes the curve steeper and moves it right; take the largest r that still keeps the threshold
  // itself on the high plateau. If even r = 1 cannot (tiny thresholds), r = 1 is the most recall there is.
  for (let rows = numPerm; rows >= 1; rows--) {
    const bands = Math.floor(numPerm / rows);
    if (candidateProbability(threshold, bands, rows) >= MIN_CANDIDATE_PROBABILITY) return { bands, rows };
  }
  return { bands: numPerm, rows: 1 };
}

/** Parameters for a threshold; see the module comment for the reasoning. */
export function minhashConfig(threshold: number, numPerm = DEFAULT_NUM_PERM): MinHashConfig {
  checkThreshold(threshold);
  checkPositiveInt('numPerm', numPerm, 4096);
  return { numPerm, ...chooseBanding(threshold, numPerm), shingleSize: DEFAULT_SHINGLE_SIZE };
}

// ---------------------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------------------

const saltCache = new Map<string, Uint32Array>();

/** Per-permutation salts from a splitmix32-style generator: fixed by (seed, numPerm), on every machine. */
function permutationSalts(seed: number, numPerm: number): Uint32Array {
  const cacheKey = `${seed}:${numPerm}`;
  let salts = saltCache.get(cacheKey);
  if (salts) return salts;
  salts = new Uint32Array(numPerm);
  // Fold the seed (any finite number) into 32 bits through its decimal text so 2^32 + 1 and 1 differ.
  let state = 0x9e3779b9;
  const seedText = String(seed);
  for (let i = 0; i < seedText.length; i++) state = fmix32(state ^ Math.imul(seedText.charCodeAt(i), 0x01000193));
  for (let i = 0; i < numPerm; i++) {
    state = (state + 0x9e3779b9) >>> 0;
    salts[i] = fmix32(state ^ fmix32(i + 0x632be5ab));
  }
  saltCache.set(cacheKey, salts);
  return salts;
}

const ASCII_ONLY = /^[\x00-\x7f]*$/;
const NO_SPACE_SCRIPTS = '\\p{sc=Han}\\p{sc=Hiragana}\\p{sc=Katakana}\\p{sc=Thai}\\p{sc=Lao}\\p{sc=Khmer}\\p{sc=Myanmar}';
// Built with RegExp rather than a literal: the `v` flag (set subtraction) is newer than our TS target's
// regex syntax checks, but Node 20 supports it.
const WORD = new RegExp(`[${NO_SPACE_SCRIPTS}]|[[\\p{L}\\p{N}\\p{M}]--[${NO_SPACE_SCRIPTS}]]+`, 'gv');

// Scratch buffers reused across calls: signatures are computed millions of times and each call would
// otherwise allocate two arrays. Signature computation is synchronous, so sharing is safe.
let wordHashes = new Int32Array(256);
let shingleHashes = new Int32Array(256);

function pushWord(count: number, hash: number): number {
  if (count === wordHashes.length) {
    const grown = new Int32Array(count * 2);
    grown.set(wordHashes);
    wordHashes = grown;
  }
  wordHashes[count] = hash;
  return count + 1;
}

/** FNV-1a 32 over UTF-16 code units, finalised; the same for a word whether found by the ASCII or regex path. */
function hashRange(s: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h ^ (end - start));
}

function isAsciiWordChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || (c >= 65 && c <= 90);
}

function splitWords(text: string): number {
  let count = 0;
  if (ASCII_ONLY.test(text)) {
    // Hand-rolled scan: the common case, and several times faster than the Unicode regex.
    const n = text.length;
    let i = 0;
    while (i < n) {
      while (i < n && !isAsciiWordChar(text.charCodeAt(i))) i++;
      if (i >= n) break;
      const start = i;
      while (i < n && isAsciiWordChar(text.charCodeAt(i))) i++;
      count = pushWord(count, hashRange(text, start, i));
    }
    return count;
  }
  WORD.lastIndex = 0;
  for (let m = WORD.exec(text); m !== null; m = WORD.exec(text)) {
    count = pushWord(count, hashRange(text, m.index, m.index + m[0].length));
  }
  return count;
}

/** Order-sensitive hash of words[from, from + len). */
function combineWords(from: number, len: number): number {
  let h = 0x27d4eb2f;
  for (let j = 0; j < len; j++) {
    h = (h << 13) | (h >>> 19);
    h = Math.imul(h ^ wordHashes[from + j], 0x9e3779b1);
  }
  return fmix32(h ^ len);
}

function shingle(text: string, shingleSize: number): number {
  const words = splitWords(text);
  if (words === 0) {
    if (text.length === 0) return 0;
    shingleHashes[0] = hashRange(text, 0, text.length);
    return 1;
  }
  const count = words < shingleSize ? 1 : words - shingleSize + 1;
  const size = words < shingleSize ? words : shingleSize;
  if (shingleHashes.length < count) shingleHashes = new Int32Array(Math.max(count, shingleHashes.length * 2));
  for (let i = 0; i < count; i++) shingleHashes[i] = combineWords(i, size);
  return count;
}

/**
 * The low bytes of the signatures of many texts, numPerm bytes each, in order: what NearDuplicateIndex keeps,
 * in one buffer that can cross to and from a worker thread without copying.
 */
export function signatureBytes(texts: readonly string[], cfg: SignatureConfig): Uint8Array {
  const out = new Uint8Array(texts.length * cfg.numPerm);
  texts.forEach((text, k) => {
    const sig = signature(text, cfg);
    for (let i = 0; i < sig.length; i++) out[k * cfg.numPerm + i] = sig[i]! & 0xff;
  });
  return out;
}

/**
 * MinHash signature of an already normalised text (`normalizeText`): for each permutation, the minimum of
 * h_i over the text's shingle hashes. The empty text gives all 0xffffffff.
 */
export function signature(text: string, cfg: SignatureConfig): Uint32Array {
  checkPositiveInt('numPerm', cfg.numPerm, 4096);
  checkPositiveInt('shingleSize', cfg.shingleSize, 64);
  const numPerm = cfg.numPerm;
  const salts = permutationSalts(cfg.seed ?? 0, numPerm);
  const out = new Uint32Array(numPerm);
  const n = shingle(text, cfg.shingleSize);
  const sh = shingleHashes;
  // Four permutations per pass over the shingles: four independent dependency chains keep the CPU's
  // multipliers busy and each shingle is loaded once per four; ≈ 1.5× faster than one at a time.
  // Each h is fmix32(x ^ salt), inlined.
  let p = 0;
  for (; p + 4 <= numPerm; p += 4) {
    const s0 = salts[p];
    const s1 = salts[p + 1];
    const s2 = salts[p + 2];
    const s3 = salts[p + 3];
    let m0 = 0xffffffff;
    let m1 = 0xffffffff;
    let m2 = 0xffffffff;
    let m3 = 0xffffffff;
    for (let j = 0; j < n; j++) {
      const x = sh[j];
      let a = x ^ s0;
      a ^= a >>> 16;
      a = Math.imul(a, 0x85ebca6b);
      a ^= a >>> 13;
      a = Math.imul(a, 0xc2b2ae35);
      a = (a ^ (a >>> 16)) >>> 0;
      if (a < m0) m0 = a;
      let b = x ^ s1;
      b ^= b >>> 16;
      b = Math.imul(b, 0x85ebca6b);
      b ^= b >>> 13;
      b = Math.imul(b, 0xc2b2ae35);
      b = (b ^ (b >>> 16)) >>> 0;
      if (b < m1) m1 = b;
      let c = x ^ s2;
      c ^= c >>> 16;
      c = Math.imul(c, 0x85ebca6b);
      c ^= c >>> 13;
      c = Math.imul(c, 0xc2b2ae35);
      c = (c ^ (c >>> 16)) >>> 0;
      if (c < m2) m2 = c;
      let d = x ^ s3;
      d ^= d >>> 16;
      d = Math.imul(d, 0x85ebca6b);
      d ^= d >>> 13;
      d = Math.imul(d, 0xc2b2ae35);
      d = (d ^ (d >>> 16)) >>> 0;
      if (d < m3) m3 = d;
    }
    out[p] = m0;
    out[p + 1] = m1;
    out[p + 2] = m2;
    out[p + 3] = m3;
  }
  for (; p < numPerm; p++) {
    let min = 0xffffffff;
    for (let j = 0; j < n; j++) {
      const h = fmix32(sh[j] ^ salts[p]);
      if (h < min) min = h;
    }
    out[p] = min;
  }
  return out;
}

/** Estimated Jaccard similarity of two full signatures: the fraction of permutations whose minima agree. */
export function estimateJaccard(a: Uint32Array, b: Uint32Array): number {
  if (a.length !== b.length || a.length === 0) {
    throw new RangeError(`estimateJaccard: signatures must have the same non-zero length (${a.length} vs ${b.length})`);
  }
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

// ---------------------------------------------------------------------------------------------------------
// The index
// ---------------------------------------------------------------------------------------------------------

export interface NearDuplicateConfig extends MinHashConfig {
  readonly threshold: number;
  readonly seed: number;
}

export class NearDuplicateIndex {
  readonly config: NearDuplicateConfig;
  /** Bytes per document in `sigBytes`: numPerm rounded up to whole uint32 words; the padding stays 0. */
  private readonly stride: number;
  /** Matching stored bytes a pair needs: the smallest m with (m/k − c)/(1 − c) ≥ threshold. */
  private readonly neededMatches: number;
  private sigBytes: Uint8Array;
  private sigWords: Uint32Array;
  private present: Uint8Array;
  private capacity: number;
  private size = 0;

  constructor(params: MinHashParams) {
    checkThreshold(params.threshold);
    const numPerm = params.numPerm ?? DEFAULT_NUM_PERM;
    const base = minhashConfig(params.threshold, numPerm);
    const shingleSize = params.shingleSize ?? base.shingleSize;
    checkPositiveInt('shingleSize', shingleSize, 64);
    const seed = params.seed ?? 0;
    if (!Number.isFinite(seed)) throw new RangeError(`minhash: seed must be a finite number, got ${seed}`);
    this.config = { ...base, shingleSize, threshold: params.threshold, seed };
    this.stride = Math.ceil(numPerm / 4) * 4;
    const c = RANDOM_AGREEMENT;
    this.neededMatches = Math.min(numPerm, Math.ceil(numPerm * (c + params.threshold * (1 - c)) - 1e-9));
    this.capacity = Math.max(16, Math.floor(params.expectedDocs ?? 0));
    this.sigBytes = new Uint8Array(this.capacity * this.stride);
    this.sigWords = new Uint32Array(this.sigBytes.buffer);
    this.present = new Uint8Array(this.capacity);
  }

  /** Bytes the index holds between calls (signature store and presence flags), for capacity planning. */
  get byteLength(): number {
    return this.sigBytes.byteLength + this.present.byteLength;
  }

  /** Number of document slots: one more than the largest docIndex added. */
  get documentCount(): number {
    return this.size;
  }

  private grow(minCapacity: number): void {
    let capacity = this.capacity;
    while (capacity < minCapacity) capacity *= 2;
    const bytes = new Uint8Array(capacity * this.stride);
    bytes.set(this.sigBytes);
    const present = new Uint8Array(capacity);
    present.set(this.present);
    this.sigBytes = bytes;
    this.sigWords = new Uint32Array(bytes.buffer);
    this.present = present;
    this.capacity = capacity;
  }

  /** Adds a document's signature: the full values (`signature`) or just their low bytes (`signatureBytes`). */
  add(docIndex: number, sig: Uint32Array | Uint8Array): void {
    if (!Number.isInteger(docIndex) || docIndex < 0 || docIndex > 0x7ffffffe) {
      throw new RangeError(`NearDuplicateIndex.add: docIndex must be a non-negative integer, got ${docIndex}`);
    }
    if (sig.length !== this.config.numPerm) {
      throw new RangeError(
        `NearDuplicateIndex.add: signature has ${sig.length} values, the index expects ${this.config.numPerm}`,
      );
    }
    if (docIndex >= this.capacity) this.grow(docIndex + 1);
    if (this.present[docIndex]) throw new Error(`NearDuplicateIndex.add: docIndex ${docIndex} was already added`);
    this.present[docIndex] = 1;
    const base = docIndex * this.stride;
    for (let i = 0; i < sig.length; i++) this.sigBytes[base + i] = sig[i] & 0xff;
    if (docIndex >= this.size) this.size = docIndex + 1;
  }

  /**
   * Whether the stored signatures of a and b reach the threshold. Counts differing bytes four at a time and
   * stops as soon as too many differ, which is where unrelated candidates leave early.
   */
  private verified(a: number, b: number): boolean {
    const words = this.sigWords;
    const wordsPerDoc = this.stride >>> 2;
    const budget = this.config.numPerm - this.neededMatches;
    let ia = a * wordsPerDoc;
    let ib = b * wordsPerDoc;
    const end = ia + wordsPerDoc;
    let differing = 0;
    for (; ia < end; ia++, ib++) {
      let x = words[ia] ^ words[ib];
      if (x === 0) continue;
      // Collapse each byte to its lowest bit (1 if the byte is non-zero), then sum the four bits.
      x |= x >>> 4;
      x |= x >>> 2;
      x |= x >>> 1;
      x &= 0x01010101;
      differing += Math.imul(x, 0x01010101) >>> 24;
      if (differing > budget) return false;
    }
    return true;
  }

  /**
   * For each docIndex, the smallest docIndex of its near-duplicate cluster (itself if unique). Clusters are
   * the connected components of candidate pairs whose estimated Jaccard reaches the threshold.
   */
  clusters(): Int32Array {
    const n = this.size;
    for (let i = 0; i < n; i++) {
      if (!this.present[i]) throw new Error(`NearDuplicateIndex.clusters: docIndex ${i} was never added (documents must be 0..${n - 1})`);
    }
    const parent = new Int32Array(n);
    for (let i = 0; i < n; i++) parent[i] = i;
    const find = (x: number): number => {
      while (parent[x] !== x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
      }
      return x;
    };

    // Open addressing at load ≤ 2/3; a slot is a bucket: its band key, its first and last member and size.
    let slots = 16;
    while (slots < n * 1.5) slots *= 2;
    const mask = slots - 1;
    const keys = new Uint32Array(slots);
    const head = new Int32Array(slots);
    const tail = new Int32Array(slots);
    const count = new Uint8Array(slots);
    const next = new Int32Array(n);
    const { bands, rows } = this.config;
    const bytes = this.sigBytes;
    const stride = this.stride;

    // Band keys are computed for several bands per pass over the signatures, reading each document's bytes
    // once and in order, instead of one strided pass over every signature per band (28 at 0.85); at most
    // KEY_BYTES of keys at a time. Bands are still bucketed one by one, in order, so the result is the same.
    const KEY_BYTES = 8 << 20;
    const perPass = Math.max(1, Math.min(bands, Math.floor(KEY_BYTES / (4 * Math.max(1, n)))));
    const bandKeys = new Uint32Array(perPass * n);
    const bandSeeds = Uint32Array.from({ length: bands }, (_, band) => fmix32(band + 0x5bd1e995));
    for (let band = 0; band < bands; band++) {
      const j = band % perPass;
      if (j === 0) {
        const last = Math.min(bands, band + perPass);
        for (let d = 0; d < n; d++) {
          const base = d * stride;
          for (let b = band; b < last; b++) {
            let key = bandSeeds[b]!;
            const from = base + b * rows;
            for (let r = 0; r < rows; r++) key = Math.imul(key ^ bytes[from + r], 0x01000193);
            bandKeys[(b - band) * n + d] = fmix32(key);
          }
        }
      }
      head.fill(-1);
      const keyBase = j * n;
      for (let d = 0; d < n; d++) {
        const key = bandKeys[keyBase + d]!;
        // Distinct band contents that collide on the 32-bit key share a bucket; verification sorts them out.
        let slot = key & mask;
        while (head[slot] !== -1 && keys[slot] !== key) slot = (slot + 1) & mask;
        if (head[slot] === -1) {
          keys[slot] = key;
          head[slot] = d;
          tail[slot] = d;
          count[slot] = 1;
          next[d] = -1;
          continue;
        }
        let root = find(d);
        for (let m = head[slot]; m !== -1; m = next[m]) {
          const rootM = find(m);
          if (rootM === root || !this.verified(m, d)) continue;
          // Link under the smaller index so every root is its component's smallest docIndex.
          if (rootM < root) {
            parent[root] = rootM;
            root = rootM;
          } else {
            parent[rootM] = root;
          }
        }
        if (count[slot] < BUCKET_CAP) {
          next[tail[slot]] = d;
          tail[slot] = d;
          next[d] = -1;
          count[slot]++;
        }
      }
    }

    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = find(i);
    return out;
  }
}
