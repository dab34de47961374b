/**
 * Byte-pair encoding over tiktoken's rank tables, producing exactly what OpenAI's tiktoken produces.
 *
 * Byte strings are held as "binary" JS strings (one char per byte, code 0–255): a rank lookup is then a
 * plain Map<string, number> hit on a substring, and an ASCII piece of text already *is* its own byte string,
 * so the common case needs no UTF-8 encoding at all.
 */
import { Buffer } from 'node:buffer';

export interface RankTable {
  /** binary byte string → rank (the token id). */
  readonly ranks: ReadonlyMap<string, number>;
  /** rank → binary byte string, for decoding. */
  readonly bytesOf: readonly string[];
}

/**
 * Parses js-tiktoken's compressed rank text: lines of `<marker> <first rank> <base64 token> <base64 token> …`,
 * the tokens taking consecutive ranks from the first one.
 */
export function parseRanks(compressed: string): RankTable {
  const ranks = new Map<string, number>();
  const bytesOf: string[] = [];
  for (const line of compressed.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const first = Number.parseInt(fields[1], 10);
    for (let i = 2; i < fields.length; i++) {
      const bytes = Buffer.from(fields[i], 'base64').toString('latin1');
      ranks.set(bytes, first + i - 2);
      bytesOf[first + i - 2] = bytes;
    }
  }
  return { ranks, bytesOf };
}

/** True when every UTF-16 unit is ASCII, i.e. the string is already its own UTF-8 byte string. */
export function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

export function toByteString(text: string): string {
  return isAscii(text) ? text : Buffer.from(text, 'utf8').toString('latin1');
}

/**
 * Below this many bytes the quadratic scan (what tiktoken itself does for ordinary pieces) beats a heap:
 * no allocation, tiny constant. Above it the heap keeps long unbroken pieces O(n log n).
 */
const SMALL_PIECE = 64;

/**
 * Splits the byte string `s` into tokens and appends their ranks to `out`. Merges the adjacent pair whose
 * concatenation has the lowest rank, leftmost first on ties — tiktoken's rule, so results are identical.
 */
export function bytePairEncode(s: string, ranks: ReadonlyMap<string, number>, out: number[]): void {
  const whole = ranks.get(s);
  if (whole !== undefined) {
    out.push(whole);
    return;
  }
  if (s.length <= SMALL_PIECE) mergeSmall(s, ranks, out);
  else mergeLarge(s, ranks, out);
}

const NO_RANK = Number.MAX_SAFE_INTEGER;

function mergeSmall(s: string, ranks: ReadonlyMap<string, number>, out: number[]): void {
  // starts[k] is where part k begins; the sentinel starts[n] = s.length closes the last part.
  const starts: number[] = [];
  for (let i = 0; i <= s.length; i++) starts.push(i);
  // pairRank[k]: rank of part k joined with part k+1.
  const pairRank: number[] = [];
  for (let k = 0; k + 2 < starts.length; k++) pairRank.push(ranks.get(s.slice(starts[k], starts[k + 2])) ?? NO_RANK);

  for (;;) {
    let best = NO_RANK;
    let at = -1;
    for (let k = 0; k < pairRank.length; k++) {
      if (pairRank[k] < best) {
        best = pairRank[k];
        at = k;
      }
    }
    if (at < 0) break;
    starts.splice(at + 1, 1);
    pairRank.splice(at, 1);
    if (at > 0) pairRank[at - 1] = ranks.get(s.slice(starts[at - 1], starts[at + 1])) ?? NO_RANK;
    if (at < pairRank.length) pairRank[at] = ranks.get(s.slice(starts[at], starts[at + 2])) ?? NO_RANK;
  }
  for (let k = 0; k + 1 < starts.length; k++) out.push(rankOf(s.slice(starts[k], starts[k + 1]), ranks));
}

/**
 * Linked list of parts plus a binary min-heap of candidate merges keyed by (rank, start position). A heap entry
 * goes stale when either of its parts changes; a per-part version number detects that lazily on pop.
 */
function mergeLarge(s: string, ranks: ReadonlyMap<string, number>, out: number[]): void {
  const n = s.length;
  const next = new Int32Array(n); // start of the following part, n at the end
  const prev = new Int32Array(n); // start of the preceding part, -1 at the beginning
  const version = new Uint32Array(n);
  const alive = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
    alive[i] = 1;
  }

  // Keys pack rank and position into one double (rank · 2^32 + pos < 2^53): ordering by key is ordering by
  // rank, then leftmost position — exactly tiktoken's tie rule.
  let keys = new Float64Array(n);
  let vers = new Uint32Array(n);
  let size = 0;
  const push = (key: number, ver: number): void => {
    if (size === keys.length) {
      const k2 = new Float64Array(size * 2);
      k2.set(keys);
      keys = k2;
      const v2 = new Uint32Array(size * 2);
      v2.set(vers);
      vers = v2;
    }
    let i = size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (keys[parent] <= key) break;
      keys[i] = keys[parent];
      vers[i] = vers[parent];
      i = parent;
    }
    keys[i] = key;
    vers[i] = ver;
  };
  const popInto = (): void => {
    const lastKey = keys[--size];
    const lastVer = vers[size];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && keys[child + 1] < keys[child]) child++;
      if (keys[child] >= lastKey) break;
      keys[i] = keys[child];
      vers[i] = vers[child];
      i = child;
    }
    keys[i] = lastKey;
    vers[i] = lastVer;
  };
  const TWO32 = 4294967296;
  const consider = (i: number): void => {
    const j = next[i];
    if (j >= n) return;
    const r = ranks.get(s.slice(i, next[j]));
    if (r !== undefined) push(r * TWO32 + i, version[i]);
  };

  for (let i = 0; i + 1 < n; i++) consider(i);
  while (size > 0) {
    const key = keys[0];
    const ver = vers[0];
    popInto();
    const i = key % TWO32;
    if (!alive[i] || version[i] !== ver) continue;
    const j = next[i];
    // Merge part j into part i.
    alive[j] = 0;
    next[i] = next[j];
    if (next[j] < n) prev[next[j]] = i;
    version[i]++;
    consider(i);
    const p = prev[i];
    if (p >= 0) {
      version[p]++;
      consider(p);
    }
  }
  for (let i = 0; i < n; i = next[i]) out.push(rankOf(s.slice(i, next[i]), ranks));
}

function rankOf(bytes: string, ranks: ReadonlyMap<string, number>): number {
  const r = ranks.get(bytes);
  // Every single byte has a rank in tiktoken's tables, so a final part always does too.
  if (r === undefined) throw new Error(`BPE produced a part without a rank (${bytes.length} bytes)`);
  return r;
}
