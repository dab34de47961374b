/**
 * dedupe — exact and near-duplicate removal (SPEC §3). Exact: equal normalised key text. Near: MinHash with
 * LSH banding over word shingles (pipeline/minhash.ts explains the parameters), verified against the
 * threshold. Each cluster keeps one conversation by `keep`; the others get `duplicate_of:<kept id>`.
 */
import { z } from 'zod';
import { defineStage } from '../pipeline/stage.js';
import { keyText } from '../pipeline/messages.js';
import { normalizeText } from '../pipeline/normalize.js';
import { NearDuplicateIndex, signature } from '../pipeline/minhash.js';

export const dedupeParams = z.strictObject({
  method: z.enum(['exact', 'near']).default('exact'),
  key: z.enum(['conversation', 'prompt', 'last_user']).default('conversation'),
  threshold: z.number().gt(0, { error: 'expected a similarity in (0, 1]' }).max(1, { error: 'expected a similarity in (0, 1]' }).default(0.85),
  keep: z.enum(['best_feedback', 'newest', 'oldest']).default('best_feedback'),
});

export default defineStage({
  name: 'dedupe',
  params: dedupeParams,
  run(ctx, p) {
    const { ws } = ctx;
    const n = ws.size;
    const parent = new Int32Array(n).fill(-1);
    const created = new Float64Array(n).fill(NaN);
    // 53-bit keys (no string per conversation); equal length is checked too, so a collision never merges.
    const firstByHash = new Map<number, number>();
    const textLength = new Int32Array(n);
    const index = p.method === 'near' ? new NearDuplicateIndex({ threshold: p.threshold, seed: 0, expectedDocs: n }) : null;
    const find = (x: number): number => {
      while (parent[x] !== x) x = parent[x] = parent[parent[x]!]!;
      return x;
    };
    const union = (a: number, b: number): void => {
      const ra = find(a);
      const rb = find(b);
      if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
    };
    const members: number[] = [];
    /** Working-set index of each near-index document (the index wants dense 0..m-1 document numbers). */
    const indexed: number[] = [];
    // Exact keys come from the conversations' signals (kept in the store); only near needs the text itself.
    for (const c of ctx.scan('dedupe', { messages: index ? true : 'signals' })) {
      const length = c.signals.keyLength(p.key);
      created[c.i] = c.createdAtMs ?? NaN;
      // An empty key (no user turn for last_user) says nothing about sameness: never a duplicate.
      if (length === 0) continue;
      parent[c.i] = c.i;
      members.push(c.i);
      const h = c.signals.keyHash(p.key);
      const first = firstByHash.get(h);
      let exactCopy = false;
      if (first === undefined) {
        firstByHash.set(h, c.i);
        textLength[c.i] = length;
      } else if (textLength[first] === length) {
        union(first, c.i);
        exactCopy = true;
      }
      // An exact copy has its original's signature: it can only link to what the original links to, so it is
      // already in that cluster through the original. Only originals go into the near index.
      if (index && !exactCopy) {
        index.add(indexed.length, signature(normalizeText(keyText(c.messages, p.key)), index.config));
        indexed.push(c.i);
      }
    }
    if (index) {
      const rep = index.clusters();
      indexed.forEach((i, d) => {
        if (rep[d]! !== d) union(indexed[rep[d]!]!, i);
      });
    }
    const clusters = new Map<number, number[]>();
    for (const i of members) {
      const r = find(i);
      if (r === i && !clusters.has(r)) continue;
      let list = clusters.get(r);
      if (!list) clusters.set(r, (list = [r]));
      if (i !== r) list.push(i);
    }
    const fb = p.keep === 'best_feedback' ? ctx.feedback(ctx.facts.feedbackName ?? 'score', 'latest') : null;
    // Total order per keep rule; the id breaks remaining ties, so the choice never depends on ingest order.
    const better = (a: number, b: number): boolean => {
      if (fb) {
        const fa = fb[a]!;
        const fbb = fb[b]!;
        if (!Number.isNaN(fa) || !Number.isNaN(fbb)) {
          if (Number.isNaN(fbb)) return true;
          if (Number.isNaN(fa)) return false;
          if (fa !== fbb) return fa > fbb;
        }
      }
      const ca = created[a]!;
      const cb = created[b]!;
      if (p.keep === 'oldest') {
        if (ca !== cb && !(Number.isNaN(ca) && Number.isNaN(cb))) {
          if (Number.isNaN(cb)) return true;
          if (Number.isNaN(ca)) return false;
          return ca < cb;
        }
      } else if (ca !== cb && !(Number.isNaN(ca) && Number.isNaN(cb))) {
        if (Number.isNaN(cb)) return true;
        if (Number.isNaN(ca)) return false;
        return ca > cb;
      }
      return ws.ids[a]! < ws.ids[b]!;
    };
    const sizes = (ctx.facts.duplicateClusters ??= new Map<number, number>());
    let removed = 0;
    for (const list of clusters.values()) {
      let keep = list[0]!;
      for (const i of list) if (i !== keep && better(i, keep)) keep = i;
      const reason = `duplicate_of:${ws.ids[keep]}`;
      for (const i of list) if (i !== keep) ctx.drop(i, reason);
      removed += list.length - 1;
      sizes.set(list.length, (sizes.get(list.length) ?? 0) + 1);
    }
    ctx.stats.clusters = clusters.size;
    ctx.stats.removed = removed;
    if (index) ctx.stats.minhash = { ...index.config };
  },
});
