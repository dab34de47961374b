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
    const blob = encodeDecisions(ws, stages);
    const set = DecisionSet.decode(blob);
    expect(set.size).toBe(n);
    for (const [p, d] of expected) expect(set.get(p)).toEqual(d);
    expect(set.get(0)).toBeUndefined();
    expect(set.get(pks[n - 1]! + 1)).toBeUndefined();
    expect(set.get(pks[4000]! - 1)).toBeUndefined();
    // Packed: well under the 19 bytes a conversation the columns take before compression.
    expect(blob.length).toBeLessThan(n * 19);
  });

  it('an empty run round-trips; a corrupt or foreign blob is an error, not a wrong answer', () => {
    const empty = DecisionSet.decode(encodeDecisions(new WorkingSet(new Int32Array(0), []), ['filter']));
    expect(empty.size).toBe(0);
    expect(empty.get(1)).toBeUndefined();
    const ws = new WorkingSet(Int32Array.from([1, 2, 3]), ['a', 'b', 'c']);
    const blob = encodeDecisions(ws, ['filter']);
    expect(() => DecisionSet.decode(blob.subarray(0, blob.length - 3))).toThrow();
    expect(() => DecisionSet.decode(Buffer.from('not a decision set'))).toThrow();
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
      db.prepare(`INSERT INTO run_decisions (run_id, conv_pk, status, stage, stage_idx, reason, line, tokens) VALUES ('r-old', ?, 'train', NULL, NULL, NULL, 7, 42)`).run(pk);
      expect(explain(store, 'old-1')).toMatchObject({ run_id: 'r-old', status: 'train', line: 7, tokens: 42 });
    } finally {
      void store.close();
    }
  });
});
