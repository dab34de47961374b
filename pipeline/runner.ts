/**
 * The run engine: config → ingest inputs → a frozen working set → stage after stage → emit's outputs.
 * Every decision is recorded with its stage and reason (`run_decision_sets`), and every stage's funnel row
 * (`run_stages`), so `explain` and `lineage.jsonl` can answer "why was this dropped?".
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type Database from 'better-sqlite3';
import { loadConfig, type LoadedConfig } from './config.js';
import { ingest, type IngestSummary } from './ingest.js';
import { JSONL_OUTPUTS } from './outputs.js';
import { BUSY_MS, cacheWrite, inListStatements, openStore, resolveStorePath, retryWhileBusy, rowsByPk, type Store } from './store.js';
import { silentProgress, type Progress } from './progress.js';
import type { CoreFacts, FeedbackAggregate, Message, RunFacts, ScanField, ScannedConversation, StageContext, StageWarmUp, Transform } from './stage.js';
import { indexOfPk, reasonCategory, WorkingSet } from './working-set.js';
import { canonicalJson } from './canonical.js';
import { ROLES } from '../schemas/log-record.js';
import { encodeDecisions } from './decisions.js';
import { latestFeedback } from './feedback.js';
import { keepHeapNearLiveSet, RUN_HEAP_SLACK } from './memory.js';
import { activeRuns, currentOwner, runAlive } from './owner.js';
import { ColumnSignals, encodeSignals, signalsFromMessages, signalsFromStored, type Signals } from './signals.js';
import { buildColumns, CHUNK as COLUMN_CHUNK, ColumnSource, NO_ROLE, ROLE_CODE, type ColumnChunk } from './columns.js';

export interface RunOptions {
  /** `--db`: overrides the config's store. */
  readonly db?: string;
  /** `--out`: overrides emit's dir. */
  readonly out?: string;
  readonly dryRun?: boolean;
  readonly progress?: Progress;
}

export interface FunnelRow {
  readonly name: string;
  readonly in: number;
  readonly out: number;
  readonly dropped: Record<string, number>;
}

/** What emit hands back to the runner: it finalises once the whole funnel (its own row included) is known. */
export interface EmitHandoff {
  finalize(run: FinishedStages): Promise<RunOutput>;
}

export interface FinishedStages {
  readonly runId: string;
  readonly funnel: readonly FunnelRow[];
  readonly facts: RunFacts;
  readonly ws: WorkingSet;
  readonly finishedAt: Date;
}

export interface RunOutput {
  /** The manifest (SPEC §4), validated. */
  readonly manifest: Record<string, unknown>;
  readonly outDir: string | null;
  /** Paths written (empty on a dry run). */
  readonly written: readonly string[];
}

export interface RunResult extends RunOutput {
  readonly runId: string;
  readonly storePath: string;
  readonly ingest: IngestSummary;
  readonly funnel: readonly FunnelRow[];
}

/** Keeps emit's handoff out of RunFacts' public shape. */
export interface RunFactsInternal extends RunFacts {
  emit?: EmitHandoff;
  outOverride?: string;
  /** The transforms registered so far, in order: each one's stage and canonical parameters (emit's render key). */
  transforms?: { stage: string; params: string }[];
  /** The run's chunks of small columns (lineage reads ids and sources from them). */
  columns?: ColumnSource;
}

export async function runConfigFile(configPath: string, opts: RunOptions = {}): Promise<RunResult> {
  // Config errors surface here, before the store is opened or anything is written.
  const config = loadConfig(configPath);
  const store = openStore(resolveStorePath(opts.db, config.store));
  try {
    return await runConfig(store, config, opts);
  } finally {
    await store.close();
  }
}

function newRunId(name: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${name}-${stamp}-${randomBytes(3).toString('hex')}`;
}

/**
 * SQLite's page cache while a run works (openStore gives every connection 64 MB). A run reads each page it needs
 * about once — column chunks in order, each example's messages once, token counts by key in batches — so a large
 * cache held little it would read again, and cost its size in memory: first 200k exact runs peaked at 298–313 MB
 * with 16 MB against 363–365 MB with 64 MB, in 4.77–4.94 against 5.01–5.36 s, and a 1M bench's runs at 395
 * against 442–450 MB (README, the eighteenth round). Ingest, whose index lookups do come back to the same pages,
 * keeps the larger cache (also for a run's `inputs`).
 */
const RUN_CACHE_KB = 16_384;

export async function runConfig(store: Store, config: LoadedConfig, opts: RunOptions = {}): Promise<RunResult> {
  const progress = opts.progress ?? silentProgress;
  const emit = config.stages.find((st) => st.name === 'emit');
  const outDir = opts.out !== undefined ? resolve(opts.out) : emit ? (emit.params as { dir: string }).dir : null;
  const ownOutputs = outDir === null ? [] : JSONL_OUTPUTS.map((f) => join(outDir, f));
  const ingestSummary = await ingest(store, config.inputs, { cwd: config.dir, progress, ownOutputs });
  for (const w of ingestSummary.warnings) progress.log(`warning: ${w}`);
  const cacheSize = store.sqlite.pragma('cache_size', { simple: true }) as number;
  store.sqlite.pragma(`cache_size = -${RUN_CACHE_KB}`);
  try {
    return await runAfterIngest(store, config, opts, ingestSummary);
  } finally {
    store.sqlite.pragma(`cache_size = ${cacheSize}`);
  }
}

async function runAfterIngest(store: Store, config: LoadedConfig, opts: RunOptions, ingestSummary: IngestSummary): Promise<RunResult> {

  const startedAt = new Date();
  const runId = newRunId(config.name, startedAt);
  const sqlite = store.sqlite;
  const insertRun = sqlite.prepare(
    `INSERT INTO runs (id, name, config_json, config_sha256, seed, status, started_at, pid, host) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)`,
  );
  const owner = currentOwner();
  // Single writes retry on SQLITE_BUSY too: with another run or ingest on the store, WAL can report a stale
  // snapshot as busy without waiting (see retryWhileBusy).
  const start = sqlite.transaction(() => {
    markInterruptedRuns(store);
    insertRun.run(runId, config.name, canonicalJson(config.raw), config.sha256, config.seed, startedAt.toISOString(), owner.pid, owner.host);
  });
  retryWhileBusy(() => start.immediate(), BUSY_MS);
  activeRuns.add(runId);
  try {
    return await runFrozen(store, config, opts, { runId, startedAt, ingestSummary });
  } finally {
    activeRuns.delete(runId);
  }
}

/**
 * Runs still 'running' whose process is gone were interrupted (kill -9, out of memory, power loss): marked failed,
 * so `explain` and `stats` no longer call them in progress. Their output folders are recovered by emit when a
 * run next writes there (pipeline/outputs.ts). A run killed after its manifest.json was put in place — the last
 * file it installs, after its decisions were recorded — had finished all but its status: it is marked succeeded,
 * as it would have been, with its folder and manifest, so the next run into that folder also reuses its lines.
 */
function markInterruptedRuns(store: Store): void {
  const running = store.sqlite.prepare(`SELECT id, pid, host FROM runs WHERE status = 'running'`).all() as { id: string; pid: number | null; host: string | null }[];
  const mark = store.sqlite.prepare(`UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ? AND status = 'running'`);
  const folders = store.sqlite.prepare(`SELECT DISTINCT out_dir FROM emit_reuse WHERE run_id = ?`).pluck();
  const succeed = store.sqlite.prepare(`UPDATE runs SET status = 'succeeded', finished_at = ?, out_dir = ?, manifest_json = ? WHERE id = ? AND status = 'running'`);
  for (const r of running) {
    if (runAlive(r)) continue;
    const installed = installedManifest(r.id, folders.all(r.id) as string[]);
    if (installed) succeed.run(installed.finishedAt, installed.outDir, installed.json, r.id);
    else mark.run(new Date().toISOString(), `interrupted: its process (pid ${r.pid} on ${r.host}) ended before the run finished`, r.id);
  }
}

/** The manifest of run `runId` where it stands in one of these output folders (installed whole), if it does. */
function installedManifest(runId: string, outDirs: readonly string[]): { outDir: string; json: string; finishedAt: string } | null {
  for (const outDir of outDirs) {
    let manifest: { run?: { id?: unknown; finished_at?: unknown } };
    try {
      manifest = JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')) as typeof manifest;
    } catch {
      continue;
    }
    if (manifest.run?.id !== runId) continue;
    const finishedAt = typeof manifest.run.finished_at === 'string' ? manifest.run.finished_at : new Date().toISOString();
    return { outDir, json: JSON.stringify(manifest), finishedAt };
  }
  return null;
}

async function runFrozen(store: Store, config: LoadedConfig, opts: RunOptions, started: { runId: string; startedAt: Date; ingestSummary: IngestSummary }): Promise<RunResult> {
  const { runId, startedAt, ingestSummary } = started;
  const sqlite = store.sqlite;

  // Freeze what this run considers: conversations and feedback as of now, read in one transaction so both come
  // from the same snapshot even while another process ingests. Rows are never changed (only their derived
  // signals may be filled in), so later concurrent ingests cannot change this run's view. Read a page at a time
  // into the columns: an array of a million [pk, id] rows would stay alive for the whole run.
  // The closed chunks of small columns the store lacks are built first, outside the snapshot: each is a short
  // write of its own, and its rows can never change (pipeline/columns.ts).
  buildColumns(store);
  const { pks, core, maxFeedbackPk, columns } = sqlite.transaction(() => {
    const columnSource = ColumnSource.open(sqlite);
    const parts: { pk: Int32Array; error: Uint8Array; turns: Int32Array; lastRole: Uint8Array }[] = [];
    for (let c = 0; c < columnSource.count; c++) {
      const ch = columnSource.chunk(c);
      if (!ch) throw new Error(`internal: conversation_columns chunk ${c} is missing inside the run's snapshot`);
      // Copies: the views would keep each chunk's whole buffer (every column) alive until the end of the load.
      parts.push({ pk: ch.pk.slice(), error: ch.error.slice(), turns: ch.nAssistant.slice(), lastRole: ch.lastRole.slice() });
    }
    // Above the chunks, the rows themselves: status and role as small numbers (SQL maps them), no string per row.
    // CoreFacts.lastRole codes are indexes into ROLES, the roles ingest accepts.
    const pkList: number[] = [];
    const error: number[] = [];
    const turns: number[] = [];
    const lastRole: number[] = [];
    const select = `SELECT pk, status = 'error', n_assistant, ${ROLE_CODE} FROM conversations WHERE pk > ${columnSource.coveredPk} AND pk > ?`;
    for (const [pk, isError, nAssistant, role] of rowsByPk<[number, number, number, number]>(sqlite, select)) {
      pkList.push(pk);
      error.push(isError);
      turns.push(nAssistant);
      lastRole.push(role);
    }
    parts.push({ pk: Int32Array.from(pkList), error: Uint8Array.from(error), turns: Int32Array.from(turns), lastRole: Uint8Array.from(lastRole) });
    const n = parts.reduce((a, p) => a + p.pk.length, 0);
    const all = { pk: new Int32Array(n), error: new Uint8Array(n), turns: new Int32Array(n), lastRole: new Uint8Array(n) };
    let at = 0;
    for (const p of parts) {
      all.pk.set(p.pk, at);
      all.error.set(p.error, at);
      all.turns.set(p.turns, at);
      all.lastRole.set(p.lastRole, at);
      at += p.pk.length;
    }
    // No stored last role (no messages): stages scan instead, and compute it from the messages.
    const complete = !all.lastRole.includes(NO_ROLE);
    const coreFacts: CoreFacts | null = complete ? { error: all.error, assistantTurns: all.turns, lastRole: all.lastRole, roles: ROLES } : null;
    return {
      pks: all.pk,
      // A holder, so runStages can let the arrays go before emit (this frame stays alive for the whole run).
      core: { facts: coreFacts },
      maxFeedbackPk: Number((sqlite.prepare(`SELECT coalesce(max(pk), 0) AS m FROM feedback`).get() as { m: number }).m),
      columns: columnSource,
    };
  })();
  // Ids are looked up when a stage needs one (rows never change, so any later read agrees with this snapshot).
  const idOf = sqlite.prepare(`SELECT id FROM conversations WHERE pk = ?`).pluck();
  const ws = new WorkingSet(pks, (pk) => idOf.get(pk) as string, idsByPk(sqlite));
  const warm = new StageWarmer(config, store, ws.size);
  try {
    return await runStages(store, config, opts, { runId, startedAt, ws, core, maxFeedbackPk, ingestSummary, warm, columns });
  } finally {
    await warm.done();
  }
}

/** Ids of many pks at once (in their order), 500 per query. */
function idsByPk(sqlite: Database.Database): (pks: readonly number[]) => string[] {
  const query = inListStatements(sqlite, (list) => `SELECT pk, id FROM conversations WHERE pk IN (${list})`);
  return (pks) => {
    const id = new Map<number, string>();
    for (let from = 0; from < pks.length; from += 500) {
      const part = pks.slice(from, from + 500);
      for (const [pk, v] of query(part.length).all(...part) as [number, string][]) id.set(pk, v);
    }
    return pks.map((pk) => {
      const v = id.get(pk);
      if (v === undefined) throw new Error(`internal: no conversation with pk ${pk}`);
      return v;
    });
  };
}

/**
 * Stages warming up before their turn (StageDefinition.warm): from the start of the run, so that a stage's set-up
 * (emit's token worker: a thread and ~0.3 s of rank tables) overlaps every stage before it — but never across a
 * stage where memory peaks (near dedupe): a stage after one is warmed as the stage after the last such one starts.
 * Emit's token worker (~50 MB) warmed at the start had been resident through near dedupe, the 1M run's peak. On
 * the 200k bench's exact run, warming emit at the start instead of two stages ahead (at system_prompt): run
 * 3.30 -> 3.11 s and 3.19 -> 3.10 s over two sets of alternating rounds (5 and 4), each round faster; peak RSS
 * unchanged, train.jsonl identical.
 */
class StageWarmer {
  private readonly started: { stage: number; warm: StageWarmUp }[] = [];
  /** For each stage: the stage at whose start it is warmed. */
  private readonly warmAt: number[];

  constructor(
    private readonly config: LoadedConfig,
    private readonly store: Store,
    private readonly conversations: number,
  ) {
    let after = 0;
    this.warmAt = config.stages.map((st, k) => {
      const at = after;
      if (st.def.peaksMemory?.(st.params)) after = k + 1;
      return at;
    });
  }

  /** Stage `s` is starting: warm the stages whose turn it is. */
  at(s: number): void {
    this.config.stages.forEach((st, k) => {
      if (k <= s || this.warmAt[k] !== s) return;
      try {
        const before = this.config.stages.slice(0, k).map((b) => ({ name: b.name, params: b.params }));
        const warm = st.def.warm?.(st.params, { conversations: this.conversations, store: this.store, before });
        if (warm) this.started.push({ stage: k, warm });
      } catch {
        // Warming up is only a head start: whatever failed here, the stage itself reports when it runs.
      }
    });
  }

  /** Stage `s` has run: the warm-ups of the stages still to come may start on what it left (StageWarmUp.ahead). */
  after(s: number, ws: WorkingSet): void {
    for (const { stage, warm } of this.started) {
      if (stage <= s || !warm.ahead) continue;
      try {
        warm.ahead(ws);
      } catch {
        // As in `at`: only a head start.
      }
    }
  }

  async done(): Promise<void> {
    await Promise.all(this.started.map((w) => w.warm.done()));
  }
}

interface RunStart {
  readonly runId: string;
  readonly startedAt: Date;
  readonly ws: WorkingSet;
  /** Emptied before emit, which never reads it: ~6 bytes a conversation that need not stay for the longest stage. */
  readonly core: { facts: CoreFacts | null };
  readonly maxFeedbackPk: number;
  readonly ingestSummary: IngestSummary;
  readonly warm: StageWarmer;
  readonly columns: ColumnSource;
}

async function runStages(store: Store, config: LoadedConfig, opts: RunOptions, start: RunStart): Promise<RunResult> {
  const { runId, startedAt, ws, core, maxFeedbackPk, ingestSummary, warm, columns } = start;
  const progress = opts.progress ?? silentProgress;
  const sqlite = store.sqlite;
  const facts: RunFactsInternal = { outOverride: opts.out, columns };
  // Ingest's warnings (an input pattern that matched no files) are the manifest's too: a nightly job run with
  // --quiet --json would otherwise pass over a mistyped or unmounted log folder without a word.
  // Likewise lines this run's ingest quarantined (bad JSON, an id conflict from a log edited in place).
  // (A file skipped as already ingested reports its earlier counts: those are not this run's.)
  const quarantined = ingestSummary.files.reduce((n, f) => n + (f.skipped ? 0 : f.quarantined), 0);
  const inputWarnings = ingestSummary.warnings.map((w) => `inputs: ${w}`);
  if (quarantined > 0) inputWarnings.push(`inputs: ${quarantined} line(s) quarantined by this run's ingest, in no output (\`logcurate stats\` lists the reasons)`);
  if (inputWarnings.length > 0) facts.warnings = inputWarnings;
  const transforms: Transform[] = [];
  /** Whether a transform so far rewrites more than system messages (stored signals then no longer describe the text). */
  let textTransformed = false;
  const feedbackCache = new Map<string, Float64Array>();
  const funnel: FunnelRow[] = [];
  const insertStage = sqlite.prepare(
    `INSERT INTO run_stages (run_id, idx, name, n_in, n_out, dropped_json, stats_json, ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );

  try {
    for (let s = 0; s < config.stages.length; s++) {
      const stage = config.stages[s]!;
      const t0 = Date.now();
      warm.at(s);
      if (stage.name === 'emit') {
        // Emit is the last stage and the longest, and reads neither: at a million conversations the core columns
        // and a feedback aggregate are ~14 MB. The report, if any, folds the feedback again (from the cache the
        // filter left, when it used the latest value).
        core.facts = null;
        feedbackCache.clear();
      }
      const nIn = ws.alive;
      const dropped: Record<string, number> = {};
      const stats: Record<string, unknown> = {};
      const ctx: StageContext = {
        store,
        runId,
        runName: config.name,
        seed: config.seed,
        stageIndex: s,
        stageName: stage.name,
        configDir: config.dir,
        dryRun: opts.dryRun === true,
        startedAt,
        configSha256: config.sha256,
        ws,
        progress,
        facts,
        stats,
        scan: (label, scanOpts) =>
          scanConversations(store, ws, { transforms: [...transforms], textTransformed }, progress, label ?? stage.name, scanOpts?.messages ?? true, scanOpts?.fields, scanOpts?.where, columns),
        drop: (i, reason) => {
          ws.drop(i, s, reason);
          const cat = reasonCategory(reason);
          dropped[cat] = (dropped[cat] ?? 0) + 1;
        },
        feedback: (name, aggregate) => {
          const key = `${aggregate}\u0000${name}`;
          let v = feedbackCache.get(key);
          if (!v) feedbackCache.set(key, (v = aggregateFeedback(store, ws, name, aggregate, maxFeedbackPk)));
          return v;
        },
        core: () => (transforms.length === 0 ? core.facts : null),
        addTransform: (t, topts) => {
          transforms.push(t);
          (facts.transforms ??= []).push({ stage: stage.name, params: canonicalJson(stage.params) });
          if (!topts?.systemOnly) textTransformed = true;
        },
      };
      await stage.def.run(ctx, stage.params);
      const row: FunnelRow = { name: stage.name, in: nIn, out: ws.alive, dropped: sortKeys(dropped) };
      funnel.push(row);
      warm.after(s, ws);
      retryWhileBusy(() => insertStage.run(runId, s, stage.name, row.in, row.out, JSON.stringify(row.dropped), JSON.stringify(stats), Date.now() - t0), BUSY_MS);
    }
    if (!facts.emit) throw new Error('internal: the emit stage did not run');
    // Decisions first: once the files are in place only the status update is left, so a run killed in between
    // leaves a complete folder and a full record of what it decided.
    persistDecisions(store, runId, ws, config.stages.map((st) => st.name));
    const output = await facts.emit.finalize({ runId, funnel, facts, ws, finishedAt: new Date() });
    const finish = sqlite.prepare(`UPDATE runs SET status = ?, finished_at = ?, out_dir = ?, manifest_json = ? WHERE id = ?`);
    retryWhileBusy(() => finish.run(opts.dryRun ? 'dry_run' : 'succeeded', new Date().toISOString(), output.outDir, JSON.stringify(output.manifest), runId), BUSY_MS);
    return { ...output, runId, storePath: store.path, ingest: ingestSummary, funnel };
  } catch (err) {
    // A failed run still records what it decided, so `explain` can say why.
    try {
      persistDecisions(store, runId, ws, config.stages.map((st) => st.name));
    } catch {
      /* the original error matters more */
    }
    const fail = sqlite.prepare(`UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?`);
    retryWhileBusy(() => fail.run(new Date().toISOString(), (err as Error).message, runId), BUSY_MS);
    throw err;
  }
}

export { latestFeedback } from './feedback.js';

function sortKeys(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function aggregateFeedback(store: Store, ws: WorkingSet, name: string, aggregate: FeedbackAggregate, maxPk: number): Float64Array {
  if (aggregate === 'latest') return latestFeedback(store, ws, name, maxPk);
  const out = new Float64Array(ws.size).fill(NaN);
  // Bound values only: names never reach SQL as text.
  const sqlText = `SELECT c.pk, ${aggregate === 'mean' ? 'avg' : aggregate}(f.value) FROM feedback f JOIN conversations c ON c.id = f.log_id
         WHERE f.name = ? AND f.pk <= ? GROUP BY c.pk`;
  for (const [pk, value] of store.sqlite.prepare(sqlText).raw().iterate(name, maxPk) as Iterable<[number, number]>) {
    const i = indexOfPk(ws.pks, pk);
    if (i !== -1) out[i] = value;
  }
  return out;
}

const SCAN_PAGE = 2000;

type ScanRow = [
  number,
  string | null,
  string | null,
  string | null,
  'ok' | 'error',
  number | null,
  string | null,
  string | null,
  string | null,
  string | null,
  string,
  number,
  number,
  string | null,
  string | null,
];

const SCAN_COLUMNS = `pk, id, messages, tools, status, created_at_ms, model, user_id, session_id, tags, source_file, source_line, n_assistant, last_role, signals`;

/** The optional columns of a scan (ScanOptions.fields), by their ScanRow index. */
const OPTIONAL_FIELDS: readonly (readonly [ScanField, number, string])[] = [
  ['id', 1, 'id'],
  ['createdAtMs', 5, 'created_at_ms'],
  ['model', 6, 'model'],
  ['userId', 7, 'user_id'],
  ['sessionId', 8, 'session_id'],
  ['tags', 9, 'tags'],
];
const ALL_FIELDS = OPTIONAL_FIELDS.reduce((m, [, col]) => m | (1 << col), 0);

/** A scan's SELECT list, and how its rows become ScanRows (null: they already are). */
interface ScanColumns {
  readonly select: string;
  readonly expand: ((row: unknown[]) => ScanRow) | null;
}

/** ScanRow places and their columns. */
const PLACES: readonly string[] = SCAN_COLUMNS.split(', ');
/** Every place fetched: the full row. */
const ALL_PLACES = (1 << PLACES.length) - 1;
/** Always fetched: pk, status, n_assistant, last_role (what scans and the core facts read for every row). */
const ALWAYS = (1 << 0) | (1 << 4) | (1 << 12) | (1 << 13);
/** Fetched with text: messages, tools and signals. */
const TEXT = (1 << 2) | (1 << 3) | (1 << 14);

/**
 * A scan's SELECT list for the places in `fetched` (bits by ScanRow index). Only those columns are selected,
 * and each row is spread into ScanRow's places here: better-sqlite3 spends as long on a selected NULL as on a
 * value (a signals scan of 200k rows: 245-330 ms selecting NULLs for the 9 unused places, 160 ms selecting 6
 * columns and spreading them).
 */
function scanColumns(fetched: number): ScanColumns {
  if (fetched === ALL_PLACES) return { select: SCAN_COLUMNS, expand: null };
  const at = Int8Array.from(PLACES.keys()).filter((k) => fetched & (1 << k));
  return {
    select: Array.from(at, (k) => PLACES[k]!).join(', '),
    expand: (r) => {
      const row: unknown[] = [null, null, null, null, null, null, null, null, null, null, null, null, null, null, null];
      for (let j = 0; j < at.length; j++) row[at[j]!] = r[j];
      return row as ScanRow;
    },
  };
}

interface TransformChain {
  readonly transforms: readonly Transform[];
  /** A transform rewrites more than system messages: signals must be computed from the transformed text. */
  readonly textTransformed: boolean;
}

function* scanConversations(
  store: Store,
  ws: WorkingSet,
  chain: TransformChain,
  progress: Progress,
  label: string,
  want: boolean | 'signals',
  fields?: readonly ScanField[],
  where?: (i: number) => boolean,
  cache?: ColumnSource,
): Generator<ScannedConversation> {
  const n = ws.size;
  if (n === 0 || ws.alive === 0) return;
  const { transforms, textTransformed } = chain;
  // Messages in bulk when the stage reads them; when it reads only signals, only where they must be computed
  // from (transformed) text. After any transform, roles and turn counts come from the parsed messages too.
  const withMessages = want === 'signals' ? textTransformed : want || transforms.length > 0;
  // A scan without text fetches lean rows: the small columns stages read (and signals, for a signals scan);
  // tools and the source are fetched per row if a stage reads them after all.
  const lean = !withMessages;
  const optional = fields === undefined ? ALL_FIELDS : OPTIONAL_FIELDS.reduce((m, [f, col]) => (fields.includes(f) ? m | (1 << col) : m), 0);
  // A full scan without `fields` fetches the whole row; otherwise the text (if wanted) and the named columns.
  const fetched = lean ? ALWAYS | optional | (want === 'signals' ? 1 << 14 : 0) : fields === undefined ? ALL_PLACES : ALWAYS | TEXT | optional;
  const shared: ScanShared = {
    ws,
    chain,
    fetched,
    oneMessages: store.sqlite.prepare(`SELECT messages FROM conversations WHERE pk = ?`).pluck(),
    oneRow: fetched === ALL_PLACES ? null : store.sqlite.prepare(`SELECT ${SCAN_COLUMNS.replace('messages', 'NULL')} FROM conversations WHERE pk = ?`).raw(),
  };
  const columns = scanColumns(fetched);
  const signalsFiller = want === 'signals' && !textTransformed ? new SignalsFiller(store) : null;
  let total = ws.alive;
  if (where) for (let i = 0; i < n; i++) if (ws.isAlive(i) && !where(i)) total--;
  const task = progress.task(label, { total, unit: 'items' });
  function* fromTable(pages: Iterable<[number, ScanRow][]>): Generator<ScannedConversation> {
    for (const page of pages) {
      keepHeapNearLiveSet(RUN_HEAP_SLACK);
      signalsFiller?.fill(page);
      for (const [k, row] of page) {
        if (!ws.isAlive(k)) continue;
        task.tick(1);
        yield new Scanned(k, row, shared);
      }
    }
  }
  // A lean scan of what the chunks of small columns hold (status, roles, turns, created_at, id, signals) reads
  // them from the chunks (pipeline/columns.ts); the rows above the chunks come from the table.
  const fromChunks = cache !== undefined && cache.count > 0 && lean && (optional & ~CHUNK_FIELDS) === 0;
  try {
    let after = 0;
    if (fromChunks) {
      const chunkShared: ChunkScanShared = {
        fullRow: store.sqlite.prepare(`SELECT ${SCAN_COLUMNS} FROM conversations WHERE pk = ?`).raw(),
        rowShared: { ...shared, fetched: ALL_PLACES, oneRow: null },
      };
      let k = 0;
      for (let c = 0; c < cache.count && k < n; c++) {
        keepHeapNearLiveSet(RUN_HEAP_SLACK);
        const ch = cache.chunk(c);
        if (ch === null) {
          // Removed by a run of other code since this run's snapshot: its rows are still in the table.
          yield* fromTable(rangePages(store, ws, columns, c * COLUMN_CHUNK, (c + 1) * COLUMN_CHUNK));
          continue;
        }
        for (let r = 0; r < ch.n; r++) {
          const pk = ch.pk[r]!;
          while (k < n && ws.pks[k]! < pk) k++;
          if (k === n) break;
          if (ws.pks[k] !== pk || !ws.isAlive(k) || (where && !where(k))) continue;
          task.tick(1);
          yield new ChunkScanned(k, ch, r, chunkShared);
        }
      }
      after = cache.coveredPk;
    }
    // Mostly alive (the first stages): walk pk ranges. Mostly dropped, or only some wanted: read only those rows
    // by pk, so the later stages do not pay for what the filter removed.
    yield* fromTable(ws.alive * 2 > n && !where ? rangePages(store, ws, columns, after) : alivePages(store, ws, columns, where, after));
  } finally {
    task.done();
  }
}

/** The optional fields the chunks of small columns hold (by OPTIONAL_FIELDS' bits). */
const CHUNK_FIELDS = (1 << 1) | (1 << 5);

/**
 * Signals for rows that have none yet (ingested before the store kept them) or whose stamp is from other code:
 * computed from the stored messages, fetched in bulk, and saved so the next run reads them. Saving is a cache
 * write: when another process holds the store's write lock for long, it is skipped, never waited on.
 */
class SignalsFiller {
  private readonly update: Database.Statement;
  private readonly save: Database.Transaction<(rows: [string, number][]) => void>;
  private readonly messagesOf: (size: number) => Database.Statement;
  constructor(store: Store) {
    this.messagesOf = inListStatements(store.sqlite, (list) => `SELECT pk, messages FROM conversations WHERE pk IN (${list})`);
    this.update = store.sqlite.prepare(`UPDATE conversations SET signals = ? WHERE pk = ?`);
    this.save = store.sqlite.transaction((rows) => {
      for (const [text, pk] of rows) this.update.run(text, pk);
    });
  }
  fill(page: readonly [number, ScanRow][]): void {
    const missing = page.filter(([, r]) => signalsFromStored(r[14]) === null).map(([, r]) => r);
    if (missing.length === 0) return;
    const needText = missing.filter((r) => r[2] === null);
    if (needText.length > 0) {
      const text = new Map(this.messagesOf(needText.length).all(needText.map((r) => r[0])) as [number, string][]);
      for (const r of needText) r[2] = text.get(r[0]) ?? null;
    }
    const saved: [string, number][] = [];
    for (const r of missing) {
      if (r[2] === null) continue;
      const stored = encodeSignals(JSON.parse(r[2]) as Message[]);
      r[14] = stored;
      saved.push([stored, r[0]]);
    }
    cacheWrite(() => this.save.immediate(saved));
  }
}

/** Pages of [working-set index, row], read by pk range (after < pk ≤ until); rows not alive are skipped. */
function* rangePages(store: Store, ws: WorkingSet, columns: ScanColumns, after = 0, until?: number): Generator<[number, ScanRow][]> {
  const stmt = store.sqlite.prepare(`SELECT ${columns.select} FROM conversations WHERE pk > ? AND pk <= ? ORDER BY pk LIMIT ${SCAN_PAGE}`).raw();
  const n = ws.size;
  const maxPk = Math.min(until ?? Infinity, ws.pks[n - 1]!);
  let k = 0;
  for (;;) {
    // Pages, not one long iterator: a stage may query the store between conversations.
    const rows = expandRows(stmt.all(after, maxPk) as unknown[][], columns);
    if (rows.length === 0) return;
    after = rows[rows.length - 1]![0];
    const page: [number, ScanRow][] = [];
    for (const r of rows) {
      while (k < n && ws.pks[k]! < r[0]) k++;
      if (k < n && ws.pks[k] === r[0] && ws.isAlive(k)) page.push([k, r]);
    }
    yield page;
  }
}

/** Pages of [working-set index, row] for the live rows only, fetched by pk lists. */
function* alivePages(store: Store, ws: WorkingSet, columns: ScanColumns, where?: (i: number) => boolean, after = 0): Generator<[number, ScanRow][]> {
  const query = inListStatements(store.sqlite, (list) => `SELECT ${columns.select} FROM conversations WHERE pk IN (${list}) ORDER BY pk`);
  const n = ws.size;
  let i = 0;
  while (i < n && ws.pks[i]! <= after) i++;
  while (i < n) {
    const pks: number[] = [];
    const idx: number[] = [];
    for (; i < n && pks.length < SCAN_PAGE; i++) {
      if (!ws.isAlive(i) || (where && !where(i))) continue;
      pks.push(ws.pks[i]!);
      idx.push(i);
    }
    if (pks.length === 0) return;
    const rows = expandRows(query(pks.length).all(pks) as unknown[][], columns);
    const page: [number, ScanRow][] = [];
    rows.forEach((r, j) => {
      // Checked again: a stage may have dropped some of this page while consuming the previous one.
      if (ws.isAlive(idx[j]!)) page.push([idx[j]!, r]);
    });
    yield page;
  }
}

function expandRows(rows: unknown[][], columns: ScanColumns): ScanRow[] {
  const expand = columns.expand;
  if (expand === null) return rows as ScanRow[];
  for (let i = 0; i < rows.length; i++) rows[i] = expand(rows[i]!);
  return rows as ScanRow[];
}

/** What every conversation of one scan shares. */
interface ScanShared {
  readonly ws: WorkingSet;
  readonly chain: TransformChain;
  readonly oneMessages: Database.Statement;
  /** When the scan does not fetch whole rows: the columns it did not fetch come from this, a row at a time, on access. */
  readonly oneRow: Database.Statement | null;
  /** Bits (1 << ScanRow index) of the columns this scan fetched; the others come from `oneRow`. */
  readonly fetched: number;
}

/**
 * One scanned conversation; messages, tools and tags are parsed only when a stage reads them. A class, not an
 * object literal with getters: a scan makes one per live conversation, and per-object closures cost time and
 * garbage at a million.
 */
class Scanned implements ScannedConversation {
  private toolsValue: readonly unknown[] | null | undefined;
  private tagsValue: Record<string, unknown> | null | undefined;
  private messagesValue: readonly Message[] | undefined;
  private signalsValue: Signals | undefined;
  private fullRow: ScanRow | undefined;
  constructor(
    readonly i: number,
    private readonly r: ScanRow,
    private readonly s: ScanShared,
  ) {}
  private full(): ScanRow {
    if (this.s.oneRow === null) return this.r;
    return (this.fullRow ??= this.s.oneRow.get(this.r[0]) as ScanRow);
  }
  get pk(): number {
    return this.r[0];
  }
  get id(): string {
    return this.opt(1)!;
  }
  get status(): 'ok' | 'error' {
    return this.r[4];
  }
  /** A column: from this scan's row if it fetched it, else from the full row. */
  private opt<K extends 1 | 3 | 5 | 6 | 7 | 8 | 9 | 10 | 11>(col: K): ScanRow[K] {
    return this.s.fetched & (1 << col) ? this.r[col] : this.full()[col];
  }
  get createdAtMs(): number | null {
    return this.opt(5);
  }
  get model(): string | null {
    return this.opt(6);
  }
  get userId(): string | null {
    return this.opt(7);
  }
  get sessionId(): string | null {
    return this.opt(8);
  }
  get sourceFile(): string {
    return this.opt(10);
  }
  get sourceLine(): number {
    return this.opt(11);
  }
  get tools(): readonly unknown[] | null {
    if (this.toolsValue === undefined) {
      const t = this.opt(3);
      this.toolsValue = t === null ? null : (JSON.parse(t) as unknown[]);
    }
    return this.toolsValue;
  }
  get tags(): Readonly<Record<string, unknown>> | null {
    if (this.tagsValue === undefined) {
      const t = this.opt(9);
      this.tagsValue = t === null ? null : (JSON.parse(t) as Record<string, unknown>);
    }
    return this.tagsValue;
  }
  get messages(): readonly Message[] {
    if (this.messagesValue === undefined) {
      let m = JSON.parse(this.r[2] ?? (this.s.oneMessages.get(this.r[0]) as string)) as readonly Message[];
      for (const t of this.s.chain.transforms) m = t(m, this);
      this.messagesValue = m;
    }
    return this.messagesValue;
  }
  /**
   * Transforms only add or remove system messages and rewrite text, but a removed trailing system message
   * changes the last role: the stored columns are exact only while no transform has run.
   */
  private exactColumns(): boolean {
    return this.s.chain.transforms.length === 0 && this.r[13] !== null;
  }
  get lastRole(): string | null {
    if (this.exactColumns()) return this.r[13];
    const m = this.messages;
    return m.length === 0 ? null : m[m.length - 1]!.role;
  }
  get assistantTurns(): number {
    if (this.exactColumns()) return this.r[12];
    return this.messages.reduce((c, m) => c + (m.role === 'assistant' ? 1 : 0), 0);
  }
  get signals(): Signals {
    if (this.signalsValue === undefined) {
      this.signalsValue = (this.s.chain.textTransformed ? null : signalsFromStored(this.r[14])) ?? signalsFromMessages(this.messages);
    }
    return this.signalsValue;
  }
}

interface ChunkScanShared {
  /** The whole row, for what a stage reads beyond the chunk's columns, and how it is scanned. */
  readonly fullRow: Database.Statement;
  readonly rowShared: ScanShared;
}

/**
 * One conversation of a scan read from a chunk of small columns (pipeline/columns.ts). Only lean scans come
 * here, so the signals are always the stored ones; anything else a stage reads (text, tools, tags, model, …) is
 * the conversation's whole row, fetched when first asked for.
 */
class ChunkScanned implements ScannedConversation {
  private rowScan: Scanned | undefined;
  constructor(
    readonly i: number,
    private readonly ch: ColumnChunk,
    private readonly r: number,
    private readonly s: ChunkScanShared,
  ) {}
  private row(): Scanned {
    return (this.rowScan ??= new Scanned(this.i, this.s.fullRow.get(this.pk) as ScanRow, this.s.rowShared));
  }
  get pk(): number {
    return this.ch.pk[this.r]!;
  }
  get id(): string {
    return this.ch.ids()[this.r]!;
  }
  get status(): 'ok' | 'error' {
    return this.ch.error[this.r] ? 'error' : 'ok';
  }
  get createdAtMs(): number | null {
    const v = this.ch.createdAt[this.r]!;
    return Number.isNaN(v) ? null : v;
  }
  get sourceFile(): string {
    return this.ch.files[this.ch.sourceFile[this.r]!]!;
  }
  get sourceLine(): number {
    return this.ch.sourceLine[this.r]!;
  }
  get model(): string | null {
    return this.row().model;
  }
  get userId(): string | null {
    return this.row().userId;
  }
  get sessionId(): string | null {
    return this.row().sessionId;
  }
  get tags(): Readonly<Record<string, unknown>> | null {
    return this.row().tags;
  }
  get tools(): readonly unknown[] | null {
    return this.row().tools;
  }
  get messages(): readonly Message[] {
    return this.row().messages;
  }
  /** As Scanned: the stored role and turn count are exact only while no transform has run. */
  private exactColumns(): boolean {
    return this.s.rowShared.chain.transforms.length === 0 && this.ch.lastRole[this.r] !== NO_ROLE;
  }
  get lastRole(): string | null {
    return this.exactColumns() ? ROLES[this.ch.lastRole[this.r]!]! : this.row().lastRole;
  }
  get assistantTurns(): number {
    return this.exactColumns() ? this.ch.nAssistant[this.r]! : this.row().assistantTurns;
  }
  get signals(): Signals {
    return new ColumnSignals(this.ch, this.r);
  }
}

function persistDecisions(store: Store, runId: string, ws: WorkingSet, stageNames: readonly string[]): void {
  // A few JSON records per run (pipeline/decisions.ts), not a row per conversation (~0.3 s and ~16 MB at 200k).
  const stages = JSON.stringify(stageNames);
  const clear = store.sqlite.prepare(`DELETE FROM run_decision_sets WHERE run_id = ?`);
  const save = store.sqlite.prepare(
    `INSERT INTO run_decision_sets (run_id, chunk, first_pk, last_pk, n, stages, decisions) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  // Written chunk by chunk in one transaction (IMMEDIATE: the write lock first, so no stale snapshot can fail it).
  const write = store.sqlite.transaction(() => {
    clear.run(runId);
    let chunk = 0;
    for (const c of encodeDecisions(ws)) save.run(runId, chunk++, c.firstPk, c.lastPk, c.n, stages, c.decisions);
  });
  retryWhileBusy(() => write.immediate(), BUSY_MS);
}

