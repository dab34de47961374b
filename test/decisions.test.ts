import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { DecisionSet, encodeDecisions } from '../pipeline/decisions.js';
import { explain } from '../pipeline/explain.js';
import { openStore, SCHEMA_VERSION } from '../pipeline/store.js';
import { SPLIT_TEST, SPLIT_TRAIN, WorkingSet } from '../pipeline/working-set.js';
import { prng } from './support/pipeline.js';
import { tempDir } from './support/tmp.js';

const root = tempDir('logcurate-decisions-');

describe('packed decision sets', () => {
  it('round-trip every field of every conversation, and know nothing of pks the run did not consider', () => {
    const rand = prng(5);
    const n = 5000;
    const pks = new Int32Array(n);
    let pk = 0;
    // Gaps of every size, including pks past 2^24.
    for (let i = 0; i < n; i++) pks[i] = pk += i === 4000 ? 40_000_000 : rand() < 0.9 ? 1 : 1 + Math.floor(rand() * 1000);
    const ws = new WorkingSet(pks, Array.from(pks, (p) => `c${p}`));
    const stages = ['filter', 'dedupe', 'rebalance_refusals', 'système ✓', 'split', 'emit'];
    const reasons = ['feedback_below_min', 'duplicate_of:c1', 'duplicate_of:"quoted"\n', 'pii:email', 'over_limit', '__proto__', '😀 odd'];
    const expected = new Map<number, unknown>();
    let line = [0, 0, 0];
    for (let i = 0; i < n; i++) {
      const tokens = rand() < 0.3 ? -1 : Math.floor(rand() * 100_000);
      ws.tokens[i] = tokens;
      if (rand() < 0.6) {
        const by = Math.floor(rand() * stages.length);
        const reason = reasons[Math.floor(rand() * reasons.length)]!;
        ws.drop(i, by, reason);
        expected.set(pks[i]!, { status: 'dropped', stage: stages[by], stageIndex: by, reason, line: null, tokens: tokens < 0 ? null : tokens });
      } else {
        const split = rand() < 0.2 ? SPLIT_TEST : SPLIT_TRAIN;
        ws.split[i] = split;
        ws.line[i] = ++line[split]!;
        expected.set(pks[i]!, { status: split === SPLIT_TEST ? 'test' : 'train', stage: null, stageIndex: null, reason: null, line: ws.line[i], tokens: tokens < 0 ? null : tokens });
      }
    }
    const encoded = encodeDecisions(ws, stages);
    const set = DecisionSet.decode(encoded.stages, encoded.decisions);
    expect(set.size).toBe(n);
    for (const [p, d] of expected) expect(set.get(p)).toEqual(d);
    expect(set.get(0)).toBeUndefined();
    expect(set.get(pks[n - 1]! + 1)).toBeUndefined();
    expect(set.get(pks[4000]! - 1)).toBeUndefined();
    // Compact: about 30 characters a conversation, reasons included.
    expect(encoded.decisions.length).toBeLessThan(n * 40);
  });

  it('an empty run round-trips; a corrupt or foreign record is an error, not a wrong answer', () => {
    const e = encodeDecisions(new WorkingSet(new Int32Array(0), []), ['filter']);
    const empty = DecisionSet.decode(e.stages, e.decisions);
    expect(empty.size).toBe(0);
    expect(empty.get(1)).toBeUndefined();
    const ws = new WorkingSet(Int32Array.from([1, 2, 3]), ['a', 'b', 'c']);
    const { stages, decisions } = encodeDecisions(ws, ['filter']);
    expect(() => DecisionSet.decode(stages, decisions.slice(0, -3))).toThrow();
    expect(() => DecisionSet.decode(stages, '{"not":"a decision set"}')).toThrow();
    expect(() => DecisionSet.decode(stages, '[[1,2]]')).toThrow();
  });

  it('the run_decisions view gives SQL a row per conversation, the same as the set decodes to', async () => {
    const store = openStore(join(root, 'view.db'));
    try {
      const db = store.sqlite;
      db.prepare(`INSERT INTO runs (id, name, config_json, config_sha256, seed, status, started_at) VALUES ('r-new', 'n', '{}', 'x', 0, 'succeeded', '2026-01-02')`).run();
      const ws = new WorkingSet(Int32Array.from([3, 5, 9, 12]), ['a', 'b', 'c', 'd']);
      ws.drop(0, 0, 'feedback_below_min');
      ws.drop(2, 1, 'duplicate_of:"a"\u2028');
      ws.split[1] = SPLIT_TRAIN;
      ws.line[1] = 1;
      ws.tokens[1] = 88;
      ws.split[3] = SPLIT_TEST;
      ws.line[3] = 1;
      ws.tokens[3] = 0;
      const { stages, decisions } = encodeDecisions(ws, ['filter', 'dedupe', 'split', 'emit']);
      db.prepare(`INSERT INTO run_decision_sets (run_id, n, stages, decisions) VALUES ('r-new', 4, ?, ?)`).run(stages, decisions);
      const rows = db.prepare(`SELECT conv_pk, status, stage, stage_idx, reason, line, tokens FROM run_decisions WHERE run_id = 'r-new' ORDER BY conv_pk`).all();
      expect(rows).toEqual([
        { conv_pk: 3, status: 'dropped', stage: 'filter', stage_idx: 0, reason: 'feedback_below_min', line: null, tokens: null },
        { conv_pk: 5, status: 'train', stage: null, stage_idx: null, reason: null, line: 1, tokens: 88 },
        { conv_pk: 9, status: 'dropped', stage: 'dedupe', stage_idx: 1, reason: 'duplicate_of:"a"\u2028', line: null, tokens: null },
        { conv_pk: 12, status: 'test', stage: null, stage_idx: null, reason: null, line: 1, tokens: 0 },
      ]);
      const set = DecisionSet.decode(stages, decisions);
      for (const r of rows as { conv_pk: number; status: string; stage: string | null; stage_idx: number | null; reason: string | null; line: number | null; tokens: number | null }[]) {
        expect(set.get(r.conv_pk)).toEqual({ status: r.status, stage: r.stage, stageIndex: r.stage_idx, reason: r.reason, line: r.line, tokens: r.tokens });
      }
    } finally {
      await store.close();
    }
  });

  it('explain still answers for runs recorded before decisions were packed (a row per conversation)', () => {
    const store = openStore(join(root, 'old-runs.db'));
    try {
      expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(6);
      const db = store.sqlite;
      db.prepare(
        `INSERT INTO conversations (id, content_sha256, format, status, messages, n_messages, n_assistant, source_file, source_line) VALUES (?, 'x', 'chat', 'ok', '[]', 0, 0, 'f.jsonl', 1)`,
      ).run('old-1');
      const pk = (db.prepare(`SELECT pk FROM conversations WHERE id = 'old-1'`).get() as { pk: number }).pk;
      db.prepare(`INSERT INTO runs (id, name, config_json, config_sha256, seed, status, started_at, out_dir) VALUES ('r-old', 'old', '{}', 'x', 0, 'succeeded', '2026-01-01T00:00:00Z', '/out')`).run();
      db.prepare(`INSERT INTO run_decision_rows (run_id, conv_pk, status, stage, stage_idx, reason, line, tokens) VALUES ('r-old', ?, 'train', NULL, NULL, NULL, 7, 42)`).run(pk);
      expect(explain(store, 'old-1')).toMatchObject({ run_id: 'r-old', status: 'train', line: 7, tokens: 42 });
    } finally {
      void store.close();
    }
  });
});
