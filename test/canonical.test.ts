/**
 * canonicalJson's text is the content hash and the derived id of every ingested record: the fast path (one
 * JSON.stringify of the value with its keys put in order) must write exactly what the piece-by-piece walk writes,
 * for every value JSON.parse can give and for the odd ones it cannot.
 */
import { describe, expect, it } from 'vitest';
import { canonicalJson, canonicalJsonWalk } from '../pipeline/canonical.js';
import { mulberry32 } from '../data/random.js';

const KEYS = ['role', 'content', 'a', 'B', 'b', '', ' ', 'é', '日本', '🙂', '\ud800', '__proto__', 'toJSON', 'constructor', '0', '1', '10', '01', '-1', '1.5', '4294967295', 'z'];
const STRINGS = ['', 'x', 'naïve 日本語 🙂', 'quote " backslash \\ newline \n tab \t', '\u0000\u001f\u007f', '\u2028\u2029\u0085', 'lone \ud800 \udc00', '<|endoftext|>', '{"not":"json"}'];

function randomValue(r: () => number, depth: number): unknown {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const kind = depth <= 0 ? Math.floor(r() * 4) : Math.floor(r() * 7);
  switch (kind) {
    case 0:
      return pick(STRINGS);
    case 1:
      return pick([0, -0, 1, -1.5, 1e21, 1e-7, 123456789012345, Number.MAX_SAFE_INTEGER, 0.1 + 0.2]);
    case 2:
      return pick([true, false]);
    case 3:
      return null;
    case 4:
    case 5: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(r() * 6);
      for (let i = 0; i < n; i++) {
        const k = pick(KEYS);
        const v = randomValue(r, depth - 1);
        // Own keys, __proto__ included, as JSON.parse makes them.
        Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      return o;
    }
    default:
      return Array.from({ length: Math.floor(r() * 5) }, () => randomValue(r, depth - 1));
  }
}

describe('canonicalJson', () => {
  it('writes what the piece-by-piece walk writes, for 20,000 random JSON values and their re-parsed copies', () => {
    const r = mulberry32(42);
    for (let i = 0; i < 20_000; i++) {
      const v = randomValue(r, 4);
      const want = canonicalJsonWalk(v);
      expect(canonicalJson(v), want).toBe(want);
      // The same value as JSON.parse gives it (different key order, own __proto__ keys).
      const parsed: unknown = JSON.parse(JSON.stringify(v) ?? 'null');
      expect(canonicalJson(parsed)).toBe(canonicalJsonWalk(parsed));
    }
  });

  it('sorts keys at every level and leaves the value it was given untouched', () => {
    const v = JSON.parse('{"role":"user","content":[{"type":"text","text":"hi"}],"__proto__":{"b":1,"a":[{"d":2,"c":3}]}}') as unknown;
    const before = JSON.stringify(v);
    expect(canonicalJson(v)).toBe('{"__proto__":{"a":[{"c":3,"d":2}],"b":1},"content":[{"text":"hi","type":"text"}],"role":"user"}');
    expect(JSON.stringify(v)).toBe(before);
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
  });

  it('orders array-index keys as text, as the walk does, not as objects enumerate them', () => {
    const v = JSON.parse('{"10":1,"9":2,"a":3,"01":4}') as unknown;
    expect(canonicalJson(v)).toBe('{"01":4,"10":1,"9":2,"a":3}');
  });

  it('writes undefined as the walk does: left out of objects, null in arrays and at the top', () => {
    for (const v of [undefined, [undefined, 1], { a: undefined, b: 1 }, { b: [undefined], a: { c: undefined } }, [1, , 3]]) {
      expect(canonicalJson(v)).toBe(canonicalJsonWalk(v));
    }
    expect(canonicalJson({ b: 1, a: undefined })).toBe('{"b":1}');
    expect(canonicalJson(undefined)).toBe('null');
  });

  it('hands anything but plain objects, arrays and primitives to the walk', () => {
    const date = new Date(0);
    expect(canonicalJson({ b: date, a: 1 })).toBe(canonicalJsonWalk({ b: date, a: 1 }));
    expect(canonicalJson({ b: date, a: 1 })).toBe('{"a":1,"b":{}}');
    class Point {
      constructor(
        readonly y = 2,
        readonly x = 1,
      ) {}
    }
    expect(canonicalJson([new Point()])).toBe('[{"x":1,"y":2}]');
    expect(canonicalJson(Object.assign(Object.create(null) as object, { b: 2, a: 1 }))).toBe('{"a":1,"b":2}');
    expect(() => canonicalJson({ a: 1n })).toThrow(TypeError);
  });

  it('keeps the content hashes of records pinned before this fast path', () => {
    // Derived ids are the first 32 hex digits of sha256(canonicalJson(content)): texts pinned from the walk.
    const content = JSON.parse(
      '{"status":"ok","messages":[{"role":"user","content":"Hi 🙂"},{"role":"assistant","content":"Hello \\u2028 there","tool_calls":[]}],"tools":null,"created_at_ms":1725148800000,"model":"gpt-4o","user_id":"u1","session_id":null,"tags":{"lang":"en","10":"x"},"metadata":{"client":{"os":"Linux","v":3}}}',
    ) as unknown;
    expect(canonicalJson(content)).toBe(
      '{"created_at_ms":1725148800000,"messages":[{"content":"Hi 🙂","role":"user"},{"content":"Hello \u2028 there","role":"assistant","tool_calls":[]}],"metadata":{"client":{"os":"Linux","v":3}},"model":"gpt-4o","session_id":null,"status":"ok","tags":{"10":"x","lang":"en"},"tools":null,"user_id":"u1"}',
    );
  });
});
