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
 * A set of 16-byte digests (emit's md5 line digests): the sinks add one per example, and a Set of 16-character
 * strings cost a string made and hashed per line (~0.6 µs a line at 70k lines). The digests sit densely, in the
 * order added, in chunks that are never copied; the hash table holds only each slot's digest number (4 bytes a
 * slot). With the digests themselves in the slots (16 bytes, at most half full) the train file's set of a 1M run
 * (284,060 lines) took 17.8 MB, now 8.6 MB.
 */
export class DigestSet {
  /** The digests in the order added, 4 int32 words each, DIGEST_CHUNK digests to a chunk. */
  private readonly chunks: Int32Array[] = [];
  /** Open addressing, linear probing: 1 + the number of the digest in a slot, 0 when it is empty. */
  private slots: Int32Array;
  private shift: number;
  private count = 0;

  constructor(expected = 0) {
    const bits = tableBits(expected);
    this.slots = new Int32Array(1 << bits);
    this.shift = 32 - bits;
  }

  get size(): number {
    return this.count;
  }

  /** Whether the 16 bytes of `d` are in the set. */
  has(d: Uint8Array): boolean {
    if (d.length !== 16) throw new RangeError(`DigestSet: digests are 16 bytes, got ${d.length}`);
    return this.slots[this.slot(word(d, 0), word(d, 4), word(d, 8), word(d, 12))] !== 0;
  }

  /** Adds the 16 bytes of `d`; false when they were in the set already. */
  add(d: Uint8Array): boolean {
    if (d.length !== 16) throw new RangeError(`DigestSet: digests are 16 bytes, got ${d.length}`);
    const w0 = word(d, 0);
    const w1 = word(d, 4);
    const w2 = word(d, 8);
    const w3 = word(d, 12);
    const s = this.slot(w0, w1, w2, w3);
    if (this.slots[s] !== 0) return false;
    const n = this.count++;
    const k = n & (DIGEST_CHUNK - 1);
    if (k === 0) this.chunks.push(new Int32Array(4 * DIGEST_CHUNK));
    const c = this.chunks[n >>> DIGEST_CHUNK_BITS]!;
    c[4 * k] = w0;
    c[4 * k + 1] = w1;
    c[4 * k + 2] = w2;
    c[4 * k + 3] = w3;
    this.slots[s] = n + 1;
    if (this.count * 2 > this.slots.length) this.grow();
    return true;
  }

  /** How many digests of this set are in `other` too. */
  countShared(other: DigestSet): number {
    let shared = 0;
    for (let n = 0; n < this.count; n++) {
      const c = this.chunks[n >>> DIGEST_CHUNK_BITS]!;
      const k = 4 * (n & (DIGEST_CHUNK - 1));
      if (other.slots[other.slot(c[k]!, c[k + 1]!, c[k + 2]!, c[k + 3]!)] !== 0) shared++;
    }
    return shared;
  }

  /** The slot holding these words, or the empty slot where they would go. */
  private slot(w0: number, w1: number, w2: number, w3: number): number {
    const slots = this.slots;
    const mask = slots.length - 1;
    for (let s = Math.imul(w0 ^ Math.imul(w1, 0x85ebca6b), 0x9e3779b1) >>> this.shift; ; s = (s + 1) & mask) {
      const e = slots[s]! - 1;
      if (e === -1) return s;
      const c = this.chunks[e >>> DIGEST_CHUNK_BITS]!;
      const k = 4 * (e & (DIGEST_CHUNK - 1));
      if (c[k] === w0 && c[k + 1] === w1 && c[k + 2] === w2 && c[k + 3] === w3) return s;
    }
  }

  /** Twice the slots; every digest is placed again (all distinct, so each goes to the first empty slot). */
  private grow(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    this.shift--;
    const slots = this.slots;
    const mask = slots.length - 1;
    for (let n = 0; n < this.count; n++) {
      const c = this.chunks[n >>> DIGEST_CHUNK_BITS]!;
      const k = 4 * (n & (DIGEST_CHUNK - 1));
      let s = Math.imul(c[k]! ^ Math.imul(c[k + 1]!, 0x85ebca6b), 0x9e3779b1) >>> this.shift;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = n + 1;
    }
  }
}

/** Digests to a DigestSet chunk: 256 KB. */
const DIGEST_CHUNK_BITS = 14;
const DIGEST_CHUNK = 1 << DIGEST_CHUNK_BITS;

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
