import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { CHUNK, DecisionSet, encodeDecisions } from '../pipeline/decisions.js';
import { explain } from '../pipeline/explain.js';
import { openStore, SCHEMA_VERSION } from '../pipeline/store.js';
import { SPLIT_TEST, SPLIT_TRAIN, WorkingSet } from '../pipeline/working-set.js';
import { prng } from './support/pipeline.js';
import { tempDir } from './support/tmp.js';

const root = tempDir('logcurate-decisions-');

describe('decision sets', () => {
  it('round-trip every field of every conversation, chunk by chunk, and know nothing of pks the run did not consider', () => {
    const rand = prng(5);
    const n = 2 * CHUNK + 5000;
    const pks = new Int32Array(n);
    let pk = 0;
    // Gaps of every size, including pks past 2^24.
    for (let i = 0; i < n; i++) pks[i] = pk += i === 4000 ? 40_000_000 : rand() < 0.9 ? 1 : 1 + Math.floor(rand() * 1000);
    const ws = new WorkingSet(pks, Array.from(pks, (p) => `c${p}`));
    const stages = ['filter', 'dedupe', 'rebalance_refusals', 'système ✓', 'split', 'emit'];
    const reasons = ['feedback_below_min', 'duplicate_of:c1', 'duplicate_of:"quoted"\n', 'pii:email', 'over_limit', '__proto__', '😀 odd'];
    const expected = new Map<number, unknown>();
    const line = [0, 0, 0];
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
    const chunks = [...encodeDecisions(ws)];
    expect(chunks.map((c) => c.n)).toEqual([CHUNK, CHUNK, 5000]);
    expect(chunks.map((c) => [c.firstPk, c.lastPk])).toEqual([
      [pks[0], pks[CHUNK - 1]],
      [pks[CHUNK], pks[2 * CHUNK - 1]],
      [pks[2 * CHUNK], pks[n - 1]],
    ]);
    const sets = chunks.map((c) => DecisionSet.decode(JSON.stringify(stages), c.decisions));
    for (const [p, d] of expected) {
      const k = chunks.findIndex((c) => c.firstPk <= p && p <= c.lastPk);
      expect(sets[k]!.get(p)).toEqual(d);
      // Each chunk knows only its own conversations.
      expect(sets[(k + 1) % 3]!.get(p)).toBeUndefined();
    }
    expect(sets[0]!.get(pks[4000]! - 1)).toBeUndefined();
    expect(sets[2]!.get(pks[n - 1]! + 1)).toBeUndefined();
    // Compact: about 30 characters a conversation, reasons included.
    expect(chunks.reduce((a, c) => a + c.decisions.length, 0)).toBeLessThan(n * 40);
  });

  it('writes exactly the text of the template encoder it replaced, for every kind of entry', () => {
    // The previous encoder, kept here as the definition of the text (run_decisions' view parses it in SQL).
    const reference = (ws: WorkingSet): string[] => {
      const reasonJson = ws.reasons.map((r) => JSON.stringify(r));
      const out: string[] = [];
      for (let from = 0; from < ws.size; from += CHUNK) {
        const parts: string[] = [];
        for (let i = from; i < Math.min(ws.size, from + CHUNK); i++) {
          const by = ws.droppedBy[i]!;
          const tokens = ws.tokens[i]! >= 0 ? ws.tokens[i]! : 'null';
          parts.push(
            by >= 0
              ? `[${ws.pks[i]},${by},${reasonJson[ws.reasonOf[i]!] ?? 'null'},${ws.split[i]},null,${tokens}]`
              : `[${ws.pks[i]},null,null,${ws.split[i]},${ws.line[i]! || 'null'},${tokens}]`,
          );
        }
        out.push(`[${parts.join(',')}]`);
      }
      return out;
    };
    const rand = prng(11);
    const n = CHUNK + 777;
    const pks = new Int32Array(n);
    for (let i = 0; i < n; i++) pks[i] = i === 0 ? 1 : pks[i - 1]! + (i === 5 ? 2_000_000_000 : 1 + Math.floor(rand() * 3));
    const ws = new WorkingSet(pks, Array.from(pks, (p) => `c${p}`));
    // Long and hostile reasons: a chunk of them outgrows the encoder's first buffer.
    const reasons = ['feedback_below_min', 'duplicate_of:"q"\\n\n', 'naïve 日本語 🙂', 'lone \ud800', '\u2028', 'x'.repeat(5000), ''];
    for (let i = 0; i < n; i++) {
      ws.tokens[i] = rand() < 0.2 ? -1 : rand() < 0.1 ? 2_147_483_647 : Math.floor(rand() * 5000);
      const r = rand();
      if (r < 0.5) ws.drop(i, Math.floor(rand() * 6), reasons[Math.floor(rand() * reasons.length)]!);
      else {
        ws.split[i] = r < 0.6 ? SPLIT_TEST : r < 0.95 ? SPLIT_TRAIN : 0;
        ws.line[i] = r < 0.97 ? 1 + Math.floor(rand() * 1e9) : 0;
      }
    }
    const got = [...encodeDecisions(ws)].map((c) => c.decisions);
    const want = reference(ws);
    expect(got).toHaveLength(want.length);
    got.forEach((g, k) => expect(g === want[k], `chunk ${k}`).toBe(true));
  });

  it('an empty run has no chunks; a corrupt or foreign record is an error, not a wrong answer', () => {
    expect([...encodeDecisions(new WorkingSet(new Int32Array(0), []))]).toEqual([]);
    const ws = new WorkingSet(Int32Array.from([1, 2, 3]), ['a', 'b', 'c']);
    const [{ decisions }] = [...encodeDecisions(ws)] as [{ decisions: string }];
    const stages = '["filter"]';
    expect(DecisionSet.decode(stages, decisions).size).toBe(3);
    expect(() => DecisionSet.decode(stages, decisions.slice(0, -3))).toThrow();
    expect(() => DecisionSet.decode(stages, '{"not":"a decision set"}')).toThrow();
    expect(() => DecisionSet.decode(stages, '[[1,2]]')).toThrow();
  });

  it('explain finds a conversation in whichever chunk holds it', async () => {
    const store = openStore(join(root, 'chunks.db'));
    try {
      const db = store.sqlite;
      const n = CHUNK + 100;
      const conv = db.prepare(
        `INSERT INTO conversations (id, content_sha256, format, status, messages, n_messages, n_assistant, source_file, source_line) VALUES (?, 'x', 'chat', 'ok', '[]', 0, 0, 'f.jsonl', ?)`,
      );
      db.transaction(() => {
        for (let k = 1; k <= n; k++) conv.run(`k${k}`, k);
      })();
      db.prepare(`INSERT INTO runs (id, name, config_json, config_sha256, seed, status, started_at, out_dir) VALUES ('r-big', 'n', '{}', 'x', 0, 'succeeded', '2026-01-03', '/out')`).run();
      const ws = new WorkingSet(Int32Array.from({ length: n - 1 }, (_, k) => k + 1), Array.from({ length: n - 1 }, (_, k) => `k${k + 1}`));
      for (let i = 0; i < ws.size; i++) {
        if (i % 2) ws.drop(i, 0, `r${i}`);
        else ws.line[i] = i + 1;
      }
      const save = db.prepare(`INSERT INTO run_decision_sets (run_id, chunk, first_pk, last_pk, n, stages, decisions) VALUES ('r-big', ?, ?, ?, ?, '["filter"]', ?)`);
      let chunk = 0;
      for (const c of encodeDecisions(ws)) save.run(chunk++, c.firstPk, c.lastPk, c.n, c.decisions);
      expect(chunk).toBe(2);
      expect(explain(store, 'k1')).toMatchObject({ status: 'train', line: 1 });
      expect(explain(store, 'k2')).toMatchObject({ status: 'dropped', stage: 'filter', reason: 'r1' });
      expect(explain(store, `k${CHUNK + 50}`)).toMatchObject({ status: 'dropped', reason: `r${CHUNK + 49}` });
      expect(explain(store, `k${CHUNK + 51}`)).toMatchObject({ status: 'train', line: CHUNK + 51 });
      expect(explain(store, 'k3')).toMatchObject({ status: 'train', line: 3 });
      // The last conversation was ingested after the run.
      expect(explain(store, `k${n}`)).toMatchObject({ status: 'unknown', reason: 'ingested after this run: the run did not consider it' });
      expect(db.prepare(`SELECT count(*) FROM run_decisions WHERE run_id = 'r-big'`).pluck().get()).toBe(n - 1);
    } finally {
      await store.close();
    }
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
      const stages = JSON.stringify(['filter', 'dedupe', 'split', 'emit']);
      const [c] = [...encodeDecisions(ws)] as [{ firstPk: number; lastPk: number; n: number; decisions: string }];
      const decisions = c.decisions;
      db.prepare(`INSERT INTO run_decision_sets (run_id, chunk, first_pk, last_pk, n, stages, decisions) VALUES ('r-new', 0, ?, ?, ?, ?, ?)`).run(c.firstPk, c.lastPk, c.n, stages, decisions);
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
