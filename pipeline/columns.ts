/**
 * The conversations' small columns kept a second time, column by column, in chunks of CHUNK consecutive pks
 * (`conversation_columns`): status, assistant turns, last role, created_at, source, id and the signals decoded
 * to numbers. A run reads its working set and the lean scans of dedupe, rebalance_refusals, split and lineage
 * from these few blobs instead of materialising a SQLite row per conversation for each of them — at 200k that was
 * ~0.75 s of every run (issue 6), on the first night and every night after.
 *
 * Never stale: conversation rows are never rewritten or deleted, and a new row's pk is always above every
 * existing one (INTEGER PRIMARY KEY: max + 1). So a chunk whose pk range ends at or below the store's highest pk
 * is closed — no row can ever join it — and what it holds is a pure function of its rows and of the code that
 * computes signals. It is stamped with that code's hash and this layout (COLUMNS_STAMP); a chunk with another
 * stamp is ignored and built again. The open chunk at the top (rows still arriving) is never kept: scans read
 * those rows, and any beyond the chunks, from the table as before.
 *
 * Ingest builds the chunks it fills itself, from the rows it has in hand (ChunkCollector). Any other chunk is
 * built by the first run that finds it missing, one pk range at a time, each in its own short write; another
 * process holding the write lock only means that chunk is built by a later run.
 */
import type Database from 'better-sqlite3';
import { ROLES } from '../schemas/log-record.js';
import { decodeSignalsInto, encodeSignals, signalsFromStored, SIGNALS_STAMP, type SignalColumns } from './signals.js';
import type { Message } from './stage.js';
import { setSignalRow } from './signal-row.js';
import { cacheWrite, type Store } from './store.js';

/** Pks per chunk: chunk c holds the rows with c·CHUNK < pk ≤ (c+1)·CHUNK. */
export const CHUNK = 16_384;

const LAYOUT = 1;
/** Which code a chunk was built by: this layout, the roles' codes, and the signals' own stamp. */
export const COLUMNS_STAMP = `${LAYOUT}:${ROLES.join(',')}:${SIGNALS_STAMP}`;

/** lastRole when the conversation has no messages. */
export const NO_ROLE = 255;

/** One decoded chunk: n rows in pk order. */
export interface ColumnChunk extends SignalColumns {
  readonly chunk: number;
  readonly n: number;
  readonly pk: Int32Array;
  readonly error: Uint8Array;
  readonly nAssistant: Int32Array;
  /** Index into ROLES, or NO_ROLE. */
  readonly lastRole: Uint8Array;
  /** NaN when unknown. */
  readonly createdAt: Float64Array;
  readonly sourceLine: Int32Array;
  /** Index into `files`. */
  readonly sourceFile: Uint16Array;
  readonly files: readonly string[];
  /** The conversations' ids, parsed when first asked for. */
  ids(): readonly string[];
}

/** Bytes per row of a chunk's blob. */
const ROW_BYTES = 8 * 2 + 8 * 3 + 8 + 4 * 3 + 4 * 6 + 2 + 4;

function layout(buf: ArrayBufferLike, byteOffset: number, n: number): Omit<ColumnChunk, 'chunk' | 'n' | 'files' | 'ids'> {
  let at = byteOffset;
  const view = <T>(C: new (b: ArrayBufferLike, o: number, l: number) => T, per: number, bytes: number): T => {
    const v = new C(buf, at, n * per);
    at += n * per * bytes;
    return v;
  };
  return {
    createdAt: view(Float64Array, 1, 8),
    firstUser: view(Float64Array, 1, 8),
    keyHash: view(Float64Array, 3, 8),
    pk: view(Int32Array, 1, 4),
    nAssistant: view(Int32Array, 1, 4),
    sourceLine: view(Int32Array, 1, 4),
    keyLength: view(Int32Array, 3, 4),
    users: view(Int32Array, 1, 4),
    promptHi: view(Uint32Array, 1, 4),
    promptLo: view(Uint32Array, 1, 4),
    sourceFile: view(Uint16Array, 1, 2),
    error: view(Uint8Array, 1, 1),
    lastRole: view(Uint8Array, 1, 1),
    refusal: view(Uint8Array, 1, 1),
  };
}

/** SQL giving a last role's code: its index in ROLES, NO_ROLE when there is none (the chunks and the table agree). */
export const ROLE_CODE = `CASE last_role ${ROLES.map((r, k) => `WHEN '${r}' THEN ${k}`).join(' ')} ELSE ${NO_ROLE} END`;

/** A row as a chunk is built from it: pk, error, n_assistant, role code, created_at_ms, source line and file, id, signals. */
type SourceRow = [number, number, number, number, number | null, number, string, string, string | null];

/** A last role's code, as ROLE_CODE gives it in SQL. */
function roleCode(role: string | null): number {
  const k = role === null ? -1 : ROLES.indexOf(role as (typeof ROLES)[number]);
  return k === -1 ? NO_ROLE : k;
}

/** LOGCURATE_COLUMNS=0: runs neither build nor read chunks (everything from the table, as before them). */
function disabled(): boolean {
  return process.env.LOGCURATE_COLUMNS === '0';
}

/** Builds every closed chunk the store lacks (or holds under another stamp). Returns how many were built. */
export function buildColumns(store: Store): number {
  if (disabled()) return 0;
  const sqlite = store.sqlite;
  const maxPk = sqlite.prepare(`SELECT coalesce(max(pk), 0) FROM conversations`).pluck().get() as number;
  const closed = Math.floor(maxPk / CHUNK);
  if (closed === 0) return 0;
  const have = new Set(sqlite.prepare(`SELECT chunk FROM conversation_columns WHERE stamp = ?`).pluck().all(COLUMNS_STAMP) as number[]);
  if (have.size >= closed) return 0;
  // Chunks of other code are never read again. (A run of that other code still reading them falls back to the
  // table for a chunk it no longer finds.)
  if (!cacheWrite(() => sqlite.prepare(`DELETE FROM conversation_columns WHERE stamp <> ?`).run(COLUMNS_STAMP))) return 0;
  const rows = sqlite.prepare(
    `SELECT pk, status = 'error', n_assistant, ${ROLE_CODE}, created_at_ms, source_line, source_file, id, signals
     FROM conversations WHERE pk > ? AND pk <= ? ORDER BY pk`,
  ).raw();
  const messagesOf = sqlite.prepare(`SELECT messages FROM conversations WHERE pk = ?`).pluck();
  const save = sqlite.prepare(SAVE_CHUNK);
  let built = 0;
  for (let c = 0; c < closed; c++) {
    if (have.has(c)) continue;
    const list = rows.all(c * CHUNK, (c + 1) * CHUNK) as SourceRow[];
    const chunk = new ChunkBuilder(list.length);
    for (const [pk, error, nAssistant, role, createdAt, sourceLine, sourceFile, id, signals] of list) {
      const k = chunk.push(pk, error, nAssistant, role, createdAt, sourceLine, sourceFile, id);
      // Signals are computed here for rows that have none yet (or from other code), as a signals scan would.
      const text = signalsFromStored(signals) !== null ? signals! : encodeSignals(JSON.parse(messagesOf.get(pk) as string) as Message[]);
      decodeSignalsInto(text, chunk.columns, k);
    }
    const { n, ids, files, data } = chunk.finish();
    // When another process holds the write lock for long, this chunk and the rest wait for a later run.
    if (!cacheWrite(() => save.run(COLUMNS_STAMP, c, n, ids, files, data))) break;
    built++;
  }
  return built;
}

const SAVE_CHUNK = `INSERT OR REPLACE INTO conversation_columns (stamp, chunk, n, ids, files, data) VALUES (?, ?, ?, ?, ?, ?)`;

/**
 * One chunk's blob and lists, filled a row at a time in pk order; n is known up front (it places the columns).
 * The caller puts each row's signals into `columns` at the index push gives.
 */
class ChunkBuilder {
  private readonly data: Buffer;
  readonly columns: ReturnType<typeof layout>;
  private readonly files: string[] = [];
  private readonly fileIndex = new Map<string, number>();
  private readonly ids: string[];
  private k = 0;

  constructor(private readonly n: number) {
    this.data = Buffer.alloc(n * ROW_BYTES);
    this.columns = layout(this.data.buffer, this.data.byteOffset, n);
    this.ids = new Array<string>(n);
  }

  push(
    pk: number,
    error: number,
    nAssistant: number,
    role: number,
    createdAt: number | null,
    sourceLine: number,
    sourceFile: string,
    id: string,
  ): number {
    const { columns: c, k } = this;
    c.pk[k] = pk;
    c.error[k] = error;
    c.nAssistant[k] = nAssistant;
    c.lastRole[k] = role;
    c.createdAt[k] = createdAt ?? NaN;
    c.sourceLine[k] = sourceLine;
    let f = this.fileIndex.get(sourceFile);
    if (f === undefined) {
      f = this.files.length;
      if (f > 0xffff) throw new Error('internal: more source files in one chunk than its column holds');
      this.files.push(sourceFile);
      this.fileIndex.set(sourceFile, f);
    }
    c.sourceFile[k] = f;
    this.ids[k] = id;
    return this.k++;
  }

  finish(): { n: number; ids: string; files: string; data: Buffer } {
    if (this.k !== this.n) throw new Error(`internal: a chunk of ${this.n} rows was given ${this.k}`);
    return { n: this.n, ids: JSON.stringify(this.ids), files: JSON.stringify(this.files), data: this.data };
  }
}

/** A conversations row's small columns as ingest inserted it. */
export interface InsertedRow {
  readonly pk: number;
  readonly id: string;
  readonly status: string;
  readonly nAssistant: number;
  readonly lastRole: string | null;
  readonly createdAtMs: number | null;
  readonly sourceFile: string;
  readonly sourceLine: number;
  /** Its signals text as numbers (signal-row.ts), decoded by ingest's worker. */
  readonly signalRow: readonly number[];
}

/**
 * The chunks an ingest fills, built from the rows as it inserts them, so that the first run after it need not
 * read every row back for them (~0.45 s of that run at 200k; issue 6). Only a chunk whose every pk this collector
 * saw inserted, in order, is built: rows from before this ingest, or another process inserting in between, leave
 * that chunk to the first run, as before. Each row goes into the chunk's blob as it comes. A chunk is saved where
 * its last row is inserted — in the same transaction, so a rollback takes both; `reset` then forgets the rows
 * collected since.
 */
export class ChunkCollector {
  private chunk: ChunkBuilder | null = null;
  /** The pk that continues the chunk being collected. */
  private next = 0;
  private readonly save: Database.Statement;

  private constructor(sqlite: Database.Database) {
    this.save = sqlite.prepare(SAVE_CHUNK);
  }

  /** A collector for this store, or null when chunks are turned off (LOGCURATE_COLUMNS=0). */
  static open(sqlite: Database.Database): ChunkCollector | null {
    return disabled() ? null : new ChunkCollector(sqlite);
  }

  /** A row just inserted (inside the writing transaction). */
  add(r: InsertedRow): void {
    if (this.chunk === null || r.pk !== this.next) {
      // A chunk is collected from its first pk only.
      this.chunk = (r.pk - 1) % CHUNK === 0 ? new ChunkBuilder(CHUNK) : null;
      if (this.chunk === null) return;
    }
    const k = this.chunk.push(r.pk, r.status === 'error' ? 1 : 0, r.nAssistant, roleCode(r.lastRole), r.createdAtMs, r.sourceLine, r.sourceFile, r.id);
    setSignalRow(r.signalRow, this.chunk.columns, k);
    this.next = r.pk + 1;
    if (r.pk % CHUNK !== 0) return;
    const { n, ids, files, data } = this.chunk.finish();
    this.save.run(COLUMNS_STAMP, r.pk / CHUNK - 1, n, ids, files, data);
    this.chunk = null;
  }

  /** The transaction the rows since the last commit were inserted in was rolled back. */
  reset(): void {
    this.chunk = null;
  }
}

/** The chunks a run reads: 0..count-1, all present under this code's stamp, as of the run's snapshot. */
export class ColumnSource {
  private readonly get: Database.Statement;
  private readonly getIds: Database.Statement;
  private readonly idsInRange: Database.Statement;
  private constructor(
    sqlite: Database.Database,
    /** Chunks 0..count-1 are present; rows with pk above `coveredPk` come from the table. */
    readonly count: number,
  ) {
    this.get = sqlite.prepare(`SELECT n, files, data FROM conversation_columns WHERE chunk = ? AND stamp = ?`);
    this.getIds = sqlite.prepare(`SELECT ids FROM conversation_columns WHERE chunk = ? AND stamp = ?`).pluck();
    this.idsInRange = sqlite.prepare(`SELECT id FROM conversations WHERE pk >= ? AND pk <= ? ORDER BY pk`).pluck();
  }

  get coveredPk(): number {
    return this.count * CHUNK;
  }

  /** The run's view: the leading run of chunks the store holds (read inside the run's snapshot). */
  static open(sqlite: Database.Database): ColumnSource {
    if (disabled()) return new ColumnSource(sqlite, 0);
    const have = sqlite.prepare(`SELECT chunk FROM conversation_columns WHERE stamp = ? ORDER BY chunk`).pluck().all(COLUMNS_STAMP) as number[];
    let count = 0;
    while (count < have.length && have[count] === count) count++;
    return new ColumnSource(sqlite, count);
  }

  /** Chunk c, or null if it is gone (removed by a run of other code since this run's snapshot). */
  chunk(c: number): ColumnChunk | null {
    const row = this.get.get(c, COLUMNS_STAMP) as { n: number; files: string; data: Buffer } | undefined;
    if (!row) return null;
    if (row.data.length !== row.n * ROW_BYTES) throw new Error(`internal: conversation_columns chunk ${c} is ${row.data.length} bytes for ${row.n} rows`);
    // Copied to a fresh buffer: a blob may start at any byte, Float64Array wants a multiple of 8.
    const cols = layout(new Uint8Array(row.data).buffer, 0, row.n);
    // The ids (~0.6 MB of text a chunk) only when asked: most scans never read them, and selecting them cost each
    // scan of a 200k store ~10 ms. A chunk removed meanwhile (by a run of other code) still has its rows, whose
    // pks are consecutive: their ids then come from the table.
    let ids: string[] | undefined;
    const idsOf = (): string[] => {
      const text = this.getIds.get(c, COLUMNS_STAMP) as string | undefined;
      if (text !== undefined) return JSON.parse(text) as string[];
      const fromTable = this.idsInRange.all(cols.pk[0], cols.pk[row.n - 1]) as string[];
      if (fromTable.length !== row.n) throw new Error(`internal: conversation_columns chunk ${c}: ${fromTable.length} stored ids for ${row.n} rows`);
      return fromTable;
    };
    return { ...cols, chunk: c, n: row.n, files: JSON.parse(row.files) as string[], ids: () => (ids ??= idsOf()) };
  }

}
