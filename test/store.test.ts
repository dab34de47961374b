import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { cacheWrite, openStore, SCHEMA_VERSION } from '../pipeline/store.js';
import { CLI, tempDir } from './support/tmp.js';

const root = tempDir('logcurate-store-');

describe('store migrations', () => {
  it('a v5 store (indexes and decision rows of the second landing) upgrades in place, keeping its rows', async () => {
    const path = join(root, 'v5.db');
    await openStore(path).close();
    // Turn the fresh store back into what v5 looked like.
    const old = new Database(path);
    old.exec(`
      DROP TABLE bulk_load;
      DROP TABLE feedback_latest;
      DROP TABLE conversation_columns;
      DROP TABLE emit_reuse;
      ALTER TABLE runs DROP COLUMN pid;
      ALTER TABLE runs DROP COLUMN host;
      ALTER TABLE ingest_files DROP COLUMN stat;
      DROP VIEW run_decisions;
      DROP TABLE run_decision_sets;
      ALTER TABLE run_decision_rows RENAME TO run_decisions;
      CREATE INDEX conversations_created ON conversations (created_at_ms);
      CREATE INDEX feedback_log ON feedback (log_id, name);
      INSERT INTO conversations (id, content_sha256, format, status, messages, n_messages, n_assistant, source_file, source_line)
        VALUES ('kept', 'x', 'chat', 'ok', '[]', 0, 0, 'f.jsonl', 1);
      INSERT INTO runs (id, name, config_json, config_sha256, seed, status, started_at) VALUES ('r', 'n', '{}', 'x', 0, 'succeeded', '2026-01-01');
      INSERT INTO run_decisions (run_id, conv_pk, status) VALUES ('r', 1, 'train');
    `);
    old.pragma('user_version = 5');
    old.close();

    const store = openStore(path);
    try {
      const db = store.sqlite;
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      const indexes = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name`).pluck().all();
      expect(indexes).toEqual(['conversations_id', 'emit_reuse_out_dir', 'feedback_event_key', 'ingest_files_digest', 'runs_started']);
      expect(db.prepare(`SELECT count(*) FROM emit_reuse`).pluck().get()).toBe(0);
      expect(db.prepare(`SELECT count(*) FROM conversation_columns`).pluck().get()).toBe(0);
      expect(db.prepare(`SELECT count(*) FROM feedback_latest`).pluck().get()).toBe(0);
      expect(db.prepare(`SELECT name FROM pragma_table_info('ingest_files') WHERE name = 'stat'`).pluck().get()).toBe('stat');
      expect(db.prepare(`SELECT count(*) FROM run_decision_sets`).pluck().get()).toBe(0);
      expect(db.prepare(`SELECT id FROM conversations`).pluck().all()).toEqual(['kept']);
      // The old rows are still there, and still what SQL sees as run_decisions.
      expect(db.prepare(`SELECT count(*) FROM run_decision_rows`).pluck().get()).toBe(1);
      expect(db.prepare(`SELECT run_id, conv_pk, status FROM run_decisions`).all()).toEqual([{ run_id: 'r', conv_pk: 1, status: 'train' }]);
      // v8: runs know their process; older runs have none (and are never taken for interrupted).
      expect(db.prepare(`SELECT id, status, pid, host FROM runs`).all()).toEqual([{ id: 'r', status: 'succeeded', pid: null, host: null }]);
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    } finally {
      await store.close();
    }
  });
});

describe('store migration v14', () => {
  it('turns the unique constraints on conversation ids and event keys into named indexes, keeping every row and pk', async () => {
    const path = join(root, 'v13.db');
    await openStore(path).close();
    // The v13 shape of the two tables: the unique keys were column constraints (autoindexes, which cannot be dropped).
    const old = new Database(path);
    old.exec(`
      DROP TABLE bulk_load;
      DROP TABLE conversations;
      DROP TABLE feedback;
      CREATE TABLE conversations (
        pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, content_sha256 TEXT NOT NULL, format TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ok', 'error')), messages TEXT NOT NULL, tools TEXT, created_at TEXT,
        created_at_ms INTEGER, model TEXT, user_id TEXT, session_id TEXT, tags TEXT, metadata TEXT, extra TEXT,
        n_messages INTEGER NOT NULL, n_assistant INTEGER NOT NULL, source_file TEXT NOT NULL, source_line INTEGER NOT NULL
      , last_role TEXT, signals TEXT);
      CREATE TABLE feedback (
        pk INTEGER PRIMARY KEY, event_key TEXT NOT NULL UNIQUE, log_id TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
        created_at TEXT, created_at_ms INTEGER, source_file TEXT NOT NULL, source_line INTEGER NOT NULL
      );
      INSERT INTO conversations (pk, id, content_sha256, format, status, messages, tools, created_at, created_at_ms, model,
          user_id, session_id, tags, metadata, extra, n_messages, n_assistant, source_file, source_line, last_role, signals)
        VALUES (5, 'a', 'd1', 'chat', 'ok', '[{"role":"user","content":"hi"}]', NULL, 't', 1, 'm', 'u', 's', '["x"]', '{}', NULL, 1, 0, 'f.jsonl', 1, 'user', 'sig'),
               (9, 'b', 'd2', 'openai', 'error', '[]', '[]', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{"k":1}', 0, 0, 'g.jsonl', 7, NULL, NULL);
      INSERT INTO feedback (pk, event_key, log_id, name, value, created_at, created_at_ms, source_file, source_line)
        VALUES (3, 'k1', 'a', 'score', 4.5, 't', 1, 'f.jsonl', 2), (4, 'k2', 'zz', 'thumb', -1, NULL, NULL, 'f.jsonl', 3);
    `);
    // Enough rows that the rebuild leaves pages worth giving back (over 16 MB).
    old.prepare(
      `INSERT INTO conversations (id, content_sha256, format, status, messages, n_messages, n_assistant, source_file, source_line)
       SELECT 'bulk' || value, 'x', 'chat', 'ok', printf('[{"role":"user","content":"%s"}]', hex(randomblob(5000))), 1, 0, 'b.jsonl', value
       FROM (WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < 3000) SELECT value FROM n)`,
    ).run();
    old.exec('VACUUM');
    const sizeBefore = statSync(path).size;
    const before = {
      conversations: old.prepare(`SELECT * FROM conversations ORDER BY pk`).all(),
      feedback: old.prepare(`SELECT * FROM feedback ORDER BY pk`).all(),
    };
    old.pragma('user_version = 13');
    old.close();

    const store = openStore(path);
    try {
      const db = store.sqlite;
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      expect(db.prepare(`SELECT * FROM conversations ORDER BY pk`).all()).toEqual(before.conversations);
      expect(db.prepare(`SELECT * FROM feedback ORDER BY pk`).all()).toEqual(before.feedback);
      const indexes = (table: string): unknown[] => db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name`).pluck().all(table);
      expect(indexes('conversations')).toEqual(['conversations_id']);
      expect(indexes('feedback')).toEqual(['feedback_event_key']);
      // Still unique, and still what ON CONFLICT (id) and ON CONFLICT (event_key) consult.
      const conv = db.prepare(`INSERT INTO conversations (id, content_sha256, format, status, messages, n_messages, n_assistant, source_file, source_line)
        VALUES (?, 'x', 'chat', 'ok', '[]', 0, 0, 'h.jsonl', 1)`);
      expect(() => conv.run('a')).toThrow(/UNIQUE constraint failed: conversations.id/);
      expect(db.prepare(`INSERT INTO feedback (event_key, log_id, name, value, source_file, source_line) VALUES ('k1', 'a', 'score', 1, 'h', 1) ON CONFLICT (event_key) DO NOTHING`).run().changes).toBe(0);
      expect(db.prepare(`SELECT count(*) FROM bulk_load`).pluck().get()).toBe(0);
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      // The old tables' pages were given back: the store is no larger than before (without the vacuum: ~2 ×).
      db.pragma('wal_checkpoint(TRUNCATE)');
      expect(sizeBefore).toBeGreaterThan(30 << 20);
      expect(statSync(path).size).toBeLessThan(sizeBefore * 1.1);
      expect(db.pragma('freelist_count', { simple: true })).toBeLessThan(16);
    } finally {
      await store.close();
    }
  });
});

describe('cache writes', () => {
  it('wait a while for a busy store, then give up without failing; other errors still fail', async () => {
    const path = join(root, 'busy.db');
    const store = openStore(path);
    const other = new Database(path);
    try {
      const write = (): unknown => store.sqlite.prepare(`INSERT INTO feedback_latest (name, stamp, max_feedback_pk, max_conversation_pk, n, data, orphans) VALUES ('x', 's', 0, 0, 0, x'', '[]')`).run();
      other.pragma('busy_timeout = 0');
      store.sqlite.pragma('busy_timeout = 0');
      other.exec('BEGIN IMMEDIATE');
      const t0 = Date.now();
      expect(cacheWrite(write, 150)).toBe(false);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
      other.exec('ROLLBACK');
      expect(cacheWrite(write, 150)).toBe(true);
      expect(() => cacheWrite(write, 150)).toThrow(/UNIQUE/);
    } finally {
      other.close();
      await store.close();
    }
  });
});

describe('opening a file that is not a store', () => {
  it('names the file, in the error and on the command line', () => {
    const path = join(root, 'notes.db');
    writeFileSync(path, 'meeting notes, not a database\n'.repeat(200));
    expect(() => openStore(path)).toThrow(`${path}: cannot open the store: file is not a database`);
    const r = spawnSync(process.execPath, [CLI, 'stats', '--db', path], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${path}: cannot open the store: file is not a database`);
    expect(r.stdout).toBe('');
    // With --json, the error is stdout's one JSON document too; usage errors (exit 2) as well.
    const j = spawnSync(process.execPath, [CLI, 'stats', '--db', path, '--json'], { encoding: 'utf8' });
    expect(j.status).toBe(1);
    expect(JSON.parse(j.stdout)).toEqual({ error: `${path}: cannot open the store: file is not a database`, exit_code: 1 });
    const u = spawnSync(process.execPath, [CLI, 'stats', '--db', path, '--json', '--bogus'], { encoding: 'utf8' });
    expect(u.status).toBe(2);
    expect(JSON.parse(u.stdout)).toEqual({ error: "unknown option '--bogus'", exit_code: 2 });
  });
});

describe('a reading command on a path with no store', () => {
  it('creates the store (SPEC §1) and says so on stderr, once', () => {
    const path = join(root, 'typo', 'curaton.db');
    const first = spawnSync(process.execPath, [CLI, 'stats', '--db', path, '--json'], { encoding: 'utf8' });
    expect(first.status).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ conversations: 0, feedback_events: 0, quarantined: 0, runs: 0 });
    expect(first.stderr).toBe(`logcurate: note: there was no store at ${path}; an empty one was created there (check --db or $LOGCURATE_DB)\n`);
    expect(statSync(path).isFile()).toBe(true);
    const again = spawnSync(process.execPath, [CLI, 'stats', '--db', path, '--json'], { encoding: 'utf8' });
    expect(again.status).toBe(0);
    expect(again.stderr).toBe('');

    const other = join(root, 'typo', 'other.db');
    const explained = spawnSync(process.execPath, [CLI, 'explain', 'c-1', '--db', other, '--json'], { encoding: 'utf8' });
    expect(explained.status).toBe(0);
    expect(JSON.parse(explained.stdout)).toMatchObject({ id: 'c-1', status: 'unknown' });
    expect(explained.stderr).toContain(`there was no store at ${other}`);
    const envStats = spawnSync(process.execPath, [CLI, 'stats'], { encoding: 'utf8', env: { ...process.env, LOGCURATE_DB: join(root, 'typo', 'env.db') } });
    expect(envStats.status).toBe(0);
    expect(envStats.stderr).toContain(`there was no store at ${join(root, 'typo', 'env.db')}`);
  });
});
