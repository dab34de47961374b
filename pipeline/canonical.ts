/**
 * JSON text: canonical JSON (sorted keys, no whitespace) and digests, the basis of derived ids and conflict
 * detection; and the line helpers emit, lineage and the decision sets share (jsonLine, writeDecimal).
 */
import { hash } from 'node:crypto';

/**
 * JSON with object keys sorted at every level, so equal values give equal text whatever the key order.
 * For JSON data (what JSON.parse gives): undefined inside arrays becomes null and undefined properties are
 * left out, as JSON.stringify does.
 *
 * Ingest computes this for every record (its digest is the content hash and the derived id, so the text must
 * never change). Built as one native JSON.stringify of the value with its objects' keys put in order: objects
 * whose keys are already in order are used as they are, the others are copied with their keys in order
 * (an own `__proto__` key stays an own key). Joining the text piece by piece in JS cost ~6× as much, and left a
 * rope that hashing then had to flatten. A value this cannot express — an object with array-index keys (which
 * every object enumerates first, in numeric order), or anything but plain objects, arrays and primitives — is
 * written by the piece-by-piece walk, which defines the text.
 */
export function canonicalJson(value: unknown): string {
  const ordered = inKeyOrder(value);
  if (ordered === UNORDERABLE) return canonicalJsonWalk(value);
  return JSON.stringify(ordered) ?? 'null';
}

const UNORDERABLE: unique symbol = Symbol('unorderable');

/** `v` with every object's keys in sorted order (the same objects where they already are), or UNORDERABLE. */
function inKeyOrder(v: unknown): unknown {
  if (v === null || typeof v !== 'object') {
    return typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint' ? UNORDERABLE : v;
  }
  if (Array.isArray(v)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      const y = inKeyOrder(x);
      if (y === UNORDERABLE) return UNORDERABLE;
      if (y !== x && out === null) out = v.slice(0, i);
      if (out !== null) out.push(y);
    }
    return out ?? v;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return UNORDERABLE;
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj);
  let sorted = true;
  let same = true;
  const values: unknown[] = new Array<unknown>(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const c = k.charCodeAt(0);
    if (c >= 0x30 && c <= 0x39 && ARRAY_INDEX.test(k)) return UNORDERABLE;
    if (i > 0 && !(keys[i - 1]! < k)) sorted = false;
    const x = obj[k];
    const y = inKeyOrder(x);
    if (y === UNORDERABLE) return UNORDERABLE;
    if (y !== x) same = false;
    values[i] = y;
  }
  if (sorted && same) return obj;
  const n = keys.length;
  const order: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (!sorted && n > 16) order.sort((a, b) => (keys[a]! < keys[b]! ? -1 : 1));
  else if (!sorted) {
    // Insertion sort: objects in logs have a handful of keys.
    for (let i = 1; i < n; i++) {
      const x = order[i]!;
      const kx = keys[x]!;
      let j = i - 1;
      while (j >= 0 && keys[order[j]!]! > kx) {
        order[j + 1] = order[j]!;
        j--;
      }
      order[j + 1] = x;
    }
  }
  const out: Record<string, unknown> = {};
  for (const i of order) {
    const k = keys[i]!;
    // Assigning `__proto__` would set the prototype: it is defined as the own key it is.
    if (k === '__proto__') Object.defineProperty(out, k, { value: values[i], enumerable: true, writable: true, configurable: true });
    else out[k] = values[i];
  }
  return out;
}

/** Keys an object enumerates before all others, in numeric order (canonical array indices). */
const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;

/** canonicalJson written piece by piece: the definition, for values inKeyOrder cannot express. */
export function canonicalJsonWalk(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value === undefined ? null : value);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += canonicalJsonWalk(value[i]);
    }
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length > 1) keys.sort();
  let out = '{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const v = obj[k];
    if (v === undefined) continue;
    if (!first) out += ',';
    out += JSON.stringify(k);
    out += ':';
    out += canonicalJsonWalk(v);
    first = false;
  }
  return `${out}}`;
}

/** SHA-256 as hex, in one native call (no Hash object per digest: ingest takes several per record). */
export function sha256Hex(data: string | Buffer): string {
  return hash('sha256', data, 'hex');
}

/** SHA-256 in another encoding, in one native call. */
export function sha256(data: string | Buffer, encoding: 'base64' | 'base64url'): string {
  return hash('sha256', data, encoding);
}

/**
 * One JSONL line. JSON.stringify leaves U+2028, U+2029 and U+0085 raw; they are valid JSON, but readers that
 * split on Unicode line breaks (Python's str.splitlines, some editors) would see a line end inside the
 * record, so they are written as escapes: the same value, one line for every reader.
 */
export function jsonLine(value: unknown): string {
  return escapeLineBreaks(JSON.stringify(value));
}

/** Escapes U+0085, U+2028 and U+2029 in JSON text (see jsonLine). */
export function escapeLineBreaks(json: string): string {
  return json.replace(/[\u0085\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * `n` in decimal at `p` of `buf` (room assumed); returns the end. Integers digit by digit, anything else as
 * String(n) writes it — what a template string would have put there.
 */
export function writeDecimal(buf: Buffer, p: number, n: number): number {
  if (!Number.isSafeInteger(n)) return p + buf.write(String(n), p, 'latin1');
  if (n < 0) {
    buf[p++] = 0x2d;
    n = -n;
  }
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  let q = p + digits;
  const end = q;
  do {
    buf[--q] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  return end;
}
