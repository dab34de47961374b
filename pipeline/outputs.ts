/**
 * The output directory (SPEC §4). Files are written into a staging folder beside the outputs and renamed into
 * place only after the whole run succeeded — manifest.json last — so a reader never sees a partial file and a
 * failed run leaves the previous run's files as they were.
 */
import { closeSync, copyFileSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { createHash, hash, type Hash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { manifestSchema, type FileEntry, type Manifest } from '../schemas/manifest.js';
import { autoEpochs, estimateCostUsd, type ModelInfo } from './models.js';
import { tokenStats } from './tokens.js';
import type { ReportData } from './report.js';
import { redactPii, PII_KINDS } from './pii.js';
import { contentText } from './messages.js';
import { reasonCategory, SPLIT_TEST } from './working-set.js';
import { rowsByPk, type Store } from './store.js';
import type { EmitHandoff, FinishedStages, RunFactsInternal, RunOutput } from './runner.js';
import { CHUNK as COLUMN_CHUNK, type ColumnSource } from './columns.js';
import type { Message, StageContext } from './stage.js';
import type { EmitParams } from '../stages/emit.js';
import { VERSION } from './version.js';
import { jsonBytes, LineageWriter } from './lineage.js';
import { DigestSet } from './hash-index.js';
import { JobError } from './errors.js';
import { activeRuns, currentOwner, ownerAlive } from './owner.js';
import type { OutcomeStore } from './emit-reuse.js';
import { makeDirs } from './dirs.js';

export interface SplitAccumulator {
  readonly examples: number;
  /** Examples bound for this file that were over the limit: dropped (over_limit: drop), or truncated and written. */
  droppedOverLimit: number;
  truncated: number;
  /** Appends one example line; returns its 1-based line number in the file. */
  write(line: string, tokens: { total: number; assistant: number }, limit: number | null, refusal: boolean): number;
  /** The same, for a line already encoded (newline included) whose digest (lineDigest) is known. */
  writeBytes(bytes: Buffer, digest: Uint8Array, tokens: { total: number; assistant: number }, limit: number | null, refusal: boolean): number;
  /** Where the last line written starts in the file, its length (newline included) and its digest (until the next line). */
  readonly lastOffset: number;
  readonly lastLength: number;
  readonly lastDigest: Uint8Array;
}

/**
 * A line's digest for the duplicate checks: md5 of its bytes without the newline, 16 bytes (emit-reuse.ts keeps
 * them, so a copied line need not be digested again). Returned in one scratch array, valid until the next call:
 * its readers copy it at once, and a 16-byte ArrayBuffer per line (what `hash` returns as a Buffer) is freed only
 * by a collection — a million of them in a 1M run.
 */
export function lineDigest(bytes: Buffer): Uint8Array {
  const text = hash('md5', bytes.subarray(0, bytes.length - 1), 'binary');
  for (let i = 0; i < 16; i++) DIGEST_SCRATCH[i] = text.charCodeAt(i);
  return DIGEST_SCRATCH;
}

const DIGEST_SCRATCH = new Uint8Array(16);

/** The JSONL files a run writes into its output folder (lineage only when asked for). */
export const JSONL_OUTPUTS = ['train.jsonl', 'test.jsonl', 'lineage.jsonl'] as const;

const FLUSH_AT = 1 << 20;

class SplitSink implements SplitAccumulator {
  examples = 0;
  droppedOverLimit = 0;
  truncated = 0;
  /** Lines written whose tokens are over the limit (emit writes none: it drops, truncates or fails). */
  overLimitLines = 0;
  bytes = 0;
  assistant = 0;
  billing = 0;
  refusals = 0;
  readonly totals: number[] = [];
  readonly duplicateLines: number[] = [];
  lastOffset = 0;
  lastLength = 0;
  lastDigest: Uint8Array = new Uint8Array(16);
  private readonly seen = new DigestSet();
  /**
   * test.jsonl's line digests in order, 16 bytes a line back to back (not an array per line: see lineDigest), to
   * count its lines that train.jsonl holds too.
   */
  private digests: Uint8Array | null;
  private readonly hash: Hash = createHash('sha256');
  private buf: Buffer[] = [];
  private bufLen = 0;
  private fd: number | null;

  constructor(
    readonly name: 'train' | 'test',
    readonly path: string | null,
  ) {
    this.fd = path === null ? null : openSync(path, 'w');
    this.digests = name === 'test' ? new Uint8Array(16 * 1024) : null;
  }

  write(line: string, tokens: { total: number; assistant: number }, limit: number | null, refusal: boolean): number {
    // Encoded to UTF-8 once, then digested, measured, hashed and written as bytes (each of those encoded the
    // string again on its own).
    const bytes = Buffer.from(`${line}\n`, 'utf8');
    return this.writeBytes(bytes, lineDigest(bytes), tokens, limit, refusal);
  }

  writeBytes(bytes: Buffer, digest: Uint8Array, tokens: { total: number; assistant: number }, limit: number | null, refusal: boolean): number {
    this.lastOffset = this.bytes;
    this.lastLength = bytes.length;
    this.lastDigest = digest;
    this.bytes += bytes.length;
    this.examples++;
    this.totals.push(tokens.total);
    this.assistant += tokens.assistant;
    this.billing += limit === null ? tokens.total : Math.min(limit, tokens.total);
    if (limit !== null && tokens.total > limit) this.overLimitLines++;
    if (refusal) this.refusals++;
    if (!this.seen.add(digest)) this.duplicateLines.push(this.examples);
    if (this.digests !== null) {
      const at = 16 * (this.examples - 1);
      if (at + 16 > this.digests.length) {
        const grown = new Uint8Array(2 * this.digests.length);
        grown.set(this.digests);
        this.digests = grown;
      }
      this.digests.set(digest, at);
    }
    // Hashed a megabyte at a time when flushed (a dry run too): one update per line cost a call per example.
    this.buf.push(bytes);
    this.bufLen += bytes.length;
    if (this.bufLen >= FLUSH_AT) this.flush();
    return this.examples;
  }

  /** How many of this file's distinct lines the other file holds too. */
  sharedLines(other: SplitSink): number {
    return this.seen.countShared(other.seen);
  }

  /** How many of this file's lines (test.jsonl's: only it keeps them) the other file holds too. */
  linesAlsoIn(other: SplitSink): number {
    let n = 0;
    for (let i = 0; this.digests !== null && i < this.examples; i++) if (other.seen.has(this.digests.subarray(16 * i, 16 * i + 16))) n++;
    return n;
  }

  flush(): void {
    if (this.buf.length === 0) return;
    const all = Buffer.concat(this.buf, this.bufLen);
    this.hash.update(all);
    if (this.fd !== null) writeSync(this.fd, all);
    this.buf = [];
    this.bufLen = 0;
  }

  close(): void {
    this.flush();
    if (this.fd === null) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }

  entry(file: string): FileEntry {
    const s = tokenStats(this.totals);
    return {
      path: file,
      examples: this.examples,
      bytes: this.bytes,
      sha256: this.hash.copy().digest('hex'),
      over_limit: this.overLimitLines,
      truncated: this.truncated,
      dropped_over_limit: this.droppedOverLimit,
      tokens: { total: s.total, assistant: this.assistant, min: s.min, mean: s.mean, p50: s.p50, p95: s.p95, max: s.max },
    };
  }
}

export class OutputWriter {
  readonly train: SplitSink;
  readonly test: SplitSink;
  private readonly staging: string | null;
  /** The first folder this run created on the way to outDir: removed again (if still empty) when the run fails. */
  private readonly created: string | undefined;
  /** Set when a failed install could not restore every previous file: the staging folder then holds them. */
  private keepStaging = false;

  /** What was recovered from interrupted runs' staging folders in outDir (for the manifest's warnings). */
  readonly recovered: readonly string[];

  constructor(private readonly o: { outDir: string; runId: string; dryRun: boolean }) {
    if (o.dryRun) {
      this.staging = null;
      this.recovered = [];
    } else {
      try {
        this.created = makeDirs(o.outDir);
        this.recovered = recoverInterruptedRuns(o.outDir);
        // The name says who writes it: created in one step, so no kill can leave a folder that does not.
        this.staging = join(o.outDir, stagingName(o.runId));
        mkdirSync(this.staging);
      } catch (err) {
        if (err instanceof JobError) throw err;
        throw new JobError(`${o.outDir}: cannot create the output directory: ${(err as Error).message}`);
      }
    }
    this.train = new SplitSink('train', this.staging && join(this.staging, 'train.jsonl'));
    this.test = new SplitSink('test', this.staging && join(this.staging, 'test.jsonl'));
  }

  abort(): void {
    try {
      this.train.close();
      this.test.close();
    } catch {
      /* closing is best effort; the folder goes anyway */
    }
    if (!this.staging || this.keepStaging) return;
    rmSync(this.staging, { recursive: true, force: true });
    // A failed first run leaves no empty output folder behind (rmdir only removes empty folders).
    if (this.created === undefined) return;
    for (let d = this.o.outDir; ; d = dirname(d)) {
      try {
        rmdirSync(d);
      } catch {
        break;
      }
      if (d === this.created) break;
    }
  }

  /**
   * Puts the staged files in place, manifest.json last, and removes outputs this run does not produce. Each
   * rename replaces one file atomically; should one fail, the files already replaced are put back from hard
   * links (or copies) taken just before, so a failed run leaves the previous run's files exactly as they were.
   */
  private install(staging: string, names: readonly string[], stale: readonly string[]): void {
    const outDir = this.o.outDir;
    const undo: { name: string; run: () => void }[] = [];
    let current = '';
    // What a process that finds this folder after a hard kill needs to put the previous files back.
    const journal: InstallJournal = { names, stale, had: names.filter((n) => existsSync(join(outDir, n))) };
    writeWhole(join(staging, JOURNAL_FILE), `${JSON.stringify(journal)}\n`);
    try {
      for (const name of stale) {
        current = name;
        const target = join(outDir, name);
        if (!existsSync(target)) continue;
        const backup = join(staging, `previous.${name}`);
        renameSync(target, backup);
        undo.push({ name, run: () => renameSync(backup, target) });
      }
      for (const name of names) {
        current = name;
        const target = join(outDir, name);
        const backup = join(staging, `previous.${name}`);
        const had = existsSync(target);
        if (had) keepPrevious(target, backup);
        renameSync(join(staging, name), target);
        undo.push({ name, run: had ? () => renameSync(backup, target) : () => unlinkSync(target) });
      }
    } catch (err) {
      const lost: string[] = [];
      for (const u of undo.reverse()) {
        try {
          u.run();
        } catch {
          lost.push(u.name);
        }
      }
      if (lost.length > 0) this.keepStaging = true;
      throw new JobError(
        `${join(outDir, current)}: cannot put the new file in place: ${(err as Error).message}; ` +
          (lost.length === 0
            ? "the previous run's files are left as they were"
            : `could not restore ${lost.join(', ')}: the previous versions are in ${staging} as previous.<name>`),
      );
    }
  }

  handoff(a: HandoffArgs): EmitHandoff {
    return {
      finalize: async (run) => {
        try {
          return await this.finalize(a, run);
        } catch (err) {
          this.abort();
          throw err;
        }
      },
    };
  }

  private async finalize(a: HandoffArgs, run: FinishedStages): Promise<RunOutput> {
    const { params: p, model, ctx } = a;
    this.train.close();
    this.test.close();
    const warnings = [...a.warnings];
    const nTrain = this.train.examples;
    if (nTrain < 10) warnings.push(`only ${nTrain} train example(s); OpenAI requires at least 10`);
    for (const s of [this.train, this.test]) {
      if (s.bytes > 512 * 1024 * 1024) warnings.push(`${s.name}.jsonl is ${s.bytes} bytes, over OpenAI's 512 MB file limit`);
      if (s.duplicateLines.length > 0) {
        warnings.push(`${s.name}.jsonl has ${s.duplicateLines.length} exact duplicate example(s) (lines ${s.duplicateLines.slice(0, 5).join(', ')}${s.duplicateLines.length > 5 ? ', …' : ''})`);
      }
    }
    // Counted as test.jsonl's lines (examples a test would score that training saw), and as distinct texts.
    const shared = this.train.sharedLines(this.test);
    if (shared > 0) {
      const lines = this.test.linesAlsoIn(this.train);
      warnings.push(`${lines} example(s) of test.jsonl also appear in train.jsonl${lines !== shared ? ` (${shared} distinct)` : ''}`);
    }

    const epochs = p.epochs === 'auto' ? autoEpochs(nTrain) : p.epochs;
    const refusalsFact = ctx.facts.refusals;
    const outCount = nTrain + this.test.examples;
    const outRefusals = this.train.refusals + this.test.refusals;
    const manifestDraft: Manifest = {
      manifest_version: 1,
      tool: { name: 'logcurate', version: VERSION },
      run: {
        id: run.runId,
        name: ctx.runName,
        started_at: ctx.startedAt.toISOString(),
        finished_at: run.finishedAt.toISOString(),
        config_sha256: ctx.configSha256,
        seed: ctx.seed,
        dry_run: ctx.dryRun,
      },
      store: { path: ctx.store.path, conversations: run.ws.size },
      model: {
        name: model.name,
        base: model.base,
        encoding: model.encoding,
        max_tokens_per_example: model.maxTokensPerExample,
        price_per_1m_training_tokens: model.pricePer1M,
      },
      stages: run.funnel.map((f) => ({ name: f.name, in: f.in, out: f.out, dropped: f.dropped })),
      refusals: refusalsFact
        ? {
            target_rate: refusalsFact.target_rate,
            before: refusalsFact.before,
            // Measured on what reached the files, with the same detector, so later drops are reflected.
            after: { count: outRefusals, rate: outCount === 0 ? 0 : round6(outRefusals / outCount) },
          }
        : null,
      files: { train: this.train.entry('train.jsonl'), test: this.test.entry('test.jsonl') },
      outputs: { lineage: p.lineage ? 'lineage.jsonl' : null, report: p.report ? 'report.html' : null },
      cost: {
        currency: 'USD',
        n_epochs: epochs,
        epochs_source: p.epochs === 'auto' ? 'auto' : 'config',
        billing_tokens: this.train.billing,
        estimated_usd: estimateCostUsd(this.train.billing, epochs, model.pricePer1M),
      },
      warnings,
      job_request: {
        model: p.model,
        training_file: 'train.jsonl',
        validation_file: this.test.examples > 0 ? 'test.jsonl' : null,
        suffix: ctx.runName.slice(0, 64),
        seed: ctx.seed,
        method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: epochs } } },
      },
    };
    const checked = manifestSchema.safeParse(manifestDraft);
    if (!checked.success) {
      throw new JobError(`internal: the manifest failed its schema at ${checked.error.issues[0]!.path.join('.')}: ${checked.error.issues[0]!.message}`);
    }
    const manifest = checked.data;
    if (!this.staging) return { manifest, outDir: null, written: [] };

    if (p.lineage) writeLineage(join(this.staging, 'lineage.jsonl'), ctx, run);
    if (p.report) {
      // Loaded only when a report is asked for: vega and vega-lite take ~250 ms to load.
      const { renderReport } = await import('./report.js');
      const html = await renderReport(await reportData(manifest, ctx, run, this.train.totals, this.test.totals));
      writeWhole(join(this.staging, 'report.html'), html);
    }
    writeWhole(join(this.staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);

    const names = ['train.jsonl', 'test.jsonl', ...(p.lineage ? ['lineage.jsonl'] : []), ...(p.report ? ['report.html'] : []), 'manifest.json'];
    // Outputs this run does not produce would describe an older run: they go when the new files land.
    const stale = ['lineage.jsonl', 'report.html'].filter((n) => !names.includes(n));
    a.outcomes?.settle();
    this.install(this.staging, names, stale);
    rmSync(this.staging, { recursive: true, force: true });
    return { manifest, outDir: this.o.outDir, written: names.map((n) => join(this.o.outDir, n)) };
  }
}

interface HandoffArgs {
  readonly params: EmitParams;
  readonly model: ModelInfo;
  readonly warnings: string[];
  readonly ctx: StageContext;
  /** What emit made of each conversation, saved for the next run into this folder (pipeline/emit-reuse.ts). */
  readonly outcomes?: OutcomeStore;
}

const STAGING_PREFIX = '.staging-';
/** `.staging-<run id>.<pid>-<host tag>`: the folder's writer, so a later run can tell when it is gone. */
const STAGING_NAME = /^\.staging-(.+)\.(\d+)-([0-9a-f]{8})$/;
/** In a staging folder, written just before its files are renamed into place: what install() will do. */
const JOURNAL_FILE = 'install.json';

/** A host name as 8 hex digits (host names may hold anything a file name should not). */
function hostTag(host: string): string {
  return hash('sha256', host, 'hex').slice(0, 8);
}

function stagingName(runId: string): string {
  const me = currentOwner();
  return `${STAGING_PREFIX}${runId}.${me.pid}-${hostTag(me.host)}`;
}

interface InstallJournal {
  /** Files put in place, in order; manifest.json last. */
  readonly names: readonly string[];
  /** Outputs of an older run that this run does not produce, moved aside as previous.<name>. */
  readonly stale: readonly string[];
  /** The names that had a previous version in the output folder. */
  readonly had: readonly string[];
}

/**
 * Staging folders left in `outDir` by runs whose process is gone (kill -9, out of memory, power loss; a failed
 * run removes its own). Killed while writing, a folder holds only partial new files: removed. Killed while
 * installing, the output folder may hold some new files beside the previous run's: the journal says which, and
 * the previous files are put back (the run never finished, so its files must not stand) — unless manifest.json,
 * renamed last, was already in place: then the new set is complete and consistent, and stays. Folders whose
 * writer may be alive, or that say nothing about their writer (older versions), are left alone.
 */
export function recoverInterruptedRuns(outDir: string): string[] {
  const notes: string[] = [];
  const me = currentOwner();
  const myTag = hostTag(me.host);
  for (const entry of readdirSync(outDir, { withFileTypes: true })) {
    const named = entry.isDirectory() ? STAGING_NAME.exec(entry.name) : null;
    if (!named) continue;
    const [, run, pid, tag] = named as unknown as [string, string, string, string];
    // Another host's writer cannot be checked from here: assumed alive. A run of this very process is alive too.
    if (tag !== myTag || activeRuns.has(run) || ownerAlive(Number(pid), me.host)) continue;
    const staging = join(outDir, entry.name);
    try {
      notes.push(recoverStaging(outDir, staging, run));
    } catch (err) {
      throw new JobError(
        `${staging}: cannot recover what interrupted run ${run} left: ${(err as Error).message}; check the files in ${outDir} (previous versions are in that folder as previous.<name>), then remove it`,
      );
    }
  }
  return notes;
}

function readJournal(staging: string): InstallJournal | null {
  try {
    const j = JSON.parse(readFileSync(join(staging, JOURNAL_FILE), 'utf8')) as Partial<InstallJournal>;
    const names = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string' && !x.includes('/') && !x.includes('\\'));
    return names(j.names) && names(j.stale) && names(j.had) ? (j as InstallJournal) : null;
  } catch {
    // Killed while writing the journal: no file had been renamed yet.
    return null;
  }
}

function recoverStaging(outDir: string, staging: string, run: string): string {
  const journal = readJournal(staging);
  let note: string;
  if (journal && !existsSync(join(staging, 'manifest.json'))) {
    note = `run ${run} was interrupted after putting its files in place; they are complete (manifest.json included) and were kept`;
  } else if (journal) {
    const restored: string[] = [];
    const removed: string[] = [];
    for (const name of [...journal.names].reverse()) {
      const target = join(outDir, name);
      if (existsSync(join(staging, name))) continue; // not moved yet: the previous file is still in place
      if (journal.had.includes(name)) {
        renameSync(join(staging, `previous.${name}`), target);
        restored.push(name);
      } else {
        rmSync(target, { force: true });
        removed.push(name);
      }
    }
    for (const name of journal.stale) {
      const backup = join(staging, `previous.${name}`);
      if (existsSync(backup)) {
        renameSync(backup, join(outDir, name));
        restored.push(name);
      }
    }
    const what = [restored.length > 0 ? `the previous ${restored.join(', ')} put back` : '', removed.length > 0 ? `its new ${removed.join(', ')} removed` : ''].filter(Boolean);
    note = `run ${run} was interrupted while putting its files in place; ${what.length > 0 ? what.join(', ') : 'no file had been replaced yet'}`;
  } else {
    note = `run ${run} was interrupted while writing; its partial files were removed`;
  }
  rmSync(staging, { recursive: true, force: true });
  return note;
}

/** A second name for the previous file (a hard link costs nothing); a copy where links are not possible. */
function keepPrevious(target: string, backup: string): void {
  try {
    linkSync(target, backup);
  } catch {
    copyFileSync(target, backup);
  }
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function writeWhole(path: string, text: string): void {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** One line per conversation the run considered, in store order: byte-identical for the same store and config. */
function writeLineage(path: string, ctx: StageContext, run: FinishedStages): void {
  const { ws } = run;
  const fd = openSync(path, 'w');
  try {
    const maxPk = ws.size ? ws.pks[ws.size - 1]! : 0;
    const out = new LineageWriter((bytes) => writeSync(fd, bytes));
    // Stage names, reasons (duplicate_of:<id> makes many distinct ones) and file names: encoded once each.
    const stageJson = run.funnel.map((f) => jsonBytes(f.name));
    const noStage = jsonBytes(null);
    const reasonJson: (Buffer | undefined)[] = new Array<Buffer | undefined>(ws.reasons.length);
    const fileJson = new Map<string, Buffer>();
    let k = 0;
    forEachIdAndSource(ctx.store, (ctx.facts as RunFactsInternal).columns, maxPk, (pk, id, file, srcLine) => {
      while (k < ws.size && ws.pks[k]! < pk) k++;
      if (k >= ws.size || ws.pks[k] !== pk) return;
      let f = fileJson.get(file);
      if (f === undefined) fileJson.set(file, (f = jsonBytes(file)));
      const by = ws.droppedBy[k]!;
      if (by >= 0) {
        const r = ws.reasonOf[k]!;
        out.dropped(id, stageJson[by] ?? noStage, (reasonJson[r] ??= jsonBytes(ws.reasons[r]!)), f, srcLine);
      } else out.kept(id, ws.split[k] === SPLIT_TEST, ws.line[k]!, f, srcLine);
    });
    out.flush();
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Calls `visit` with the pk, id, source file and line of every conversation up to maxPk: from the chunks of columns, then the table. */
function forEachIdAndSource(store: Store, columns: ColumnSource | undefined, maxPk: number, visit: (pk: number, id: string, file: string, line: number) => void): void {
  const select = `SELECT pk, id, source_file, source_line FROM conversations WHERE pk <= ? AND pk > ?`;
  const fromTable = (until: number, after: number): void => {
    for (const [pk, id, file, line] of rowsByPk<[number, string, string, number]>(store.sqlite, select, [until], 8192, after)) visit(pk, id, file, line);
  };
  for (let c = 0; columns && c < columns.count; c++) {
    const ch = columns.chunk(c);
    // Removed by a run of other code since this run's snapshot: its rows are still in the table.
    if (ch === null) fromTable(Math.min(maxPk, (c + 1) * COLUMN_CHUNK), c * COLUMN_CHUNK);
    else {
      const ids = ch.ids();
      for (let r = 0; r < ch.n; r++) visit(ch.pk[r]!, ids[r]!, ch.files[ch.sourceFile[r]!]!, ch.sourceLine[r]!);
    }
  }
  fromTable(maxPk, columns ? columns.coveredPk : -Infinity);
}

const SAMPLES_PER_REASON = 3;
const SAMPLE_REASONS = 12;

async function reportData(manifest: Manifest, ctx: StageContext, run: FinishedStages, trainTokens: number[], testTokens: number[]): Promise<ReportData> {
  const { ws } = run;
  const fbName = ctx.facts.feedbackName ?? 'score';
  const fb = ctx.feedback(fbName, 'latest');
  const before: number[] = [];
  const after: number[] = [];
  for (let i = 0; i < ws.size; i++) {
    const v = fb[i]!;
    if (Number.isNaN(v)) continue;
    before.push(v);
    if (ws.droppedBy[i] === -1) after.push(v);
  }
  // A few dropped conversations per reason, first in store order. Their text is redacted here whatever the
  // config says: the report is a file people pass around.
  const picked = new Map<string, number[]>();
  for (let i = 0; i < ws.size && picked.size <= SAMPLE_REASONS; i++) {
    if (ws.droppedBy[i] === -1) continue;
    const cat = `${run.funnel[ws.droppedBy[i]!]?.name}\u0000${reasonCategory(ws.reason(i)!)}`;
    const list = picked.get(cat) ?? [];
    if (list.length < SAMPLES_PER_REASON) {
      list.push(i);
      picked.set(cat, list);
    }
  }
  const get = ctx.store.sqlite.prepare(`SELECT messages FROM conversations WHERE pk = ?`).pluck();
  const samples: ReportData['samples'][number][] = [];
  for (const [cat, list] of [...picked.entries()].slice(0, SAMPLE_REASONS)) {
    const [stage] = cat.split('\u0000');
    for (const i of list) {
      const msgs = JSON.parse(get.get(ws.pks[i]) as string) as Message[];
      samples.push({
        stage: stage!,
        reason: ws.reason(i)!,
        id: ws.id(i),
        messages: msgs.map((m) => ({ role: String(m.role), content: redactPii(contentText(m.content), PII_KINDS).text })),
      });
    }
  }
  const clusters = ctx.facts.duplicateClusters ?? new Map<number, number>();
  return {
    run: { id: manifest.run.id, name: manifest.run.name, started_at: manifest.run.started_at, finished_at: manifest.run.finished_at, seed: manifest.run.seed },
    model: { name: manifest.model.name, encoding: manifest.model.encoding, max_tokens_per_example: manifest.model.max_tokens_per_example },
    stages: manifest.stages,
    refusals: manifest.refusals,
    files: { train: manifest.files.train, test: manifest.files.test },
    cost: { n_epochs: manifest.cost.n_epochs, billing_tokens: manifest.cost.billing_tokens, estimated_usd: manifest.cost.estimated_usd },
    warnings: manifest.warnings,
    feedback: { name: fbName, before, after },
    tokens: { train: trainTokens, test: testTokens },
    duplicateClusters: [...clusters.entries()].sort((x, y) => x[0] - y[0]).map(([size, n]) => ({ size, clusters: n })),
    pii: ctx.facts.pii ?? {},
    samples,
  };
}
