/**
 * Streams a file as numbered raw lines (Buffers), gunzipping `.gz`. Bytes are not decoded here: ingest decides
 * what invalid UTF-8 means (quarantine), so the raw bytes can be kept whole.
 */
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
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
