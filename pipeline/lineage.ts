/**
 * lineage.jsonl's lines (SPEC §4), written as bytes: one line per conversation a run considered, a million of
 * them at 1M. Each line is exactly `jsonLine` of its record — keys in SPEC order, compact, line-break characters
 * escaped (test/lineage.test.ts checks hostile ids and file names against it) — but assembled in one buffer:
 * building a template string per line and encoding it cost ~1.2 µs a line, most of lineage's time.
 */
import { jsonLine, writeDecimal } from './canonical.js';

const FLUSH_AT = 1 << 20;

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const HEAD = ascii('{"id":');
const STATUS = ascii(',"status":');
const DROPPED = ascii('"dropped","stage":');
const REASON = ascii(',"reason":');
const LINE_NULL = ascii(',"line":null');
const KEPT = [ascii(',"status":"train","stage":null,"reason":null,"line":'), ascii(',"status":"test","stage":null,"reason":null,"line":')] as const;
const SOURCE = ascii(',"source":{"file":');
const SOURCE_LINE = ascii(',"line":');
const END = ascii('}}\n');
const NULL = ascii('null');

/** The JSON text of a string or null, UTF-8 encoded. */
export function jsonBytes(v: string | null): Buffer {
  return Buffer.from(jsonLine(v), 'utf8');
}

export class LineageWriter {
  private buf = Buffer.allocUnsafeSlow(FLUSH_AT + (64 << 10));
  private p = 0;
  /**
   * The bytes between the id and the source, joined once per stage and reason, and the source's bytes before its
   * line, once per file: a line is then five copies and two numbers. Copied piece by piece (twelve pieces), a
   * line cost ~1.6 µs, 330 ms of a 200k run.
   */
  private readonly middles = new Map<Buffer, Map<Buffer, Buffer>>();
  private readonly tails = new Map<Buffer, Buffer>();

  /** `sink` takes each flushed run of lines; it must write or copy them before it returns (the buffer is reused). */
  constructor(private readonly sink: (bytes: Buffer) => void) {}

  /**
   * A dropped conversation: `stage`, `reason` and `file` are their JSON texts (jsonBytes), encoded once each by
   * the caller and passed as the same Buffers each time (they key the joined pieces).
   */
  dropped(id: string, stage: Buffer, reason: Buffer, file: Buffer, sourceLine: number): void {
    let byReason = this.middles.get(stage);
    if (byReason === undefined) this.middles.set(stage, (byReason = new Map()));
    let middle = byReason.get(reason);
    if (middle === undefined) byReason.set(reason, (middle = Buffer.concat([STATUS, DROPPED, stage, REASON, reason, LINE_NULL])));
    this.begin(id, middle.length + file.length);
    this.put(middle);
    this.end(file, sourceLine);
  }

  /** A kept conversation: its split and its 1-based line in that file (0: none, written as null). */
  kept(id: string, test: boolean, line: number, file: Buffer, sourceLine: number): void {
    this.begin(id, file.length);
    this.put(KEPT[test ? 1 : 0]);
    if (line > 0) this.int(line);
    else this.put(NULL);
    this.end(file, sourceLine);
  }

  /** Hands what is buffered to the sink. */
  flush(): void {
    if (this.p === 0) return;
    this.sink(this.buf.subarray(0, this.p));
    this.p = 0;
  }

  private begin(id: string, extra: number): void {
    // At most 3 bytes per UTF-16 unit, 6 for an escaped one: room for the worst case of this line.
    const need = 6 * id.length + extra + 256;
    if (this.p + need > this.buf.length) {
      this.flush();
      if (need > this.buf.length) this.buf = Buffer.allocUnsafeSlow(need);
    }
    this.put(HEAD);
    this.id(id);
  }

  private end(file: Buffer, sourceLine: number): void {
    let tail = this.tails.get(file);
    if (tail === undefined) this.tails.set(file, (tail = Buffer.concat([SOURCE, file, SOURCE_LINE])));
    this.put(tail);
    this.int(sourceLine);
    this.put(END);
  }

  /** The id as a JSON string: printable ASCII other than `"` and `\` byte by byte, anything else through jsonLine. */
  private id(s: string): void {
    const b = this.buf;
    const start = this.p;
    let p = start;
    b[p++] = 0x22;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) {
        this.p = start + b.write(jsonLine(s), start, 'utf8');
        return;
      }
      b[p++] = c;
    }
    b[p++] = 0x22;
    this.p = p;
  }

  private put(src: Buffer): void {
    this.buf.set(src, this.p);
    this.p += src.length;
  }

  private int(n: number): void {
    this.p = writeDecimal(this.buf, this.p, n);
  }
}
