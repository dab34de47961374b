/**
 * Ingest: log files → the store, losing nothing (SPEC §2). Every line is inserted, recognised as already
 * present, skipped as blank, or quarantined whole with a reason naming the field.
 *
 * Crash safety: a file's progress (lines done and its counters) is committed in the same transaction as each
 * batch of its rows, keyed by the file's content digest. A run killed at any moment resumes after the last
 * committed batch, so the store ends exactly as one uninterrupted run would leave it.
 */
import { createReadStream, statSync, type BigIntStats } from 'node:fs';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { ownerAlive } from './owner.js';
import type { Options as CsvOptions } from 'csv-parse';
import { glob, isDynamicPattern, parseCsv, picomatch } from './vendor.js';
import { envSwitch } from './env.js';
import { dirname, resolve, isAbsolute, posix, relative, sep } from 'node:path';
import type Database from 'better-sqlite3';
import { INPUT_FORMATS, type InputFormat } from '../schemas/log-record.js';
import { openDecompressed, readLines, Utf8Check } from './lines.js';
import { contentDigest, contentOfStored, CSV_FIELD_NAMES, csvFieldNames, type StoredContent } from './records.js';
import { BatchWorker } from './batch-worker.js';
import { ChunkCollector } from './columns.js';
import { EVENT_COLUMNS, EVENT_KINDS, packBatch, PACKED_COLUMNS, PACKED_KINDS, prepareUnits, type PackedBatch, type Prepared, type PreparedBatch } from './prepare.js';
import { packedParams, RowReader } from './packed-rows.js';
import { sha256Hex } from './canonical.js';
import { collectGarbageNow, keepHeapNearLiveSet } from './memory.js';
import { BUSY_MS, commitPastReads, retryWhileBusy, type Store } from './store.js';
import { BULK_MIN_BYTES, beginBulkLoad, finishBulkLoad, settleBulkLoad, UniqueKeys } from './bulk-load.js';
import { JobError, UsageError } from './errors.js';
import { silentProgress, type Progress } from './progress.js';

export interface InputSpec {
  readonly path: string;
  readonly format?: InputFormat;
}

export interface IngestOptions {
  /** Forces one shape for every file (`--format`); an InputSpec's own format wins. */
  readonly format?: InputFormat;
  /** CSV column renames (`--map column=field`). */
  readonly csvMap?: Readonly<Record<string, string>>;
  /** Base directory for relative patterns (a config's folder); default: the current directory. */
  readonly cwd?: string;
  /**
   * A run's own output files (absolute paths): an input that is one of them is a config error. An output folder
   * inside the inputs' pattern (`inputs: [data/*.jsonl]`, `emit.dir: data`) would feed each night's train and
   * test files back in as new logs.
   */
  readonly ownOutputs?: readonly string[];
  readonly progress?: Progress;
  /** Lines per batch (prepared together, written together). */
  readonly batchSize?: number;
  /**
   * Commit at least every this many lines (default 64,000, or env LOGCURATE_INGEST_COMMIT_LINES), and at least
   * every 2 s: the most a crash can make a rerun redo, and the longest another writer waits for the store.
   */
  readonly commitLines?: number;
  /**
   * Test hook: called after each batch is written (it commits with its group, see IngestWriter.writeBatch); a
   * throw here is a crash mid-file, rolling back to the last commit.
   */
  readonly afterBatch?: (file: string, linesDone: number) => void;
  /**
   * How long a file must have been untouched (modification and change times) before its stat may stand for its
   * content (default 10 s; see FileStat). Tests shorten it: setting a file's times back is itself a change.
   */
  readonly stillMs?: number;
  /**
   * Load without the unique indexes and build them at the end (bulk-load.ts): only ever into a store with no
   * conversations and no feedback. Default: env LOGCURATE_INGEST_BULK (0 never, 1 always), else when the inputs
   * hold at least 4 MB. Tests set it to try both paths on the same input.
   */
  readonly bulk?: boolean;
}

export interface FileCounts {
  lines: number;
  inserted: number;
  already_present: number;
  blank: number;
  quarantined: number;
}

export interface FileSummary extends FileCounts {
  readonly path: string;
  readonly sha256: string;
  readonly format: string;
  /** True when the file's digest was already ingested whole: nothing was parsed. */
  readonly skipped: boolean;
  /** False when the file was recognised by its stat, unchanged since it was ingested whole: not even read. */
  readonly digested: boolean;
  /** True when an interrupted ingest of this file was resumed. */
  readonly resumed: boolean;
}

export interface IngestSummary {
  readonly files: FileSummary[];
  readonly totals: FileCounts;
  readonly warnings: string[];
}

const zeroCounts = (): FileCounts => ({ lines: 0, inserted: 0, already_present: 0, blank: 0, quarantined: 0 });

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Expands paths and globs (relative to cwd) into a sorted, de-duplicated list of files. */
export async function expandInputs(
  inputs: readonly (string | InputSpec)[],
  cwd: string = process.cwd(),
): Promise<{ files: { path: string; display: string; format?: InputFormat }[]; warnings: string[] }> {
  const files: { path: string; display: string; format?: InputFormat }[] = [];
  const seen = new Set<string>();
  const warnings: string[] = [];
  for (const input of inputs) {
    const spec: InputSpec = typeof input === 'string' ? { path: input } : input;
    if (spec.format !== undefined && !(INPUT_FORMATS as readonly string[]).includes(spec.format)) {
      throw new UsageError(`${spec.path}: unknown format ${JSON.stringify(spec.format)}; expected one of ${INPUT_FORMATS.join('|')}`);
    }
    let matches: string[];
    // A path that names a file as written is that file, even when it reads as a pattern too (`export{1,2}.jsonl`,
    // `logs[old].jsonl`): globbing it would match other files, or none.
    if (isDynamicPattern(spec.path) && !isFile(isAbsolute(spec.path) ? spec.path : resolve(cwd, spec.path))) {
      matches = (await glob(spec.path, { cwd, absolute: true, onlyFiles: true, dot: false })).sort();
      if (matches.length === 0) warnings.push(`${spec.path}: the pattern matched no files`);
    } else {
      const abs = isAbsolute(spec.path) ? spec.path : resolve(cwd, spec.path);
      try {
        if (!statSync(abs).isFile()) throw new JobError(`${spec.path}: not a file`);
      } catch (err) {
        if (err instanceof JobError) throw err;
        throw new JobError(`${spec.path}: cannot read the input file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      matches = [abs];
    }
    for (const m of matches) {
      if (seen.has(m)) continue;
      seen.add(m);
      files.push({ path: m, display: m, format: spec.format });
    }
  }
  return { files, warnings };
}

/**
 * The first input that names one of a run's own output files or whose pattern matches one, whether or not the
 * file exists yet: so a config that would read its outputs back fails on its first night, not on the second,
 * once the files are there for the glob to find. Patterns are matched as expandInputs globs them (relative to
 * `cwd`, dot files excluded).
 */
function inputNamingOutput(inputs: readonly (string | InputSpec)[], cwd: string, outputs: readonly string[]): { input: string; output: string } | undefined {
  if (outputs.length === 0) return undefined;
  const toPosix = (p: string): string => p.split(sep).join(posix.sep);
  for (const input of inputs) {
    const path = typeof input === 'string' ? input : input.path;
    let names: (output: string) => boolean;
    if (!isDynamicPattern(path)) {
      const abs = isAbsolute(path) ? path : resolve(cwd, path);
      names = (output) => output === abs;
    } else if (isAbsolute(path)) {
      const match = picomatch(toPosix(path), { dot: false });
      names = (output) => match(toPosix(output));
    } else {
      const match = picomatch(posix.normalize(toPosix(path)), { dot: false });
      names = (output) => match(toPosix(relative(cwd, output)));
    }
    const output = outputs.find(names);
    if (output !== undefined) return { input: path, output };
  }
  return undefined;
}

function ownOutputError(input: string, output: string): UsageError {
  const what = input === output ? output : `${JSON.stringify(input)} matches ${output}, which`;
  return new UsageError(
    `inputs: ${what} is one of this run's own output files (emit.dir ${dirname(output)}): it would be ingested as new logs; expected inputs outside the output folder (narrow the pattern, or move emit.dir)`,
  );
}

export async function ingest(store: Store, inputs: readonly (string | InputSpec)[], opts: IngestOptions = {}): Promise<IngestSummary> {
  for (const [column, field] of Object.entries(opts.csvMap ?? {})) {
    if (!CSV_FIELD_NAMES.includes(field.trim().toLowerCase())) throw new UsageError(`--map ${column}=${field}: expected a field among ${CSV_FIELD_NAMES.join(', ')}`);
  }
  const ownOutputs = opts.ownOutputs ?? [];
  const named = inputNamingOutput(inputs, opts.cwd ?? process.cwd(), ownOutputs);
  if (named) throw ownOutputError(named.input, named.output);
  const { files, warnings } = await expandInputs(inputs, opts.cwd);
  // The pattern check above matches as the glob does; this one holds whatever the glob found.
  const own = new Set(ownOutputs);
  for (const f of files) if (own.has(f.path)) throw ownOutputError(f.path, f.path);
  const summaries: FileSummary[] = [];
  const totals = zeroCounts();
  let bytes = 0;
  for (const f of files) bytes += statSync(f.path).size;
  const log = (message: string): void => (opts.progress ?? silentProgress).log(message);
  const groupLines = commitLines(opts);
  // Waits for another process's bulk load to end (or finishes one whose process died), then begins one if this
  // is the store's first, large ingest.
  settleBulkLoad(store.sqlite, log);
  const load = wantBulkLoad(opts, bytes) && files.length > 0 ? beginBulkLoad(store.sqlite) : false;
  const bulk = load !== false;
  const writer = new IngestWriter(store.sqlite, groupLines ?? (load && load.rollbackJournal ? ROLLBACK_GROUP_LINES : GROUP_LINES), bulk, log);
  const preparer = createPreparer(bytes);
  // Checkpoint every 5,000 pages (80 MB of 16 KB pages) instead of 1,000: each checkpoint fsyncs, and on slow
  // disks fsyncs dominate. Not much more either: a checkpoint stalls the writer thread, and the worker runs only
  // MAX_IN_FLIGHT batches ahead of it. Cold 200k ingest against 10,000 pages, alternating: 7.02 -> 6.63 s and
  // 6.50 -> 6.36 s over two sets of four rounds (3,500 pages: 6.48 s). Durability is unchanged
  // (synchronous=NORMAL in WAL mode); readers are unaffected.
  const autocheckpoint = store.sqlite.pragma('wal_autocheckpoint', { simple: true }) as number;
  store.sqlite.pragma('wal_autocheckpoint = 5000');
  // A bulk load only appends, so it needs little page cache; and it holds UniqueKeys (~32 MB at a million
  // conversations). With 16 MB instead of 64 MB its 1M peak RSS is 381-389 MB instead of 439-453 MB (which would
  // have made ingest the bench's peak); 200k ingest times within the noise. The index build gets the cache back.
  const cacheSize = store.sqlite.pragma('cache_size', { simple: true }) as number;
  if (bulk) store.sqlite.pragma('cache_size = -16384');
  try {
    for (const f of files) {
      const s = await ingestFile(writer, preparer, f.path, f.format ?? opts.format, opts, (w) => warnings.push(w));
      summaries.push(s);
      for (const k of Object.keys(totals) as (keyof FileCounts)[]) totals[k] += s[k];
    }
  } finally {
    try {
      // First, so that the worker's heap is gone before the index build adds its sort to this process's memory.
      await preparer.close();
    } finally {
      // Also after a failure (of the close too): what was committed is consistent, and the store must not stay
      // without its indexes. The stand-ins and the heap's garbage go before the build: with the worker still
      // open and neither let go, a 1M bench's ingest peaked at 452-454 MB instead of 375.
      if (bulk) {
        writer.endBulkLoad();
        collectGarbageNow();
        store.sqlite.pragma(`cache_size = ${cacheSize}`);
        finishBulkLoad(store.sqlite);
      }
      store.sqlite.pragma(`wal_autocheckpoint = ${autocheckpoint}`);
    }
  }
  return { files: summaries, totals, warnings };
}

async function fileDigest(path: string): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      h.update(chunk);
      bytes += chunk.length;
    }
  } catch (err) {
    throw new JobError(`${path}: cannot read: ${(err as Error).message}`);
  }
  return { sha256: h.digest('hex'), bytes };
}

/** A unit of input: a JSONL line or a CSV record, numbered by its line in the file. */
interface Unit {
  readonly lineNo: number;
  readonly raw: Buffer;
  /** CSV only: the record already split into named fields (null = blank record). */
  readonly csv?: Record<string, string> | null;
  readonly csvError?: string;
}

/** Batches prepared ahead of the one being written: enough to keep a worker busy, little memory. */
const MAX_IN_FLIGHT = 10;

/** A batch handed out to be prepared; `seq` names it to the preparer (worker batches only). */
interface Handed {
  readonly prepared: Promise<PreparedBatch | undefined>;
  readonly seq: number | null;
}

interface Preparer {
  /** Hands a batch out: to the worker thread if there is one, else prepared on this thread at once. */
  prepare(units: readonly Unit[], forced: InputFormat | undefined): Handed;
  /** Takes a batch back from the worker if it has not started it (true); it then prepares nothing for it. */
  steal(seq: number): boolean;
  /** Whether the worker has prepared the batch (its reply may still be on its way). */
  finished(seq: number): boolean;
  close(): Promise<void>;
}

const inlinePreparer: Preparer = {
  prepare: (units, forced) => ({ prepared: Promise.resolve(prepareUnits(units, forced)), seq: null }),
  steal: () => false,
  finished: () => true,
  close: async () => {},
};

/** Below this much input a worker's start-up costs more than it saves. */
const WORKER_MIN_BYTES = 4 << 20;

function createPreparer(totalBytes: number): Preparer {
  const worker = new BatchWorker<PackedBatch, PreparedBatch>('ingest-worker', 'LOGCURATE_INGEST_WORKER', null);
  if (totalBytes < WORKER_MIN_BYTES || !worker.available) return inlinePreparer;
  // Started now, its start-up (a thread, its modules) overlaps this thread's digest of the first file.
  worker.warm();
  return {
    prepare(units, forced) {
      const { batch, transfer } = packBatch(units, forced);
      const { seq, output } = worker.post(batch, transfer);
      return { prepared: output, seq };
    },
    steal: (seq) => worker.steal(seq),
    finished: (seq) => worker.finished(seq),
    close: () => worker.close(),
  };
}

async function ingestFile(
  writer: IngestWriter,
  preparer: Preparer,
  path: string,
  forced: InputFormat | undefined,
  opts: IngestOptions,
  warn: (warning: string) => void,
): Promise<FileSummary> {
  const isCsv = forced === 'csv' || (forced === undefined && /\.csv(\.gz)?$/i.test(path));
  const formatKey = isCsv ? 'csv' : (forced ?? 'auto');
  // What a file's ingest is recorded under: its format, and for a CSV read with --map the map too — another map
  // reads other fields, so the file is read again rather than skipped as already present.
  const map = isCsv ? csvMapKey(opts.csvMap ?? {}) : '';
  const recordKey = map === '' ? formatKey : `csv;map=${map}`;
  // Taken before the digest: a file recorded with this stat held exactly the bytes digested (see FileStat).
  const before = fileStat(path, opts.stillMs ?? STILL_MS);
  const unchanged = before.key !== null ? writer.completeByStat(path, before.key, recordKey) : undefined;
  if (unchanged) return alreadyIngested(path, unchanged.sha256, formatKey, unchanged, false);
  const { sha256, bytes } = await fileDigest(path);
  const prior = writer.claimFile(sha256, recordKey);
  if (isCsv && prior === undefined) {
    const other = writer.csvReadOtherwise(sha256, recordKey);
    if (other !== null) {
      const mapOf = (key: string): string => (key === 'csv' ? 'no --map' : `--map ${key.slice('csv;map='.length)}`);
      warn(
        `${path}: read before with ${mapOf(other)}, now with ${mapOf(recordKey)}: read again; what the other mapping stored stays in the store (ingest into a new store to have only this one)`,
      );
    }
  }
  if (prior && prior.status === 'complete') {
    // Already ingested whole: recognised by digest, not re-parsed. Its lines are all already accounted for.
    // Recorded under this path's stat, the next listing of it need not read it (a store from before v12, or a
    // file ingested while it was still being written).
    const stat = prior.path === path ? keptStat(path, before) : null;
    if (stat !== null) writer.recordStat(prior.id, stat);
    return alreadyIngested(path, sha256, formatKey, prior, true);
  }
  const fileId = prior ? prior.id : writer.startFile(path, sha256, bytes, recordKey);
  writer.reading(path);
  const counts: FileCounts = prior
    ? { lines: prior.lines, inserted: prior.inserted, already_present: prior.already_present, blank: prior.blank, quarantined: prior.quarantined }
    : zeroCounts();
  const skipUnits = counts.lines;
  // 500 lines: small enough that a batch's prepared rows are posted (and die) before they are promoted to the old
  // generation on either thread, now that commits are grouped separately (writeBatch). Against 4,000 at 200k,
  // back to back: 8.55-8.83 s vs 8.75-9.34 s, peak RSS ~450 vs ~595 MB. Against 1,000 (with as many lines in
  // flight): the worker's scavenges 686 -> 313 ms and what they promote 222 -> 11 MB; ingest 7.41 -> 7.14 s over
  // nine alternating rounds, peak RSS 406-433 -> 363-392 MB. 250 lines costs more in batches than it saves.
  const batchSize = opts.batchSize ?? 500;
  // Progress counts decompressed bytes; a .gz file's size is compressed, so it gets a running count instead.
  const task = (opts.progress ?? silentProgress).task(`ingest ${path}`, { total: /\.gz$/i.test(path) ? undefined : bytes, unit: 'bytes' });
  const forcedShape = isCsv ? undefined : forced;

  let batch: Unit[] = [];
  let batchBytes = 0;
  let seenUnits = 0;
  // Batches are prepared ahead (on the worker, when there is one) but applied strictly in input order, committed
  // in groups. `own`: prepared on this thread (a batch taken back from the worker).
  type InFlight = { readonly units: Unit[]; readonly handed: Handed; own: PreparedBatch | null };
  const inFlight: InFlight[] = [];
  /**
   * Work stealing: rather than wait for the worker to finish the oldest batch, this thread takes back the newest
   * batch the worker has not started and prepares it itself, until the oldest is done. So neither thread waits
   * while the other has work it could do: where SQL is the bottleneck (feedback lines, commits) the worker
   * prepares everything, and where parsing is (long conversations) this thread takes its share. It replaced work
   * sharing by the worker's backlog (this thread prepared a batch whenever the worker seemed six behind), which
   * saw the backlog through promises resolved only when this thread yielded, so it prepared batches the worker
   * had long finished: 71k of 270k lines on the 200k bench, with the worker idle 1.3 s. Cold 200k ingest over
   * five alternating rounds, each faster: 7.61 -> 6.96 s, user CPU 11.28 -> 10.76 s; identical stores.
   */
  const applyOldest = async (): Promise<void> => {
    const next = inFlight[0]!;
    while (next.own === null && next.handed.seq !== null && !preparer.finished(next.handed.seq)) {
      let victim: InFlight | undefined;
      for (let k = inFlight.length - 1; k >= 0 && victim === undefined; k--) {
        const e = inFlight[k]!;
        if (e.own === null && e.handed.seq !== null && preparer.steal(e.handed.seq)) victim = e;
      }
      if (victim === undefined) break;
      victim.own = prepareUnits(victim.units, forcedShape);
    }
    const prepared = next.own ?? (await next.handed.prepared);
    inFlight.shift();
    if (prepared === undefined) throw new Error('internal: a batch was neither prepared by the worker nor taken back');
    writer.writeBatch(fileId, path, next.units, prepared, counts);
    keepHeapNearLiveSet();
    opts.afterBatch?.(path, counts.lines);
  };
  const submit = async (): Promise<void> => {
    if (batch.length === 0) return;
    inFlight.push({ units: batch, handed: preparer.prepare(batch, forcedShape), own: null });
    batch = [];
    batchBytes = 0;
    while (inFlight.length > MAX_IN_FLIGHT) await applyOldest();
  };
  const units = isCsv ? readCsvUnits(path, opts.csvMap ?? {}) : readJsonlUnits(path);
  try {
    // A file that breaks off (a truncated .gz, a disk error) keeps the whole lines read before the break: they
    // are committed, then the file fails. Its progress says where: a rerun of the same bytes resumes there and
    // fails at the same place, adding nothing twice. (Before, the lines in flight were rolled back with the
    // rest: a .gz cut in half lost its first ~10,000 readable lines.) Errors of our own (a CSV header) are not
    // breaks.
    let broke: Error | null = null;
    try {
      for await (const u of units) {
        seenUnits++;
        task.tick(1, u.raw.length + 1);
        if (seenUnits <= skipUnits) continue;
        batch.push(u);
        batchBytes += u.raw.length;
        if (batch.length >= batchSize || batchBytes >= 8 << 20) await submit();
      }
    } catch (err) {
      if (err instanceof JobError || err instanceof UsageError || !(err instanceof Error)) throw err;
      broke = err;
    }
    await submit();
    while (inFlight.length > 0) await applyOldest();
    if (broke !== null) {
      writer.commitGroup(counts);
      const code = (broke as NodeJS.ErrnoException).code;
      if (counts.lines === 0 && code === 'Z_DATA_ERROR' && /header check/.test(broke.message)) {
        throw new JobError(`${path}: not gzip data (${broke.message}); expected a gzip-compressed file, as the .gz name says`);
      }
      if (counts.lines === 0 && code === 'Z_BUF_ERROR') {
        throw new JobError(`${path}: the gzip data ends before its first line (${broke.message}); expected a complete gzip file`);
      }
      throw new JobError(
        `${path}: cannot read past line ${counts.lines}: ${broke.message}; the ${counts.lines} line(s) before it are in the store (a rerun resumes after them)`,
      );
    }
  } catch (err) {
    // What was not committed is rolled back, and the counters return to what the store holds.
    writer.rollback(counts);
    // Let batches already handed out settle, so nothing runs on after the failure is reported.
    await Promise.allSettled(inFlight.map((b) => b.handed.prepared));
    task.stop();
    if (err instanceof JobError || err instanceof UsageError) throw err;
    throw new JobError(`${path}: ingest failed after line ${counts.lines}: ${(err as Error).message}`);
  }
  writer.finishFile(fileId, counts, keptStat(path, before));
  task.done(`${counts.lines} lines: ${counts.inserted} inserted, ${counts.already_present} already present, ${counts.blank} blank, ${counts.quarantined} quarantined`);
  return { path, sha256, format: formatKey, skipped: false, digested: true, resumed: prior !== undefined, ...counts };
}

/** A --map as a key: column=field pairs, fields lower-cased, sorted by column (empty for no map). */
function csvMapKey(map: Readonly<Record<string, string>>): string {
  return Object.entries(map)
    .map(([column, field]) => `${column}=${field.trim().toLowerCase()}`)
    .sort()
    .join(',');
}

function alreadyIngested(path: string, sha256: string, format: string, prior: FileCounts, digested: boolean): FileSummary {
  return {
    path,
    sha256,
    format,
    skipped: true,
    digested,
    resumed: false,
    lines: prior.lines,
    inserted: 0,
    already_present: prior.lines - prior.blank - prior.quarantined,
    blank: prior.blank,
    quarantined: prior.quarantined,
  };
}

/** How long a file must have been untouched before its stat may stand for its content. */
const STILL_MS = 10_000;

/**
 * A file's identity and state as the file system reports it: device, inode, size, modification and change times
 * (ns). Any write changes the size or the times, and the change time cannot be set back, so a file whose stat
 * equals the one recorded when it was ingested whole still holds the same bytes — the test git and rsync rely
 * on. Timestamps are as coarse as the kernel's clock tick (and 2 s on FAT), so a rewrite within the same tick as
 * the write before could keep them: only a file untouched for a while (STILL_MS) before its digest was taken is
 * recorded (`still`). key is null when the file cannot be stat'ed (the digest then reports the error).
 */
interface FileStat {
  readonly key: string | null;
  readonly still: boolean;
}

/**
 * The stat to record for a file whose stat was `before` when its digest was taken: that stat, if the file had been
 * still before then and has not changed since; else null (a file still being written is digested again next time).
 */
function keptStat(path: string, before: FileStat): string | null {
  return before.key !== null && before.still && fileStat(path, 0).key === before.key ? before.key : null;
}

function fileStat(path: string, stillMs: number): FileStat {
  const now = Date.now();
  let st: BigIntStats;
  try {
    st = statSync(path, { bigint: true });
  } catch {
    return { key: null, still: false };
  }
  const changed = Number((st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs) / 1_000_000n);
  return { key: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`, still: changed <= now - stillMs };
}

async function* readJsonlUnits(path: string): AsyncGenerator<Unit> {
  for await (const l of readLines(path)) yield { lineNo: l.lineNo, raw: l.bytes };
}

/**
 * Each CSV column's key in a row's fields: its field, or `column:<header>` for a column kept as metadata. Two
 * columns giving one field are ambiguous (which is the question?): an error naming both. Two metadata columns
 * with one header text both keep their cells, the later as `<header> (column N)`.
 */
function csvKeys(path: string, header: readonly string[], names: readonly (string | null)[]): string[] {
  const used = new Map<string, number>();
  return names.map((n, i) => {
    let key = n ?? `column:${header[i]!.trim()}`;
    const before = used.get(key);
    if (before !== undefined) {
      if (n !== null) {
        throw new UsageError(
          `${path}:1: CSV header: columns ${before + 1} (${JSON.stringify(header[before])}) and ${i + 1} (${JSON.stringify(header[i])}) both give the field ${n === 'user' ? 'question' : n === 'assistant' ? 'answer' : n}; expected one (rename the other with --map column=field, or remove it)`,
        );
      }
      key = `${key} (column ${i + 1})`;
    }
    used.set(key, i);
    return key;
  });
}

async function* readCsvUnits(path: string, map: Readonly<Record<string, string>>): AsyncGenerator<Unit> {
  let names: (string | null)[] | null = null;
  let header: string[] | null = null;
  let keys: string[] | null = null;
  const skipped: Unit[] = [];
  // Bytes that are not UTF-8 reach the parser unchanged (it decodes them as U+FFFD): Utf8Check notes where they
  // are, and a record holding any is quarantined instead of stored repaired (SPEC §2), as a JSONL line is.
  const source = openDecompressed(path);
  const utf8 = new Utf8Check();
  source.on('error', (err) => utf8.destroy(err));
  // Where the parser stands, kept on its side (it runs ahead of this loop): each record's first line and byte,
  // and for a record it skips as malformed, the line it starts on (csv-parse names the line it gave up at, for
  // an unclosed quote the file's last).
  let parsedLines = 0;
  let parsedBytes = 0;
  type Parsed = { record: string[]; raw: string; info: { lines: number; bytes: number }; startLine: number; badByte: number };
  const parser = source.pipe(utf8).pipe(
    parseCsv({
      bom: true,
      relax_column_count: true,
      skip_empty_lines: false,
      raw: true,
      info: true,
      skip_records_with_error: true,
      on_record: (rec: Parsed, ctx: { lines: number; bytes: number }) => {
        rec.startLine = parsedLines + 1;
        rec.badByte = utf8.badIn(parsedBytes, ctx.bytes);
        parsedLines = ctx.lines;
        parsedBytes = ctx.bytes;
        return rec;
      },
      on_skip: (err: Error & { code?: string; lines?: number; raw?: string }) => {
        // A malformed record is quarantined whole, not dropped. csv-parse's message for an unclosed quote names
        // the line where the file ended, counted its own way (8 for a 6-line CRLF file).
        const message =
          err.code === 'CSV_QUOTE_NOT_CLOSED' ? 'a quote opened in this record is never closed: the rest of the file was read into it' : err.message;
        skipped.push({ lineNo: parsedLines + 1, raw: Buffer.from(err.raw ?? ''), csvError: `CSV: ${message}` });
        // parsedBytes stays: the next record's range then takes in this one's bytes too, so a bad byte in a record
        // already quarantined as malformed also quarantines the record after it (never the other way round).
        if (err.lines !== undefined) parsedLines = err.lines;
      },
    } as unknown as CsvOptions),
  );
  utf8.on('error', (err) => parser.destroy(err));
  // A header that does not parse (a JSONL file read as CSV, say) leaves no column names to read rows by.
  const headerUnreadable = (): UsageError =>
    new UsageError(`${path}:1: cannot read the CSV header: ${skipped[0]!.csvError!.replace(/^CSV: /, '')}; expected a header line of column names`);
  for await (const rec of parser as AsyncIterable<Parsed>) {
    if (names === null && skipped.length > 0) throw headerUnreadable();
    while (skipped.length) yield skipped.shift()!;
    const startLine = rec.startLine;
    if (names === null) {
      if (rec.badByte !== -1) {
        throw new UsageError(`${path}:1: the CSV header is not UTF-8 text (the byte at offset ${rec.badByte}); expected a UTF-8 file (save it as UTF-8)`);
      }
      names = csvFieldNames(rec.record, map);
      header = rec.record;
      if (!names.includes('user') || !names.includes('assistant')) {
        throw new UsageError(
          `${path}:1: CSV header must have a question|prompt|user column and an answer|completion|assistant column (or --map), got ${rec.record.join(',')}`,
        );
      }
      keys = csvKeys(path, header, names);
      continue;
    }
    const raw = Buffer.from(rec.raw.replace(/\r?\n$/, ''), 'utf8');
    if (rec.badByte !== -1) {
      // The quarantined copy is the decoded text (each bad sequence as U+FFFD); the reason says where the
      // original bytes are.
      yield { lineNo: startLine, raw, csvError: `invalid UTF-8: the record is not valid UTF-8 text (the byte at offset ${rec.badByte} of the file is not; the copy here has U+FFFD there)` };
      continue;
    }
    if (rec.record.every((c) => c.trim() === '')) {
      yield { lineNo: startLine, raw, csv: null };
      continue;
    }
    if (rec.record.length > header!.length) {
      // Cells past the header's columns have no name: the row is quarantined whole, not cut to the header.
      yield { lineNo: startLine, raw, csvError: `CSV: ${rec.record.length} cells, but the header has ${header!.length} columns` };
      continue;
    }
    const fields: Record<string, string> = Object.create(null) as Record<string, string>;
    keys!.forEach((key, i) => {
      if (rec.record[i] !== undefined) fields[key] = rec.record[i]!;
    });
    yield { lineNo: startLine, raw, csv: fields };
  }
  if (names === null && skipped.length > 0) throw headerUnreadable();
  while (skipped.length) yield skipped.shift()!;
}

interface PriorFile extends FileCounts {
  readonly id: number;
  readonly path: string;
  readonly sha256: string;
  readonly status: 'running' | 'complete';
}

/** A group of batches commits once it has this many lines or is this old (IngestWriter.writeBatch). */
const GROUP_LINES = 64_000;
const GROUP_MS = 2000;
/**
 * Lines per group in a bulk load with a rollback journal (store.ts useRollbackJournal). Such a load rewrites no
 * index pages, so small groups cost little, and a group that fits the load's page cache (16 MB) is written to the
 * file only when it commits: the exclusive lock that keeps readers out is held for the commit alone, not from the
 * first spill of the cache to the commit. Cold 200k ingests took about as long as with 64,000 lines (README, the
 * eighteenth round), and reads during them waited less.
 */
const ROLLBACK_GROUP_LINES = 8_000;

/** Whether to try a bulk load (bulk-load.ts; it only begins in an empty store). */
function wantBulkLoad(opts: IngestOptions, bytes: number): boolean {
  if (opts.bulk !== undefined) return opts.bulk;
  return envSwitch('LOGCURATE_INGEST_BULK') ?? bytes >= BULK_MIN_BYTES;
}

/** Lines per group as set (the option, else LOGCURATE_INGEST_COMMIT_LINES), checked; undefined: the default. */
function commitLines(opts: IngestOptions): number | undefined {
  const v = opts.commitLines ?? (process.env.LOGCURATE_INGEST_COMMIT_LINES ? Number(process.env.LOGCURATE_INGEST_COMMIT_LINES) : undefined);
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new UsageError(`LOGCURATE_INGEST_COMMIT_LINES: expected a whole number ≥ 1, got ${JSON.stringify(process.env.LOGCURATE_INGEST_COMMIT_LINES ?? v)}`);
  return v;
}

/** Where each column is in a packed row (PACKED_COLUMNS order). */
const AT = Object.fromEntries(PACKED_COLUMNS.map((c, i) => [c, i])) as Record<(typeof PACKED_COLUMNS)[number], number>;

/** What `run` returns when nothing was inserted. */
const NOTHING_CHANGED: Database.RunResult = { changes: 0, lastInsertRowid: 0 };

interface RowStatements {
  readonly insertConv: Database.Statement;
  readonly existingConv: Database.Statement;
  readonly existingConvByPk: Database.Statement;
  readonly insertFeedback: Database.Statement;
}

/**
 * The statements on conversations and feedback. Row by row, a key already stored is left to ON CONFLICT; in a
 * bulk load there is no unique index for it to consult, and the writer asks UniqueKeys first.
 */
function prepareRowStatements(db: Database.Database, bulk: boolean): RowStatements {
  const onConflict = (key: string): string => (bulk ? '' : ` ON CONFLICT (${key}) DO NOTHING`);
  const existing = `SELECT pk, content_sha256, source_file, source_line, messages, tools, created_at_ms, model, user_id, session_id, tags, metadata, status
     FROM conversations`;
  return {
    insertConv: db.prepare(
      `INSERT INTO conversations (id, ${PACKED_COLUMNS.join(', ')}, source_file, source_line)
       VALUES (?, ${packedParams(PACKED_KINDS).join(', ')}, ?, ?)${onConflict('id')}`,
    ),
    existingConv: db.prepare(`${existing} WHERE id = ?`),
    existingConvByPk: db.prepare(`${existing} WHERE pk = ?`),
    insertFeedback: db.prepare(
      `INSERT INTO feedback (${EVENT_COLUMNS.join(', ')}, source_file, source_line)
       VALUES (${packedParams(EVENT_KINDS).join(', ')}, ?, ?)${onConflict('event_key')}`,
    ),
  };
}

/** Prepared statements for the ingest hot path; one instance per store connection. */
class IngestWriter {
  private readonly findFileStmt: Database.Statement;
  private readonly byStatStmt: Database.Statement;
  private readonly recordStatStmt: Database.Statement;
  private readonly claimStmt: Database.Statement;
  private readonly startFileStmt: Database.Statement;
  private readonly progressStmt: Database.Statement;
  private readonly finishStmt: Database.Statement;
  /** The statements on conversations and feedback, prepared at the first group (see begin). */
  private rows: RowStatements | null = null;
  private readonly updateDigest: Database.Statement;
  private readonly insertQuarantine: Database.Statement;
  private readonly quarantinedIn: Database.Statement;
  private readonly clearQuarantined: Database.Statement;
  /** The file being read, when the quarantine holds lines of it from before (see `reading`). */
  private supersedes: string | null = null;
  private readonly bulkLoadUnderway: Database.Statement;
  private readonly tx: Database.Transaction<(fileId: number, file: string, units: readonly Unit[], prepared: PreparedBatch, counts: FileCounts) => void>;
  /** insertConv's parameters, filled row by row: id, the packed columns, source file and line. */
  private readonly convArgs = new Array<unknown>(PACKED_COLUMNS.length + 3);
  /** insertFeedback's parameters, filled event by event: the packed columns, source file and line. */
  private readonly eventArgs = new Array<unknown>(EVENT_COLUMNS.length + 2);
  /** The counters as last committed, while a group's transaction is open; null when none is. */
  private committed: FileCounts | null = null;
  private linesInGroup = 0;
  private groupStarted = 0;
  private readonly chunks: ChunkCollector | null;
  /** During a bulk load (bulk-load.ts), what stands in for the unique indexes on ids and event keys. */
  private ids: UniqueKeys | null;
  private eventKeys: UniqueKeys | null;

  constructor(
    private readonly db: Database.Database,
    private readonly groupLines: number = GROUP_LINES,
    bulk: boolean,
    private readonly log: (message: string) => void,
  ) {
    this.chunks = ChunkCollector.open(db);
    this.ids = bulk ? new UniqueKeys(db, 'conversations', 'id') : null;
    this.eventKeys = bulk ? new UniqueKeys(db, 'feedback', 'event_key') : null;
    this.findFileStmt = db.prepare(
      `SELECT id, path, sha256, status, lines, inserted, already_present, blank, quarantined, pid, host FROM ingest_files
       WHERE sha256 = ? AND format = ? ORDER BY status = 'complete' DESC, id`,
    );
    this.byStatStmt = db.prepare(
      `SELECT id, path, sha256, status, lines, inserted, already_present, blank, quarantined FROM ingest_files
       WHERE path = ? AND stat = ? AND format = ? AND status = 'complete' ORDER BY id LIMIT 1`,
    );
    this.recordStatStmt = db.prepare(`UPDATE ingest_files SET stat = ? WHERE id = ?`);
    this.claimStmt = db.prepare(`UPDATE ingest_files SET pid = ?, host = ? WHERE id = ?`);
    this.startFileStmt = db.prepare(
      `INSERT INTO ingest_files (path, sha256, bytes, format, status, started_at, pid, host) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)`,
    );
    this.progressStmt = db.prepare(
      `UPDATE ingest_files SET lines = ?, inserted = ?, already_present = ?, blank = ?, quarantined = ? WHERE id = ?`,
    );
    this.finishStmt = db.prepare(
      `UPDATE ingest_files SET status = 'complete', finished_at = ?, lines = ?, inserted = ?, already_present = ?, blank = ?, quarantined = ?, stat = ? WHERE id = ?`,
    );
    this.updateDigest = db.prepare(`UPDATE conversations SET content_sha256 = ? WHERE pk = ?`);
    this.bulkLoadUnderway = db.prepare(`SELECT 1 FROM bulk_load LIMIT 1`).pluck();
    this.quarantinedIn = db.prepare(`SELECT 1 FROM quarantine WHERE file = ? LIMIT 1`).pluck();
    // The same line's bytes, or what its first bytes were when it was quarantined (a line still being written).
    this.clearQuarantined = db.prepare(`DELETE FROM quarantine WHERE file = ? AND line = ? AND raw = substr(CAST(? AS BLOB), 1, length(raw))`);
    this.insertQuarantine = db.prepare(
      `INSERT INTO quarantine (file, line, reason, detail, raw, raw_sha256) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (file, line, raw_sha256) DO NOTHING`,
    );
    this.tx = db.transaction((fileId, file, units, prepared, counts) => {
      const rows = new RowReader(prepared.rows);
      const events = new RowReader(prepared.events);
      for (let i = 0; i < units.length; i++) this.apply(file, units[i]!, prepared.units[i]!, rows, events, counts);
      this.progressStmt.run(counts.lines, counts.inserted, counts.already_present, counts.blank, counts.quarantined, fileId);
    });
  }

  /**
   * The file's completed row (skip it), or an interrupted row whose process is gone, now claimed by this one
   * (resume it), or undefined (start afresh). A row another live process is filling is never taken over: two
   * ingests of one file at once each keep their own progress, and the store's constraints keep rows unique.
   */
  claimFile(sha256: string, format: string): PriorFile | undefined {
    const claim = this.db.transaction((): PriorFile | undefined => {
      const rows = this.findFileStmt.all(sha256, format) as (PriorFile & { pid: number | null; host: string | null })[];
      const complete = rows.find((r) => r.status === 'complete');
      if (complete) return complete;
      const orphan = rows.find((r) => !ownerAlive(r.pid, r.host));
      if (!orphan) return undefined;
      this.claimStmt.run(process.pid, hostname(), orphan.id);
      return orphan;
    });
    return claim.immediate();
  }

  /** The key a complete ingest of these CSV bytes was recorded under with another --map (or none), if any. */
  csvReadOtherwise(sha256: string, key: string): string | null {
    const other = this.db
      .prepare(`SELECT format FROM ingest_files WHERE sha256 = ? AND status = 'complete' AND (format = 'csv' OR format LIKE 'csv;map=%') AND format <> ? ORDER BY id DESC LIMIT 1`)
      .pluck()
      .get(sha256, key) as string | undefined;
    return other ?? null;
  }

  /** Lets go of the bulk load's stand-ins for the unique indexes: nothing is written after this. */
  endBulkLoad(): void {
    this.ids = null;
    this.eventKeys = null;
    this.rows = null;
  }

  /** The complete row of this path recorded with this stat and format (the file is unchanged since), if any. */
  completeByStat(path: string, stat: string, format: string): PriorFile | undefined {
    return this.byStatStmt.get(path, stat, format) as PriorFile | undefined;
  }

  recordStat(fileId: number, stat: string): void {
    retryWhileBusy(() => this.recordStatStmt.run(stat, fileId), BUSY_MS);
  }

  startFile(path: string, sha256: string, bytes: number, format: string): number {
    return Number(this.startFileStmt.run(path, sha256, bytes, format, new Date().toISOString(), process.pid, hostname()).lastInsertRowid);
  }

  /** Marks the file complete (with its stat, when it may stand for the content), in the same transaction as its last batches. */
  finishFile(fileId: number, c: FileCounts, stat: string | null): void {
    this.begin(c);
    this.finishStmt.run(new Date().toISOString(), c.lines, c.inserted, c.already_present, c.blank, c.quarantined, stat, fileId);
    this.commit(c);
  }

  /**
   * Writes a batch and its progress counters. Batches are committed in groups — after GROUP_MS or groupLines
   * lines, and at the end of the file — not one by one: every commit rewrites each index page the group
   * touched, and conversation ids and event keys are random, so a few thousand lines touch most leaf pages of
   * their unique indexes. On the 200k bench, one commit per 4,000-line batch wrote 1.3 GB for a 268 MB store.
   * A crash loses at most the uncommitted group; the counters commit with their rows, so a rerun resumes
   * exactly after the last commit.
   */
  writeBatch(fileId: number, file: string, units: readonly Unit[], prepared: PreparedBatch, counts: FileCounts): void {
    this.begin(counts);
    try {
      this.tx(fileId, file, units, prepared, counts);
    } catch (err) {
      this.rollback(counts);
      throw err;
    }
    this.linesInGroup += units.length;
    if (this.linesInGroup >= this.groupLines || performance.now() - this.groupStarted >= GROUP_MS) this.commit(counts);
  }

  /** Commits the group under way now (with its progress counters), whatever its size. */
  commitGroup(counts: FileCounts): void {
    this.commit(counts);
  }

  /** Rolls back what is not committed and restores the counters to what the store holds. */
  rollback(counts: FileCounts): void {
    if (!this.committed) return;
    if (this.db.inTransaction) this.db.exec('ROLLBACK');
    this.chunks?.reset();
    Object.assign(counts, this.committed);
    this.committed = null;
  }

  private begin(counts: FileCounts): void {
    if (this.committed) return;
    // IMMEDIATE: take the write lock first (the busy timeout applies), so a commit can never fail on a stale read.
    this.db.exec('BEGIN IMMEDIATE');
    // Another process may have begun a bulk load since this one's last group (only while the store was empty).
    // Under the write lock this check cannot go stale: wait for that load to end, then start the group afresh.
    while (this.ids === null && this.bulkLoadUnderway.get() !== undefined) {
      this.db.exec('ROLLBACK');
      settleBulkLoad(this.db, this.log);
      this.db.exec('BEGIN IMMEDIATE');
    }
    this.rows ??= prepareRowStatements(this.db, this.ids !== null);
    this.committed = { ...counts };
    this.linesInGroup = 0;
    this.groupStarted = performance.now();
  }

  private commit(counts: FileCounts): void {
    if (!this.committed) return;
    try {
      commitPastReads(this.db, this.log);
    } catch (err) {
      this.rollback(counts);
      throw err;
    }
    this.committed = null;
  }

  /**
   * Called as a file starts to be read: whether the quarantine holds lines of this path from an earlier ingest.
   * Such a line stored now — the last line of a log that was still being written (quarantined cut off as invalid
   * JSON, read whole after the file grew), or a file read again with the right --format — leaves the quarantine:
   * it is accounted for as stored, and `stats` no longer counts it as bad.
   */
  reading(file: string): void {
    this.supersedes = this.quarantinedIn.get(file) === 1 ? file : null;
  }

  private apply(file: string, u: Unit, p: Prepared, rows: RowReader, events: RowReader, counts: FileCounts): void {
    counts.lines++;
    switch (p.k) {
      case 'blank':
        counts.blank++;
        return;
      case 'quarantine':
        return this.quarantine(file, u, p.reason, null, counts);
      case 'feedback': {
        if (this.addFeedback(events, p.events, p.nEvents, file, u.lineNo) > 0) counts.inserted++;
        else counts.already_present++;
        break;
      }
      case 'conversation': {
        const quarantined = counts.quarantined;
        this.addConversation(p, rows, events, file, u, counts);
        if (counts.quarantined !== quarantined) return;
        break;
      }
    }
    if (this.supersedes === file) this.clearQuarantined.run(file, u.lineNo, u.raw);
  }

  private addConversation(p: Extract<Prepared, { k: 'conversation' }>, rows: RowReader, events: RowReader, file: string, u: Unit, counts: FileCounts): void {
    const args = this.convArgs;
    args[0] = p.id;
    rows.bind(p.row, args, 1);
    args[PACKED_COLUMNS.length + 1] = file;
    args[PACKED_COLUMNS.length + 2] = u.lineNo;
    const st = this.rows!;
    // During a bulk load the id is looked up first: there is no unique index for ON CONFLICT to consult.
    const known = this.ids === null ? -1 : this.ids.find(p.id);
    // Spread, not the array itself: better-sqlite3 reads an array argument element by element through V8's API,
    // ~0.2 µs a row more (a microbench of the feedback insert: 4-13% slower in 5 of 6 alternating rounds). Cold
    // 200k ingest: 7.12 -> 7.03 s mean, 5 of 6 alternating rounds faster; identical stores.
    const res = known === -1 ? st.insertConv.run(...args) : NOTHING_CHANGED;
    if (res.changes === 0) {
      const existing = (known === -1 ? st.existingConv.get(p.id) : st.existingConvByPk.get(known)) as StoredContent & {
        pk: number;
        content_sha256: string;
        source_file: string;
        source_line: number;
      };
      if (existing.content_sha256 !== rows.value(p.row, AT.content_sha256) && !this.sameContent(existing, p, rows)) {
        return this.quarantine(
          file,
          u,
          'id_conflict',
          `id ${JSON.stringify(p.id)} is already stored with different content (from ${existing.source_file}:${existing.source_line})`,
          counts,
        );
      }
      if (this.addFeedback(events, p.events, p.nEvents, file, u.lineNo) > 0) counts.inserted++;
      else counts.already_present++;
      return;
    }
    const pk = Number(res.lastInsertRowid);
    this.ids?.add(p.id, pk);
    this.chunks?.add({
      pk,
      id: p.id,
      status: p.status,
      nAssistant: rows.value(p.row, AT.n_assistant) as number,
      lastRole: p.lastRole,
      createdAtMs: rows.value(p.row, AT.created_at_ms) as number | null,
      sourceFile: file,
      sourceLine: u.lineNo,
      signalRow: p.signalRow,
    });
    this.addFeedback(events, p.events, p.nEvents, file, u.lineNo);
    counts.inserted++;
  }

  /**
   * Whether a stored row and a new one whose digests differ (records.ts storedDigest) hold the same content: in
   * canonical form. They do when the content was logged in another key order, or when the stored digest is the
   * canonical one an older version kept; the stored digest then becomes the new kind, so that the next ingest of
   * the same line (a file that grows, read again each night) settles it by the digests alone. content_sha256 is
   * the only column ingest ever rewrites; nothing derived from the rows depends on it.
   */
  private sameContent(existing: StoredContent & { pk: number }, p: Extract<Prepared, { k: 'conversation' }>, rows: RowReader): boolean {
    const row = Object.fromEntries(PACKED_COLUMNS.map((c, i) => [c, rows.value(p.row, i)])) as unknown as StoredContent & { content_sha256: string };
    if (contentDigest(contentOfStored(existing)) !== contentDigest(contentOfStored(row))) return false;
    this.updateDigest.run(row.content_sha256, existing.pk);
    return true;
  }

  private addFeedback(events: RowReader, first: number, n: number, file: string, line: number): number {
    const args = this.eventArgs;
    args[EVENT_COLUMNS.length] = file;
    args[EVENT_COLUMNS.length + 1] = line;
    const { insertFeedback } = this.rows!;
    const keys = this.eventKeys;
    let added = 0;
    for (let r = first; r < first + n; r++) {
      events.bind(r, args, 0);
      if (keys === null) {
        added += insertFeedback.run(...args).changes;
      } else if (keys.find(args[0] as Uint8Array) === -1) {
        // The event key as bound: its bytes (RowReader), compared as text.
        keys.add(args[0] as Uint8Array, Number(insertFeedback.run(...args).lastInsertRowid));
        added++;
      }
    }
    return added;
  }

  private quarantine(file: string, u: Unit, reason: string, detail: string | null, counts: FileCounts): void {
    this.insertQuarantine.run(file, u.lineNo, reason, detail, u.raw, sha256Hex(u.raw));
    counts.quarantined++;
  }
}
