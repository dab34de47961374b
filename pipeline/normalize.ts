/**
 * Text normalisation and stable hashing for the dedupe and split stages.
 *
 * SPEC §3 says texts are compared "after Unicode NFKC, case folding and whitespace collapsing"; this module is
 * the one place that defines what that means, so exact dedupe, near dedupe and split grouping all agree.
 * Everything here is pure and independent of locale, process and machine: the same input gives the same
 * output on every run, which is what lets `split: method stable` keep an example in its split night after night.
 */

import { hash as nativeHash } from 'node:crypto';

const ASCII_ONLY = /^[\x00-\x7f]*$/;
// JS `\s` is Unicode White_Space plus U+FEFF. U+200B ZERO WIDTH SPACE is not White_Space, but it is how Thai,
// Khmer and friends mark word breaks and it is often pasted in invisibly, so it separates words here too.
const WHITESPACE_RUN = /[\s\u200b]+/g;
// The runs that change when collapsed: two or more blanks, or one blank that is not a plain space. Replacing
// only these gives the same text as replacing every run, without rewriting each single space of normal prose.
const WHITESPACE_TO_COLLAPSE = /[\s\u200b]{2,}|[^\S ]|\u200b/g;
// Invisible characters that join rather than separate (soft hyphen, word joiner): copies of one text differ
// only by where an editor happened to put them, so they are dropped.
const INVISIBLE_JOINERS = /[\u00ad\u2060]/g;
const NEEDS_EXTRA_FOLD = /[ßς]/;

/**
 * Canonical form of a text for comparison: NFKC, case folded, whitespace runs collapsed to one space, trimmed.
 *
 * Case folding: JS has no full Unicode case fold, so this is `toLowerCase()` (locale-independent, so no
 * Turkish dotless-i surprises) plus the full-folding cases where lower-casing is not enough: `ß` and `ẞ` fold
 * to `ss` and final sigma `ς` folds to `σ`. NFKC, applied first, already folds the compatibility characters
 * that full folding would otherwise need (ligatures such as `ﬁ`, long s `ſ`, Kelvin and Ohm signs, Greek
 * symbol variants `ϐ ϑ ϕ ϖ ϰ ϱ ϵ`, fullwidth letters). What remains unfolded are exotic cases (e.g. the Greek
 * iota subscript), which is an acceptable miss for dedupe. Lower-casing can leave a string that is no longer
 * NFKC, so a changed string is normalised again; this keeps the function idempotent.
 *
 * Fast path: NFKC is the expensive step and is the identity on ASCII, so pure-ASCII strings (the bulk of most
 * logs) skip it.
 */
export function normalizeText(s: string): string {
  if (ASCII_ONLY.test(s)) return collapseWhitespace(s.toLowerCase());
  const nfkc = s.normalize('NFKC');
  let folded = nfkc.toLowerCase();
  if (NEEDS_EXTRA_FOLD.test(folded)) folded = folded.replace(/ß/g, 'ss').replace(/ς/g, 'σ');
  if (folded !== nfkc) folded = folded.normalize('NFKC');
  return collapseWhitespace(folded.replace(INVISIBLE_JOINERS, ''));
}

function collapseWhitespace(s: string): string {
  return s.replace(WHITESPACE_TO_COLLAPSE, ' ').trim();
}

/** The definition collapseWhitespace implements faster; kept for the equivalence test. */
export function collapseWhitespaceReference(s: string): string {
  return s.replace(WHITESPACE_RUN, ' ').trim();
}

// ---------------------------------------------------------------------------------------------------------
// FNV-1a 64 over the UTF-8 bytes of a string.
//
// Why FNV-1a 64: it is a published, fixed algorithm with test vectors, so a key computed here can be
// recomputed by any other tool (Python, SQL extension) over the same UTF-8 bytes; 64 bits keep accidental
// collisions negligible at our scale (about 3e-8 for a million distinct texts). It is not collision-resistant
// against an adversary who crafts texts, which is acceptable for dedupe of our own logs.
//
// JS has no fast 64-bit integer multiply (BigInt allocates), so the state is four 16-bit limbs, v3 the highest,
// and the multiply by the FNV prime 2^40 + 0x1b3 (= 435) is done limb by limb: every intermediate stays a small
// integer, about four times faster than splitting into two uint32 halves with a floating-point carry.
// ---------------------------------------------------------------------------------------------------------

const TWO_POW_32 = 4294967296;

// Module-level state avoids allocating a result object per hashed string on the hot path.
let v0 = 0;
let v1 = 0;
let v2 = 0;
let v3 = 0;

function fnvReset(): void {
  v3 = 0xcbf2;
  v2 = 0x9ce4;
  v1 = 0x8422;
  v0 = 0x2325;
}

function fnvByte(byte: number): void {
  v0 ^= byte;
  const t0 = v0 * 435;
  let t1 = v1 * 435;
  let t2 = v2 * 435;
  let t3 = v3 * 435;
  // The 2^40 term: shifts limbs 0 and 1 up by 40 bits = into limbs 2 and 3, 8 bits up.
  t2 += v0 << 8;
  t3 += v1 << 8;
  t1 += t0 >>> 16;
  v0 = t0 & 65535;
  t2 += t1 >>> 16;
  v1 = t1 & 65535;
  v3 = (t3 + (t2 >>> 16)) & 65535;
  v2 = t2 & 65535;
}

/** Feeds the UTF-8 encoding of `s` (lone surrogates as U+FFFD, as TextEncoder does) into the FNV state. */
function fnvString(s: string): void {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      fnvByte(c);
      continue;
    }
    if (c < 0x800) {
      fnvByte(0xc0 | (c >> 6));
      fnvByte(0x80 | (c & 0x3f));
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        fnvByte(0xf0 | (cp >> 18));
        fnvByte(0x80 | ((cp >> 12) & 0x3f));
        fnvByte(0x80 | ((cp >> 6) & 0x3f));
        fnvByte(0x80 | (cp & 0x3f));
        continue;
      }
      c = 0xfffd;
    }
    fnvByte(0xe0 | (c >> 12));
    fnvByte(0x80 | ((c >> 6) & 0x3f));
    fnvByte(0x80 | (c & 0x3f));
  }
}

const NIBBLE = '0123456789abcdef';
const NIBBLE_CODE = Uint8Array.from(NIBBLE, (c) => c.charCodeAt(0));

/** A uint32 as 8 lowercase hex digits (Number#toString(16) is slow above 2^31). */
function hex8(x: number): string {
  let out = '';
  for (let i = 0; i < 8; i++) {
    out = NIBBLE[x & 15]! + out;
    x >>>= 4;
  }
  return out;
}

/**
 * Stable 64-bit key of a string: FNV-1a 64 of its UTF-8 bytes as 16 lowercase hex characters.
 * The exact-dedupe key and the grouping key for identical normalised prompts; callers pass already
 * normalised text (`hashText(normalizeText(s))`), so this stays a plain, reproducible hash.
 */
export function hashText(s: string): string {
  fnvReset();
  fnvString(s);
  return hex8(v3 * 65536 + v2) + hex8(v1 * 65536 + v0);
}

/**
 * The same FNV-1a 64 hash as a JS number (its low 53 bits): a Map key that costs no string allocation. Callers
 * that must not merge on a collision (probability ~n²/2^54) check something else too, such as the text's length.
 */
export function hash53(s: string): number {
  fnvReset();
  fnvString(s);
  return ((v3 & 0x1f) * 65536 + v2) * TWO_POW_32 + (v1 * 65536 + v0);
}

/**
 * A 53-bit identity key of a string for use within one run (exact dedupe, split's prompt links): the low 53
 * bits of the first 8 bytes (big-endian) of the SHA-1 of its UTF-8 bytes (lone surrogates as U+FFFD). Native
 * hashing runs about seven times faster than FNV in JS on long texts, which matters when every conversation's
 * whole text is keyed. Not for anything whose value must stay the same across versions (split's stable key is
 * `hashText`). Callers that must not merge on a collision (~n²/2^54) check something else too, such as the
 * text's length.
 */
export function key53(s: string): number {
  // The digest as a 'binary' (latin1) string, one char per byte: asking for a Buffer costs as much again as
  // hashing a typical prompt, for the Buffer's allocation.
  const d = nativeHash('sha1', s, 'binary');
  const hi = ((d.charCodeAt(1) & 0x1f) << 16) | (d.charCodeAt(2) << 8) | d.charCodeAt(3);
  const lo = ((d.charCodeAt(4) << 24) | (d.charCodeAt(5) << 16) | (d.charCodeAt(6) << 8) | d.charCodeAt(7)) >>> 0;
  return hi * TWO_POW_32 + lo;
}

/** murmur3's 32-bit finaliser: a bijection with full avalanche, used to spread FNV's weak low-order mixing. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A deterministic, uniformly distributed number in [0, 1) from a seed and a key, with 53 bits of resolution.
 *
 * `split: method stable` compares this against the test fraction for each group key, so a group's split
 * depends only on (seed, key): adding more logs later never moves an existing group. The seed is hashed as
 * its decimal text ahead of the key, with a 0xff byte between them (a byte that never occurs in UTF-8), so
 * (1, "23") and (12, "3") differ. FNV alone is poorly mixed in its high bits for short keys, hence the
 * finalisers.
 */
export function seededUnit(seed: number, key: string): number {
  if (!Number.isFinite(seed)) throw new RangeError(`seededUnit: seed must be a finite number, got ${seed}`);
  fnvReset();
  fnvString(String(seed));
  fnvByte(0xff);
  fnvString(key);
  return unitOfState();
}

/** The FNV state as seededUnit's number in [0, 1). */
function unitOfState(): number {
  const fnvHi = (v3 * 65536 + v2) >>> 0;
  const fnvLo = (v1 * 65536 + v0) >>> 0;
  const a = fmix32(fnvHi ^ fmix32(fnvLo));
  const b = fmix32(fnvLo ^ fmix32(a ^ 0x9e3779b9));
  // 27 high bits of a and 26 of b make an exact 53-bit integer; dividing by 2^53 stays below 1.
  return ((a >>> 5) * 67108864 + (b >>> 6)) / 9007199254740992;
}

/**
 * seededUnit(seed, prefix + key) for many keys sharing a seed and prefix: the seed and prefix are hashed once.
 * `hex` takes the key as a 64-bit value in two uint32 halves and hashes its 16 lowercase hex digits, with no
 * string made (split's per-conversation key is `p:` and the prompt hash in hex).
 */
export class SeededUnits {
  private readonly s0: number;
  private readonly s1: number;
  private readonly s2: number;
  private readonly s3: number;
  constructor(seed: number, prefix: string) {
    if (!Number.isFinite(seed)) throw new RangeError(`seededUnit: seed must be a finite number, got ${seed}`);
    fnvReset();
    fnvString(String(seed));
    fnvByte(0xff);
    fnvString(prefix);
    this.s0 = v0;
    this.s1 = v1;
    this.s2 = v2;
    this.s3 = v3;
  }

  private restore(): void {
    v0 = this.s0;
    v1 = this.s1;
    v2 = this.s2;
    v3 = this.s3;
  }

  of(key: string): number {
    this.restore();
    fnvString(key);
    return unitOfState();
  }

  hex(hi: number, lo: number): number {
    this.restore();
    for (let s = 28; s >= 0; s -= 4) fnvByte(NIBBLE_CODE[(hi >>> s) & 15]!);
    for (let s = 28; s >= 0; s -= 4) fnvByte(NIBBLE_CODE[(lo >>> s) & 15]!);
    return unitOfState();
  }
}
