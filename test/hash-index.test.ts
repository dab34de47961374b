/** HashIndex and DigestSet (pipeline/hash-index.ts) must answer exactly as a Map or Set would. */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { DigestSet, HashIndex } from '../pipeline/hash-index.js';
import { key53 } from '../pipeline/normalize.js';

describe('HashIndex', () => {
  it('agrees with a Map through growth, overwrites, increments and misses', () => {
    const idx = new HashIndex(4);
    const map = new Map<number, number>();
    // Real 53-bit keys, plus the edges and keys equal in their low or high 32 bits (colliding start slots).
    const keys = Array.from({ length: 30_000 }, (_, i) => key53(`text ${i % 20_000}`));
    keys.push(0, 1, Number.MAX_SAFE_INTEGER, 2 ** 32, 2 ** 32 + 1, 7 * 2 ** 32, 2 ** 52, 2 ** 55 + 2 ** 33, 2 ** 56 - 2 ** 4);
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
    for (const bad of [Number.NaN, -1, 0.5, 2 ** 64, Infinity]) expect(() => idx.get(bad), String(bad)).toThrow(RangeError);
    for (const bad of [-1, 0.5, 2 ** 31, Number.NaN]) expect(() => idx.set(1, bad), String(bad)).toThrow(RangeError);
    expect(idx.size).toBe(0);
  });
});

describe('DigestSet', () => {
  const md5 = (s: string): Buffer => createHash('md5').update(s).digest();

  it('agrees with a Set of the digests as text through growth, and counts what two sets share', () => {
    const a = new DigestSet();
    const b = new DigestSet(10);
    const sa = new Set<string>();
    const sb = new Set<string>();
    for (let i = 0; i < 40_000; i++) {
      const d = md5(`line ${i % 25_000}`);
      expect(a.add(d), `a ${i}`).toBe(!sa.has(d.toString('hex')));
      sa.add(d.toString('hex'));
      if (i % 3 === 0) {
        const e = md5(`line ${i + 20_000}`);
        expect(b.add(e)).toBe(!sb.has(e.toString('hex')));
        sb.add(e.toString('hex'));
      }
    }
    // Digests that agree in their first, second or third word but not in all four are different digests.
    const base = md5('line 1');
    for (let w = 0; w < 4; w++) {
      const near = Buffer.from(base);
      near[4 * w + 3]! ^= 0x80;
      expect(a.has(near)).toBe(false);
      expect(a.add(near)).toBe(true);
      sa.add(near.toString('hex'));
    }
    expect(a.size).toBe(sa.size);
    expect(b.size).toBe(sb.size);
    for (const h of sa) expect(a.has(Buffer.from(h, 'hex'))).toBe(true);
    // A view into a larger buffer (how reused digests arrive) is read at its own offset.
    const big = Buffer.concat([Buffer.alloc(5), md5('line 7'), Buffer.alloc(3)]);
    expect(a.has(big.subarray(5, 21))).toBe(true);
    expect(a.has(md5('absent'))).toBe(false);
    const shared = [...sa].filter((h) => sb.has(h)).length;
    expect(shared).toBeGreaterThan(1000);
    expect(a.countShared(b)).toBe(shared);
    expect(b.countShared(a)).toBe(shared);
    expect(() => a.add(Buffer.alloc(15))).toThrow(RangeError);
    expect(() => a.has(Buffer.alloc(17))).toThrow(RangeError);
  });
});
