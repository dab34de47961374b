/**
 * Emit's outcomes, reused by the next run into the same folder (issue 6: a second night with 1% new logs should
 * cost a fraction of the first). Building an example — fetching and parsing its messages, applying the
 * transforms, checking it, counting its tokens, serialising it — is most of a run's time, and on the next night
 * almost every example is the same as the night before. So each run records, per conversation emit settled,
 * what came of it (`emit_reuse`): where its line went in the files it wrote (byte offset and length), its token
 * counts, its flags (truncated, no system or user message), its line digest, or why emit dropped it. The next
 * run copies those lines' bytes from the files already in the folder instead of building them again, and builds
 * only the rest; either way it writes them through the same sinks, in the same order, to the same bytes.
 *
 * Never stale: an outcome is reused only when all of this holds —
 * - the same render key: a digest of the code that renders examples (every compiled module, RENDER_STAMP), the
 *   emit settings that shape a line (format, model and so its encoding and limit, over_limit), the seed, and
 *   the parameters of every transform that ran before emit (system_prompt's text, redact_pii's kinds), in order;
 * - the conversation is the same row (rows are never rewritten: pk, messages and tools stay as ingested);
 * - the files in the folder are the ones that run wrote: the folder's manifest.json names the run, the store's
 *   record of that run (succeeded, into this folder) gives each file's size and SHA-256, and the files are read
 *   through descriptors opened before they are hashed, so a file renamed over them later is never read.
 * Anything else — another config, other code, a file edited or gone — and emit builds every example as before.
 */
import { closeSync, fstatSync, openSync, readFileSync, readdirSync, readSync } from 'node:fs';
import { createHash, hash } from 'node:crypto';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalJson } from './canonical.js';
import { BUSY_MS, cacheWrite, retryWhileBusy, type Store } from './store.js';
import { SPLIT_NONE } from './working-set.js';

export const FLAG_TRUNCATED = 1;
export const FLAG_NO_SYSTEM_OR_USER = 2;
/** A drop over the token limit: `total` holds the example's count. */
export const FLAG_OVER_LIMIT = 4;

/** Bytes of a line digest (md5, the sinks' duplicate check). */
export const DIGEST_BYTES = 16;

/** Outcomes per emit_reuse row. */
const CHUNK = 16_384;
const NO_REASON = 0xffff;

let stamp: string | undefined;

/**
 * A digest of every module of this build (pipeline/, stages/, schemas/: .js when compiled, .ts when run from
 * source): what renders, checks and counts an example is spread over several of them, and any change to any
 * file is a new key. Costs ~5 ms, once, and only in runs that emit.
 */
export function renderStamp(): string {
  if (stamp !== undefined) return stamp;
  const self = fileURLToPath(import.meta.url);
  const ext = extname(self);
  const root = dirname(dirname(self));
  const h = createHash('sha256').update(`logcurate-render\u0000${ext}`);
  for (const dir of ['pipeline', 'stages', 'schemas']) {
    let files: string[];
    try {
      files = readdirSync(join(root, dir)).filter((f) => f.endsWith(ext)).sort();
    } catch {
      files = [];
    }
    for (const f of files) h.update(`\u0000${dir}/${f}\u0000`).update(readFileSync(join(root, dir, f)));
  }
  return (stamp = h.digest('hex'));
}

export interface RenderKeyParts {
  readonly format: string;
  readonly model: string;
  readonly encoding: string;
  readonly limit: number | null;
  readonly overLimit: string;
  readonly seed: number;
  /** The transforms before emit, in order: each one's stage name and canonical parameters. */
  readonly transforms: readonly { readonly stage: string; readonly params: string }[];
}

export function renderKey(parts: RenderKeyParts): string {
  return hash('sha256', canonicalJson({ stamp: renderStamp(), ...parts }), 'hex');
}

/** Bytes per outcome in a chunk's blob. */
const OUTCOME_BYTES = 8 + 4 * 4 + 2 + 1 + 1 + DIGEST_BYTES;

/**
 * One chunk's columns over a blob of n outcomes: offset f64, pk/total/assistant/length, reason u16, file/flags u8,
 * digests. `file` is the split the line was written to (SPLIT_TRAIN, SPLIT_TEST), SPLIT_NONE for a drop.
 */
function outcomeColumns(buf: ArrayBufferLike, byteOffset: number, n: number) {
  let at = byteOffset;
  const view = <T>(C: new (b: ArrayBufferLike, o: number, l: number) => T, bytes: number): T => {
    const v = new C(buf, at, n);
    at += n * bytes;
    return v;
  };
  return {
    offset: view(Float64Array, 8),
    pk: view(Int32Array, 4),
    total: view(Int32Array, 4),
    assistant: view(Int32Array, 4),
    length: view(Uint32Array, 4),
    reason: view(Uint16Array, 2),
    file: view(Uint8Array, 1),
    flags: view(Uint8Array, 1),
    digests: new Uint8Array(buf, at, n * DIGEST_BYTES),
  };
}

type OutcomeColumns = ReturnType<typeof outcomeColumns>;

/** A chunk of outcomes as stored (one emit_reuse row). */
export interface OutcomeChunk {
  readonly chunk: number;
  readonly n: number;
  readonly reasons: string;
  readonly prompts: string | null;
  readonly data: Buffer;
}

/**
 * The outcomes of one run's emit, in the order it settled them (working-set order, so ascending pk), handed to
 * `sink` a chunk of CHUNK at a time: only the chunk being filled is held, whatever the run's size.
 */
export class OutcomeRecorder {
  private buf = Buffer.alloc(CHUNK * OUTCOME_BYTES);
  private cols: OutcomeColumns = outcomeColumns(this.buf.buffer, this.buf.byteOffset, CHUNK);
  private n = 0;
  private chunk = 0;
  private recorded = 0;
  private readonly reasons: string[] = [];
  private readonly reasonIndex = new Map<string, number>();
  /** truncate mode only: each written example's prompt hash (emit's both-splits check). */
  private prompts: (string | null)[] | null;

  constructor(
    private readonly withPrompts: boolean,
    private readonly sink: (c: OutcomeChunk) => void,
  ) {
    this.prompts = withPrompts ? [] : null;
  }

  get size(): number {
    return this.recorded;
  }

  written(pk: number, file: number, offset: number, length: number, total: number, assistant: number, flags: number, digest: Uint8Array, prompt: string | null): void {
    if (digest.length !== DIGEST_BYTES) throw new Error(`internal: a line digest of ${digest.length} bytes`);
    const k = this.push(pk, file, offset, length, total, assistant, flags, NO_REASON, prompt);
    this.cols.digests.set(digest, k * DIGEST_BYTES);
    this.full();
  }

  dropped(pk: number, reason: string, overLimit: number | undefined): void {
    let r = this.reasonIndex.get(reason);
    if (r === undefined) {
      if (this.reasons.length >= NO_REASON) throw new Error('internal: too many distinct emit drop reasons to record');
      r = this.reasons.length;
      this.reasons.push(reason);
      this.reasonIndex.set(reason, r);
    }
    this.push(pk, SPLIT_NONE, 0, 0, overLimit ?? -1, 0, overLimit === undefined ? 0 : FLAG_OVER_LIMIT, r, null);
    this.full();
  }

  /** Hands over the last, partial chunk. */
  finish(): void {
    if (this.n > 0) this.flush();
  }

  private push(pk: number, file: number, offset: number, length: number, total: number, assistant: number, flags: number, reason: number, prompt: string | null): number {
    const k = this.n++;
    const c = this.cols;
    c.offset[k] = offset;
    c.pk[k] = pk;
    c.total[k] = total;
    c.assistant[k] = assistant;
    c.length[k] = length;
    c.reason[k] = reason;
    c.file[k] = file;
    c.flags[k] = flags;
    this.prompts?.push(prompt);
    this.recorded++;
    return k;
  }

  private full(): void {
    if (this.n === CHUNK) this.flush();
  }

  private flush(): void {
    const n = this.n;
    const data = Buffer.alloc(n * OUTCOME_BYTES);
    const out = outcomeColumns(data.buffer, data.byteOffset, n);
    const c = this.cols;
    out.offset.set(c.offset.subarray(0, n));
    out.pk.set(c.pk.subarray(0, n));
    out.total.set(c.total.subarray(0, n));
    out.assistant.set(c.assistant.subarray(0, n));
    out.length.set(c.length.subarray(0, n));
    out.reason.set(c.reason.subarray(0, n));
    out.file.set(c.file.subarray(0, n));
    out.flags.set(c.flags.subarray(0, n));
    out.digests.set(c.digests.subarray(0, n * DIGEST_BYTES));
    this.sink({ chunk: this.chunk++, n, reasons: JSON.stringify(this.reasons), prompts: this.prompts && JSON.stringify(this.prompts), data });
    this.n = 0;
    this.prompts = this.withPrompts ? [] : null;
  }
}

/**
 * Saves a run's outcome chunks as emit hands them over, each in a short write of its own. Should one write find
 * the store busy for long, the rest are not written and `complete` is false: the run then keeps none.
 */
export class OutcomeStore {
  private readonly insert;
  complete = true;
  constructor(
    private readonly store: Store,
    private readonly runId: string,
    private readonly outDir: string,
    private readonly key: string,
  ) {
    this.insert = store.sqlite.prepare(`INSERT INTO emit_reuse (run_id, chunk, out_dir, render_key, n, reasons, prompts, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
  }

  save(c: OutcomeChunk): void {
    if (this.complete) this.complete = cacheWrite(() => this.insert.run(this.runId, c.chunk, this.outDir, this.key, c.n, c.reasons, c.prompts, c.data), 5_000);
  }

  /**
   * Once the run's files are complete, just before they are put in place: the folder's older outcomes go (and
   * this run's too, if not all of them were saved). Should the files then fail to land, the next run finds the
   * older files with no outcomes of theirs, and builds every example.
   */
  settle(): void {
    const del = this.store.sqlite.prepare(`DELETE FROM emit_reuse WHERE out_dir = ? AND (run_id <> ? OR ?)`);
    retryWhileBusy(() => del.run(this.outDir, this.runId, this.complete ? 0 : 1), BUSY_MS);
  }
}

/** The manifest's record of a file: what the file in the folder must still be. */
interface FileRecord {
  readonly bytes: number;
  readonly sha256: string;
}

/** Lines of one verified file, read in ascending offsets a block at a time. */
class RangeReader {
  private block: Buffer = Buffer.alloc(0);
  private start = 0;
  constructor(readonly fd: number) {}

  read(offset: number, length: number): Buffer {
    const at = offset - this.start;
    if (at >= 0 && at + length <= this.block.length) return this.block.subarray(at, at + length);
    // A fresh block each time: the sinks hold on to lines handed out until they flush.
    const block = Buffer.allocUnsafeSlow(Math.max(length, READ_BLOCK));
    let got = 0;
    while (got < length) {
      const r = readSync(this.fd, block, got, block.length - got, offset + got);
      if (r === 0) throw new Error(`internal: a verified output file ended before byte ${offset + length}`);
      got += r;
    }
    this.block = block.subarray(0, got);
    this.start = offset;
    return this.block.subarray(0, length);
  }
}

const READ_BLOCK = 1 << 20;

type StoredChunk = { chunk: number; n: number; reasons: string; prompts: string | null; data: Buffer };

/**
 * What a run can reuse: the outcomes of the run whose files are in the folder, with those files open. The stored
 * chunks are read at once (one statement, one snapshot: another run into the folder may replace them meanwhile)
 * and kept as they are stored, ~44 bytes an outcome; they are decoded one at a time.
 */
export class ReuseSource {
  private readonly readers: (RangeReader | null)[];
  /** The chunk decoded now (emit asks in ascending order: one chunk at a time is decoded). */
  private current = -1;
  private cols: OutcomeColumns | null = null;
  private reasons: string[] = [];
  private prompts: (string | null)[] | null = null;

  private constructor(
    readonly runId: string,
    private readonly chunks: readonly StoredChunk[],
    private readonly withPrompts: boolean,
    /** Every outcome's pk, ascending (for indexFor). */
    private readonly pks: Int32Array,
    fds: { train: number; test: number },
  ) {
    this.readers = [null, new RangeReader(fds.train), new RangeReader(fds.test)];
  }

  /**
   * The outcomes recorded for `outDir` under `key`, if the folder still holds the files they describe; otherwise
   * null and why (for emit's stats).
   */
  static open(store: Store, outDir: string, key: string, withPrompts: boolean): { source: ReuseSource | null; why: string } {
    let runId: unknown;
    try {
      runId = (JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')) as { run?: { id?: unknown } }).run?.id;
    } catch {
      return { source: null, why: 'no readable manifest.json in the folder' };
    }
    if (typeof runId !== 'string') return { source: null, why: 'manifest.json names no run' };
    const run = store.sqlite.prepare(`SELECT manifest_json FROM runs WHERE id = ? AND status = 'succeeded' AND out_dir = ?`).get(runId, outDir) as
      | { manifest_json: string | null }
      | undefined;
    if (!run?.manifest_json) return { source: null, why: `the store has no succeeded run ${runId} into this folder` };
    const chunks = store.sqlite
      .prepare(`SELECT chunk, n, reasons, prompts, data FROM emit_reuse WHERE run_id = ? AND out_dir = ? AND render_key = ? ORDER BY chunk`)
      .all(runId, outDir, key) as StoredChunk[];
    if (chunks.length === 0) return { source: null, why: `run ${runId} recorded no outcomes under this config's render key` };
    const whole = (c: StoredChunk, k: number): boolean => c.chunk === k && (c.n === CHUNK || k === chunks.length - 1) && c.data.length === c.n * OUTCOME_BYTES;
    if (!chunks.every(whole)) return { source: null, why: `run ${runId}'s outcomes are incomplete` };
    if (withPrompts && chunks.some((c) => c.prompts === null)) return { source: null, why: `run ${runId} recorded no prompts` };
    let files: { train?: FileRecord; test?: FileRecord } | undefined;
    try {
      files = (JSON.parse(run.manifest_json) as { files?: { train?: FileRecord; test?: FileRecord } }).files;
    } catch {
      files = undefined;
    }
    if (!files?.train || !files.test) return { source: null, why: `run ${runId}'s manifest has no file records` };
    const fds: number[] = [];
    try {
      for (const [name, rec] of [['train.jsonl', files.train], ['test.jsonl', files.test]] as const) {
        const fd = openSync(join(outDir, name), 'r');
        fds.push(fd);
        if (fstatSync(fd).size !== rec.bytes || sha256Of(fd) !== rec.sha256) {
          closeFds(fds);
          return { source: null, why: `${name} is not the file run ${runId} wrote` };
        }
      }
    } catch (err) {
      closeFds(fds);
      return { source: null, why: `cannot read the previous files: ${(err as Error).message}` };
    }
    const pks = new Int32Array(chunks.reduce((a, c) => a + c.n, 0));
    for (const c of chunks) {
      // The pks are the blob's second column (after the offsets), at a byte offset that need not be aligned here.
      for (let k = 0; k < c.n; k++) pks[c.chunk * CHUNK + k] = c.data.readInt32LE(8 * c.n + 4 * k);
    }
    return { source: new ReuseSource(runId, chunks, withPrompts, pks, { train: fds[0]!, test: fds[1]! }), why: '' };
  }

  get size(): number {
    return this.pks.length;
  }

  /** For each working-set index, the outcome recorded for its pk, or -1 (both lists ascend: one merge). */
  indexFor(pks: Int32Array): Int32Array {
    const at = new Int32Array(pks.length).fill(-1);
    let e = 0;
    for (let i = 0; i < pks.length && e < this.pks.length; i++) {
      while (e < this.pks.length && this.pks[e]! < pks[i]!) e++;
      if (e < this.pks.length && this.pks[e] === pks[i]) at[i] = e;
    }
    return at;
  }

  /** Outcome e's chunk, decoded; returns e's index in it. (Call it before reading this.cols: it may replace them.) */
  private at(e: number): number {
    const c = Math.floor(e / CHUNK);
    if (c !== this.current) {
      const row = this.chunks[c]!;
      // Copied into an aligned buffer: a blob from SQLite may start anywhere, Float64Array wants a multiple of 8.
      this.cols = outcomeColumns(new Uint8Array(row.data).buffer, 0, row.n);
      this.reasons = JSON.parse(row.reasons) as string[];
      this.prompts = this.withPrompts && row.prompts !== null ? (JSON.parse(row.prompts) as (string | null)[]) : null;
      this.current = c;
    }
    return e - c * CHUNK;
  }

  /** Outcome e's value in one of the numeric columns. */
  private value(column: 'file' | 'flags' | 'total' | 'assistant', e: number): number {
    const k = this.at(e);
    return this.cols![column][k]!;
  }

  file(e: number): number {
    return this.value('file', e);
  }

  flags(e: number): number {
    return this.value('flags', e);
  }

  total(e: number): number {
    return this.value('total', e);
  }

  assistant(e: number): number {
    return this.value('assistant', e);
  }

  /** Outcome e's line, newline included, as the previous run wrote it. */
  bytes(e: number): Buffer {
    const k = this.at(e);
    const c = this.cols!;
    return this.readers[c.file[k]!]!.read(c.offset[k]!, c.length[k]!);
  }

  /** Outcome e's line digest: a view of the decoded chunk (copied by whoever keeps it). */
  digest(e: number): Uint8Array {
    const k = this.at(e);
    return this.cols!.digests.subarray(k * DIGEST_BYTES, (k + 1) * DIGEST_BYTES);
  }

  dropReason(e: number): string {
    const k = this.at(e);
    return this.reasons[this.cols!.reason[k]!]!;
  }

  prompt(e: number): string | null {
    const k = this.at(e);
    return this.prompts?.[k] ?? null;
  }

  close(): void {
    closeFds(this.readers.filter((r): r is RangeReader => r !== null).map((r) => r.fd));
  }
}

function sha256Of(fd: number): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafeSlow(4 << 20);
  for (let pos = 0; ; ) {
    const r = readSync(fd, buf, 0, buf.length, pos);
    if (r === 0) break;
    h.update(buf.subarray(0, r));
    pos += r;
  }
  return h.digest('hex');
}

function closeFds(fds: number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      /* closing a read-only descriptor cannot lose anything */
    }
  }
}
