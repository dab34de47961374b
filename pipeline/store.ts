/**
 * The SQLite store: one file an analyst can open with any SQLite client. kysely gives typed queries for the
 * cold paths (stats, explain, runs); hot paths (ingest batches, run decisions) use prepared statements on the
 * same better-sqlite3 connection.
 */
import Database from 'better-sqlite3';
import type { Generated, Kysely } from 'kysely';
import { dirname, resolve } from 'node:path';
import { makeDirs } from './dirs.js';
import { JobError } from './errors.js';
import { ownerAlive } from './owner.js';

export interface IngestFilesTable {
  id: Generated<number>;
  pid: number | null;
  host: string | null;
  path: string;
  sha256: string;
  bytes: number;
  format: string;
  status: 'running' | 'complete';
  lines: number;
  inserted: number;
  already_present: number;
  blank: number;
  quarantined: number;
  started_at: string;
  finished_at: string | null;
  /** The file's stat when it was ingested whole and had been still for a while (store v12; pipeline/ingest.ts). */
  stat: string | null;
}

export interface ConversationsTable {
  pk: Generated<number>;
  id: string;
  content_sha256: string;
  format: string;
  status: 'ok' | 'error';
  messages: string;
  tools: string | null;
  created_at: string | null;
  created_at_ms: number | null;
  model: string | null;
  user_id: string | null;
  session_id: string | null;
  tags: string | null;
  metadata: string | null;
  extra: string | null;
  n_messages: number;
  n_assistant: number;
  last_role: string | null;
  /** pipeline/signals.ts: derived at ingest (or by the first run that needs them); null = not yet computed. */
  signals: string | null;
  source_file: string;
  source_line: number;
}

export interface FeedbackTable {
  pk: Generated<number>;
  event_key: string;
  log_id: string;
  name: string;
  value: number;
  created_at: string | null;
  created_at_ms: number | null;
  source_file: string;
  source_line: number;
}

export interface QuarantineTable {
  pk: Generated<number>;
  file: string;
  line: number;
  reason: string;
  detail: string | null;
  raw: Buffer;
  raw_sha256: string;
}

export interface RunsTable {
  id: string;
  name: string;
  config_json: string;
  config_sha256: string;
  seed: number;
  status: 'running' | 'succeeded' | 'failed' | 'dry_run';
  started_at: string;
  finished_at: string | null;
  out_dir: string | null;
  error: string | null;
  manifest_json: string | null;
  /** The process making the run (store v8; null for runs recorded before). */
  pid: number | null;
  host: string | null;
}

export interface RunStagesTable {
  run_id: string;
  idx: number;
  name: string;
  n_in: number;
  n_out: number;
  dropped_json: string;
  stats_json: string | null;
  ms: number;
}

export interface RunDecisionsTable {
  run_id: string;
  conv_pk: number;
  status: 'train' | 'test' | 'dropped';
  stage: string | null;
  stage_idx: number | null;
  reason: string | null;
  line: number | null;
  tokens: number | null;
}

export interface RunDecisionSetsTable {
  run_id: string;
  /** The set is cut into chunks of consecutive conversations (pipeline/decisions.ts): chunk 0, 1, … */
  chunk: number;
  first_pk: number;
  last_pk: number;
  n: number;
  /** JSON: the run's stage names. */
  stages: string;
  /** JSON: [[pk, stage index | null, reason | null, split, line | null, tokens | null], …] (pipeline/decisions.ts). */
  decisions: string;
}

export interface StoreSchema {
  ingest_files: IngestFilesTable;
  conversations: ConversationsTable;
  feedback: FeedbackTable;
  quarantine: QuarantineTable;
  runs: RunsTable;
  run_stages: RunStagesTable;
  run_decisions: RunDecisionsTable;
  run_decision_sets: RunDecisionSetsTable;
}

/**
 * Migrations in order; migration i brings user_version from i to i+1. Never edit a shipped one: append.
 * Primary keys are named `pk` so the conversation's own `id` (from the logs) stays a plain, unique column.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE ingest_files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    format TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'complete')),
    lines INTEGER NOT NULL DEFAULT 0,
    inserted INTEGER NOT NULL DEFAULT 0,
    already_present INTEGER NOT NULL DEFAULT 0,
    blank INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    finished_at TEXT
  );
  CREATE INDEX ingest_files_digest ON ingest_files (sha256, format, status);

  CREATE TABLE conversations (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    content_sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    messages TEXT NOT NULL,
    tools TEXT,
    created_at TEXT,
    created_at_ms INTEGER,
    model TEXT,
    user_id TEXT,
    session_id TEXT,
    tags TEXT,
    metadata TEXT,
    extra TEXT,
    n_messages INTEGER NOT NULL,
    n_assistant INTEGER NOT NULL,
    source_file TEXT NOT NULL,
    source_line INTEGER NOT NULL
  );
  CREATE INDEX conversations_created ON conversations (created_at_ms);

  CREATE TABLE feedback (
    pk INTEGER PRIMARY KEY,
    event_key TEXT NOT NULL UNIQUE,
    log_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    created_at TEXT,
    created_at_ms INTEGER,
    source_file TEXT NOT NULL,
    source_line INTEGER NOT NULL
  );
  CREATE INDEX feedback_log ON feedback (log_id, name);

  CREATE TABLE quarantine (
    pk INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT,
    raw BLOB NOT NULL,
    raw_sha256 TEXT NOT NULL,
    UNIQUE (file, line, raw_sha256)
  );

  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config_json TEXT NOT NULL,
    config_sha256 TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    out_dir TEXT,
    error TEXT,
    manifest_json TEXT
  );
  CREATE INDEX runs_started ON runs (started_at);

  CREATE TABLE run_stages (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    n_in INTEGER NOT NULL,
    n_out INTEGER NOT NULL,
    dropped_json TEXT NOT NULL,
    stats_json TEXT,
    ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, idx)
  ) WITHOUT ROWID;

  CREATE TABLE run_decisions (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    conv_pk INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('train', 'test', 'dropped')),
    stage TEXT,
    stage_idx INTEGER,
    reason TEXT,
    line INTEGER,
    tokens INTEGER,
    PRIMARY KEY (run_id, conv_pk)
  ) WITHOUT ROWID;
  `,
  // v2: caches reused by later runs (issue 6), keyed by content digests so they can never go stale.
  `
  CREATE TABLE token_cache (
    encoding TEXT NOT NULL,
    example_sha256 TEXT NOT NULL,
    total INTEGER NOT NULL,
    assistant INTEGER NOT NULL,
    PRIMARY KEY (encoding, example_sha256)
  ) WITHOUT ROWID;
  `,
  // v3: which process owns an in-progress file, so a concurrent ingest of the same file never takes over a live
  // one's progress row (only a dead process's row is resumed).
  `
  ALTER TABLE ingest_files ADD COLUMN pid INTEGER;
  ALTER TABLE ingest_files ADD COLUMN host TEXT;
  `,
  // v4: the last message's role, so filter can decide require_assistant_last without parsing messages.
  `
  ALTER TABLE conversations ADD COLUMN last_role TEXT;
  UPDATE conversations SET last_role = json_extract(messages, '$[#-1].role');
  `,
  // v5: per-conversation signals (pipeline/signals.ts), so runs need not re-read every conversation's text.
  // Rows ingested before this are filled in by the first run that needs them.
  `
  ALTER TABLE conversations ADD COLUMN signals TEXT;
  `,
  // v6: a run's decisions as JSON records of CHUNK conversations (pipeline/decisions.ts) instead of a row per
  // conversation. The rows of runs recorded before stay (run_decision_rows), and the run_decisions view gives SQL
  // both as before: a row per conversation and run.
  `
  ALTER TABLE run_decisions RENAME TO run_decision_rows;
  CREATE TABLE run_decision_sets (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    chunk INTEGER NOT NULL,
    first_pk INTEGER NOT NULL,
    last_pk INTEGER NOT NULL,
    n INTEGER NOT NULL,
    stages TEXT NOT NULL,
    decisions TEXT NOT NULL,
    PRIMARY KEY (run_id, chunk)
  );
  CREATE VIEW run_decisions (run_id, conv_pk, status, stage, stage_idx, reason, line, tokens) AS
    SELECT run_id, conv_pk, status, stage, stage_idx, reason, line, tokens FROM run_decision_rows
    UNION ALL
    SELECT s.run_id,
      json_extract(j.value, '$[0]'),
      CASE WHEN json_extract(j.value, '$[1]') IS NOT NULL THEN 'dropped' WHEN json_extract(j.value, '$[3]') = 2 THEN 'test' ELSE 'train' END,
      json_extract(s.stages, '$[' || json_extract(j.value, '$[1]') || ']'),
      json_extract(j.value, '$[1]'),
      json_extract(j.value, '$[2]'),
      json_extract(j.value, '$[4]'),
      json_extract(j.value, '$[5]')
    FROM run_decision_sets s, json_each(s.decisions) j;
  `,
  // v7: drop two indexes no query uses (the feedback aggregation scans by pk and sorts; stats groups by name),
  // which every ingest paid for on each row — log ids are random, so each insert landed on a random page.
  `
  DROP INDEX IF EXISTS conversations_created;
  DROP INDEX IF EXISTS feedback_log;
  `,
  // v8: who runs a run (process id and host), so a run whose process died (kill -9, out of memory) is recognised
  // and marked failed by the next run instead of staying 'running' for ever.
  `
  ALTER TABLE runs ADD COLUMN pid INTEGER;
  ALTER TABLE runs ADD COLUMN host TEXT;
  `,
  // v9: what emit made of each conversation, kept for the run whose files are in each output folder so that the
  // next run into it copies those lines instead of building them again (pipeline/emit-reuse.ts).
  `
  CREATE TABLE emit_reuse (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    chunk INTEGER NOT NULL,
    out_dir TEXT NOT NULL,
    render_key TEXT NOT NULL,
    n INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    prompts TEXT,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, chunk)
  );
  CREATE INDEX emit_reuse_out_dir ON emit_reuse (out_dir);
  `,
  // v10: the conversations' small columns in chunks of consecutive pks, column by column (pipeline/columns.ts),
  // so runs read their working set and lean scans from a few blobs instead of a row per conversation.
  `
  CREATE TABLE conversation_columns (
    stamp TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    n INTEGER NOT NULL,
    ids TEXT NOT NULL,
    files TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (stamp, chunk)
  );
  `,
  // v11: the latest-feedback fold of each feedback name, carried on by each run (pipeline/feedback.ts).
  `
  CREATE TABLE feedback_latest (
    name TEXT PRIMARY KEY,
    stamp TEXT NOT NULL,
    max_feedback_pk INTEGER NOT NULL,
    max_conversation_pk INTEGER NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    orphans TEXT NOT NULL
  );
  `,
  // v12: a wholly ingested file's stat (device, inode, size, modification and change times), so an input listed
  // again unchanged — a nightly config that lists all history — is recognised without reading it (ingest.ts).
  `
  ALTER TABLE ingest_files ADD COLUMN stat TEXT;
  `,
  // v13: no table changes. conversations.content_sha256 of a conversation logged with its own id is now the digest
  // of its stored texts (records.ts storedDigest), not of its canonical JSON: an older version comparing canonical
  // digests would take every such line met again for an id conflict, so it must refuse the store.
  `
  SELECT 1;
  `,
  // v14: the unique keys of conversations (id) and feedback (event_key) become named indexes instead of column
  // constraints, so that a first, large ingest can drop them and build them once at its end (ingest.ts
  // BulkLoad): a unique index on random keys, kept up row by row, rewrote most of its pages at every commit.
  // The tables are rebuilt (SQLite cannot drop a constraint in place), keeping every row and pk. bulk_load
  // names the process loading without those indexes, so that a load it left unfinished is recognised.
  `
  CREATE TABLE conversations_v14 (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    messages TEXT NOT NULL,
    tools TEXT,
    created_at TEXT,
    created_at_ms INTEGER,
    model TEXT,
    user_id TEXT,
    session_id TEXT,
    tags TEXT,
    metadata TEXT,
    extra TEXT,
    n_messages INTEGER NOT NULL,
    n_assistant INTEGER NOT NULL,
    source_file TEXT NOT NULL,
    source_line INTEGER NOT NULL,
    last_role TEXT,
    signals TEXT
  );
  INSERT INTO conversations_v14 (pk, id, content_sha256, format, status, messages, tools, created_at, created_at_ms, model,
      user_id, session_id, tags, metadata, extra, n_messages, n_assistant, source_file, source_line, last_role, signals)
    SELECT pk, id, content_sha256, format, status, messages, tools, created_at, created_at_ms, model,
      user_id, session_id, tags, metadata, extra, n_messages, n_assistant, source_file, source_line, last_role, signals
    FROM conversations ORDER BY pk;
  DROP TABLE conversations;
  ALTER TABLE conversations_v14 RENAME TO conversations;
  CREATE UNIQUE INDEX conversations_id ON conversations (id);

  CREATE TABLE feedback_v14 (
    pk INTEGER PRIMARY KEY,
    event_key TEXT NOT NULL,
    log_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    created_at TEXT,
    created_at_ms INTEGER,
    source_file TEXT NOT NULL,
    source_line INTEGER NOT NULL
  );
  INSERT INTO feedback_v14 (pk, event_key, log_id, name, value, created_at, created_at_ms, source_file, source_line)
    SELECT pk, event_key, log_id, name, value, created_at, created_at_ms, source_file, source_line FROM feedback ORDER BY pk;
  DROP TABLE feedback;
  ALTER TABLE feedback_v14 RENAME TO feedback;
  CREATE UNIQUE INDEX feedback_event_key ON feedback (event_key);

  CREATE TABLE bulk_load (
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL
  );
  `,
];

/** The unique indexes a bulk load drops and builds again at its end (v14; ingest.ts BulkLoad). */
export const UNIQUE_KEY_INDEXES = `
  CREATE UNIQUE INDEX IF NOT EXISTS conversations_id ON conversations (id);
  CREATE UNIQUE INDEX IF NOT EXISTS feedback_event_key ON feedback (event_key);
`;

export const SCHEMA_VERSION = MIGRATIONS.length;

export interface Store {
  readonly path: string;
  readonly sqlite: Database.Database;
  /**
   * The typed query builder over the same connection, loaded on first use: only `stats` queries through it,
   * and loading kysely costs every other command ~85 ms of start-up.
   */
  kysely(): Promise<Kysely<StoreSchema>>;
  close(): Promise<void>;
}

/** Which store to use: `--db` > the config's `store` > env LOGCURATE_DB > ./curation.db (SPEC §1). */
export function resolveStorePath(flag?: string, fromConfig?: string): string {
  return resolve(flag ?? fromConfig ?? (process.env.LOGCURATE_DB || 'curation.db'));
}

/** How long a statement waits for another connection's lock (SQLite's busy timeout), and writes retried on busy. */
export const BUSY_MS = 30_000;

export function openStore(path: string): Store {
  const abs = resolve(path);
  let sqlite: Database.Database;
  try {
    makeDirs(dirname(abs));
    sqlite = new Database(abs);
  } catch (err) {
    throw new JobError(`${abs}: cannot open the store: ${(err as Error).message}`);
  }
  try {
    sqlite.pragma(`busy_timeout = ${BUSY_MS}`);
    // 16 KB pages for a new store (a no-op on an existing one): rows carry kilobytes of message JSON, and on the
    // 200k bench ingest took 7.8 s instead of 9.1 s with 4 KB pages, runs unchanged. Must precede WAL mode.
    sqlite.pragma('page_size = 16384');
    if (loadingWithRollbackJournal(sqlite, abs)) sqlite.pragma('synchronous = FULL');
    else useWal(sqlite);
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('cache_size = -65536');
    sqlite.pragma('temp_store = MEMORY');
    migrate(sqlite, abs);
  } catch (err) {
    sqlite.close();
    // SQLite's own messages ("file is not a database", "database is locked") do not say which file.
    if (err instanceof JobError) throw err;
    throw new JobError(`${abs}: cannot open the store: ${(err as Error).message}`);
  }
  let db: Kysely<StoreSchema> | null = null;
  return {
    path: abs,
    sqlite,
    kysely: async () => {
      if (!db) {
        const { Kysely: KyselyClass, SqliteDialect } = await import('kysely');
        db = new KyselyClass<StoreSchema>({ dialect: new SqliteDialect({ database: sqlite }) });
      }
      return db;
    },
    // kysely's destroy closes the better-sqlite3 handle too.
    close: async () => {
      if (db) await db.destroy();
      else sqlite.close();
    },
  };
}

/**
 * The store's usual journal: WAL, so that readers never wait for a writer nor a writer for readers; synchronous
 * NORMAL, which in WAL mode is durable against process crashes (kill -9): only an OS crash can lose the last commit.
 */
export function useWal(sqlite: Database.Database): void {
  sqlite.pragma(`busy_timeout = ${BUSY_MS}`);
  // Two processes creating a new store at once race for the exclusive lock this needs, and SQLite reports that
  // as SQLITE_BUSY without consulting the busy handler: retry it for as long as the busy timeout would wait.
  retryWhileBusy(() => sqlite.pragma('journal_mode = WAL'), BUSY_MS);
  sqlite.pragma('synchronous = NORMAL');
}

/**
 * The busy timeout of a bulk load with a rollback journal: its commits wait for every read under way to end, and
 * an outside connection may hold one for long (a transaction left open, a cursor not read to its end).
 */
const LOAD_BUSY_MS = 10 * 60_000;

/** How long a commit of such a load waits before it says that it is waiting for reads. */
const LOAD_QUIET_MS = 2_000;

/** The stores this process is bulk-loading with a rollback journal (absolute paths; see useRollbackJournal). */
const rollbackLoads = new Set<string>();

/**
 * For a bulk load (bulk-load.ts, a store's first ingest, which only appends): a rollback journal instead of WAL,
 * so that SQLite writes each new page once, into the file, instead of into the WAL and then again into the file
 * at each checkpoint (cold 200k ingest ~8 % faster: README, the eighteenth round). synchronous FULL, as SQLite
 * advises outside WAL, so that an OS crash cannot corrupt the store either. Only when this is the only
 * connection to the store: SQLite refuses to leave WAL otherwise (false: the load goes on in WAL).
 *
 * Out of WAL, a reader and the loader wait for each other: a read waits out a commit of the loader (a group of a
 * few thousand lines), under the busy timeout, and the loader's writes wait out the reads under way, for up to
 * LOAD_BUSY_MS (commitPastReads says so). A command opening the store meanwhile leaves its journal alone
 * (openStore); endRollbackJournal returns it to WAL.
 */
export function useRollbackJournal(sqlite: Database.Database): boolean {
  try {
    if (sqlite.pragma('journal_mode = DELETE', { simple: true }) !== 'delete') return false;
  } catch (err) {
    if (isBusy(err)) return false;
    throw err;
  }
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma(`busy_timeout = ${LOAD_BUSY_MS}`);
  rollbackLoads.add(sqlite.name);
  return true;
}

/**
 * COMMIT. In a bulk load with a rollback journal, a commit must wait for the reads under way (WAL commits never
 * do): one still waiting after LOAD_QUIET_MS says so through `say`, and goes on waiting for up to LOAD_BUSY_MS
 * (SQLite keeps a transaction whose COMMIT found the store busy open, to be committed again).
 */
export function commitPastReads(sqlite: Database.Database, say: (message: string) => void): void {
  if (!rollbackLoads.has(sqlite.name)) {
    sqlite.exec('COMMIT');
    return;
  }
  sqlite.pragma(`busy_timeout = ${LOAD_QUIET_MS}`);
  try {
    sqlite.exec('COMMIT');
    return;
  } catch (err) {
    if (!isBusy(err)) throw err;
  } finally {
    sqlite.pragma(`busy_timeout = ${LOAD_BUSY_MS}`);
  }
  say(
    `${sqlite.name}: waiting for other connections to end their reads of the store (up to ${LOAD_BUSY_MS / 60_000} minutes): ` +
      `its first ingest writes with a rollback journal and commits only between reads; LOGCURATE_INGEST_BULK=0 loads in WAL instead, beside any reads`,
  );
  sqlite.exec('COMMIT');
}

/**
 * Back to WAL after a bulk load. If readers keep the store busy past the busy timeout, it is left as it is: the
 * next command to open the store switches it (openStore), since no load is underway any more.
 */
export function endRollbackJournal(sqlite: Database.Database): void {
  rollbackLoads.delete(sqlite.name);
  try {
    useWal(sqlite);
  } catch (err) {
    if (!isBusy(err)) throw err;
  }
}

/**
 * Whether the store is in a rollback journal for a bulk load that is still underway — this process's own, or one
 * whose process lives — so that opening it must not switch it back to WAL: that would wait for the loader's write
 * lock and then make it write every page twice again. Any other store out of WAL (a load whose process died,
 * leaving a hot journal that SQLite rolls back on this first read) goes back to WAL.
 */
function loadingWithRollbackJournal(sqlite: Database.Database, path: string): boolean {
  if (rollbackLoads.has(path)) return true;
  if (sqlite.pragma('journal_mode', { simple: true }) === 'wal') return false;
  if (sqlite.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'bulk_load'`).get() === undefined) return false;
  const owner = sqlite.prepare(`SELECT pid, host FROM bulk_load LIMIT 1`).get() as { pid: number; host: string } | undefined;
  return owner !== undefined && ownerAlive(owner.pid, owner.host);
}

/**
 * Rows of `select` (a SELECT whose first column is pk, ending in `WHERE pk > ?` or `AND pk > ?`, without ORDER
 * BY or LIMIT) in pk order, read a page at a time: faster than iterate() row by row (~0.3 against ~0.7 µs a row),
 * and only a page is held at once. `from`: start after this pk.
 */
export function* rowsByPk<Row extends readonly unknown[]>(sqlite: Database.Database, select: string, params: readonly unknown[] = [], page = 8192, from = -Infinity): Generator<Row> {
  const stmt = sqlite.prepare(`${select} ORDER BY pk LIMIT ${page}`).raw();
  let after = from;
  for (;;) {
    const rows = stmt.all(...params, after) as Row[];
    for (const r of rows) yield r;
    if (rows.length < page) return;
    after = rows[rows.length - 1]![0] as number;
  }
}

/**
 * Statements with an IN list of bound values: `sql(placeholders)` prepared once per list length, returning raw
 * rows (a scan's pages, id lookups, token counts).
 */
export function inListStatements(sqlite: Database.Database, sql: (placeholders: string) => string): (size: number) => Database.Statement {
  const statements = new Map<number, Database.Statement>();
  return (size) => {
    let st = statements.get(size);
    if (!st) statements.set(size, (st = sqlite.prepare(sql(`${'?,'.repeat(size - 1)}?`)).raw()));
    return st;
  };
}

/** SQLite reports the database busy or locked (another process holds the lock). */
function isBusy(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
}

/**
 * A cache write (token counts, signals, column chunks, the feedback fold, emit's outcomes): retried while the
 * store is busy for up to `ms`, then skipped — false — never failing the run. A later run writes it instead.
 */
export function cacheWrite(write: () => unknown, ms = 2_000): boolean {
  try {
    retryWhileBusy(write, ms);
    return true;
  } catch (err) {
    if (!isBusy(err)) throw err;
    return false;
  }
}

/** Runs `fn`, retrying every 20 ms while SQLite reports the database busy or locked, up to `ms`. */
export function retryWhileBusy<T>(fn: () => T, ms: number): T {
  const until = Date.now() + ms;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err)) throw err;
      if (Date.now() >= until) throw err;
      Atomics.wait(pause, 0, 0, 20);
    }
  }
}

function migrate(sqlite: Database.Database, path: string): void {
  const current = sqlite.pragma('user_version', { simple: true }) as number;
  if (current === SCHEMA_VERSION) return;
  if (current > SCHEMA_VERSION) {
    throw new JobError(`${path}: store schema version ${current} is newer than this logcurate (${SCHEMA_VERSION}); upgrade logcurate`);
  }
  // IMMEDIATE takes the write lock first, so two processes opening a new store at once migrate it once.
  const run = sqlite.transaction((): number => {
    const v = sqlite.pragma('user_version', { simple: true }) as number;
    for (let i = v; i < MIGRATIONS.length; i++) sqlite.exec(MIGRATIONS[i]!);
    sqlite.pragma(`user_version = ${MIGRATIONS.length}`);
    return v;
  });
  const from = run.immediate();
  if (from > 0 && from < 14) compactAfterRebuild(sqlite);
}

/**
 * v14 rebuilt the two largest tables, leaving the old copies' pages free inside the file: a 200k store grew from
 * 286 to 498 MB. Those pages would only be reused as later ingests add rows, so the store is vacuumed once, with its
 * temporary copy on disk (temp_store is MEMORY otherwise: a million conversations are more than a GB). A store
 * another connection is using cannot be vacuumed; it keeps the free pages, which later rows reuse.
 */
function compactAfterRebuild(sqlite: Database.Database): void {
  const free = (sqlite.pragma('freelist_count', { simple: true }) as number) * (sqlite.pragma('page_size', { simple: true }) as number);
  if (free < 16 << 20) return;
  sqlite.pragma('temp_store = DEFAULT');
  try {
    sqlite.exec('VACUUM');
  } catch (err) {
    if (!isBusy(err)) throw err;
  } finally {
    sqlite.pragma('temp_store = MEMORY');
  }
}
