import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { tempDir } from './support/tmp.js';
import { chat, curate, prng, words } from './support/pipeline.js';

const root = tempDir('logcurate-dedupe-');
const day = (d: number): string => new Date(Date.UTC(2024, 4, d)).toISOString();

describe('dedupe: exact', () => {
  const multi = (id: string, first: string, last: string, extra: Record<string, unknown> = {}) => ({
    id,
    messages: [
      { role: 'user', content: first },
      { role: 'assistant', content: 'noted' },
      { role: 'user', content: last },
      { role: 'assistant', content: `answer for ${id}` },
    ],
    ...extra,
  });
  const logs = [
    chat('x1', 'Hello World', 'Hi there', { feedback: 3 }),
    chat('x2', '  hello \t WORLD ', 'hi   THERE', { feedback: 5 }),
    // Fullwidth letters and an ideographic space: the same text after NFKC.
    chat('x3', 'Ｈｅｌｌｏ\u3000Ｗｏｒｌｄ', 'Ｈｉ ｔｈｅｒｅ'),
    chat('y1', 'hello world', 'A different answer'),
    // The same words said by the other role are not the same conversation.
    chat('r1', 'Hi there', 'Hello World'),
    multi('m1', 'first question about billing', 'What is the final price?'),
    multi('m2', 'another opening entirely', 'what is the   FINAL price?'),
    chat('solo', 'something else', 'entirely'),
  ];

  it('key conversation: all non-system turns must match after NFKC, case folding and whitespace collapsing', async () => {
    const r = await curate(root, { logs, stages: [{ dedupe: { method: 'exact', key: 'conversation' } }] });
    // x2 has the best feedback.
    expect(r.dropped).toEqual({ x1: 'duplicate_of:x2', x3: 'duplicate_of:x2' });
    expect(r.manifest.stages[0]).toEqual({ name: 'dedupe', in: logs.length, out: logs.length - 2, dropped: { duplicate_of: 2 } });
  });

  it('a system message does not make two conversations different', async () => {
    const withSystem = { ...chat('sys', 'Hello World', 'Hi there'), messages: [{ role: 'system', content: 'Be terse.' }, ...chat('', 'Hello World', 'Hi there').messages as object[]] };
    const r = await curate(root, { logs: [...logs, withSystem], stages: [{ dedupe: {} }] });
    expect(r.dropped.sys).toBe('duplicate_of:x2');
  });

  it('key conversation: calls count, the legacy function_call as much as tool_calls', async () => {
    const calling = (id: string, args: string, legacy: boolean) => ({
      id,
      messages: [
        { role: 'user', content: 'what is the weather?' },
        legacy
          ? { role: 'assistant', content: null, function_call: { name: 'weather', arguments: args } }
          : { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'weather', arguments: args } }] },
        legacy ? { role: 'function', name: 'weather', content: 'sunny' } : { role: 'tool', tool_call_id: 'c1', content: 'sunny' },
        { role: 'assistant', content: 'It is sunny.' },
      ],
    });
    const calls = [
      calling('fc-paris', '{"city":"Paris"}', true),
      calling('fc-tokyo', '{"city":"Tokyo"}', true),
      calling('fc-paris-again', '{"city":"Paris"}', true),
      calling('tc-paris', '{"city":"Paris"}', false),
      calling('tc-tokyo', '{"city":"Tokyo"}', false),
    ];
    const r = await curate(root, { logs: calls, stages: [{ dedupe: { method: 'exact', key: 'conversation' } }] });
    expect(r.dropped).toEqual({ 'fc-paris-again': 'duplicate_of:fc-paris' });
  });

  it('key prompt: all user turns must match, whatever the assistant said', async () => {
    const r = await curate(root, { logs, stages: [{ dedupe: { key: 'prompt' } }] });
    expect(r.dropped).toEqual({ x1: 'duplicate_of:x2', x3: 'duplicate_of:x2', y1: 'duplicate_of:x2' });
  });

  it('key last_user: only the last user turn must match', async () => {
    const r = await curate(root, { logs, stages: [{ dedupe: { key: 'last_user' } }] });
    // m1 and m2 tie on feedback (none) and created_at (none): the smaller id is kept.
    expect(r.dropped).toEqual({ x1: 'duplicate_of:x2', x3: 'duplicate_of:x2', y1: 'duplicate_of:x2', m2: 'duplicate_of:m1' });
  });

  const dated = [
    chat('k1', 'same question', 'same answer', { created_at: day(1), feedback: 4 }),
    chat('k2', 'same question', 'same answer', { created_at: day(3), feedback: 2 }),
    chat('k3', 'same question', 'same answer', { created_at: day(2), feedback: 4 }),
    chat('k4', 'same question', 'same answer', { feedback: 5 }),
  ];

  it('keep newest / oldest / best_feedback choose by their own rule; undated conversations lose on dates', async () => {
    const newest = await curate(root, { logs: dated, stages: [{ dedupe: { keep: 'newest' } }] });
    expect(newest.trainIds).toEqual(['k2']);
    expect(Object.values(newest.dropped)).toEqual(['duplicate_of:k2', 'duplicate_of:k2', 'duplicate_of:k2']);
    const oldest = await curate(root, { logs: dated, stages: [{ dedupe: { keep: 'oldest' } }] });
    expect(oldest.trainIds).toEqual(['k1']);
    const best = await curate(root, { logs: dated, stages: [{ dedupe: { keep: 'best_feedback' } }] });
    expect(best.trainIds).toEqual(['k4']);
    // Without k4, k1 and k3 tie on feedback 4: the newer one (k3) wins the tie.
    const tie = await curate(root, { logs: dated.slice(0, 3), stages: [{ dedupe: {} }] });
    expect(tie.trainIds).toEqual(['k3']);
    expect(tie.dropped).toEqual({ k1: 'duplicate_of:k3', k2: 'duplicate_of:k3' });
  });

  it('ties are broken by id, not by the order the logs were ingested in', async () => {
    const twins = ['t-c', 't-a', 't-b'].map((id) => chat(id, 'identical', 'identical', { created_at: day(1), feedback: 3 }));
    const a = await curate(root, { logs: twins, stages: [{ dedupe: {} }] });
    const b = await curate(root, { logs: [...twins].reverse(), stages: [{ dedupe: {} }] });
    for (const keep of ['newest', 'oldest'] as const) {
      const c = await curate(root, { logs: [twins[2], twins[0], twins[1]], stages: [{ dedupe: { keep } }] });
      expect(c.trainIds).toEqual(['t-a']);
    }
    expect(a.trainIds).toEqual(['t-a']);
    expect(b.trainIds).toEqual(['t-a']);
    expect(a.dropped).toEqual({ 't-b': 'duplicate_of:t-a', 't-c': 'duplicate_of:t-a' });
  });

  it('the feedback name of an earlier filter decides best_feedback', async () => {
    const logsT = [
      chat('f1', 'same', 'same', { feedback: { thumbs: 1, score: 1 } }),
      chat('f2', 'same', 'same', { feedback: { thumbs: 0, score: 5 } }),
    ];
    const byThumbs = await curate(root, { logs: logsT, stages: [{ filter: { feedback: { name: 'thumbs' } } }, { dedupe: {} }] });
    expect(byThumbs.trainIds).toEqual(['f1']);
    const byScore = await curate(root, { logs: logsT, stages: [{ dedupe: {} }] });
    expect(byScore.trainIds).toEqual(['f2']);
  });
});

describe('dedupe: near', () => {
  const rand = prng(20240501);
  const N_WORDS = 40;
  const CLUSTERS = 8;
  const bases = Array.from({ length: CLUSTERS }, () => words(rand, N_WORDS));
  const changeOne = (ws: string[], at: number): string[] => ws.map((w, k) => (k === at ? `${w}zz` : w));
  const logs: unknown[] = [];
  const expected: Record<string, string> = {};
  bases.forEach((b, c) => {
    // "n<c>-0" sorts first, so with no feedback and no dates it is the one kept.
    logs.push(chat(`n${c}-0`, b.join(' '), `answer ${c} 0`));
    logs.push(chat(`n${c}-1`, changeOne(b, 7).join(' '), `answer ${c} 1`));
    logs.push(chat(`n${c}-2`, changeOne(b, 31).join(' '), `answer ${c} 2`));
    expected[`n${c}-1`] = `duplicate_of:n${c}-0`;
    expected[`n${c}-2`] = `duplicate_of:n${c}-0`;
  });
  // An exact copy (up to case and spacing) is removed by near as well.
  logs.push(chat('n0-copy', `  ${bases[0]!.join('  ').toUpperCase()} `, 'copy'));
  expected['n0-copy'] = 'duplicate_of:n0-0';
  // Four words changed out of 40: similar, but well under 0.85.
  logs.push(chat('far', bases[1]!.map((w, k) => (k % 10 === 5 ? `${w}qq` : w)).join(' '), 'far'));
  // Unrelated texts of the same length.
  for (let u = 0; u < 12; u++) logs.push(chat(`u${u}`, words(rand, N_WORDS).join(' '), `unrelated ${u}`));

  it('clusters one-word edits of ~40-word prompts, and only those', async () => {
    const r = await curate(root, { logs, stages: [{ dedupe: { method: 'near', key: 'prompt' } }] });
    expect(r.dropped).toEqual(expected);
    expect(r.manifest.stages[0]!.dropped).toEqual({ duplicate_of: Object.keys(expected).length });
    expect(r.trainIds).toContain('far');
    for (let u = 0; u < 12; u++) expect(r.trainIds).toContain(`u${u}`);
  });

  it('a higher threshold keeps the one-word edits apart but still removes exact copies', async () => {
    const r = await curate(root, { logs, stages: [{ dedupe: { method: 'near', key: 'prompt', threshold: 0.99 } }] });
    expect(r.dropped).toEqual({ 'n0-copy': 'duplicate_of:n0-0' });
  });

  it('exact does not cluster near-duplicates', async () => {
    const r = await curate(root, { logs, stages: [{ dedupe: { method: 'exact', key: 'prompt' } }] });
    expect(r.dropped).toEqual({ 'n0-copy': 'duplicate_of:n0-0' });
  });

  it('near keeps the best-feedback member of a cluster', async () => {
    const withFeedback = logs.map((l) => ((l as { id: string }).id === 'n3-2' ? { ...(l as object), feedback: 5 } : l));
    const r = await curate(root, { logs: withFeedback, stages: [{ dedupe: { method: 'near', key: 'prompt' } }] });
    expect(r.dropped['n3-0']).toBe('duplicate_of:n3-2');
    expect(r.dropped['n3-1']).toBe('duplicate_of:n3-2');
    expect(r.trainIds).toContain('n3-2');
  });
});

/** How many signature batches the run's dedupe stage sent to its worker thread (from the store's stage stats). */
function workerBatches(out: string): number {
  const db = new Database(join(out, '..', 'store.db'), { readonly: true });
  const stats = JSON.parse(db.prepare(`SELECT stats_json FROM run_stages WHERE name = 'dedupe'`).pluck().get() as string);
  db.close();
  return stats.minhash.batches_on_worker;
}

describe('dedupe: near, with signatures on a worker thread', () => {
  it('gives the same clusters as signing on this thread', async () => {
    const rand = prng(77);
    const logs: unknown[] = [];
    const expected: Record<string, string> = {};
    for (let c = 0; c < 300; c++) {
      const base = words(rand, 60);
      logs.push(chat(`w${String(c).padStart(3, '0')}-0`, base.join(' '), `answer ${c}`));
      for (const at of [4, 41]) {
        const id = `w${String(c).padStart(3, '0')}-${at}`;
        logs.push(chat(id, base.map((w, k) => (k === at ? `${w}zz` : w)).join(' '), `answer ${c} ${at}`));
        expected[id] = `duplicate_of:w${String(c).padStart(3, '0')}-0`;
      }
    }
    for (let u = 0; u < 300; u++) logs.push(chat(`u${u}`, words(rand, 60).join(' '), `unrelated ${u}`));
    const stages = [{ dedupe: { method: 'near', key: 'prompt' } }];
    // 1,200 live conversations: below WORKER_MIN_DOCS, so the worker is used only when forced.
    process.env.LOGCURATE_SIGNATURE_WORKER = '1';
    let threaded: Awaited<ReturnType<typeof curate>>;
    try {
      threaded = await curate(root, { logs, stages });
    } finally {
      delete process.env.LOGCURATE_SIGNATURE_WORKER;
    }
    expect(threaded.dropped).toEqual(expected);
    expect(workerBatches(threaded.out)).toBeGreaterThan(0);
    for (const mode of ['0', undefined]) {
      if (mode !== undefined) process.env.LOGCURATE_SIGNATURE_WORKER = mode;
      try {
        const inline = await curate(root, { logs, stages });
        expect(inline.dropped).toEqual(threaded.dropped);
        expect(inline.trainIds).toEqual(threaded.trainIds);
        expect(workerBatches(inline.out)).toBe(0);
      } finally {
        delete process.env.LOGCURATE_SIGNATURE_WORKER;
      }
    }
  });

  it('refuses a LOGCURATE_SIGNATURE_WORKER value other than 0 or 1, naming it', async () => {
    const logs = [chat('a', 'one two three four five six', 'x'), chat('b', 'one two three four five seven', 'y')];
    process.env.LOGCURATE_SIGNATURE_WORKER = 'yes';
    try {
      await expect(curate(root, { logs, stages: [{ dedupe: { method: 'near', key: 'prompt' } }] })).rejects.toThrow('LOGCURATE_SIGNATURE_WORKER: expected 0 or 1, got "yes"');
    } finally {
      delete process.env.LOGCURATE_SIGNATURE_WORKER;
    }
  });
});

describe('dedupe: near, after a transform', () => {
  it('signs the transformed text (not the stored one) when a stage before it rewrote messages', async () => {
    const rand = prng(31);
    const logs: unknown[] = [];
    const expected: Record<string, string> = {};
    for (let c = 0; c < 40; c++) {
      const base = words(rand, 40);
      // The same prompt with six different e-mail addresses and one word changed: far apart as stored,
      // near duplicates once redact_pii has replaced every address with the same placeholder.
      const withMails = (tag: string, edit: boolean): string =>
        base.map((w, k) => (k % 7 === 3 ? `${w} ${tag}${k}@example.org` : edit && k === 20 ? `${w}zz` : w)).join(' ');
      logs.push(chat(`m${c}-a`, withMails(`alice${c}x`, false), `answer ${c}`));
      logs.push(chat(`m${c}-b`, withMails(`bob${c}y`, true), `answer ${c} b`));
      expected[`m${c}-b`] = `duplicate_of:m${c}-a`;
    }
    const stored = await curate(root, { logs, stages: [{ dedupe: { method: 'near', key: 'prompt', keep: 'oldest' } }] });
    expect(stored.dropped).toEqual({});
    const redacted = await curate(root, { logs, stages: [{ redact_pii: {} }, { dedupe: { method: 'near', key: 'prompt', keep: 'oldest' } }] });
    expect(redacted.dropped).toEqual(expected);
  });
});
