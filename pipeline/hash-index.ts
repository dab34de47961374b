/**
 * A map from 53-bit hash keys (key53, the signals' text hashes) to int32 values ≥ 0, held in two typed arrays
 * (open addressing, linear probing). Dedupe and split look one up per conversation: a Map<number, number> keyed
 * by such doubles boxes every key and cost several times as much per lookup at 200k conversations.
 */
export class HashIndex {
  private keys: Float64Array;
  private values: Int32Array;
  private shift: number;
  private count = 0;

  constructor(expected = 0) {
    let bits = 4;
    while (1 << bits < 2 * expected) bits++;
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
    if (!(key >= 0 && key <= Number.MAX_SAFE_INTEGER && Number.isInteger(key))) throw new RangeError(`HashIndex: keys are integers in [0, 2^53), got ${key}`);
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
