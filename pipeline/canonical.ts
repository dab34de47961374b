/** Canonical JSON (sorted keys, no whitespace) and digests: the basis of derived ids and conflict detection. */
import { hash } from 'node:crypto';

/**
 * JSON with object keys sorted at every level, so equal values give equal text whatever the key order.
 * For JSON data (what JSON.parse gives): undefined inside arrays becomes null and undefined properties are
 * left out, as JSON.stringify does. Written as one loop per level with string appends (no intermediate
 * arrays): ingest computes this for every record.
 */
export function canonicalJson(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value === undefined ? null : value);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += canonicalJson(value[i]);
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
    out += canonicalJson(v);
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
