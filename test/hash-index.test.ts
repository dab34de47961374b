/** HashIndex (pipeline/hash-index.ts) must answer exactly as a Map<number, number> would. */
import { describe, expect, it } from 'vitest';
import { HashIndex } from '../pipeline/hash-index.js';
import { key53 } from '../pipeline/normalize.js';

describe('HashIndex', () => {
  it('agrees with a Map through growth, overwrites, increments and misses', () => {
    const idx = new HashIndex(4);
    const map = new Map<number, number>();
    // Real 53-bit keys, plus the edges and keys equal in their low or high 32 bits (colliding start slots).
    const keys = Array.from({ length: 30_000 }, (_, i) => key53(`text ${i % 20_000}`));
    keys.push(0, 1, Number.MAX_SAFE_INTEGER, 2 ** 32, 2 ** 32 + 1, 7 * 2 ** 32, 2 ** 52);
    keys.forEach((k, i) => {
      if (i % 3 === 0) {
        const v = (map.get(k) ?? 0) + 1;
        map.set(k, v);
        expect(idx.increment(k)).toBe(v);
      } else {
        const v = i % 1000;
        map.set(k, v);
        idx.set(k, v);
      }
    });
    expect(idx.size).toBe(map.size);
    for (const [k, v] of map) expect(idx.get(k)).toBe(v);
    for (let i = 0; i < 5000; i++) {
      const k = key53(`absent ${i}`);
      if (!map.has(k)) expect(idx.get(k)).toBe(-1);
    }
  });

  it('refuses keys and values it cannot hold, rather than mixing them up', () => {
    const idx = new HashIndex();
    for (const bad of [Number.NaN, -1, 0.5, 2 ** 53, Infinity]) expect(() => idx.get(bad), String(bad)).toThrow(RangeError);
    for (const bad of [-1, 0.5, 2 ** 31, Number.NaN]) expect(() => idx.set(1, bad), String(bad)).toThrow(RangeError);
    expect(idx.size).toBe(0);
  });
});
