import { describe, expect, it } from 'vitest';
import { tempDir } from './support/tmp.js';
import { chat, curate, tally, type Curated } from './support/pipeline.js';

const root = tempDir('logcurate-rebalance-');

const REFUSAL = "I'm sorry, but I can't help with that.";
const HELPFUL = 'Sure: open Settings, choose Security and press Reset password.';

const refusal = (id: string, extra: Record<string, unknown> = {}) => chat(id, `please do ${id}`, REFUSAL, extra);
const helpful = (id: string, extra: Record<string, unknown> = {}) => chat(id, `how do I ${id}?`, HELPFUL, extra);

/** Counted from the files themselves: final assistant message equal to our refusal text. */
function refusalsInFiles(r: Curated, isRefusal: (text: string) => boolean = (t) => t === REFUSAL): { n: number; refusals: number } {
  const all = [...r.train, ...r.test];
  const refusals = all.filter((ex) => {
    const last = [...ex.messages].reverse().find((m) => m.role === 'assistant');
    return isRefusal(String(last?.content ?? ''));
  }).length;
  return { n: all.length, refusals };
}

describe('rebalance_refusals', () => {
  it('drops refusals, worst feedback first, until the rate is at most the target', async () => {
    const logs = [
      ...Array.from({ length: 70 }, (_, k) => helpful(`h${k}`, { feedback: 3 })),
      // r1 … r30 with scores 1 … 30: the best seven (r24 … r30) must stay.
      ...Array.from({ length: 30 }, (_, k) => refusal(`r${k + 1}`, { feedback: k + 1 })),
    ];
    const r = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0.1 } }] });
    const { n, refusals } = refusalsInFiles(r);
    expect(n).toBe(77);
    expect(refusals).toBe(7);
    expect(refusals / n).toBeLessThanOrEqual(0.1);
    const kept = [...r.trainIds, ...r.testIds].filter((id) => id.startsWith('r')).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
    expect(kept).toEqual(['r24', 'r25', 'r26', 'r27', 'r28', 'r29', 'r30']);
    for (let k = 1; k <= 23; k++) expect(r.dropped[`r${k}`]).toBe('refusal_rebalance');
    expect(Object.keys(r.dropped)).toHaveLength(23);
    expect(r.manifest.stages[0]).toEqual({ name: 'rebalance_refusals', in: 100, out: 77, dropped: { refusal_rebalance: 23 } });
    expect(r.manifest.refusals).toEqual({ target_rate: 0.1, before: { count: 30, rate: 0.3 }, after: { count: 7, rate: Math.round((7 / 77) * 1e6) / 1e6 } });
  });

  it('refusals without feedback go before any with feedback, however low', async () => {
    const logs = [
      ...Array.from({ length: 8 }, (_, k) => helpful(`h${k}`, { feedback: 5 })),
      refusal('r-none-1'),
      refusal('r-low', { feedback: 0 }),
      refusal('r-none-2'),
      refusal('r-neg', { feedback: -3 }),
    ];
    // 8 others allow 2 refusals at 0.2 (2 / 10).
    const r = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0.2 } }] });
    expect(Object.keys(r.dropped).sort()).toEqual(['r-none-1', 'r-none-2']);
  });

  it('leaves everything alone when the rate is already under the target', async () => {
    const logs = [...Array.from({ length: 20 }, (_, k) => helpful(`h${k}`)), refusal('r1')];
    const r = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0.1 } }] });
    expect(r.dropped).toEqual({});
    expect(r.manifest.refusals!.after.count).toBe(1);
  });

  it('by: each group is rebalanced on its own', async () => {
    const logs = [
      ...Array.from({ length: 20 }, (_, k) => helpful(`web-h${k}`, { tags: { product: 'web' }, feedback: 3 })),
      ...Array.from({ length: 20 }, (_, k) => refusal(`web-r${k}`, { tags: { product: 'web' }, feedback: 5 })),
      ...Array.from({ length: 45 }, (_, k) => helpful(`app-h${k}`, { tags: { product: 'app' }, feedback: 3 })),
      // The app group's refusals have the worst feedback: rebalancing the whole set would drop them first.
      ...Array.from({ length: 5 }, (_, k) => refusal(`app-r${k}`, { tags: { product: 'app' }, feedback: 1 })),
    ];
    for (const by of ['product', 'tags.product']) {
      const r = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0.2, by } }] });
      const kept = [...r.trainIds, ...r.testIds];
      const count = (prefix: string) => kept.filter((id) => id.startsWith(prefix)).length;
      // web: 20 helpful, so at most 5 refusals (5/25 = 0.2); app: 5/50 = 0.1, untouched.
      expect(count('web-r')).toBe(5);
      expect(count('web-h')).toBe(20);
      expect(count('app-r')).toBe(5);
      expect(count('app-h')).toBe(45);
      expect(count('web-r') / (count('web-r') + count('web-h'))).toBeLessThanOrEqual(0.2);
    }
    const whole = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0.2 } }] });
    // Whole set: 65 non-refusals allow 16 refusals; the five app refusals (worst feedback) go first.
    const kept = [...whole.trainIds, ...whole.testIds];
    expect(kept.filter((id) => id.includes('-r'))).toHaveLength(16);
    expect(kept.filter((id) => id.startsWith('app-r'))).toEqual([]);
  });

  it('target_rate 0 drops every refusal the default detector finds, apostrophe-insensitively, judging only the final assistant turn', async () => {
    const logs = [
      ...Array.from({ length: 10 }, (_, k) => helpful(`h${k}`)),
      chat('curly', 'do it', 'I’m sorry, but I can’t help with that.'),
      chat('plain', 'do it', 'I cannot assist with that request.'),
      chat('ai', 'do it', 'As an AI language model, I cannot do that.'),
      // Refused first, helped in the end: not a refusal.
      { id: 'recovered', messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: REFUSAL }, { role: 'user', content: 'b' }, { role: 'assistant', content: HELPFUL }] },
      chat('quote', 'what do bots say?', 'They often say "I can\'t help with that" when they refuse.'),
    ];
    const r = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0 } }] });
    expect(r.dropped).toEqual({ curly: 'refusal_rebalance', plain: 'refusal_rebalance', ai: 'refusal_rebalance' });
    expect(r.manifest.refusals).toMatchObject({ before: { count: 3 }, after: { count: 0, rate: 0 } });
  });

  it('extra_phrases and patterns extend the detector; default_phrases: false replaces it', async () => {
    const logs = [
      ...Array.from({ length: 10 }, (_, k) => helpful(`h${k}`)),
      refusal('default'),
      chat('extra', 'refund?', 'Computer says no, sorry.'),
      chat('extra-curly', 'refund?', 'We don’t do refunds here.'),
      chat('pattern', 'x', 'Nope. Not doing that.'),
      chat('not-pattern', 'x', 'The answer is nope, as in the word nope.'),
    ];
    const params = { target_rate: 0, extra_phrases: ['computer says no', "we don't do refunds"], patterns: ['^nope\\b'] };
    const extended = await curate(root, { logs, stages: [{ rebalance_refusals: params }] });
    expect(Object.keys(extended.dropped).sort()).toEqual(['default', 'extra', 'extra-curly', 'pattern']);
    const replaced = await curate(root, { logs, stages: [{ rebalance_refusals: { ...params, default_phrases: false } }] });
    expect(Object.keys(replaced.dropped).sort()).toEqual(['extra', 'extra-curly', 'pattern']);
    // A phrase written with a curly apostrophe matches the straight one in the text, too.
    const curlyPhrase = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0, default_phrases: false, extra_phrases: ['computer says no', 'we don’t do refunds'] } }] });
    expect(Object.keys(curlyPhrase.dropped).sort()).toEqual(['extra', 'extra-curly']);
    // And a pattern typed with a curly apostrophe matches either spelling in the text.
    const curlyPattern = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0, default_phrases: false, patterns: ['^we don’t'] } }] });
    expect(Object.keys(curlyPattern.dropped).sort()).toEqual(['extra-curly']);
    const straight = [...logs, chat('straight', 'refund?', "We don't do refunds here.")];
    const both = await curate(root, { logs: straight, stages: [{ rebalance_refusals: { target_rate: 0, default_phrases: false, patterns: ['^we don’t'] } }] });
    expect(Object.keys(both.dropped).sort()).toEqual(['extra-curly', 'straight']);
  });

  it('tag: a truthy tag marks a refusal', async () => {
    const logs = [
      ...Array.from({ length: 10 }, (_, k) => helpful(`h${k}`)),
      helpful('t-true', { tags: { refused: true } }),
      helpful('t-yes', { tags: { refused: 'yes' } }),
      helpful('t-one', { tags: { refused: 1 } }),
      helpful('t-false', { tags: { refused: false } }),
      helpful('t-no', { tags: { refused: 'no' } }),
      helpful('t-zero', { tags: { refused: 0 } }),
      refusal('by-text'),
    ];
    const r = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0, tag: 'refused' } }] });
    expect(Object.keys(r.dropped).sort()).toEqual(['by-text', 't-one', 't-true', 't-yes']);
    expect(r.manifest.refusals).toMatchObject({ before: { count: 4 } });
  });

  // Known bug, outside this stage: emit measures the manifest's `refusals.after` with facts.refusalDetector, a
  // text-only function, and rebalance_refusals leaves it unset when `tag` is given (a tag is not in the text), so
  // every tagged refusal that reaches the files is counted as 0. rebalance_refusals now records its verdicts in
  // ws.refusal; the fix is for stages/emit.ts to use ws.refusal[c.i] where it is not REFUSAL_UNKNOWN and the
  // detector only otherwise. Flip to `it` once fixed.
  it('tag: the manifest counts the tagged refusals that reach the files', async () => {
    const logs = [
      ...Array.from({ length: 10 }, (_, k) => helpful(`h${k}`)),
      ...Array.from({ length: 4 }, (_, k) => helpful(`t${k}`, { tags: { refused: true } })),
    ];
    const r = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0.2, tag: 'refused' } }] });
    // 10 others allow 2 refusals (2 / 12 ≤ 0.2).
    expect([...r.trainIds, ...r.testIds].filter((id) => id.startsWith('t'))).toHaveLength(2);
    expect(r.manifest.refusals!.after.count).toBe(2);
  });

  it('allow_drop_non_refusals raises the rate to the target by dropping the worst non-refusals', async () => {
    const logs = [
      ...Array.from({ length: 95 }, (_, k) => helpful(`h${k}`, { feedback: k })),
      ...Array.from({ length: 5 }, (_, k) => refusal(`r${k}`, { feedback: 50 })),
    ];
    const off = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0.1 } }] });
    expect(off.dropped).toEqual({});
    const on = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0.1, allow_drop_non_refusals: true } }] });
    const { n, refusals } = refusalsInFiles(on);
    expect(refusals).toBe(5);
    // 5 refusals may stand beside at most 45 others: 5 / 50 = 0.1.
    expect(n).toBe(50);
    const droppedIds = Object.keys(on.dropped);
    expect(droppedIds).toHaveLength(50);
    expect(new Set(droppedIds)).toEqual(new Set(Array.from({ length: 50 }, (_, k) => `h${k}`)));
    expect(tally(Object.values(on.dropped))).toEqual(new Map([['refusal_rebalance', 50]]));
  });

  it('the choice among equal feedback depends on the seed, not on ingest order', async () => {
    const logs = [...Array.from({ length: 18 }, (_, k) => helpful(`h${k}`)), ...Array.from({ length: 10 }, (_, k) => refusal(`r${k}`))];
    const a = await curate(root, { logs, stages: [{ rebalance_refusals: { target_rate: 0.1 } }] });
    const b = await curate(root, { logs: [...logs].reverse(), stages: [{ rebalance_refusals: { target_rate: 0.1 } }] });
    const keptA = [...a.trainIds, ...a.testIds].filter((id) => id.startsWith('r')).sort();
    const keptB = [...b.trainIds, ...b.testIds].filter((id) => id.startsWith('r')).sort();
    expect(keptA).toHaveLength(2);
    expect(keptB).toEqual(keptA);
  });
});
