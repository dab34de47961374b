/**
 * dedupe — exact and near-duplicate removal (SPEC §3). Exact: equal normalised key text. Near: MinHash with
 * LSH banding over word shingles (pipeline/minhash.ts explains the parameters), verified against the
 * threshold. Each cluster keeps one conversation by `keep`; the others get `duplicate_of:<kept id>`.
 */
import { z } from 'zod';
import { defineStage } from '../pipeline/stage.js';
import { keyText } from '../pipeline/messages.js';
import { normalizeText } from '../pipeline/normalize.js';
import { NearDuplicateIndex, signatureBytes } from '../pipeline/minhash.js';
import { BatchWorker } from '../pipeline/batch-worker.js';
import { collectGarbageNow } from '../pipeline/memory.js';
import { HashIndex } from '../pipeline/hash-index.js';
import { envSwitch } from '../pipeline/env.js';

export const dedupeParams = z.strictObject({
  method: z.enum(['exact', 'near']).default('exact'),
  key: z.enum(['conversation', 'prompt', 'last_user']).default('conversation'),
  threshold: z.number().gt(0, { error: 'expected a similarity in (0, 1]' }).max(1, { error: 'expected a similarity in (0, 1]' }).default(0.85),
  keep: z.enum(['best_feedback', 'newest', 'oldest']).default('best_feedback'),
});

export default defineStage({
  name: 'dedupe',
  params: dedupeParams,
  // Near dedupe holds every live conversation's signature (256 bytes each) and runs a signature worker.
  peaksMemory: (p) => p.method === 'near',
  async run(ctx, p) {
    const { ws } = ctx;
    const n = ws.size;
    const parent = new Int32Array(n).fill(-1);
    const created = new Float64Array(n).fill(NaN);
    // 53-bit keys (no string per conversation); equal length is checked too, so a collision never merges.
    const firstByHash = new HashIndex(ws.alive);
    const textLength = new Int32Array(n);
    // Sized for the conversations still alive (only those are indexed), not the whole store: 256 bytes each.
    let index = p.method === 'near' ? new NearDuplicateIndex({ threshold: p.threshold, seed: 0, expectedDocs: ws.alive }) : null;
    const minhashConfig = index?.config;
    const find = (x: number): number => {
      while (parent[x] !== x) x = parent[x] = parent[parent[x]!]!;
      return x;
    };
    const union = (a: number, b: number): void => {
      const ra = find(a);
      const rb = find(b);
      if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
    };
    const signatures = index ? new SignatureBatches(index, ws.alive) : null;
    const members: number[] = [];
    /** Working-set index of each near-index document (the index wants dense 0..m-1 document numbers). */
    const indexed: number[] = [];
    try {
      // Exact keys come from the conversations' signals (kept in the store); only near needs the text itself.
      for (const c of ctx.scan('dedupe', { messages: index ? true : 'signals', fields: ['createdAtMs'] })) {
        const length = c.signals.keyLength(p.key);
        created[c.i] = c.createdAtMs ?? NaN;
        // An empty key (no user turn for last_user) says nothing about sameness: never a duplicate.
        if (length === 0) continue;
        parent[c.i] = c.i;
        members.push(c.i);
        const h = c.signals.keyHash(p.key);
        const first = firstByHash.get(h);
        let exactCopy = false;
        if (first === -1) {
          firstByHash.set(h, c.i);
          textLength[c.i] = length;
        } else if (textLength[first] === length) {
          union(first, c.i);
          exactCopy = true;
        }
        // An exact copy has its original's signature: it can only link to what the original links to, so it is
        // already in that cluster through the original. Only originals go into the near index.
        if (signatures && !exactCopy) {
          indexed.push(c.i);
          await signatures.add(normalizeText(keyText(c.messages, p.key)));
        }
      }
      if (signatures) await signatures.finish();
    } finally {
      await signatures?.close();
    }
    if (index) {
      const rep = index.clusters();
      indexed.forEach((i, d) => {
        if (rep[d]! !== d) union(indexed[rep[d]!]!, i);
      });
      // The signatures (~100 MB at a million) live outside the JS heap, which the collection budget watches:
      // without this they stayed resident through the next stages, the run's peak at 1M.
      index = null;
      collectGarbageNow();
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
    // Ids looked up once each, for ties only.
    const tieIds = new Map<number, string>();
    const idOf = (i: number): string => {
      let id = tieIds.get(i);
      if (id === undefined) tieIds.set(i, (id = ws.id(i)));
      return id;
    };
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
      return idOf(a) < idOf(b);
    };
    const sizes = (ctx.facts.duplicateClusters ??= new Map<number, number>());
    let removed = 0;
    const lists = [...clusters.values()];
    const keepers = lists.map((list) => {
      let keep = list[0]!;
      for (const i of list) if (i !== keep && better(i, keep)) keep = i;
      return keep;
    });
    // The keepers' ids for the reasons, fetched together (one lookup per cluster cost ~80 ms at 200k).
    const keeperIds = ws.ids(keepers);
    lists.forEach((list, c) => {
      const reason = `duplicate_of:${keeperIds[c]!}`;
      for (const i of list) if (i !== keepers[c]) ctx.drop(i, reason);
      removed += list.length - 1;
      sizes.set(list.length, (sizes.get(list.length) ?? 0) + 1);
    });
    ctx.stats.clusters = clusters.size;
    ctx.stats.removed = removed;
    if (minhashConfig) ctx.stats.minhash = { ...minhashConfig, batches_on_worker: signatures!.batchesOnWorker };
  },
});

/** Texts per batch; below WORKER_MIN_BATCH a batch is signed on this thread. */
const BATCH = 2048;
const WORKER_MIN_BATCH = 256;

/**
 * Below this many live conversations a near dedupe signs everything on this thread: the worker's start-up
 * (~150–200 ms, a thread and its modules) costs more than it saves. Dedupe stage times with the worker against
 * without, three runs each on generated logs: 228–276 against 123–165 ms at 1,967 live conversations, 324–345
 * against 226–241 ms at 4,937, 431–531 against 420–447 ms at 12,456, and 751–804 against 767–833 ms at 30,278.
 * The bundled sample's run (~700 live) went 627 -> 512 ms mean over five alternating rounds.
 */
const WORKER_MIN_DOCS = 16_384;

/**
 * MinHash signatures for the near index, computed on a worker thread a batch at a time while this thread reads
 * and normalises the next texts. LOGCURATE_SIGNATURE_WORKER=0: all on this thread; =1: on the worker even below
 * WORKER_MIN_DOCS (a batch below WORKER_MIN_BATCH is still signed here). Documents are numbered in the order
 * texts are added; the index does not care in which order their signatures arrive.
 */
class SignatureBatches {
  private readonly worker: BatchWorker<{ texts: string[]; config: NearDuplicateIndex['config'] }, Uint8Array>;
  private texts: string[] = [];
  private next = 0;
  private readonly inFlight: Promise<void>[] = [];
  /** Whether batches may go to the worker at all. */
  private readonly threaded: boolean;

  /** `expectedDocs`: the live conversations the stage will read (an upper bound on the texts added). */
  constructor(
    private readonly index: NearDuplicateIndex,
    expectedDocs: number,
  ) {
    const forced = envSwitch('LOGCURATE_SIGNATURE_WORKER');
    this.worker = new BatchWorker('signature-worker', 'LOGCURATE_SIGNATURE_WORKER', null);
    this.threaded = this.worker.available && (forced ?? expectedDocs >= WORKER_MIN_DOCS);
  }

  async add(text: string): Promise<void> {
    this.texts.push(text);
    if (this.texts.length < BATCH) return;
    this.submit();
    // Two batches may wait on the worker; more would only hold memory.
    while (this.inFlight.length > 2) await this.inFlight.shift();
  }

  /** Signs what is left and waits until every document is in the index. */
  async finish(): Promise<void> {
    this.submit();
    for (const p of this.inFlight) await p;
  }

  close(): Promise<void> {
    return this.worker.close();
  }

  /** Batches signed on the worker thread. */
  get batchesOnWorker(): number {
    return this.worker.batches;
  }

  private submit(): void {
    const texts = this.texts;
    if (texts.length === 0) return;
    this.texts = [];
    const first = this.next;
    this.next += texts.length;
    const config = this.index.config;
    const store = (bytes: Uint8Array): void => {
      for (let k = 0; k < texts.length; k++) this.index.add(first + k, bytes.subarray(k * config.numPerm, (k + 1) * config.numPerm));
    };
    if (texts.length < WORKER_MIN_BATCH || !this.threaded) store(signatureBytes(texts, config));
    else this.inFlight.push(this.worker.run({ texts, config }).then(store));
  }
}
