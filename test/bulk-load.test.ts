import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';
import { ingest, type IngestOptions } from '../pipeline/ingest.js';
import { beginBulkLoad, finishBulkLoad, hash32, UniqueKeys } from '../pipeline/bulk-load.js';
import { openStore, type Store } from '../pipeline/store.js';
import { orphanFeedbackQuery, storeStats, type StoreStats } from '../pipeline/stats.js';
import { CLI, jsonl, tempDir } from './support/tmp.js';
import { silentProgress } from '../pipeline/progress.js';

const dir = tempDir('logcurate-bulk-');
let n = 0;
const storePath = (): string => join(dir, `s${++n}.db`);
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const chat = (id: string, user: string, assistant: string, extra: Record<string, unknown> = {}) => ({
  id,
  messages: [
    { role: 'user', content: user },
    { role: 'assistant', content: assistant },
  ],
  ...extra,
});

/** Two ids whose hash32 collide (found by search), so UniqueKeys must tell them apart by the stored row. */
const COLLIDING = ['id-149599', 'id-312382'] as const;

/**
 * Logs that meet every way a key can be met again: the same line twice, an id with other content (quarantined),
 * the same content in another key order, ids that collide in the hash, ids with lone surrogates and `__proto__`,
 * feedback events logged twice, inline and on their own lines, and feedback for ids never logged.
 */
function trickyLogs(): string {
  const lines: unknown[] = [];
  for (let i = 0; i < 1_500; i++) {
    lines.push(chat(`c${i}`, `question ${i} `.repeat(3), `answer ${i}`, { feedback: { score: i % 5 } }));
    if (i % 7 === 0) lines.push(chat(`c${i}`, `question ${i} `.repeat(3), `answer ${i}`, { feedback: { score: i % 5 } }));
    if (i % 11 === 0) lines.push(chat(`c${i}`, 'other content', 'for the same id'));
    if (i % 13 === 0) lines.push({ messages: [{ content: `answer ${i}`, role: 'assistant' }].reverse(), id: `c${i}`, feedback: { score: i % 5 } });
    if (i % 5 === 0) lines.push({ log_id: `c${i}`, name: 'thumbs', value: 1, created_at: '2024-09-01T00:00:00Z' });
    if (i % 10 === 0) lines.push({ log_id: `c${i}`, name: 'thumbs', value: 1, created_at: '2024-09-01T00:00:00Z' });
    if (i % 17 === 0) lines.push({ log_id: `never-logged-${i}`, name: 'score', value: 3 });
  }
  lines.splice(400, 0, chat(COLLIDING[0], 'first of a colliding pair', 'a'), chat(COLLIDING[1], 'second of a colliding pair', 'b'));
  lines.splice(900, 0, chat(COLLIDING[1], 'second of a colliding pair', 'b'), chat(COLLIDING[0], 'collides, other content', 'c'));
  const hostile = ['x\ud800', '\udc00y', '__proto__', 'é\u0000😀'];
  for (const id of hostile) lines.splice(600, 0, chat(id, `hostile ${id}`, 'ok', { feedback: { score: 1 } }));
  for (const id of hostile) lines.push(chat(id, `hostile ${id}`, 'ok', { feedback: { score: 1 } }), chat(id, 'changed', 'content'));
  return jsonl(lines);
}

function tables(path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true });
  try {
    const out: Record<string, unknown[]> = {};
    for (const t of ['conversations', 'feedback', 'quarantine']) out[t] = db.prepare(`SELECT * FROM ${t} ORDER BY pk`).all();
    out.columns = db.prepare(`SELECT chunk, n, ids, files, hex(data) FROM conversation_columns ORDER BY chunk`).all();
    out.files = db.prepare(`SELECT path, sha256, status, lines, inserted, already_present, blank, quarantined FROM ingest_files ORDER BY id`).all();
    return out;
  } finally {
    db.close();
  }
}

function uniqueIndexes(path: string): unknown[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ('conversations_id', 'feedback_event_key') ORDER BY name`).pluck().all();
  } finally {
    db.close();
  }
}

/** The journal mode the store's file header gives (a new connection reads it from there). */
function journalOf(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    return db.pragma('journal_mode', { simple: true }) as string;
  } finally {
    db.close();
  }
}

async function load(path: string, inputs: string[], opts: IngestOptions) {
  const store = openStore(path);
  try {
    return await ingest(store, inputs, { batchSize: 64, commitLines: 500, ...opts });
  } finally {
    await store.close();
  }
}

describe('bulk load', () => {
  it('leaves exactly the store a row-by-row load leaves, and its unique indexes', async () => {
    const p = file('tricky.jsonl', trickyLogs());
    const rowByRow = storePath();
    const bulk = storePath();
    const seen: { indexes: unknown[]; loads: unknown; journal: unknown }[] = [];
    const a = await load(rowByRow, [p], { bulk: false });
    const b = await load(bulk, [p], {
      bulk: true,
      afterBatch: () => {
        const db = new Database(bulk, { readonly: true });
        seen.push({
          indexes: db.prepare(`SELECT name FROM sqlite_master WHERE name IN ('conversations_id', 'feedback_event_key')`).pluck().all(),
          loads: db.prepare(`SELECT count(*) FROM bulk_load`).pluck().get(),
          journal: db.pragma('journal_mode', { simple: true }),
        });
        db.close();
      },
    });
    // The load really ran without the indexes, recorded as a bulk load, with a rollback journal (the loader was the
    // store's one connection between batches); the store is in WAL again after it.
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.every((s) => s.indexes.length === 0 && s.loads === 1 && s.journal === 'delete')).toBe(true);
    expect(journalOf(bulk)).toBe('wal');
    expect(b.totals).toEqual(a.totals);
    expect(a.totals.already_present).toBeGreaterThan(300);
    expect(a.totals.quarantined).toBeGreaterThan(100);
    expect(tables(bulk)).toEqual(tables(rowByRow));
    // Each hostile id and each of the colliding pair is stored once.
    const db = new Database(bulk, { readonly: true });
    for (const id of [...COLLIDING, 'x\ud800', '\udc00y', '__proto__', 'é\u0000😀']) {
      expect(db.prepare(`SELECT count(*) FROM conversations WHERE id = ?`).pluck().get(id), JSON.stringify(id)).toBe(1);
    }
    expect(db.prepare(`SELECT count(*) FROM bulk_load`).pluck().get()).toBe(0);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    expect(uniqueIndexes(bulk)).toEqual(['conversations_id', 'feedback_event_key']);
  });

  it('begins only in an empty store: a second ingest loads row by row', async () => {
    const first = file('first.jsonl', jsonl([chat('a', 'q', 'r')]));
    const second = file('second.jsonl', jsonl([chat('a', 'q', 'r'), chat('b', 'q2', 'r2')]));
    const path = storePath();
    await load(path, [first], { bulk: false });
    const seen: unknown[] = [];
    const r = await load(path, [second], { bulk: true, afterBatch: () => seen.push(uniqueIndexes(path)) });
    expect(seen).toEqual([['conversations_id', 'feedback_event_key']]);
    expect(r.totals).toMatchObject({ inserted: 1, already_present: 1 });
  });

  it('writes with a rollback journal only as the store\'s one connection: with another open, it loads in WAL', async () => {
    const p = file('shared.jsonl', trickyLogs());
    const rowByRow = storePath();
    await load(rowByRow, [p], { bulk: false });
    const path = storePath();
    await (openStore(path).close());
    // Another connection that has read the store (so holds it open in WAL mode), as another process's would.
    const other = new Database(path);
    try {
      expect(other.prepare(`SELECT count(*) FROM conversations`).pluck().get()).toBe(0);
      const seen: unknown[] = [];
      await load(path, [p], { bulk: true, afterBatch: () => seen.push([journalOf(path), uniqueIndexes(path).length]) });
      expect(seen.length).toBeGreaterThan(10);
      expect(seen.every((s) => JSON.stringify(s) === JSON.stringify(['wal', 0]))).toBe(true);
    } finally {
      other.close();
    }
    expect(journalOf(path)).toBe('wal');
    expect(tables(path)).toEqual(tables(rowByRow));
  });

  it('a rollback-journal load waits for an outside read to end before it commits, saying so', async () => {
    const p = file('outside-read.jsonl', trickyLogs());
    const rowByRow = storePath();
    const a = await load(rowByRow, [p], { bulk: false });
    const path = storePath();
    const flag = join(dir, `reading-${n}`);
    const release = join(dir, `release-${n}`);
    // Another process reads the store in a transaction of its own, and holds it until the load says it is waiting
    // (after LOAD_QUIET_MS, 2 s), or for 30 s.
    const reader = `
      const { existsSync, writeFileSync } = require('node:fs');
      const Database = require('better-sqlite3');
      const db = new Database(${JSON.stringify(path)});
      db.exec('BEGIN');
      db.prepare('SELECT count(*) FROM conversations').get();
      writeFileSync(${JSON.stringify(flag)}, '');
      const pause = new Int32Array(new SharedArrayBuffer(4));
      for (const until = Date.now() + 30000; !existsSync(${JSON.stringify(release)}) && Date.now() < until; ) Atomics.wait(pause, 0, 0, 10);
      db.exec('COMMIT');`;
    let child: ReturnType<typeof spawn> | undefined;
    let exited: Promise<unknown> = Promise.resolve();
    const said: string[] = [];
    const started = Date.now();
    const r = await load(path, [p], {
      bulk: true,
      commitLines: 1_000_000,
      progress: {
        ...silentProgress,
        log: (m: string) => {
          said.push(m);
          writeFileSync(release, '');
        },
      },
      afterBatch: () => {
        if (child) return;
        child = spawn(process.execPath, ['-e', reader], { stdio: 'ignore' });
        exited = new Promise((resolve) => child!.on('exit', resolve));
        const pause = new Int32Array(new SharedArrayBuffer(4));
        while (!existsSync(flag) && Date.now() - started < 20_000) Atomics.wait(pause, 0, 0, 5);
        expect(existsSync(flag)).toBe(true);
        expect(journalOf(path)).toBe('delete');
      },
    });
    expect(await exited).toBe(0);
    expect(said.filter((m) => m.includes('waiting for other connections to end their reads of the store'))).toHaveLength(1);
    expect(said.join('\n')).toMatch(/LOGCURATE_INGEST_BULK=0/);
    expect(r.totals).toEqual(a.totals);
    expect(tables(path)).toEqual(tables(rowByRow));
    expect(journalOf(path)).toBe('wal');
  });

  it('a rollback-journal load syncs fully and waits long for reads; opening its store meanwhile in this process leaves the journal alone', async () => {
    const path = storePath();
    const store = openStore(path);
    try {
      expect(store.sqlite.pragma('synchronous', { simple: true })).toBe(1); // NORMAL, in WAL
      expect(beginBulkLoad(store.sqlite)).toEqual({ rollbackJournal: true });
      expect(store.sqlite.pragma('journal_mode', { simple: true })).toBe('delete');
      expect(store.sqlite.pragma('synchronous', { simple: true })).toBe(2); // FULL, as SQLite advises outside WAL
      // Its writes wait out reads under way for up to 10 minutes, not 30 s.
      expect(store.sqlite.pragma('busy_timeout', { simple: true })).toBe(600_000);
      const again = openStore(path);
      expect(again.sqlite.pragma('journal_mode', { simple: true })).toBe('delete');
      expect(again.sqlite.pragma('synchronous', { simple: true })).toBe(2);
      await again.close();
      finishBulkLoad(store.sqlite);
      expect(store.sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(store.sqlite.pragma('synchronous', { simple: true })).toBe(1);
      expect(store.sqlite.pragma('busy_timeout', { simple: true })).toBe(30_000);
    } finally {
      await store.close();
    }
    expect(journalOf(path)).toBe('wal');
    expect(uniqueIndexes(path)).toEqual(['conversations_id', 'feedback_event_key']);
  });

  it('after a failure mid-load builds the indexes of what was committed; a rerun finishes it as one clean load would', async () => {
    const p = file('fail.jsonl', trickyLogs());
    const clean = storePath();
    await load(clean, [p], { bulk: false });
    const path = storePath();
    await expect(
      load(path, [p], {
        bulk: true,
        afterBatch: (_f, done) => {
          if (done > 1_000) throw new Error('disk on fire');
        },
      }),
    ).rejects.toThrow(/disk on fire/);
    expect(uniqueIndexes(path)).toEqual(['conversations_id', 'feedback_event_key']);
    const partial = tables(path);
    expect(partial.conversations!.length).toBeGreaterThan(0);
    expect(partial.conversations!.length).toBeLessThan(tables(clean).conversations!.length);
    await load(path, [p], { bulk: true });
    expect(tables(path)).toEqual(tables(clean));
  });
});

describe('bulk load: other processes', () => {
  /** Makes a store look like one a process is bulk-loading: the indexes dropped, the load recorded under `pid`. */
  function holdBulkLoad(path: string, pid: number): void {
    const db = new Database(path);
    db.exec(`DROP INDEX conversations_id; DROP INDEX feedback_event_key;`);
    db.prepare(`INSERT INTO bulk_load (pid, host, started_at) VALUES (?, ?, ?)`).run(pid, hostname(), '2026-01-01T00:00:00Z');
    db.close();
  }

  it("finishes a load whose process died (builds its indexes), then ingests as usual", async () => {
    const path = storePath();
    await load(path, [file('before.jsonl', jsonl([chat('a', 'q', 'r'), chat('b', 'q', 'r')]))], { bulk: false });
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    holdBulkLoad(path, gone);
    const r = await load(path, [file('after.jsonl', jsonl([chat('a', 'q', 'r'), chat('c', 'q', 'r')]))], {});
    expect(r.totals).toMatchObject({ inserted: 1, already_present: 1 });
    expect(uniqueIndexes(path)).toEqual(['conversations_id', 'feedback_event_key']);
    const db = new Database(path, { readonly: true });
    expect(db.prepare(`SELECT id FROM conversations ORDER BY pk`).pluck().all()).toEqual(['a', 'b', 'c']);
    expect(db.prepare(`SELECT count(*) FROM bulk_load`).pluck().get()).toBe(0);
    db.close();
  });

  it('builds the indexes when the record of a load was deleted by hand (a loader on another host known to be gone)', async () => {
    const path = storePath();
    await load(path, [file('by-hand.jsonl', jsonl([chat('a', 'q', 'r')]))], { bulk: false });
    holdBulkLoad(path, 1);
    const db = new Database(path);
    db.prepare(`DELETE FROM bulk_load`).run();
    db.close();
    const r = await load(path, [file('by-hand-2.jsonl', jsonl([chat('a', 'q', 'r'), chat('b', 'q', 'r')]))], {});
    expect(r.totals).toMatchObject({ inserted: 1, already_present: 1 });
    expect(uniqueIndexes(path)).toEqual(['conversations_id', 'feedback_event_key']);
  });

  it('an ingest waits while the loading process lives, saying so on stderr, and goes on when it is gone', async () => {
    const path = storePath();
    await load(path, [file('held.jsonl', jsonl([chat('a', 'q', 'r')]))], { bulk: false });
    const owner = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      holdBulkLoad(path, owner.pid!);
      const p = file('waiting.jsonl', jsonl([chat('a', 'q', 'r'), chat('z', 'q', 'r')]));
      const child = spawn(process.execPath, [CLI, 'ingest', p, '--db', path, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const closed = new Promise<number | null>((r) => child.on('close', r));
      await new Promise((r) => setTimeout(r, 1_500));
      expect(child.exitCode).toBe(null);
      expect(err).toMatch(new RegExp(`waiting for the ingest of process ${owner.pid} on .* to finish its bulk load`));
      owner.kill('SIGKILL');
      expect(await closed).toBe(0);
      expect(JSON.parse(out).totals).toMatchObject({ inserted: 1, already_present: 1 });
      expect(uniqueIndexes(path)).toEqual(['conversations_id', 'feedback_event_key']);
    } finally {
      owner.kill('SIGKILL');
    }
  });

  it('a row-by-row ingest checks between its groups whether another process began a bulk load', async () => {
    const path = storePath();
    const p = file('between.jsonl', jsonl(Array.from({ length: 300 }, (_, i) => chat(`g${i}`, `q${i}`, 'r'))));
    const clean = storePath();
    await load(clean, [p], { bulk: false });
    // The other "process" begins its load after this one's first group: the store holds only quarantine then, so it
    // is as empty as a bulk load needs. Its process is gone by the next group (waiting for a live one is the test
    // above), so this ingest finishes that load and goes on.
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    let held = false;
    const r = await load(path, [file('bad-first.jsonl', 'not json\n'.repeat(64)), p], {
      bulk: false,
      commitLines: 1,
      afterBatch: () => {
        if (held) return;
        held = true;
        holdBulkLoad(path, gone);
      },
    });
    expect(held).toBe(true);
    expect(r.totals).toMatchObject({ inserted: 300, quarantined: 64 });
    expect(uniqueIndexes(path)).toEqual(['conversations_id', 'feedback_event_key']);
    expect(tables(path).conversations).toEqual(tables(clean).conversations);
  });

  it("a command opening the store leaves a live load's rollback journal alone, and returns a dead one's store to WAL", async () => {
    const path = storePath();
    await load(path, [file('journal.jsonl', jsonl([chat('a', 'q', 'r')]))], { bulk: false });
    const inRollbackJournal = (pid: number): void => {
      holdBulkLoad(path, pid);
      const raw = new Database(path);
      expect(raw.pragma('journal_mode = DELETE', { simple: true })).toBe('delete');
      raw.close();
    };
    const owner = spawn('sleep', ['30'], { stdio: 'ignore' });
    const gone = new Promise((r) => owner.on('exit', r));
    let during: Store;
    try {
      inRollbackJournal(owner.pid!);
      during = openStore(path);
      expect(during.sqlite.pragma('journal_mode', { simple: true })).toBe('delete');
      expect(during.sqlite.pragma('synchronous', { simple: true })).toBe(2);
      expect(await storeStats(during)).toMatchObject({ conversations: 1 });
    } finally {
      owner.kill('SIGKILL');
    }
    await gone;
    // The loader died after this connection opened the store: an ingest through it finishes the load, and WAL is back.
    const r = await ingest(during, [file('journal-2.jsonl', jsonl([chat('a', 'q', 'r'), chat('b', 'q', 'r')]))], { bulk: false });
    expect(r.totals).toMatchObject({ inserted: 1, already_present: 1 });
    expect(during.sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(during.sqlite.pragma('synchronous', { simple: true })).toBe(1);
    await during.close();
    expect(uniqueIndexes(path)).toEqual(['conversations_id', 'feedback_event_key']);
    // A store left in a rollback journal by a dead loader goes back to WAL when any command opens it.
    inRollbackJournal(spawnSync(process.execPath, ['-e', '0']).pid!);
    const after = openStore(path);
    expect(after.sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(after.sqlite.pragma('synchronous', { simple: true })).toBe(1);
    await after.close();
  });

  it('a load killed (SIGKILL) in its rollback journal: the next command rolls the hot journal back, and a rerun ends as one clean load would', async () => {
    const p = file('killed.jsonl', trickyLogs());
    // The clean load by the CLI too: the signals it stores carry a stamp of the code that derived them.
    const clean = storePath();
    const once = spawnSync(process.execPath, [CLI, 'ingest', p, '--db', clean, '--quiet'], { encoding: 'utf8', env: { ...process.env, LOGCURATE_INGEST_BULK: '0' } });
    expect(once.status, once.stderr).toBe(0);
    const path = storePath();
    // The built ingest, held still with a group open (its rows written, not committed) once 500 lines are in.
    const dist = pathToFileURL(dirname(CLI)).href;
    const script = `
      import { writeSync } from 'node:fs';
      import { openStore } from '${dist}/store.js';
      import { ingest } from '${dist}/ingest.js';
      const store = openStore(${JSON.stringify(path)});
      await ingest(store, [${JSON.stringify(p)}], { bulk: true, batchSize: 64, commitLines: 1000, afterBatch: (_f, done) => {
        if (done < 500) return;
        writeSync(1, 'holding\\n');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      } });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise((r) => child.on('exit', r));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('holding') && resolve());
      child.on('exit', () => reject(new Error(`the loader exited before holding: ${err}`)));
    });
    child.kill('SIGKILL');
    await exited;
    // Killed while loading with its rollback journal: the header still says so, and the open group left its journal.
    expect(readFileSync(path).subarray(18, 20)).toEqual(Buffer.from([1, 1]));
    expect(statSync(`${path}-journal`).size).toBeGreaterThan(0);
    const stats = spawnSync(process.execPath, [CLI, 'stats', '--db', path, '--json'], { encoding: 'utf8' });
    expect(stats.status, stats.stderr).toBe(0);
    expect(JSON.parse(stats.stdout).conversations).toBeLessThan(tables(clean).conversations!.length);
    expect(existsSync(`${path}-journal`)).toBe(false);
    expect(journalOf(path)).toBe('wal');
    const rerun = spawnSync(process.execPath, [CLI, 'ingest', p, '--db', path, '--quiet'], { encoding: 'utf8' });
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(tables(path)).toEqual(tables(clean));
    expect(uniqueIndexes(path)).toEqual(['conversations_id', 'feedback_event_key']);
    const db = new Database(path, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db.prepare(`SELECT count(*) FROM bulk_load`).pluck().get()).toBe(0);
    db.close();
  });

  it('stats during a load (its indexes dropped) gives the figures it gives after, with no scan of the conversations per event', async () => {
    const path = storePath();
    await load(path, [file('stats.jsonl', trickyLogs())], { bulk: false });
    const statsOf = async (): Promise<{ stats: StoreStats; plan: string[] }> => {
      const store = openStore(path);
      try {
        const { sql: text, parameters } = orphanFeedbackQuery(await store.kysely()).compile();
        const plan = store.sqlite.prepare(`EXPLAIN QUERY PLAN ${text}`).all(...parameters) as { detail: string }[];
        return { stats: await storeStats(store), plan: plan.map((p) => p.detail) };
      } finally {
        await store.close();
      }
    };
    const before = await statsOf();
    // trickyLogs logs feedback for ids it never logs: 89 events (i % 17 === 0 for i < 1,500).
    expect(before.stats.orphan_feedback_events).toBe(89);
    const owner = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      holdBulkLoad(path, owner.pid!);
      const during = await statsOf();
      expect(during.stats).toEqual(before.stats);
      // SQLite reads the ids once (a list it builds), never the conversations again for each feedback event.
      expect(during.plan.join(' | ')).not.toMatch(/CORRELATED/);
      expect(during.plan.join(' | ')).toMatch(/LIST SUBQUERY/);
    } finally {
      owner.kill('SIGKILL');
    }
  });
});

describe('UniqueKeys', () => {
  it('tells keys apart whose hashes collide, and never matches a row that is gone', () => {
    expect(hash32(COLLIDING[0])).toBe(hash32(COLLIDING[1]));
    const db = new Database(':memory:');
    db.exec(`CREATE TABLE conversations (pk INTEGER PRIMARY KEY, id TEXT NOT NULL)`);
    const insert = db.prepare(`INSERT INTO conversations (id) VALUES (?)`);
    const keys = new UniqueKeys(db, 'conversations', 'id');
    const add = (id: string): number => {
      const pk = Number(insert.run(id).lastInsertRowid);
      keys.add(id, pk);
      return pk;
    };
    const a = add(COLLIDING[0]);
    expect(keys.find(COLLIDING[1])).toBe(-1);
    const b = add(COLLIDING[1]);
    expect([keys.find(COLLIDING[0]), keys.find(COLLIDING[1])]).toEqual([a, b]);
    // Past the first table size, everything is still found.
    const pks = Array.from({ length: 5_000 }, (_, i) => add(`k${i}`));
    expect(Array.from({ length: 5_000 }, (_, i) => keys.find(`k${i}`))).toEqual(pks);
    // A row rolled back after it was added is not found.
    db.exec('BEGIN');
    add('rolled back');
    db.exec('ROLLBACK');
    expect(keys.find('rolled back')).toBe(-1);
    // A lone surrogate is stored as its code unit's bytes; the key still matches its row.
    const s = add('x\ud800');
    expect(keys.find('x\ud800')).toBe(s);
    expect(keys.find('x\ufffd')).toBe(-1);
    // Keys given as bytes (how ingest binds event keys), compared as text.
    db.exec(`CREATE TABLE feedback (pk INTEGER PRIMARY KEY, event_key TEXT NOT NULL)`);
    const events = new UniqueKeys(db, 'feedback', 'event_key');
    const pk = Number(db.prepare(`INSERT INTO feedback (event_key) VALUES (CAST(? AS TEXT))`).run(Buffer.from('k1')).lastInsertRowid);
    events.add(Buffer.from('k1'), pk);
    expect(events.find(Buffer.from('k1'))).toBe(pk);
    expect(events.find(Buffer.from('k2'))).toBe(-1);
    db.close();
  });
});
