/**
 * Rows of SQL values packed to cross from ingest's worker to the thread that inserts them (issue 6): texts as
 * UTF-8 byte ranges of one buffer, numbers in a Float64Array, all transferred, not cloned. Cloned, every text
 * would be built again as a string on the inserting thread — the busier one — only for better-sqlite3 to encode
 * it to UTF-8 once more; a range is bound as a blob instead, and `CAST(? AS TEXT)` stores it as text, the same
 * bytes (`packedParams`). No store or SQLite here: the worker loads this module.
 *
 * The bytes are exactly those better-sqlite3 stores for the string itself, so nothing in a store changes: UTF-8,
 * and a lone surrogate (which JSON's `\ud800` escape can put in a string) as its code unit's three bytes, the way
 * V8 writes it, not as the U+FFFD that `Buffer.write` would put there (`writeText`).
 */

/** What a column holds: text (string or null) or a number (or null). */
export type ColumnKind = 'text' | 'number';

export interface PackedRows {
  readonly n: number;
  readonly kinds: readonly ColumnKind[];
  /** The texts' UTF-8, back to back. */
  readonly bytes: Uint8Array;
  /** Per value (row * width + column): a text's first byte, or NULL_VALUE, or NUMBER_VALUE. */
  readonly start: Int32Array;
  /** Per value: a text's end (exclusive). */
  readonly end: Int32Array;
  /** Per value: a number column's value. */
  readonly numbers: Float64Array;
}

const NULL_VALUE = -1;
const NUMBER_VALUE = -2;

/** Fills a PackedRows a row at a time; `finish` hands it over (its buffers are then the receiver's). */
export class RowPacker {
  private bytes: Buffer;
  private at = 0;
  private start: Int32Array;
  private end: Int32Array;
  private numbers: Float64Array;
  private n = 0;

  /**
   * `rows` and `bytes`: what to make room for at first. A good guess of the bytes matters: every buffer outgrown
   * is garbage the size of the texts so far, on the thread (ingest's worker) that can least afford it.
   */
  constructor(
    private readonly kinds: readonly ColumnKind[],
    rows = 64,
    bytes = Math.max(1, rows) * 256,
  ) {
    // Never from Buffer's shared pool, which Node marks untransferable: a pooled buffer would be copied across.
    this.bytes = Buffer.allocUnsafeSlow(Math.max(1, bytes));
    const values = Math.max(1, rows) * kinds.length;
    this.start = new Int32Array(values);
    this.end = new Int32Array(values);
    this.numbers = new Float64Array(values);
  }

  /** Adds a row (its values in column order) and returns its index. */
  add(values: readonly (string | number | null)[]): number {
    const w = this.kinds.length;
    if (values.length !== w) throw new Error(`internal: a packed row of ${w} columns was given ${values.length} values`);
    if ((this.n + 1) * w > this.start.length) this.growRows();
    let i = this.n * w;
    for (let c = 0; c < w; c++, i++) {
      const v = values[c];
      if (v === null || v === undefined) {
        this.start[i] = NULL_VALUE;
      } else if (this.kinds[c] === 'number') {
        if (typeof v !== 'number') throw new Error(`internal: packed column ${c} holds numbers, was given ${typeof v}`);
        this.start[i] = NUMBER_VALUE;
        this.numbers[i] = v;
      } else {
        if (typeof v !== 'string') throw new Error(`internal: packed column ${c} holds texts, was given ${typeof v}`);
        // A UTF-16 code unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4), so only a string
        // that might not fit is measured; its byte length is what writeText writes (3 for a lone surrogate).
        const room = this.bytes.length - this.at;
        if (room < v.length * 3) {
          const need = Buffer.byteLength(v, 'utf8');
          if (room < need) this.growBytes(need);
        }
        this.start[i] = this.at;
        this.at = writeText(v, this.bytes, this.at);
        this.end[i] = this.at;
      }
    }
    return this.n++;
  }

  finish(): PackedRows {
    const w = this.kinds.length;
    return {
      n: this.n,
      kinds: this.kinds,
      bytes: new Uint8Array(this.bytes.buffer, this.bytes.byteOffset, this.at),
      start: this.start.subarray(0, this.n * w),
      end: this.end.subarray(0, this.n * w),
      numbers: this.numbers.subarray(0, this.n * w),
    };
  }

  private growRows(): void {
    const grow = <T extends Int32Array | Float64Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(a.length * 2);
      b.set(a);
      return b;
    };
    this.start = grow(this.start);
    this.end = grow(this.end);
    this.numbers = grow(this.numbers);
  }

  private growBytes(need: number): void {
    const b = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.at + need));
    this.bytes.copy(b, 0, 0, this.at);
    this.bytes = b;
  }
}

/**
 * Writes s at `at` as better-sqlite3 binds it (V8's UTF-8 without replacement) and returns the end. Almost every
 * string is well formed (one-byte strings always are) and goes through Buffer.write; a lone surrogate is written
 * as the three bytes of its code unit, as V8 does, where Buffer.write would write U+FFFD.
 */
function writeText(s: string, buf: Buffer, at: number): number {
  if ((s as unknown as { isWellFormed(): boolean }).isWellFormed()) return at + buf.write(s, at, 'utf8');
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) {
      buf[at++] = c;
    } else if (c < 0x800) {
      buf[at++] = 0xc0 | (c >> 6);
      buf[at++] = 0x80 | (c & 0x3f);
    } else if (c < 0x10000) {
      buf[at++] = 0xe0 | (c >> 12);
      buf[at++] = 0x80 | ((c >> 6) & 0x3f);
      buf[at++] = 0x80 | (c & 0x3f);
    } else {
      buf[at++] = 0xf0 | (c >> 18);
      buf[at++] = 0x80 | ((c >> 12) & 0x3f);
      buf[at++] = 0x80 | ((c >> 6) & 0x3f);
      buf[at++] = 0x80 | (c & 0x3f);
    }
  }
  return at;
}

/** The buffers to transfer with a PackedRows (each its own: RowPacker never shares one between arrays). */
export function packedTransfer(p: PackedRows): ArrayBuffer[] {
  return [p.bytes.buffer, p.start.buffer, p.end.buffer, p.numbers.buffer] as ArrayBuffer[];
}

/** The SQL parameters for a packed row's columns: `CAST(? AS TEXT)` for texts (bound as blobs), `?` for numbers. */
export function packedParams(kinds: readonly ColumnKind[]): string[] {
  return kinds.map((k) => (k === 'text' ? 'CAST(? AS TEXT)' : '?'));
}

/** Reads a PackedRows on the receiving side. */
export class RowReader {
  private readonly bytes: Buffer;
  private readonly w: number;

  constructor(private readonly p: PackedRows) {
    this.bytes = Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength);
    this.w = p.kinds.length;
  }

  /** Row r's values as parameters for packedParams' SQL, into out from index `at`: texts as byte views. */
  bind(r: number, out: unknown[], at: number): void {
    const { start, end, numbers } = this.p;
    let i = r * this.w;
    for (let c = 0; c < this.w; c++, i++) {
      const s = start[i]!;
      out[at + c] = s === NULL_VALUE ? null : s === NUMBER_VALUE ? numbers[i] : this.bytes.subarray(s, end[i]);
    }
  }

  /** Row r's value in column c, texts decoded as better-sqlite3 reads them back (a lone surrogate as three U+FFFD). */
  value(r: number, c: number): string | number | null {
    const i = r * this.w + c;
    const s = this.p.start[i]!;
    return s === NULL_VALUE ? null : s === NUMBER_VALUE ? this.p.numbers[i]! : this.bytes.toString('utf8', s, this.p.end[i]);
  }
}
