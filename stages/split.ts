/**
 * split — train/test by group (SPEC §3).
 *
 * Every conversation belongs to a component: conversations sharing a group key, or sharing an identical
 * normalised prompt, are linked (union-find), so a group never straddles the split and neither does a prompt.
 * `stable` assigns a component by a seeded hash of its first member's key (the earliest ingested), so a
 * conversation keeps its split on later nights: newcomers join a component without changing its value.
 * `exact` ranks components by that hash and fills the test set to the exact count, per stratum.
 *
 * "Prompt" is all user turns (as for dedupe's `key: prompt`); conversations sharing only their first or their
 * last user turn are linked too, unless that turn is boilerplate shared by more than LINK_CAP conversations
 * (a greeting, "thanks"): on production-shaped logs those few turns glued 54% of 200,000 conversations into one
 * component, which then put half the data in test whatever test_fraction said.
 */
import { aq } from '../pipeline/vendor.js';
import { z } from 'zod';
import { defineStage, type ScanField } from '../pipeline/stage.js';
import { SeededUnits } from '../pipeline/normalize.js';
import { HashIndex } from '../pipeline/hash-index.js';
import { REFUSAL_UNKNOWN, REFUSAL_YES, SPLIT_TEST, SPLIT_TRAIN } from '../pipeline/working-set.js';

const groupBy = z
  .string()
  .regex(/^(conversation|user_id|session_id|tags\..+)$/, { error: 'expected conversation, user_id, session_id or tags.<key>' })
  .default('conversation');

export const splitParams = z
  .strictObject({
    test_fraction: z.number().min(0, { error: 'expected a number from 0 to 0.5' }).max(0.5, { error: 'expected a number from 0 to 0.5' }).optional(),
    test_size: z.number().int({ error: 'expected a whole count (at most 9007199254740991)' }).min(0, { error: 'expected a count ≥ 0' }).optional(),
    group_by: groupBy,
    stratify_by: z.string().regex(/^(refusal|tags\..+)$/, { error: 'expected refusal or tags.<key>' }).optional(),
    method: z.enum(['stable', 'exact']).default('stable'),
  })
  .refine((p) => !(p.test_fraction !== undefined && p.test_size !== undefined), { error: 'give test_fraction or test_size, not both', path: ['test_size'] });

class UnionFind {
  private readonly parent: Int32Array;
  constructor(n: number) {
    this.parent = new Int32Array(n);
    for (let i = 0; i < n; i++) this.parent[i] = i;
  }
  find(x: number): number {
    let r = x;
    while (this.parent[r] !== r) r = this.parent[r]!;
    while (this.parent[x] !== r) {
      const next = this.parent[x]!;
      this.parent[x] = r;
      x = next;
    }
    return r;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    // The smaller index wins: the representative does not depend on the order unions happen in.
    if (ra < rb) this.parent[rb] = ra;
    else if (rb < ra) this.parent[ra] = rb;
  }
}

/** A first or last user turn that more conversations than this share is boilerplate: it links nothing. */
export const LINK_CAP = 50;

export default defineStage({
  name: 'split',
  params: splitParams,
  run(ctx, p) {
    const { ws } = ctx;
    const alive = Array.from(ws.aliveIndices());
    const n = alive.length;
    const pos = new Int32Array(ws.size).fill(-1);
    alive.forEach((wsIndex, k) => {
      pos[wsIndex] = k;
    });
    const uf = new UnionFind(n);
    const firstByGroup = new Map<string, number>();
    // Keyed by a 53-bit hash (numbers, not strings: three keys per conversation add up at a million).
    const firstByPrompt = new HashIndex(n);
    /** The key hashed for the stable decision: the group key, or for per-conversation grouping the prompt. */
    const unit = new Float64Array(n);
    const stratum: string[] = new Array<string>(n);
    const stratTag = p.stratify_by?.startsWith('tags.') ? p.stratify_by.slice(5) : null;
    const groupTag = p.group_by.startsWith('tags.') ? p.group_by.slice(5) : null;

    // Prompts, links and the refusal verdict are the conversations' signals (kept in the store): no text is read.
    const fields: ScanField[] = [];
    if (p.group_by === 'user_id') fields.push('userId');
    if (p.group_by === 'session_id') fields.push('sessionId');
    if (groupTag !== null || stratTag !== null) fields.push('tags');
    /** The first and last user turns' link hashes (NaN: none, or the same text as the prompt), linked below. */
    const turnLinks = new Float64Array(2 * n).fill(NaN);
    const turnCount = new HashIndex(n);
    /** Each conversation's prompt hash (NaN: no user text). */
    const promptOf = new Float64Array(n);
    // seededUnit(seed, `p:<prompt hash>`) and seededUnit(seed, `g:<group>`), the seed and prefix hashed once.
    const promptUnits = new SeededUnits(ctx.seed, 'p:');
    const groupUnits = new SeededUnits(ctx.seed, 'g:');
    for (const c of ctx.scan('split', { messages: 'signals', fields })) {
      const k = pos[c.i]!;
      let group: string | null;
      if (p.group_by === 'conversation') group = null;
      else if (p.group_by === 'user_id') group = c.userId;
      else if (p.group_by === 'session_id') group = c.sessionId;
      else {
        const v = c.tags && Object.prototype.hasOwnProperty.call(c.tags, groupTag!) ? c.tags[groupTag!] : undefined;
        group = v === undefined || v === null ? null : String(v);
      }
      // Conversations without a group value form groups of their own (keyed `p:<prompt hash>`); their prompt
      // still links them.
      unit[k] = group === null ? c.signals.promptUnit(promptUnits) : groupUnits.of(group);
      if (group !== null) {
        const first = firstByGroup.get(group);
        if (first === undefined) firstByGroup.set(group, k);
        else uf.union(first, k);
      }
      // Identical prompts never straddle the split; empty texts say nothing and link nothing. The first and last
      // user turns (when there are several) are linked after the scan, once it is known how common each is.
      const prompt = c.signals.keyLength('prompt') > 0 ? c.signals.keyHash('prompt') : NaN;
      promptOf[k] = prompt;
      let turns = 0;
      for (const h of c.signals.linkHashes()) {
        if (h === prompt) {
          const firstP = firstByPrompt.get(h);
          if (firstP === -1) firstByPrompt.set(h, k);
          else uf.union(firstP, k);
        } else if (turns < 2) {
          turnLinks[2 * k + turns++] = h;
          turnCount.increment(h);
        }
      }
      if (p.stratify_by === 'refusal') {
        // What rebalance_refusals judged, with its own detector settings (patterns, phrases, a tag), when it ran
        // before; else the default detector.
        const verdict = ws.refusal[c.i]!;
        stratum[k] = (verdict === REFUSAL_UNKNOWN ? c.signals.defaultRefusal() : verdict === REFUSAL_YES) ? 'refusal' : 'other';
      } else if (stratTag) {
        const v = c.tags && Object.prototype.hasOwnProperty.call(c.tags, stratTag) ? c.tags[stratTag] : undefined;
        stratum[k] = v === undefined || v === null ? '(none)' : String(v);
      } else stratum[k] = 'all';
    }
    // Shared first or last turns link conversations too (one namespace with the prompts: a single-turn prompt equal
    // to another conversation's first turn links them), in ingest order, each to the earliest conversation with
    // that text. Under `stable` such a link never moves a conversation already split: it joins two groups only
    // when they land on the same side, or when the newer one has no member older than the conversation that
    // links them (nothing in it was split before it). So a newcomer whose first turn is one group's and whose
    // last turn is another's, on the other side, joins the first and leaves the other where it was; before, the
    // two merged and the later group changed sides (test examples of an earlier night moved to train). Identical
    // prompts and group keys (linked above) still always join.
    const stable = p.method === 'stable';
    const fraction = p.test_size !== undefined ? (n === 0 ? 0 : Math.min(1, p.test_size / n)) : (p.test_fraction ?? 0.1);
    const firstByText = new HashIndex(n);
    let boilerplate = 0;
    let keptApart = 0;
    for (let k = 0; k < n; k++) {
      for (let t = -1; t < 2; t++) {
        const h = t === -1 ? promptOf[k]! : turnLinks[2 * k + t]!;
        if (Number.isNaN(h)) continue;
        if (turnCount.get(h) > LINK_CAP) {
          if (t !== -1) boilerplate++;
          continue;
        }
        const j = firstByText.get(h);
        if (j === -1) {
          firstByText.set(h, k);
          continue;
        }
        const rk = uf.find(k);
        const rj = uf.find(j);
        if (rk === rj) continue;
        if (!stable || rk === k || (unit[rk]! < fraction) === (unit[rj]! < fraction)) uf.union(rk, rj);
        else keptApart++;
      }
    }

    // A component's value is its first member's (the union-find root is its smallest index, i.e. the earliest
    // ingested conversation): uniform whatever the component's size, and unchanged when later logs join it.
    // (The smallest of its members' values, as before, sent a component of m conversations to test with
    // probability 1 - (1 - f)^m: 34% for 4 at f = 0.1. A member chosen by another hash fixed that but moved
    // 17 of 3,625 real conversations on a second night, when a newcomer became the representative; this moves
    // none on the same two nights.)
    // Components by their root (an index): the root's unit is the component's value. Typed arrays, not maps:
    // at 200k there are ~80k components.
    const roots: number[] = [];
    const compSize = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const r = uf.find(k);
      if (r === k) roots.push(r);
      compSize[r]!++;
    }
    let largest = 0;
    for (const r of roots) largest = Math.max(largest, compSize[r]!);

    const testComp = new Uint8Array(n);
    if (stable) {
      for (const r of roots) if (unit[r]! < fraction) testComp[r] = 1;
    } else {
      // Exact: within each stratum (a component's stratum is its root's), fill the test set in hash order.
      const byStratum = new Map<string, { r: number; u: number; size: number }[]>();
      for (const r of roots) {
        const s = stratum[r]!;
        let list = byStratum.get(s);
        if (!list) byStratum.set(s, (list = []));
        list.push({ r, u: unit[r]!, size: compSize[r]! });
      }
      const strata = [...byStratum.keys()].sort();
      const totalTarget = p.test_size !== undefined ? Math.min(p.test_size, n) : Math.round((p.test_fraction ?? 0.1) * n);
      // Largest-remainder apportionment of the total over strata, so the sum is exact.
      const sizes = strata.map((s) => byStratum.get(s)!.reduce((a, c) => a + c.size, 0));
      const quotas = sizes.map((sz) => (n === 0 ? 0 : (totalTarget * sz) / n));
      const targets = quotas.map(Math.floor);
      let left = totalTarget - targets.reduce((a, b) => a + b, 0);
      const order = quotas.map((q, idx) => ({ idx, frac: q - Math.floor(q) })).sort((a, b) => b.frac - a.frac || a.idx - b.idx);
      for (const o of order) {
        if (left <= 0) break;
        targets[o.idx]!++;
        left--;
      }
      strata.forEach((s, si) => {
        let need = targets[si]!;
        const list = byStratum.get(s)!.sort((a, b) => a.u - b.u || a.r - b.r);
        // Greedy in hash order; a component that would overshoot is skipped for a smaller one later.
        for (const c of list) {
          if (need <= 0) break;
          if (c.size <= need) {
            testComp[c.r] = 1;
            need -= c.size;
          }
        }
        // What is still missing, when no component fits it: the component that overshoots least, if that comes
        // nearer the target than stopping short (groups of 18 and a target of 12 gave an empty test set).
        if (need > 0) {
          let best: { r: number; size: number } | null = null;
          for (const c of list) if (testComp[c.r] === 0 && c.size < 2 * need && (best === null || c.size < best.size)) best = c;
          if (best !== null) testComp[best.r] = 1;
        }
      });
    }

    let nTest = 0;
    for (let k = 0; k < n; k++) {
      const isTest = testComp[uf.find(k)] === 1;
      ws.split[alive[k]!] = isTest ? SPLIT_TEST : SPLIT_TRAIN;
      if (isTest) nTest++;
    }

    const table = aq
      .table({ stratum: Array.from(stratum), test: Array.from({ length: n }, (_, k) => (ws.split[alive[k]!] === SPLIT_TEST ? 1 : 0)) })
      .groupby('stratum')
      .rollup({ n: aq.op.count(), test: aq.op.sum('test') })
      .orderby('stratum');
    ctx.stats.train = n - nTest;
    ctx.stats.test = nTest;
    ctx.stats.components = roots.length;
    ctx.stats.largest_component = largest;
    ctx.stats.boilerplate_turns_not_linked = boilerplate;
    ctx.stats.turn_links_kept_apart = keptApart;
    ctx.stats.strata = table.objects();
    // A stable split cannot also be stratified: each group's side is its own hash's, whatever its stratum.
    if (stable && p.stratify_by !== undefined) {
      (ctx.facts.warnings ??= []).push(
        `split: stratify_by ${p.stratify_by} has no effect with method: stable (each group's side follows its own hash, so each stratum gets test_fraction only on average); method: exact stratifies`,
      );
    }
    if (stable && p.test_size !== undefined) {
      (ctx.facts.warnings ??= []).push(
        `split: test_size with method: stable is taken as a share (${p.test_size} of ${n} now): the test set comes near the count, not to it, and as the logs grow the share changes and moves examples between train and test; test_fraction keeps them where they are, method: exact gives the count`,
      );
    }
    // An empty test set where at least one example was asked for, however small the run.
    if (nTest === 0 && fraction * n >= 1) {
      (ctx.facts.warnings ??= []).push(`split: the test set is empty (${n} conversations, ${largest > 1 ? `the largest group holds ${largest}` : 'each its own group'})`);
    }
    // A test share far from the one asked for (by more than 5 points, or half the fraction): say so, and name the
    // likely cause, a linked group larger than the whole test target.
    if (n >= 200 && Math.abs(nTest / n - fraction) > Math.max(0.05, fraction / 2)) {
      const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
      const cause =
        largest > fraction * n
          ? `: ${largest} conversations (${pct(largest / n)}) form one group (by ${p.group_by === 'conversation' ? 'shared prompts' : `${p.group_by} or shared prompts`}), more than the whole test target`
          : '';
      (ctx.facts.warnings ??= []).push(`split: the test set holds ${pct(nTest / n)} of ${n} conversations, not ${pct(fraction)}${cause}`);
    }
  },
});
