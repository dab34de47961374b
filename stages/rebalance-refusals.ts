/**
 * rebalance_refusals — bring the refusal rate down to a target (SPEC §3). A refusal is a conversation whose
 * final assistant message refuses (pipeline/refusal.ts), or whose tag says so. Refusals are dropped worst
 * feedback first until each group's rate is at most the target; with allow_drop_non_refusals, non-refusals
 * are dropped likewise when a group's rate is under it.
 */
import { z } from 'zod';
import { regexSchema } from '../schemas/config.js';
import { defineStage, type ScanField } from '../pipeline/stage.js';
import { createRefusalDetector, normalizeApostrophes } from '../pipeline/refusal.js';
import { finalAssistantText } from '../pipeline/messages.js';
import { SeededUnits } from '../pipeline/normalize.js';
import { UsageError } from '../pipeline/errors.js';
import { REFUSAL_NO, REFUSAL_YES } from '../pipeline/working-set.js';

export const rebalanceParams = z.strictObject({
  target_rate: z.number({ error: 'expected a rate from 0 to 1' }).min(0, { error: 'expected a rate from 0 to 1' }).max(1, { error: 'expected a rate from 0 to 1' }),
  extra_phrases: z.array(z.string().min(1)).optional(),
  patterns: z.array(regexSchema).optional(),
  /** A tag whose truthy value marks a refusal. */
  tag: z.string().min(1).optional(),
  /** false: only extra_phrases, patterns and tag decide (they replace the curated list instead of extending it). */
  default_phrases: z.boolean().default(true),
  by: z.string().min(1).optional(),
  allow_drop_non_refusals: z.boolean().default(false),
});

const truthy = (v: unknown): boolean => v === true || v === 1 || (typeof v === 'string' && /^(true|yes|1|refusal)$/i.test(v.trim()));

/** How many of `r` refusals may stay among `n` so that the rate is at most `t`: r' ≤ t·(n − r + r'). */
export function refusalsToKeep(n: number, r: number, t: number): number {
  if (t >= 1) return r;
  return Math.min(r, Math.floor((t * (n - r)) / (1 - t) + 1e-9));
}

/** How many of `m` non-refusals may stay beside `r` refusals so that the rate is at least `t`. */
export function nonRefusalsToKeep(r: number, m: number, t: number): number {
  if (t <= 0 || r === 0) return m;
  return Math.min(m, Math.floor((r * (1 - t)) / t + 1e-9));
}

export default defineStage({
  name: 'rebalance_refusals',
  params: rebalanceParams,
  prepare(p, env) {
    if (!p.default_phrases && !p.extra_phrases?.length && !p.patterns?.length && !p.tag) {
      throw new UsageError(`${env.path}.default_phrases: false leaves no way to detect refusals; give extra_phrases, patterns or tag`);
    }
    // The detector matches patterns against text whose apostrophes are all ASCII: a pattern typed with a curly
    // one (I’m) would never match, so patterns get the same mapping.
    const patterns = p.patterns?.map(normalizeApostrophes);
    try {
      createRefusalDetector({ useDefault: p.default_phrases, extraPhrases: p.extra_phrases, patterns });
    } catch (err) {
      throw new UsageError(`${env.path}.patterns: ${(err as Error).message}`);
    }
    return { ...p, patterns };
  },
  run(ctx, p) {
    const detect = createRefusalDetector({ useDefault: p.default_phrases, extraPhrases: p.extra_phrases, patterns: p.patterns });
    const byKey = p.by?.startsWith('tags.') ? p.by.slice(5) : p.by;
    const tagOf = (tags: Readonly<Record<string, unknown>> | null, key: string): unknown =>
      tags && Object.prototype.hasOwnProperty.call(tags, key) ? tags[key] : undefined;
    const idx: number[] = [];
    const refusal: number[] = [];
    const group: string[] = [];
    // With the curated list alone, the verdict is one of the conversation's stored signals: no text is read.
    const defaultOnly = p.default_phrases && !p.extra_phrases?.length && !p.patterns?.length;
    const fields: ScanField[] = p.tag !== undefined || byKey !== undefined ? ['tags'] : [];
    for (const c of ctx.scan('rebalance_refusals', { messages: defaultOnly ? 'signals' : true, fields })) {
      const isRefusal =
        (p.tag !== undefined && truthy(tagOf(c.tags, p.tag))) || (defaultOnly ? c.signals.defaultRefusal() : detect(finalAssistantText(c.messages)));
      idx.push(c.i);
      refusal.push(isRefusal ? 1 : 0);
      ctx.ws.refusal[c.i] = isRefusal ? REFUSAL_YES : REFUSAL_NO;
      const g = byKey === undefined ? 'all' : tagOf(c.tags, byKey);
      group.push(g === undefined || g === null ? '(none)' : String(g));
    }
    const fb = ctx.feedback(ctx.facts.feedbackName ?? 'score', 'latest');
    const score = idx.map((i) => (Number.isNaN(fb[i]!) ? -Infinity : fb[i]!));
    const before = refusal.reduce((a, b) => a + b, 0);
    // Each group's conversations and refusals, in order of first appearance (a Map: arquero's groupby and
    // rollup took ~65 ms of CPU for this at 200k).
    const counts = new Map<string, { n: number; r: number }>();
    for (let k = 0; k < idx.length; k++) {
      let c = counts.get(group[k]!);
      if (c === undefined) counts.set(group[k]!, (c = { n: 0, r: 0 }));
      c.n++;
      c.r += refusal[k]!;
    }
    const perGroup = Array.from(counts, ([g, c]) => ({ group: g, n: c.n, r: c.r }));
    const quota = new Map<string, { keepR: number; keepM: number; keptR: number; keptM: number; dropped: number; r: number; m: number }>();
    for (const g of perGroup) {
      const keepM = p.allow_drop_non_refusals && g.n > 0 && g.r / g.n < p.target_rate ? nonRefusalsToKeep(g.r, g.n - g.r, p.target_rate) : g.n - g.r;
      quota.set(g.group, { keepR: refusalsToKeep(g.n, g.r, p.target_rate), keepM, keptR: 0, keptM: 0, dropped: 0, r: g.r, m: g.n - g.r });
    }
    // Only a class whose quota is smaller than itself (a group's refusals, or its non-refusals) has members to
    // drop, and which ones depends only on the order within it; every member of any other class stays. So only
    // those are ordered — usually a group's refusals, a few percent of the conversations — and only their ids
    // read (a rerun on the 200k bench's store: the stage took ~140 ms of CPU in a profile, against ~355 ms).
    const contenders = Int32Array.from(idx.keys()).filter((k) => {
      const q = quota.get(group[k]!)!;
      return refusal[k] ? q.keepR < q.r : q.keepM < q.m;
    });
    // Best feedback is kept first; among equals a seeded hash of the id decides (seededUnit(seed, `rebalance:<id>`),
    // the seed and prefix hashed once), never the ingest order.
    const units = new SeededUnits(ctx.seed, 'rebalance:');
    const tiebreak = new Float64Array(idx.length);
    const ids = ctx.ws.ids(Array.from(contenders, (k) => idx[k]!));
    contenders.forEach((k, j) => (tiebreak[k] = units.of(ids[j]!)));
    // One pass in keep-priority order: each class keeps its best until its quota is used.
    const ordered = contenders.sort((a, b) => score[b]! - score[a]! || tiebreak[a]! - tiebreak[b]! || a - b);
    for (let j = 0; j < ordered.length; j++) {
      const k = ordered[j]!;
      const q = quota.get(group[k]!)!;
      if (refusal[k] ? q.keptR < q.keepR : q.keptM < q.keepM) {
        if (refusal[k]) q.keptR++;
        else q.keptM++;
      } else {
        ctx.drop(idx[k]!, 'refusal_rebalance');
        q.dropped++;
      }
    }
    const groupStats = Object.fromEntries(perGroup.map((g) => [g.group, { n: g.n, refusals_before: g.r, dropped: quota.get(g.group)!.dropped }]));
    const nBefore = idx.length;
    let after = 0;
    let nAfter = 0;
    idx.forEach((i, k) => {
      if (ctx.ws.isAlive(i)) {
        nAfter++;
        after += refusal[k]!;
      }
    });
    const rate = (c: number, n: number): number => (n === 0 ? 0 : Math.round((c / n) * 1e6) / 1e6);
    ctx.facts.refusals = {
      target_rate: p.target_rate,
      before: { count: before, rate: rate(before, nBefore) },
      after: { count: after, rate: rate(after, nAfter) },
    };
    // Text only: a tag is not in the text. ws.refusal holds this stage's own verdicts, tags included.
    ctx.facts.refusalDetector = detect;
    ctx.stats.groups = groupStats;
    ctx.stats.after_stage = ctx.facts.refusals.after;
  },
});
