import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './support/tmp.js';
import { chat, curate } from './support/pipeline.js';
import { filterParams } from '../stages/filter.js';

const root = tempDir('logcurate-filter-');
const at = (day: number, hour = 12): string => new Date(Date.UTC(2024, 2, day, hour)).toISOString();

describe('filter: feedback', () => {
  // Events are written out of created_at order on purpose: "latest" means newest created_at, not last ingested.
  const logs = [
    chat('A', 'question a', 'answer a'),
    chat('B', 'question b', 'answer b'),
    chat('C', 'question c', 'answer c'),
    chat('D', 'question d', 'answer d'),
    chat('E', 'question e', 'answer e'),
    { log_id: 'A', value: 5, created_at: at(1) },
    { log_id: 'A', value: 2, created_at: at(3) },
    { log_id: 'A', value: 4, created_at: at(2) },
    { log_id: 'B', value: 1, created_at: at(2) },
    { log_id: 'B', value: 4, created_at: at(1) },
    { log_id: 'C', value: 3, created_at: at(1) },
    // E: an undated event counts as older than any dated one.
    { log_id: 'E', value: 1, created_at: at(1) },
    { log_id: 'E', value: 5 },
    // Another feedback name must not leak into `score`.
    { log_id: 'D', name: 'thumbs', value: 1, created_at: at(1) },
    { log_id: 'B', name: 'thumbs', value: 0, created_at: at(1) },
  ];
  const db = join(root, 'feedback.db');
  const run = (feedback: Record<string, unknown>, extra: Record<string, unknown> = {}) => curate(root, { db, logs, stages: [{ filter: { feedback, ...extra } }] });

  it('latest (the default) is the event with the newest created_at; no event → no_feedback', async () => {
    // latest: A 2, B 1, C 3, E 1 (the undated 5 is older); D has no score.
    const r = await run({ min: 3 });
    expect(r.trainIds).toEqual(['C']);
    expect(r.dropped).toEqual({ A: 'feedback_below_min', B: 'feedback_below_min', D: 'no_feedback', E: 'feedback_below_min' });
    expect(r.manifest.stages[0]).toEqual({ name: 'filter', in: 5, out: 1, dropped: { feedback_below_min: 3, no_feedback: 1 } });
    for (const row of r.lineage.filter((x) => x.status === 'dropped')) expect(row.stage).toBe('filter');
  });

  it('mean, min and max aggregate over every event', async () => {
    // mean: A 11/3, B 2.5, C 3, E 3; min: A 2, B 1, C 3, E 1; max: A 5, B 4, C 3, E 5.
    expect((await run({ min: 3, aggregate: 'mean' })).trainIds.sort()).toEqual(['A', 'C', 'E']);
    expect((await run({ min: 3, aggregate: 'min' })).trainIds.sort()).toEqual(['C']);
    const max = await run({ min: 5, aggregate: 'max' });
    expect(max.trainIds.sort()).toEqual(['A', 'E']);
    expect(max.dropped).toMatchObject({ B: 'feedback_below_min', C: 'feedback_below_min', D: 'no_feedback' });
  });

  it('max drops values above it, with its own reason', async () => {
    const r = await run({ max: 3, aggregate: 'max' });
    expect(r.trainIds).toEqual(['C']);
    expect(r.dropped).toEqual({ A: 'feedback_above_max', B: 'feedback_above_max', D: 'no_feedback', E: 'feedback_above_max' });
    const both = await run({ min: 2, max: 4, aggregate: 'latest' });
    expect(both.trainIds.sort()).toEqual(['A', 'C']);
    expect(both.dropped).toEqual({ B: 'feedback_below_min', D: 'no_feedback', E: 'feedback_below_min' });
  });

  it('require_feedback: false keeps conversations without an event, still judging those with one', async () => {
    const r = await run({ min: 3 }, { require_feedback: false });
    expect(r.trainIds.sort()).toEqual(['C', 'D']);
    expect(r.dropped).toEqual({ A: 'feedback_below_min', B: 'feedback_below_min', E: 'feedback_below_min' });
  });

  it('a named feedback (thumbs) is aggregated on its own', async () => {
    const r = await run({ name: 'thumbs', min: 1 });
    expect(r.trainIds).toEqual(['D']);
    expect(r.dropped).toEqual({ A: 'no_feedback', B: 'feedback_below_min', C: 'no_feedback', E: 'no_feedback' });
  });

  it("the report's feedback figures are each conversation's latest score, though emit runs without the filter's copy", async () => {
    // The run lets go of its feedback aggregates before emit; the report folds them again. latest: A 2, B 1, C 3,
    // E 1, D none.
    const LEDE = /Before: conversations entering the run \(([^)]*)\)\. After: conversations that reached the files \(([^)]*)\)/;
    const lede = (out: string): string => LEDE.exec(readFileSync(join(out, 'report.html'), 'utf8'))!.slice(1).join(' | ');
    const latest = await curate(root, { db, logs, stages: [{ filter: { feedback: { min: 2 } } }], emit: { report: true } });
    expect(latest.trainIds.concat(latest.testIds).sort()).toEqual(['A', 'C']);
    expect(lede(latest.out)).toBe('4 values, mean 1.75 | 2 values, mean 2.5');
    // A filter on the mean leaves no latest aggregate behind: the report computes it afresh. mean: A 11/3, C 3, E 3.
    const mean = await curate(root, { db, logs, stages: [{ filter: { feedback: { min: 3, aggregate: 'mean' } } }], emit: { report: true } });
    expect(mean.trainIds.concat(mean.testIds).sort()).toEqual(['A', 'C', 'E']);
    expect(lede(mean.out)).toBe('4 values, mean 1.75 | 3 values, mean 2');
  });

  it('require_feedback: true without a feedback condition keeps anything that has a score', async () => {
    const r = await curate(root, { db, logs, stages: [{ filter: { require_feedback: true } }] });
    expect(r.trainIds.sort()).toEqual(['A', 'B', 'C', 'E']);
    expect(r.dropped).toEqual({ D: 'no_feedback' });
  });
});

describe('filter: every other condition, each with its reason', () => {
  /** A conversation that passes every condition below; each test case breaks exactly one. */
  const good = (id: string, over: Record<string, unknown> = {}) =>
    chat(id, `question ${id}`, `answer ${id}`, { created_at: at(10), model: 'gpt-4o-2024-08-06', tags: { product: 'web', tier: 'gold' }, ...over });
  const turns = (n: number) => Array.from({ length: n }, (_, k) => [{ role: 'user', content: `q${k}` }, { role: 'assistant', content: `a${k}` }]).flat();
  const logs = [
    good('keep-1'),
    good('keep-2', { model: 'claude-3-haiku', tags: { product: 'web', tier: 'silver', extra: 'x' } }),
    good('keep-3', { created_at: at(5, 0), model: 'gpt-4o-mini' }),
    good('keep-4', { created_at: at(20, 0), messages: turns(2) }),
    good('err', { status: 'error' }),
    good('early', { created_at: at(4) }),
    good('late', { created_at: at(21) }),
    good('undated', { created_at: undefined }),
    good('model', { model: 'gpt-3.5-turbo' }),
    good('nomodel', { model: undefined }),
    good('product', { tags: { product: 'app', tier: 'gold' } }),
    good('tier', { tags: { product: 'web', tier: 'bronze' } }),
    good('notags', { tags: undefined }),
    good('few', { messages: [{ role: 'user', content: 'no answer at all' }] }),
    good('many', { messages: turns(3) }),
    good('content', { messages: [{ role: 'user', content: 'my PASSWORD is hunter2' }, { role: 'assistant', content: 'ok' }] }),
    good('content2', { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'the secret   code is 12' }] }),
    good('userlast', { messages: [...turns(1), { role: 'user', content: 'and then?' }] }),
  ];
  const filter = {
    since: '2024-03-05T00:00:00Z',
    until: '2024-03-20T00:00:00Z',
    models: ['gpt-4o*', 'claude-3-haiku'],
    tags: { product: 'web', tier: ['gold', 'silver'] },
    min_turns: 1,
    max_turns: 2,
    exclude_content: ['\\bpassword\\b', 'secret\\s+code'],
  };

  it('drops each conversation for the condition it fails and keeps the rest', async () => {
    const r = await curate(root, { logs, stages: [{ filter }] });
    expect(r.trainIds.sort()).toEqual(['keep-1', 'keep-2', 'keep-3', 'keep-4']);
    expect(r.dropped).toEqual({
      err: 'error_status',
      early: 'before_since',
      late: 'after_until',
      undated: 'no_created_at',
      model: 'model_not_selected',
      nomodel: 'model_not_selected',
      product: 'tag_mismatch:product',
      tier: 'tag_mismatch:tier',
      notags: 'tag_mismatch:product',
      few: 'too_few_turns',
      many: 'too_many_turns',
      content: 'excluded_content',
      content2: 'excluded_content',
      userlast: 'assistant_not_last',
    });
    const row = r.manifest.stages[0]!;
    expect(row.in).toBe(logs.length);
    expect(row.out).toBe(4);
    expect(Object.values(row.dropped).reduce((a, b) => a + b, 0)).toBe(logs.length - 4);
    expect(row.dropped).toMatchObject({ error_status: 1, model_not_selected: 2, excluded_content: 2, 'tag_mismatch:product': 2 });
  });

  it('exclude_content looks at the arguments of calls too (tool_calls and the legacy function_call)', async () => {
    const call = (id: string, m: Record<string, unknown>) => ({
      id,
      messages: [{ role: 'user', content: 'clean up the old accounts' }, { role: 'assistant', content: null, ...m }, { role: 'assistant', content: 'Done.' }],
    });
    const sql = JSON.stringify({ sql: 'DROP TABLE users' });
    const calls = [
      call('tool', { tool_calls: [{ id: 'c1', type: 'function', function: { name: 'run_sql', arguments: sql } }] }),
      call('legacy', { function_call: { name: 'run_sql', arguments: sql } }),
      call('harmless', { function_call: { name: 'run_sql', arguments: JSON.stringify({ sql: 'SELECT 1' }) } }),
    ];
    const r = await curate(root, { logs: calls, stages: [{ filter: { exclude_content: ['\\bdrop table\\b'] } }] });
    expect(r.dropped).toEqual({ tool: 'excluded_content', legacy: 'excluded_content' });
    expect(r.trainIds).toEqual(['harmless']);
  });

  it('exclude_errors: false and require_assistant_last: false keep what they would drop', async () => {
    const r = await curate(root, { logs, stages: [{ filter: { exclude_errors: false, require_assistant_last: false } }] });
    expect(r.trainIds).toContain('err');
    expect(r.trainIds).toContain('userlast');
    // With no conditions but the defaults, only a conversation with no assistant turn at all fails emit's check.
    expect(r.manifest.stages[0]!.out).toBe(logs.length);
  });

  it('by default (no conditions) drops error conversations and those not ending with the assistant', async () => {
    const r = await curate(root, { logs, stages: [{ filter: {} }] });
    expect(r.dropped).toEqual({ err: 'error_status', few: 'assistant_not_last', userlast: 'assistant_not_last' });
  });

  it('since and until accept epoch seconds and milliseconds; a tag list value may be a number', async () => {
    const r = await curate(root, {
      logs: [
        good('n1', { created_at: at(6), tags: { n: 1 } }),
        good('n2', { created_at: at(6), tags: { n: 2 } }),
        good('n3', { created_at: at(6), tags: { n: 3 } }),
        good('old', { created_at: at(1), tags: { n: 1 } }),
      ],
      stages: [{ filter: { since: Date.UTC(2024, 2, 5) / 1000, until: Date.UTC(2024, 2, 7), tags: { n: [1, 2] } } }],
    });
    expect(r.trainIds.sort()).toEqual(['n1', 'n2']);
    expect(r.dropped).toEqual({ n3: 'tag_mismatch:n', old: 'before_since' });
  });

  it('a date alone takes in the whole day: since from its start, until to its end', async () => {
    const logs = [
      good('first-minute', { created_at: '2024-03-05T00:00:00Z' }),
      good('last-minute', { created_at: '2024-03-07T23:59:59.999Z' }),
      good('day-before', { created_at: '2024-03-04T23:59:59Z' }),
      good('day-after', { created_at: '2024-03-08T00:00:00Z' }),
    ];
    const r = await curate(root, { logs, stages: [{ filter: { since: '2024-03-05', until: '2024-03-07' } }] });
    expect(r.trainIds.sort()).toEqual(['first-minute', 'last-minute']);
    expect(r.dropped).toEqual({ 'day-before': 'before_since', 'day-after': 'after_until' });
    // A time given with the date is taken as it is.
    const exact = await curate(root, { logs, stages: [{ filter: { since: '2024-03-05', until: '2024-03-07T00:00:00Z' } }] });
    expect(exact.dropped['last-minute']).toBe('after_until');
  });

  it('a tag key may be any string, __proto__ and constructor included', async () => {
    // JSON.parse gives an own `__proto__` key, as a JSON or YAML config and the logs do; a literal would set the prototype.
    const tags = (json: string): Record<string, unknown> => JSON.parse(json) as Record<string, unknown>;
    const logs = [
      good('proto-x', { tags: tags('{"__proto__": "x"}') }),
      good('proto-y', { tags: tags('{"__proto__": "y"}') }),
      good('ctor-x', { tags: tags('{"constructor": "x"}') }),
      good('plain', { tags: { lang: 'en' } }),
    ];
    const proto = await curate(root, { logs, stages: [{ filter: { tags: tags('{"__proto__": "x"}') } }] });
    expect(proto.trainIds).toEqual(['proto-x']);
    expect(proto.dropped).toEqual({ 'proto-y': 'tag_mismatch:__proto__', 'ctor-x': 'tag_mismatch:__proto__', plain: 'tag_mismatch:__proto__' });
    const both = await curate(root, { logs, stages: [{ filter: { tags: tags('{"constructor": ["x"], "__proto__": ["x", "y"]}') } }] });
    expect(both.trainIds).toEqual([]);
    expect(both.dropped).toEqual({ 'proto-x': 'tag_mismatch:constructor', 'proto-y': 'tag_mismatch:constructor', 'ctor-x': 'tag_mismatch:__proto__', plain: 'tag_mismatch:constructor' });
  });

  it('the parsed tags condition keeps every key as an own key, with no prototype to look keys up in', () => {
    const p = filterParams.parse(JSON.parse('{"tags": {"__proto__": "x", "toString": ["a", 1]}}') as unknown);
    expect(Object.keys(p.tags!)).toEqual(['__proto__', 'toString']);
    expect(Object.hasOwn(p.tags!, '__proto__')).toBe(true);
    expect(Object.getOwnPropertyDescriptor(p.tags!, '__proto__')!.value).toBe('x');
    expect(Object.getPrototypeOf(p.tags!)).toBe(null);
    expect(() => filterParams.parse(JSON.parse('{"tags": {"__proto__": {"a": 1}}}') as unknown)).toThrow(/expected a tag value/);
  });
});

/** A store with bare conversation rows (`conv.run(id)`) and feedback events (`event.run(key, logId, name, value, atMs)`). */
async function eventStore(name: string) {
  const { openStore } = await import('../pipeline/store.js');
  const store = openStore(join(root, name));
  const db = store.sqlite;
  const conv = db.prepare(
    `INSERT INTO conversations (id, content_sha256, format, status, messages, n_messages, n_assistant, source_file, source_line) VALUES (?, 'x', 'chat', 'ok', '[]', 0, 0, 'f', 0)`,
  );
  const event = db.prepare(`INSERT INTO feedback (event_key, log_id, name, value, created_at_ms, source_file, source_line) VALUES (?, ?, ?, ?, ?, 'f', 0)`);
  return { store, db, conv, event };
}

describe('filter: latest feedback in JS equals the SQL window-function definition', () => {
  it('on random events: ties, undated events, names, events for unknown or later conversations', async () => {
    const { latestFeedback } = await import('../pipeline/runner.js');
    const { WorkingSet } = await import('../pipeline/working-set.js');
    const { prng } = await import('./support/pipeline.js');
    const { store, db, conv, event } = await eventStore('latest-random.db');
    try {
      const rand = prng(17);
      db.transaction(() => {
        for (let k = 0; k < 600; k++) conv.run(`c${k}`);
        for (let e = 0; e < 5000; e++) {
          // Few distinct times, so ties are common; a fifth undated; some for ids never stored.
          const at = rand() < 0.2 ? null : Date.UTC(2024, 0, 1 + Math.floor(rand() * 4));
          event.run(`k${e}`, `c${Math.floor(rand() * 650)}`, rand() < 0.8 ? 'score' : 'thumbs', Math.floor(rand() * 50) / 10, at);
        }
      })();
      // The run's view: the first 550 conversations and the first 4,000 events (later ones were ingested after).
      const pks = Int32Array.from(db.prepare(`SELECT pk FROM conversations WHERE pk <= 550 ORDER BY pk`).pluck().all() as number[]);
      const ws = new WorkingSet(pks, Array.from(pks, (p) => `c${p - 1}`));
      const maxPk = 4000;
      const expected = new Float64Array(ws.size).fill(NaN);
      const reference = db
        .prepare(
          `SELECT c.pk, f.value FROM (
             SELECT log_id, value, row_number() OVER (PARTITION BY log_id ORDER BY created_at_ms IS NULL, created_at_ms DESC, pk DESC) AS rn
             FROM feedback WHERE name = ? AND pk <= ?) f
           JOIN conversations c ON c.id = f.log_id WHERE f.rn = 1`,
        )
        .raw()
        .all('score', maxPk) as [number, number][];
      for (const [pk, v] of reference) if (pk <= 550) expected[pk - 1] = v;
      const got = latestFeedback(store, ws, 'score', maxPk);
      expect(Array.from(got)).toEqual(Array.from(expected));
      expect(Array.from(expected).filter((v) => !Number.isNaN(v)).length).toBeGreaterThan(400);
    } finally {
      await store.close();
    }
  });

  it('carried on from the kept fold, night after night, it still equals the definition', async () => {
    const { latestFeedback } = await import('../pipeline/runner.js');
    const { WorkingSet } = await import('../pipeline/working-set.js');
    const { prng } = await import('./support/pipeline.js');
    const { store, db, conv, event } = await eventStore('latest-nights.db');
    try {
      const rand = prng(29);
      let convs = 0;
      let events = 0;
      /** A night: new conversations, and events for old, new and not yet stored ones (undated, tied, older). */
      const night = (newConvs: number, newEvents: number): void =>
        db.transaction(() => {
          for (let k = 0; k < newConvs; k++) conv.run(`c${convs++}`);
          for (let e = 0; e < newEvents; e++) {
            const at = rand() < 0.2 ? null : Date.UTC(2024, 0, 1 + Math.floor(rand() * 6));
            event.run(`k${events++}`, `c${Math.floor(rand() * (convs + 60))}`, rand() < 0.8 ? 'score' : 'thumbs', Math.floor(rand() * 50) / 10, at);
          }
        })();
      const reference = db.prepare(
        `SELECT c.pk, f.value FROM (
           SELECT log_id, value, row_number() OVER (PARTITION BY log_id ORDER BY created_at_ms IS NULL, created_at_ms DESC, pk DESC) AS rn
           FROM feedback WHERE name = ? AND pk <= ?) f
         JOIN conversations c ON c.id = f.log_id WHERE f.rn = 1 AND c.pk <= ?`,
      );
      const kept = db.prepare(`SELECT max_feedback_pk AS f, max_conversation_pk AS c FROM feedback_latest WHERE name = 'score'`);
      /** A run's view: conversations up to pk c, events up to pk f. */
      const check = (c: number, f: number): void => {
        const pks = Int32Array.from(db.prepare(`SELECT pk FROM conversations WHERE pk <= ? ORDER BY pk`).pluck().all(c) as number[]);
        const ws = new WorkingSet(pks, Array.from(pks, (p) => `c${p - 1}`));
        const expected = new Float64Array(ws.size).fill(NaN);
        for (const [pk, v] of reference.raw().all('score', f, c) as [number, number][]) expected[pk - 1] = v;
        expect(Array.from(latestFeedback(store, ws, 'score', f)), `view c=${c} f=${f}`).toEqual(Array.from(expected));
        expect(kept.get()).toEqual({ f, c });
      };
      night(300, 2000);
      check(convs, events);
      for (let k = 0; k < 6; k++) {
        night(k % 2 === 0 ? 40 : 0, 300);
        check(convs, events);
      }
      // A view behind the kept fold (a run that started before another finished): folded from scratch.
      check(convs - 30, events - 200);
      // The view then moves on from that one again.
      night(20, 200);
      check(convs, events);
      expect(Number(db.prepare(`SELECT count(*) FROM feedback f WHERE NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = f.log_id)`).pluck().get())).toBeGreaterThan(50);
    } finally {
      await store.close();
    }
  });
});

describe('filter: deciding from the working set\'s columns equals deciding from a scan', () => {
  it('on random statuses, turn counts, last roles and feedback, with and without a system prompt before it', async () => {
    const { prng } = await import('./support/pipeline.js');
    const rand = prng(23);
    const logs: unknown[] = [];
    for (let k = 0; k < 300; k++) {
      const turns = 1 + Math.floor(rand() * 4);
      const messages: { role: string; content: string }[] = [];
      if (rand() < 0.3) messages.push({ role: 'system', content: 'sys' });
      for (let t = 0; t < turns; t++) {
        messages.push({ role: 'user', content: `q${k}.${t}` });
        if (t < turns - 1 || rand() < 0.8) messages.push({ role: 'assistant', content: `a${k}.${t}` });
      }
      if (rand() < 0.1) messages.push({ role: 'tool', content: 'tool output' });
      logs.push({ id: `f${k}`, model: 'gpt-x', messages, ...(rand() < 0.1 ? { status: 'error' } : {}), ...(rand() < 0.8 ? { feedback: Math.floor(rand() * 6) } : {}) });
    }
    const params = { feedback: { min: 2 }, min_turns: 2, max_turns: 3 };
    // models ['*'] matches every conversation here, but makes the filter read a column: the scan path.
    const fromColumns = await curate(root, { logs, stages: [{ filter: params }] });
    const fromScan = await curate(root, { logs, stages: [{ filter: { ...params, models: ['*'] } }] });
    expect(fromColumns.dropped).toEqual(fromScan.dropped);
    expect(new Set(Object.values(fromColumns.dropped))).toEqual(new Set(['no_feedback', 'feedback_below_min', 'too_few_turns', 'too_many_turns', 'assistant_not_last', 'error_status']));
    // After a transform the stored columns may not describe the messages: the filter scans (same result here,
    // as replacing the system prompt changes no role after the first).
    const afterTransform = await curate(root, { logs, stages: [{ system_prompt: { text: 'New.' } }, { filter: params }] });
    expect(afterTransform.dropped).toEqual(fromColumns.dropped);
  });
});
