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
import { retryWhileBusy, type Store } from './store.js';

export const FILE_NONE = 0;
export const FILE_TRAIN = 1;
export const FILE_TEST = 2;

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

/** The outcomes of one run's emit, in the order it settled them (working-set order, so ascending pk). */
export class OutcomeRecorder {
  private pk: number[] = [];
  private file: number[] = [];
  private offset: number[] = [];
  private length: number[] = [];
  private total: number[] = [];
  private assistant: number[] = [];
  private flags: number[] = [];
  private reason: number[] = [];
  private readonly reasons: string[] = [];
  private readonly reasonIndex = new Map<string, number>();
  private digests = Buffer.alloc(1024 * DIGEST_BYTES);
  /** truncate mode only: each written example's prompt hash (emit's both-splits check). */
  private readonly prompts: (string | null)[] | null;

  constructor(withPrompts: boolean) {
    this.prompts = withPrompts ? [] : null;
  }

  get size(): number {
    return this.pk.length;
  }

  written(pk: number, file: number, offset: number, length: number, total: number, assistant: number, flags: number, digest: string, prompt: string | null): void {
    const k = this.push(pk, file, offset, length, total, assistant, flags, NO_REASON);
    if (this.digests.length < (k + 1) * DIGEST_BYTES) {
      const grown = Buffer.alloc(this.digests.length * 2);
      this.digests.copy(grown);
      this.digests = grown;
    }
    this.digests.write(digest, k * DIGEST_BYTES, DIGEST_BYTES, 'latin1');
    this.prompts?.push(prompt);
  }

  dropped(pk: number, reason: string, overLimit: number | undefined): void {
    let r = this.reasonIndex.get(reason);
    if (r === undefined) {
      r = this.reasons.length;
      this.reasons.push(reason);
      this.reasonIndex.set(reason, r);
    }
    this.push(pk, FILE_NONE, 0, 0, overLimit ?? -1, 0, overLimit === undefined ? 0 : FLAG_OVER_LIMIT, r);
    this.prompts?.push(null);
  }

  private push(pk: number, file: number, offset: number, length: number, total: number, assistant: number, flags: number, reason: number): number {
    if (this.reasons.length >= NO_REASON) throw new Error('internal: too many distinct emit drop reasons to record');
    this.pk.push(pk);
    this.file.push(file);
    this.offset.push(offset);
    this.length.push(length);
    this.total.push(total);
    this.assistant.push(assistant);
    this.flags.push(flags);
    this.reason.push(reason);
    return this.pk.length - 1;
  }

  /**
   * Replaces what the store holds for `outDir` with these outcomes (one IMMEDIATE transaction). Called before the
   * files are put in place: should that fail, the next run finds the older files with no outcomes of theirs, and
   * builds every example.
   */
  save(store: Store, runId: string, outDir: string, key: string): void {
    const del = store.sqlite.prepare(`DELETE FROM emit_reuse WHERE out_dir = ?`);
    const ins = store.sqlite.prepare(`INSERT INTO emit_reuse (run_id, chunk, out_dir, render_key, n, reasons, prompts, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
    const tx = store.sqlite.transaction(() => {
      del.run(outDir);
      for (let from = 0, chunk = 0; from < this.size; from += CHUNK, chunk++) {
        const to = Math.min(this.size, from + CHUNK);
        ins.run(runId, chunk, outDir, key, to - from, JSON.stringify(this.reasons), this.prompts && JSON.stringify(this.prompts.slice(from, to)), this.encode(from, to));
      }
    });
    retryWhileBusy(() => tx.immediate(), 30_000);
  }

  /** Columns of outcomes from..to-1: offset f64, pk/total/assistant/length i32, reason u16, file/flags u8, digests. */
  private encode(from: number, to: number): Buffer {
    const n = to - from;
    const buf = Buffer.alloc(n * (8 + 16 + 2 + 2 + DIGEST_BYTES));
    const ab = buf.buffer;
    let at = buf.byteOffset;
    const view = <T>(C: new (b: ArrayBufferLike, o: number, l: number) => T, bytes: number): T => {
      const v = new C(ab, at, n);
      at += n * bytes;
      return v;
    };
    const offset = view(Float64Array, 8);
    const pk = view(Int32Array, 4);
    const total = view(Int32Array, 4);
    const assistant = view(Int32Array, 4);
    const length = view(Uint32Array, 4);
    const reason = view(Uint16Array, 2);
    const file = view(Uint8Array, 1);
    const flags = view(Uint8Array, 1);
    for (let k = 0; k < n; k++) {
      offset[k] = this.offset[from + k]!;
      pk[k] = this.pk[from + k]!;
      total[k] = this.total[from + k]!;
      assistant[k] = this.assistant[from + k]!;
      length[k] = this.length[from + k]!;
      reason[k] = this.reason[from + k]!;
      file[k] = this.file[from + k]!;
      flags[k] = this.flags[from + k]!;
    }
    this.digests.copy(buf, at - buf.byteOffset, from * DIGEST_BYTES, to * DIGEST_BYTES);
    return buf;
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

/** What a run can reuse: the outcomes of the run whose files are in the folder, with those files open. */
export class ReuseSource {
  private readonly readers: (RangeReader | null)[];

  private constructor(
    readonly runId: string,
    readonly pk: Int32Array,
    readonly file: Uint8Array,
    readonly offset: Float64Array,
    readonly length: Uint32Array,
    readonly total: Int32Array,
    readonly assistant: Int32Array,
    readonly flags: Uint8Array,
    private readonly reason: (string | null)[],
    private readonly digests: Buffer,
    private readonly prompts: (string | null)[] | null,
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
    const rows = store.sqlite.prepare(`SELECT n, reasons, prompts, data FROM emit_reuse WHERE run_id = ? AND out_dir = ? AND render_key = ? ORDER BY chunk`).all(runId, outDir, key) as {
      n: number;
      reasons: string;
      prompts: string | null;
      data: Buffer;
    }[];
    if (rows.length === 0) return { source: null, why: `run ${runId} recorded no outcomes under this config's render key` };
    if (withPrompts && rows.some((r) => r.prompts === null)) return { source: null, why: `run ${runId} recorded no prompts` };
    const files = (JSON.parse(run.manifest_json) as { files?: { train?: FileRecord; test?: FileRecord } }).files;
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
    return { source: ReuseSource.decode(runId, rows, { train: fds[0]!, test: fds[1]! }, withPrompts), why: '' };
  }

  private static decode(runId: string, rows: { n: number; reasons: string; prompts: string | null; data: Buffer }[], fds: { train: number; test: number }, withPrompts: boolean): ReuseSource {
    const n = rows.reduce((a, r) => a + r.n, 0);
    const offset = new Float64Array(n);
    const pk = new Int32Array(n);
    const total = new Int32Array(n);
    const assistant = new Int32Array(n);
    const length = new Uint32Array(n);
    const reason: (string | null)[] = new Array<string | null>(n);
    const file = new Uint8Array(n);
    const flags = new Uint8Array(n);
    const digests = Buffer.alloc(n * DIGEST_BYTES);
    const prompts: (string | null)[] | null = withPrompts ? [] : null;
    let k = 0;
    for (const r of rows) {
      const m = r.n;
      if (r.data.length !== m * (8 + 16 + 2 + 2 + DIGEST_BYTES)) throw new Error(`internal: an emit_reuse chunk of run ${runId} is ${r.data.length} bytes for ${m} outcomes`);
      // Copied into an aligned buffer: a blob from SQLite may start anywhere, Float64Array wants a multiple of 8.
      const data = new Uint8Array(r.data).buffer;
      let at = 0;
      const view = <T extends { length: number }>(C: new (b: ArrayBufferLike, o: number, l: number) => T, bytes: number): T => {
        const v = new C(data, at, m);
        at += m * bytes;
        return v;
      };
      offset.set(view(Float64Array, 8), k);
      pk.set(view(Int32Array, 4), k);
      total.set(view(Int32Array, 4), k);
      assistant.set(view(Int32Array, 4), k);
      length.set(view(Uint32Array, 4), k);
      const reasonAt = view(Uint16Array, 2);
      file.set(view(Uint8Array, 1), k);
      flags.set(view(Uint8Array, 1), k);
      digests.set(new Uint8Array(data, at, m * DIGEST_BYTES), k * DIGEST_BYTES);
      const names = JSON.parse(r.reasons) as string[];
      for (let j = 0; j < m; j++) reason[k + j] = reasonAt[j] === NO_REASON ? null : names[reasonAt[j]!]!;
      if (prompts) prompts.push(...(JSON.parse(r.prompts!) as (string | null)[]));
      k += m;
    }
    return new ReuseSource(runId, pk, file, offset, length, total, assistant, flags, reason, digests, prompts, fds);
  }

  get size(): number {
    return this.pk.length;
  }

  /** For each working-set index, the outcome recorded for its pk, or -1 (both lists ascend: one merge). */
  indexFor(pks: Int32Array): Int32Array {
    const at = new Int32Array(pks.length).fill(-1);
    let e = 0;
    for (let i = 0; i < pks.length && e < this.pk.length; i++) {
      while (e < this.pk.length && this.pk[e]! < pks[i]!) e++;
      if (e < this.pk.length && this.pk[e] === pks[i]) at[i] = e;
    }
    return at;
  }

  /** Outcome e's line, newline included, as the previous run wrote it. */
  bytes(e: number): Buffer {
    return this.readers[this.file[e]!]!.read(this.offset[e]!, this.length[e]!);
  }

  digest(e: number): string {
    return this.digests.toString('latin1', e * DIGEST_BYTES, (e + 1) * DIGEST_BYTES);
  }

  dropReason(e: number): string {
    return this.reason[e]!;
  }

  prompt(e: number): string | null {
    return this.prompts?.[e] ?? null;
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
