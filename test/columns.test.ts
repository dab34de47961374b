/**
 * The chunks of small columns (pipeline/columns.ts) must say exactly what the rows say, and a run that reads them
 * must write exactly what a run reading the table writes. A store of more than CHUNK conversations, so that at
 * least one chunk is closed.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSample } from '../data/generate.js';
import { openStore, type Store } from '../pipeline/store.js';
import { ingest } from '../pipeline/ingest.js';
import { buildColumns, CHUNK, ChunkCollector, COLUMNS_STAMP, ColumnSource, NO_ROLE, ROLE_CODE, type InsertedRow } from '../pipeline/columns.js';
import { ColumnSignals, encodeSignals, signalsFromMessages, type SignalKey } from '../pipeline/signals.js';
import { runConfigFile, type RunResult } from '../pipeline/runner.js';
import { ROLES } from '../schemas/log-record.js';
import type { Message } from '../pipeline/stage.js';
import { signalRow } from '../pipeline/signal-row.js';
import { tempDir } from './support/tmp.js';

const root = tempDir('logcurate-columns-');
const db = join(root, 'store.db');

async function withStore<T>(path: string, f: (s: Store) => T | Promise<T>): Promise<T> {
  const store = openStore(path);
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

interface ChunkRow {
  stamp: string;
  chunk: number;
  n: number;
  ids: string;
  files: string;
  data: Buffer;
}

const chunkRows = (s: Store): ChunkRow[] => s.sqlite.prepare(`SELECT stamp, chunk, n, ids, files, data FROM conversation_columns ORDER BY chunk`).all() as ChunkRow[];

/** The chunks the ingest below built as it inserted the rows. */
let ingestedChunks: ChunkRow[] = [];

beforeAll(async () => {
  await writeSample(join(root, 'logs'), { n: CHUNK + 1500, seed: 12, largeMessageChars: 5_000 });
  await withStore(db, (s) => ingest(s, ['logs/*.{jsonl,jsonl.gz,csv}'], { cwd: root }));
  await withStore(db, (s) => {
    ingestedChunks = chunkRows(s);
    // The tests below are of the chunks a run builds.
    s.sqlite.prepare(`DELETE FROM conversation_columns`).run();
    // Some rows without signals (as in a store from before they were kept): the chunk computes them.
    s.sqlite.prepare(`UPDATE conversations SET signals = NULL WHERE pk % 97 = 0 AND pk <= ?`).run(CHUNK);
  });
}, 120_000);

describe('chunks of small columns', () => {
  it('hold exactly what the rows say: status, turns, roles, created_at, ids, sources and every signal', async () => {
    await withStore(db, (s) => {
      const max = s.sqlite.prepare(`SELECT max(pk) FROM conversations`).pluck().get() as number;
      expect(max).toBeGreaterThan(CHUNK);
      // A chunk under other code's stamp is dropped and built again; the open chunk at the top is never built.
      s.sqlite.prepare(`INSERT INTO conversation_columns (stamp, chunk, n, ids, files, data) VALUES ('other code', 0, 0, '[]', '[]', x'')`).run();
      expect(buildColumns(s)).toBe(Math.floor(max / CHUNK));
      expect(buildColumns(s)).toBe(0);
      expect(s.sqlite.prepare(`SELECT stamp, chunk FROM conversation_columns`).all()).toEqual([{ stamp: COLUMNS_STAMP, chunk: 0 }]);

      const source = ColumnSource.open(s.sqlite);
      expect(source.count).toBe(1);
      expect(source.coveredPk).toBe(CHUNK);
      const ch = source.chunk(0)!;
      const rows = s.sqlite
        .prepare(`SELECT pk, id, status, n_assistant, last_role, created_at_ms, source_file, source_line, messages FROM conversations WHERE pk <= ? ORDER BY pk`)
        .all(CHUNK) as { pk: number; id: string; status: string; n_assistant: number; last_role: string | null; created_at_ms: number | null; source_file: string; source_line: number; messages: string }[];
      expect(ch.n).toBe(rows.length);
      const ids = ch.ids();
      const keys: SignalKey[] = ['conversation', 'prompt', 'last_user'];
      let refusals = 0;
      rows.forEach((row, r) => {
        const got = {
          pk: ch.pk[r],
          id: ids[r],
          status: ch.error[r] ? 'error' : 'ok',
          n_assistant: ch.nAssistant[r],
          last_role: ch.lastRole[r] === NO_ROLE ? null : ROLES[ch.lastRole[r]!],
          created_at_ms: Number.isNaN(ch.createdAt[r]) ? null : ch.createdAt[r],
          source_file: ch.files[ch.sourceFile[r]!],
          source_line: ch.sourceLine[r],
        };
        const { messages, ...want } = row;
        expect(got).toEqual(want);
        // Signals against the messages themselves, not against the stored text they were decoded from.
        const truth = signalsFromMessages(JSON.parse(messages) as Message[]);
        const sig = new ColumnSignals(ch, r);
        for (const k of keys) {
          expect(sig.keyLength(k)).toBe(truth.keyLength(k));
          if (truth.keyLength(k) > 0) expect(sig.keyHash(k)).toBe(truth.keyHash(k));
        }
        expect(sig.promptHashHex()).toBe(truth.promptHashHex());
        expect(sig.linkHashes()).toEqual(truth.linkHashes());
        expect(sig.defaultRefusal()).toBe(truth.defaultRefusal());
        if (truth.defaultRefusal()) refusals++;
      });
      expect(refusals).toBeGreaterThan(0);
      // The ids are read only when asked; a chunk removed in between (other code rebuilding the chunks) still
      // gives them, from its rows.
      const unread = source.chunk(0)!;
      s.sqlite.prepare(`DELETE FROM conversation_columns WHERE chunk = 0`).run();
      expect(unread.ids()).toEqual(rows.map((row) => row.id));
      expect(source.chunk(0)).toBeNull();
      expect(buildColumns(s)).toBe(1);
    });
  }, 60_000);

  it('ingest builds the chunks it fills, byte for byte as a run builds them from the rows', async () => {
    expect(ingestedChunks.map((c) => [c.stamp, c.chunk, c.n])).toEqual([[COLUMNS_STAMP, 0, CHUNK]]);
    const copy = join(root, 'rebuilt.db');
    copyFileSync(db, copy);
    const rebuilt = await withStore(copy, (s) => {
      s.sqlite.prepare(`DELETE FROM conversation_columns`).run();
      expect(buildColumns(s)).toBe(1);
      return chunkRows(s);
    });
    expect(rebuilt).toHaveLength(1);
    const [a, b] = [ingestedChunks[0]!, rebuilt[0]!];
    expect(a.ids).toBe(b.ids);
    expect(a.files).toBe(b.files);
    expect(a.data.equals(b.data)).toBe(true);
  }, 60_000);

  it('ingest builds only the chunks whose every row it inserted, in order', async () => {
    const path = join(root, 'collector.db');
    const store = openStore(path);
    try {
      const signals = encodeSignals([
        { role: 'user', content: 'How do I reset my password?' },
        { role: 'assistant', content: 'Open Settings, then Security.' },
      ]);
      // Every role, none, and one no log may have: coded as the SQL the run uses for rows above the chunks.
      const lastRoles = [...ROLES, null, 'narrator'];
      const row = (pk: number): InsertedRow => ({
        pk,
        id: `c${pk}`,
        status: pk % 7 === 0 ? 'error' : 'ok',
        nAssistant: 1,
        lastRole: lastRoles[pk % lastRoles.length]!,
        createdAtMs: pk % 5 === 0 ? null : 1_700_000_000_000 + pk,
        sourceFile: pk % 2 ? 'a.jsonl' : 'b.jsonl',
        sourceLine: pk,
        signalRow: signalRow(signals),
      });
      const collect = (pks: Iterable<number>, resetAt?: number): ChunkRow[] => {
        store.sqlite.prepare(`DELETE FROM conversation_columns`).run();
        const collector = ChunkCollector.open(store.sqlite)!;
        for (const pk of pks) {
          if (pk === resetAt) collector.reset();
          collector.add(row(pk));
        }
        return chunkRows(store);
      };
      const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
      // Three whole chunks, in order: all three.
      expect(collect(range(1, 3 * CHUNK)).map((c) => c.chunk)).toEqual([0, 1, 2]);
      // Begun inside chunk 0 (rows from before this ingest): chunk 0 is left to the run.
      expect(collect(range(2, 2 * CHUNK)).map((c) => c.chunk)).toEqual([1]);
      // A pk missing in chunk 1 (another process inserted it): not chunk 1, but chunk 2 after it; a repeated pk in
      // chunk 2: not chunk 2.
      expect(collect(range(1, 3 * CHUNK).filter((pk) => pk !== CHUNK + 10)).map((c) => c.chunk)).toEqual([0, 2]);
      expect(collect([...range(1, 2 * CHUNK + 5), ...range(2 * CHUNK + 5, 3 * CHUNK)]).map((c) => c.chunk)).toEqual([0, 1]);
      // Rolled back inside chunk 1: the rows collected before are forgotten.
      expect(collect(range(1, 3 * CHUNK), CHUNK + 100).map((c) => c.chunk)).toEqual([0, 2]);
      // The open chunk at the top is never saved.
      expect(collect(range(1, CHUNK - 1))).toEqual([]);
      // What was saved holds the rows given.
      const [c1] = collect(range(1, 2 * CHUNK)).slice(1);
      const source = ColumnSource.open(store.sqlite);
      const ch = source.chunk(1)!;
      expect(c1!.n).toBe(CHUNK);
      expect(ch.pk[0]).toBe(CHUNK + 1);
      expect(ch.pk[CHUNK - 1]).toBe(2 * CHUNK);
      expect(ch.ids()[6]).toBe(`c${CHUNK + 7}`);
      expect(ch.error[6]).toBe((CHUNK + 7) % 7 === 0 ? 1 : 0);
      const k5 = 5 * Math.ceil((CHUNK + 1) / 5) - CHUNK - 1;
      expect(Number.isNaN(ch.createdAt[k5])).toBe(true);
      expect(ch.createdAt[k5 + 1]).toBe(1_700_000_000_000 + CHUNK + 1 + k5 + 1);
      expect(ch.files[ch.sourceFile[0]!]).toBe((CHUNK + 1) % 2 ? 'a.jsonl' : 'b.jsonl');
      const sqlCode = store.sqlite.prepare(`SELECT ${ROLE_CODE} FROM (SELECT ? AS last_role)`).pluck();
      for (let k = 0; k < lastRoles.length; k++) expect(ch.lastRole[k], String(lastRoles[(CHUNK + 1 + k) % lastRoles.length])).toBe(sqlCode.get(lastRoles[(CHUNK + 1 + k) % lastRoles.length]));
      expect(new Set(ch.lastRole.subarray(0, lastRoles.length)).size).toBe(lastRoles.length - 1);
      expect(new ColumnSignals(ch, 0).promptHashHex()).toBe(signalsFromMessages([{ role: 'user', content: 'How do I reset my password?' }, { role: 'assistant', content: 'Open Settings, then Security.' }]).promptHashHex());
    } finally {
      await store.close();
    }
  });

  it('a run reading them writes the same files as a run reading the table (LOGCURATE_COLUMNS=0)', async () => {
    const configs = {
      nightly: [
        { filter: { feedback: { name: 'score', min: 3 } } },
        { dedupe: { method: 'exact', key: 'conversation', keep: 'newest' } },
        { rebalance_refusals: { target_rate: 0.05 } },
        { system_prompt: { mode: 'replace', text: 'Be kind.' } },
        { split: { test_fraction: 0.2 } },
      ],
      // Fields the chunks do not hold (user ids, tags, text): those scans read the table, in the same run.
      other: [
        { filter: { require_feedback: false, min_turns: 1 } },
        { dedupe: { method: 'near', key: 'prompt', keep: 'oldest' } },
        { rebalance_refusals: { target_rate: 0.1, by: 'tags.env' } },
        { split: { test_fraction: 0.2, group_by: 'user_id', stratify_by: 'refusal' } },
      ],
    };
    for (const [name, stages] of Object.entries(configs)) {
      const outputs: { out: string; result: RunResult }[] = [];
      for (const mode of ['chunks', 'table'] as const) {
        const dir = join(root, `${name}-${mode}`);
        mkdirSync(dir, { recursive: true });
        const store = join(dir, 'store.db');
        copyFileSync(db, store);
        // Built by the run itself (or, with LOGCURATE_COLUMNS=0, not at all).
        await withStore(store, (s) => s.sqlite.prepare(`DELETE FROM conversation_columns`).run());
        const config = join(dir, 'config.json');
        writeFileSync(config, JSON.stringify({ name, seed: 3, stages: [...stages, { emit: { dir: 'out', model: 'gpt-4o-mini-2024-07-18', min_examples: 0, report: false } }] }));
        if (mode === 'table') process.env.LOGCURATE_COLUMNS = '0';
        try {
          outputs.push({ out: join(dir, 'out'), result: await runConfigFile(config, { db: store }) });
        } finally {
          delete process.env.LOGCURATE_COLUMNS;
        }
        const chunks = await withStore(store, (s) => s.sqlite.prepare(`SELECT count(*) FROM conversation_columns`).pluck().get());
        expect(chunks, `${name} ${mode}`).toBe(mode === 'chunks' ? 1 : 0);
      }
      const [a, b] = outputs as [{ out: string; result: RunResult }, { out: string; result: RunResult }];
      for (const f of ['train.jsonl', 'test.jsonl', 'lineage.jsonl']) expect(readFileSync(join(a.out, f)).equals(readFileSync(join(b.out, f))), `${name} ${f}`).toBe(true);
      const strip = (m: Record<string, unknown>): Record<string, unknown> => ({ ...m, run: null, store: null });
      expect(strip(a.result.manifest)).toEqual(strip(b.result.manifest));
      expect(a.result.funnel.at(-1)!.out).toBeGreaterThan(1000);
    }
  }, 120_000);
});
