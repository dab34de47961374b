/**
 * Streams a file as numbered raw lines (Buffers), gunzipping `.gz`. Bytes are not decoded here: ingest decides
 * what invalid UTF-8 means (quarantine), so the raw bytes can be kept whole.
 */
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { isUtf8 } from 'node:buffer';

export interface RawLine {
  /** 1-based line number in the (decompressed) file. */
  readonly lineNo: number;
  /** The line without its `\n` or `\r\n`, and without a leading UTF-8 BOM on line 1. */
  readonly bytes: Buffer;
}

export function openDecompressed(path: string): Readable {
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  if (!path.toLowerCase().endsWith('.gz')) return raw;
  const gunzip = createGunzip();
  raw.on('error', (err) => gunzip.destroy(err));
  return raw.pipe(gunzip);
}

export async function* readLines(path: string): AsyncGenerator<RawLine> {
  let lineNo = 0;
  let carry: Buffer | null = null;
  const emit = (buf: Buffer): RawLine => {
    lineNo++;
    let b = buf;
    if (b.length > 0 && b[b.length - 1] === 0x0d) b = b.subarray(0, b.length - 1);
    if (lineNo === 1 && b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) b = b.subarray(3);
    return { lineNo, bytes: b };
  };
  for await (const chunk of openDecompressed(path) as AsyncIterable<Buffer>) {
    let start = 0;
    let nl = chunk.indexOf(0x0a, start);
    while (nl !== -1) {
      const piece = chunk.subarray(start, nl);
      if (carry) {
        yield emit(Buffer.concat([carry, piece]));
        carry = null;
      } else {
        yield emit(piece);
      }
      start = nl + 1;
      nl = chunk.indexOf(0x0a, start);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      // Copy: the stream may reuse its chunk buffer.
      carry = carry ? Buffer.concat([carry, rest]) : Buffer.from(rest);
    }
  }
  if (carry && carry.length > 0) yield emit(carry);
}

/** Decodes strictly; returns null for invalid UTF-8 so the caller can quarantine the raw line. */
export function decodeUtf8(bytes: Buffer): string | null {
  return isUtf8(bytes) ? bytes.toString('utf8') : null;
}

/**
 * A whole text file (a config, a system prompt): its text without a leading byte-order mark, or, when the bytes
 * are not UTF-8, the 1-based line of the first bad sequence (a newline byte is never inside a UTF-8 sequence).
 */
export function utf8FileText(bytes: Buffer): string | number {
  if (isUtf8(bytes)) {
    const text = bytes.toString('utf8');
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  }
  let line = 1;
  for (let start = 0; ; line++) {
    const end = bytes.indexOf(0x0a, start);
    if (!isUtf8(bytes.subarray(start, end === -1 ? bytes.length : end)) || end === -1) return line;
    start = end + 1;
  }
}

export function isBlank(text: string): boolean {
  return text.trim() === '';
}

/**
 * Passes a byte stream through unchanged, noting where it is not UTF-8: the offset of the first byte of every
 * invalid sequence, in order. For a parser that decodes as it goes (csv-parse puts U+FFFD where a byte is not
 * UTF-8), so that a record holding such bytes is quarantined, not stored repaired (SPEC §2). A chunk is checked
 * before it is passed on, so a reader of the parser's output never sees bytes not yet checked — but for the last
 * bytes of a chunk that may be the start of a character the next chunk ends, checked with that chunk.
 */
export class Utf8Check extends Transform {
  /** Offsets (from the stream's first byte) of the invalid sequences found so far, ascending. */
  readonly bad: number[] = [];
  private offset = 0;
  private tail: Buffer = Buffer.alloc(0);
  /** Where `badIn` has looked up to, in `bad`. */
  private seen = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const start = this.offset - this.tail.length;
    const bytes = this.tail.length > 0 ? Buffer.concat([this.tail, chunk]) : chunk;
    const cut = completeUpTo(bytes);
    const body = bytes.subarray(0, cut);
    if (!isUtf8(body)) invalidSequences(body, start, this.bad);
    this.tail = Buffer.from(bytes.subarray(cut));
    this.offset += chunk.length;
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    // A character cut off by the end of the stream.
    if (this.tail.length > 0) invalidSequences(this.tail, this.offset - this.tail.length, this.bad);
    this.tail = Buffer.alloc(0);
    done();
  }

  /** The first invalid offset in [from, to), or -1; ranges must be asked in order (earlier offsets are passed). */
  badIn(from: number, to: number): number {
    while (this.seen < this.bad.length && this.bad[this.seen]! < from) this.seen++;
    const at = this.bad[this.seen];
    return at !== undefined && at < to ? at : -1;
  }
}

/** The length of `bytes` less a trailing lead byte and its continuation bytes when they are fewer than it needs. */
function completeUpTo(bytes: Buffer): number {
  const n = bytes.length;
  for (let i = n - 1; i >= 0 && i >= n - 4; i--) {
    const b = bytes[i]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return n - i < need ? i : n;
  }
  return n;
}

/** Pushes the offset (base + index) of every invalid UTF-8 sequence in `bytes` (RFC 3629, as isUtf8 judges). */
function invalidSequences(bytes: Buffer, base: number, out: number[]): void {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0; // no overlong forms
      if (b === 0xed) hi = 0x9f; // no surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else {
      out.push(base + i);
      i++;
      continue;
    }
    let ok = i + need < n;
    for (let k = 1; ok && k <= need; k++) {
      const c = bytes[i + k]!;
      ok = k === 1 ? c >= lo && c <= hi : (c & 0xc0) === 0x80;
    }
    if (ok) i += need + 1;
    else {
      out.push(base + i);
      i++;
    }
  }
}
