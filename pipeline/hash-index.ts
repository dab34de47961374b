/**
 * A map from integer hash keys (key53, the signals' text hashes) to int32 values ≥ 0, held in two typed arrays
 * (open addressing, linear probing). Dedupe and split look one up per conversation: a Map<number, number> keyed
 * by such doubles boxes every key and cost several times as much per lookup at 200k conversations.
 */
export class HashIndex {
  private keys: Float64Array;
  private values: Int32Array;
  private shift: number;
  private count = 0;

  constructor(expected = 0) {
    const bits = tableBits(expected);
    this.keys = new Float64Array(1 << bits);
    this.values = new Int32Array(1 << bits).fill(-1);
    this.shift = 32 - bits;
  }

  get size(): number {
    return this.count;
  }

  /** The value of `key`, or -1 when it has none. */
  get(key: number): number {
    return this.values[this.slot(key)]!;
  }

  set(key: number, value: number): void {
    if (!(value >= 0 && value <= 0x7fffffff && Number.isInteger(value))) throw new RangeError(`HashIndex: values are int32 ≥ 0, got ${value}`);
    const s = this.slot(key);
    if (this.values[s] === -1) {
      this.keys[s] = key;
      this.count++;
    }
    this.values[s] = value;
    if (this.count * 2 > this.values.length) this.grow();
  }

  /** Adds 1 to `key`'s value (0 when it has none); returns the new value. */
  increment(key: number): number {
    const s = this.slot(key);
    let v = this.values[s]!;
    if (v === -1) {
      this.keys[s] = key;
      this.count++;
      v = 0;
    }
    this.values[s] = ++v;
    if (this.count * 2 > this.values.length) this.grow();
    return v;
  }

  /** The slot holding `key`, or the empty slot where it would go. */
  private slot(key: number): number {
    // Stored hashes are below 2^53; a damaged signals text can hold up to 14 hex digits, still a distinct key.
    if (!(key >= 0 && key < 18446744073709551616 && Number.isInteger(key))) throw new RangeError(`HashIndex: keys are integers in [0, 2^64), got ${key}`);
    const lo = key >>> 0;
    const hi = (key - lo) / 4294967296;
    const mask = this.values.length - 1;
    let s = Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> this.shift;
    while (this.values[s] !== -1 && this.keys[s] !== key) s = (s + 1) & mask;
    return s;
  }

  private grow(): void {
    const { keys, values } = this;
    this.keys = new Float64Array(keys.length * 2);
    this.values = new Int32Array(values.length * 2).fill(-1);
    this.shift--;
    this.count = 0;
    for (let s = 0; s < values.length; s++) if (values[s] !== -1) this.set(keys[s]!, values[s]!);
  }
}

/**
 * A set of 16-byte digests (emit's md5 line digests), held in one typed array: the sinks add one per example, and
 * a Set of 16-character strings cost a string made and hashed per line (~0.6 µs a line at 70k lines).
 */
export class DigestSet {
  private words: Int32Array;
  private filled: Uint8Array;
  private shift: number;
  private count = 0;

  constructor(expected = 0) {
    const bits = tableBits(expected);
    this.words = new Int32Array(4 << bits);
    this.filled = new Uint8Array(1 << bits);
    this.shift = 32 - bits;
  }

  get size(): number {
    return this.count;
  }

  /** Whether the 16 bytes of `d` are in the set. */
  has(d: Uint8Array): boolean {
    if (d.length !== 16) throw new RangeError(`DigestSet: digests are 16 bytes, got ${d.length}`);
    const w0 = word(d, 0);
    const w1 = word(d, 4);
    const w2 = word(d, 8);
    const w3 = word(d, 12);
    return this.filled[this.slot(w0, w1, w2, w3)] === 1;
  }

  /** Adds the 16 bytes of `d`; false when they were in the set already. */
  add(d: Uint8Array): boolean {
    if (d.length !== 16) throw new RangeError(`DigestSet: digests are 16 bytes, got ${d.length}`);
    return this.addWords(word(d, 0), word(d, 4), word(d, 8), word(d, 12));
  }

  /** How many digests of this set are in `other` too. */
  countShared(other: DigestSet): number {
    let shared = 0;
    const w = this.words;
    for (let s = 0; s < this.filled.length; s++) {
      if (this.filled[s] === 1 && other.filled[other.slot(w[4 * s]!, w[4 * s + 1]!, w[4 * s + 2]!, w[4 * s + 3]!)] === 1) shared++;
    }
    return shared;
  }

  private addWords(w0: number, w1: number, w2: number, w3: number): boolean {
    const s = this.slot(w0, w1, w2, w3);
    if (this.filled[s] === 1) return false;
    this.filled[s] = 1;
    const w = this.words;
    w[4 * s] = w0;
    w[4 * s + 1] = w1;
    w[4 * s + 2] = w2;
    w[4 * s + 3] = w3;
    if (++this.count * 2 > this.filled.length) this.grow();
    return true;
  }

  /** The slot holding these words, or the empty slot where they would go. */
  private slot(w0: number, w1: number, w2: number, w3: number): number {
    const mask = this.filled.length - 1;
    const w = this.words;
    let s = Math.imul(w0 ^ Math.imul(w1, 0x85ebca6b), 0x9e3779b1) >>> this.shift;
    while (this.filled[s] === 1 && !(w[4 * s] === w0 && w[4 * s + 1] === w1 && w[4 * s + 2] === w2 && w[4 * s + 3] === w3)) s = (s + 1) & mask;
    return s;
  }

  private grow(): void {
    const { words, filled } = this;
    this.words = new Int32Array(words.length * 2);
    this.filled = new Uint8Array(filled.length * 2);
    this.shift--;
    this.count = 0;
    for (let s = 0; s < filled.length; s++) if (filled[s] === 1) this.addWords(words[4 * s]!, words[4 * s + 1]!, words[4 * s + 2]!, words[4 * s + 3]!);
  }
}

/** log2 of a table's slots for `expected` entries: at most half full (both tables double past half). */
function tableBits(expected: number): number {
  let bits = 4;
  while (1 << bits < 2 * expected) bits++;
  return bits;
}

/** Bytes at..at+3 of `d` as a little-endian int32. */
function word(d: Uint8Array, at: number): number {
  return d[at]! | (d[at + 1]! << 8) | (d[at + 2]! << 16) | (d[at + 3]! << 24);
}
