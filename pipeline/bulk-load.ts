/**
 * A first, large ingest loads without the store's two unique indexes (conversations.id, feedback.event_key) and
 * builds them once at its end. Kept up row by row, an index on random keys costs SQLite a B-tree descent and a
 * page rewritten in the middle of the tree for every row, and each commit writes most of its leaf pages to the
 * WAL again; sorting the keys once at the end is far cheaper (cold 200k ingest: see README, the fourteenth
 * round). While the indexes are gone, UniqueKeys stands in for them: "is this id already stored?" is answered
 * from an in-memory hash of every key the load inserted, each hit checked against the stored row, so the store
 * ends exactly as a row-by-row load would leave it.
 *
 * The load is recorded in bulk_load (its process and host) in the same transaction that drops the indexes. Any
 * other ingest meeting that record waits for the load to end; if its process is gone (kill -9), the next ingest
 * builds the indexes itself and carries on as usual. Reads (runs, stats, explain) need no waiting: the indexes
 * only speed up their lookups.
 *
 * The load writes with a rollback journal instead of WAL when no other connection has the store open (store.ts
 * useRollbackJournal): each new page is then written once. Reads still need no waiting for the load to end, but
 * each read statement and each of the load's commits wait for one another.
 */
import type Database from 'better-sqlite3';
import { hostname } from 'node:os';
import { ownerAlive } from './owner.js';
import { endRollbackJournal, UNIQUE_KEY_INDEXES, useRollbackJournal } from './store.js';
import { JobError } from './errors.js';
import { fmix32 } from './normalize.js';

/** Below this much input a bulk load is not worth its final index build (and small ingests keep the usual path). */
export const BULK_MIN_BYTES = 4 << 20;

interface LoadOwner {
  readonly pid: number;
  readonly host: string;
  readonly started_at: string;
}

function loadOwner(db: Database.Database): LoadOwner | undefined {
  return db.prepare(`SELECT pid, host, started_at FROM bulk_load LIMIT 1`).get() as LoadOwner | undefined;
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Returns once no other process is bulk-loading the store: waits while one is (calling `waiting` once), and
 * builds the indexes of a load whose process is gone. Called with no transaction open.
 */
export function settleBulkLoad(db: Database.Database, waiting: (message: string) => void = () => {}): void {
  let told = false;
  for (;;) {
    const owner = loadOwner(db);
    if (owner === undefined) {
      // No load recorded, yet an index missing: a record deleted by hand (a loader on another host known to be
      // gone). Built under the write lock, unless a load has begun meanwhile.
      if (!indexesPresent(db)) {
        db.transaction(() => {
          if (loadOwner(db) === undefined && !indexesPresent(db)) buildIndexes(db);
        }).immediate();
        continue;
      }
      return;
    }
    if (owner.pid === process.pid && owner.host === hostname() && activeLoad === db) {
      throw new Error('internal: this process is bulk-loading the store and must not wait for itself');
    }
    if (ownerAlive(owner.pid, owner.host)) {
      if (!told) {
        const elsewhere = owner.host !== hostname() ? `; a process on another host cannot be checked from here: if it is gone, delete its row from bulk_load` : '';
        waiting(`${db.name}: waiting for the ingest of process ${owner.pid} on ${owner.host} (since ${owner.started_at}) to finish its bulk load${elsewhere}`);
        told = true;
      }
      sleep(250);
      continue;
    }
    // Its process is gone: what it committed is consistent (UniqueKeys kept the keys unique), so only the
    // indexes are missing. The check is repeated under the write lock, so two processes never both repair.
    const repaired = db.transaction((): boolean => {
      const still = loadOwner(db);
      if (still === undefined || ownerAlive(still.pid, still.host)) return false;
      buildIndexes(db);
      return true;
    }).immediate();
    // It may have died after this connection opened the store, with the store still in its rollback journal.
    if (repaired) endRollbackJournal(db);
  }
}

function indexesPresent(db: Database.Database): boolean {
  return db.prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('conversations_id', 'feedback_event_key')`).pluck().get() === 2;
}

/** The connection whose process holds the store's bulk load, if this process holds one. */
let activeLoad: Database.Database | null = null;

/**
 * Starts a bulk load if the store holds no conversations and no feedback (its first ingest): drops the unique
 * indexes and records this process as the loader, in one transaction, then leaves WAL for a rollback journal if
 * it can. False: load row by row as usual.
 */
export function beginBulkLoad(db: Database.Database): { rollbackJournal: boolean } | false {
  const begun = db.transaction((): boolean => {
    if (loadOwner(db) !== undefined) return false;
    const empty = db.prepare(`SELECT NOT EXISTS (SELECT 1 FROM conversations) AND NOT EXISTS (SELECT 1 FROM feedback)`).pluck().get() === 1;
    if (!empty) return false;
    db.exec(`DROP INDEX conversations_id; DROP INDEX feedback_event_key;`);
    db.prepare(`INSERT INTO bulk_load (pid, host, started_at) VALUES (?, ?, ?)`).run(process.pid, hostname(), new Date().toISOString());
    activeLoad = db;
    return true;
  }).immediate();
  return begun && { rollbackJournal: useRollbackJournal(db) };
}

/**
 * Ends this process's bulk load: builds the unique indexes and clears the record, in one transaction, and returns
 * the store to WAL.
 */
export function finishBulkLoad(db: Database.Database): void {
  try {
    // A group left open by a failure is rolled back, as a crash would have it.
    if (db.inTransaction) db.exec('ROLLBACK');
    db.transaction(() => buildIndexes(db)).immediate();
  } finally {
    activeLoad = null;
    endRollbackJournal(db);
  }
}

function buildIndexes(db: Database.Database): void {
  try {
    db.exec(UNIQUE_KEY_INDEXES);
  } catch (err) {
    // Cannot happen while UniqueKeys holds: a duplicate key here is a bug, and the store keeps the record so that
    // nothing loads into it row by row without the index.
    throw new JobError(`${db.name}: the unique indexes of a bulk load could not be built: ${(err as Error).message}`);
  }
  db.exec(`DELETE FROM bulk_load`);
}

/**
 * An in-memory stand-in for a unique index on `table.column` during a bulk load: the pk of each key inserted,
 * found by a 32-bit hash of the key (open addressing, linear probing, two Int32Arrays: 8 bytes a slot, at most
 * 70% full). Hashes are not keys: every hit is checked against the key stored in that row, by SQLite, comparing
 * bytes as the index would. So a collision, or a row rolled back after it was added, is never taken for a match,
 * and a key with a lone surrogate (stored as its code unit's three bytes, read back as U+FFFD) still matches.
 * A key is given as it is bound for the insert: a string, or text as its bytes (packed-rows.ts), one kind per
 * instance, so that equal keys hash alike.
 */
export class UniqueKeys {
  private hashes: Int32Array;
  private pks: Int32Array;
  private count = 0;
  private readonly isKeyOf: Database.Statement;

  constructor(db: Database.Database, table: 'conversations' | 'feedback', column: 'id' | 'event_key') {
    this.isKeyOf = db.prepare(`SELECT 1 FROM ${table} WHERE pk = ? AND ${column} = CAST(? AS TEXT)`).pluck();
    this.hashes = new Int32Array(1 << 16);
    this.pks = new Int32Array(1 << 16).fill(-1);
  }

  /** The pk of the stored row with this key, or -1. */
  find(key: string | Uint8Array): number {
    const h = hash32(key);
    const mask = this.pks.length - 1;
    for (let s = slotOf(h, mask); ; s = (s + 1) & mask) {
      const pk = this.pks[s]!;
      if (pk === -1) return -1;
      if (this.hashes[s] === h && this.isKeyOf.get(pk, key) === 1) return pk;
    }
  }

  /** Records the pk of a row just inserted with this key (not found before). */
  add(key: string | Uint8Array, pk: number): void {
    if (!(Number.isInteger(pk) && pk >= 0 && pk <= 0x7fffffff)) throw new RangeError(`UniqueKeys: pks are int32 ≥ 0, got ${pk}`);
    if ((this.count + 1) > this.pks.length * 0.7) this.grow();
    this.put(hash32(key), pk);
    this.count++;
  }

  private put(h: number, pk: number): void {
    const mask = this.pks.length - 1;
    let s = slotOf(h, mask);
    while (this.pks[s] !== -1) s = (s + 1) & mask;
    this.hashes[s] = h;
    this.pks[s] = pk;
  }

  private grow(): void {
    const { hashes, pks } = this;
    this.hashes = new Int32Array(hashes.length * 2);
    this.pks = new Int32Array(pks.length * 2).fill(-1);
    for (let s = 0; s < pks.length; s++) if (pks[s] !== -1) this.put(hashes[s]!, pks[s]!);
  }
}

/** The slot a hash starts probing at: FNV's weak low bits mixed (murmur3's finaliser), so similar keys spread. */
function slotOf(h: number, mask: number): number {
  return fmix32(h) & mask;
}

/** FNV-1a 32 over a string's UTF-16 code units or over bytes: cheap for the short keys it is given. */
export function hash32(key: string | Uint8Array): number {
  let h = 0x811c9dc5;
  if (typeof key === 'string') for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  else for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i]!, 0x01000193);
  return h | 0;
}
