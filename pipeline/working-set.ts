/**
 * The run-scoped working set: compact columns indexed 0..n-1 over the conversations a run considers. Decisions
 * live here as typed arrays (a few bytes per conversation) and are persisted at the end (pipeline/decisions.ts).
 */

export const SPLIT_NONE = 0;
export const SPLIT_TRAIN = 1;
export const SPLIT_TEST = 2;

export const REFUSAL_UNKNOWN = 0;
export const REFUSAL_NO = 1;
export const REFUSAL_YES = 2;

export class WorkingSet {
  /** conversations.pk, ascending. */
  readonly pks: Int32Array;
  /**
   * The conversations' own ids (from the logs), for reasons, hashing and lineage: looked up by pk when asked,
   * not held (a million ids were ~56 MB of strings for the whole run, read by few).
   */
  private readonly idOf: (pk: number) => string;
  /** -1 while alive, else the index of the stage that dropped it. */
  readonly droppedBy: Int16Array;
  /** Index into `reasons` for dropped conversations. */
  readonly reasonOf: Int32Array;
  readonly split: Uint8Array;
  /** Token total per example, filled by emit (-1 = not counted). */
  readonly tokens: Int32Array;
  /** 1-based line in train.jsonl / test.jsonl, filled by emit. */
  readonly line: Int32Array;
  /**
   * Whether rebalance_refusals judged the conversation a refusal (REFUSAL_YES / REFUSAL_NO; REFUSAL_UNKNOWN where
   * it did not run), by its detector or its `tag`, so later measurements agree with the decision it made.
   */
  readonly refusal: Uint8Array;
  private readonly reasonIndex = new Map<string, number>();
  readonly reasons: string[] = [];
  private aliveCount: number;

  /** Looks many ids up at once, by pk (the store's, for a run); without it, one at a time. */
  private readonly idsOf: ((pks: readonly number[]) => string[]) | null;

  /** `ids`: each conversation's id by index, or a lookup by pk (the store's, for a run), and a batch lookup. */
  constructor(pks: Int32Array, ids: readonly string[] | ((pk: number) => string), idsOf?: (pks: readonly number[]) => string[]) {
    this.pks = pks;
    this.idsOf = idsOf ?? null;
    if (typeof ids === 'function') this.idOf = ids;
    else {
      if (ids.length !== pks.length) throw new Error(`internal: ${pks.length} pks but ${ids.length} ids`);
      this.idOf = (pk) => ids[indexOfPk(pks, pk)]!;
    }
    const n = pks.length;
    this.droppedBy = new Int16Array(n).fill(-1);
    this.reasonOf = new Int32Array(n).fill(-1);
    this.split = new Uint8Array(n);
    this.tokens = new Int32Array(n).fill(-1);
    this.line = new Int32Array(n);
    this.refusal = new Uint8Array(n);
    this.aliveCount = n;
  }

  get size(): number {
    return this.pks.length;
  }

  get alive(): number {
    return this.aliveCount;
  }

  /** The id of conversation `i` (a store lookup for a run: call it where an id is needed, not per row of a scan). */
  id(i: number): string {
    return this.idOf(this.pks[i]!);
  }

  /** The ids of conversations `indices`, in that order (fetched together where the store allows). */
  ids(indices: readonly number[]): string[] {
    if (!this.idsOf) return indices.map((i) => this.id(i));
    return this.idsOf(indices.map((i) => this.pks[i]!));
  }

  isAlive(i: number): boolean {
    return this.droppedBy[i] === -1;
  }

  drop(i: number, stageIndex: number, reason: string): void {
    if (this.droppedBy[i] !== -1) throw new Error(`internal: conversation ${this.id(i)} dropped twice`);
    let r = this.reasonIndex.get(reason);
    if (r === undefined) {
      r = this.reasons.length;
      this.reasons.push(reason);
      this.reasonIndex.set(reason, r);
    }
    this.droppedBy[i] = stageIndex;
    this.reasonOf[i] = r;
    this.aliveCount--;
  }

  reason(i: number): string | null {
    const r = this.reasonOf[i]!;
    return r === -1 ? null : this.reasons[r]!;
  }

  /** Indices still alive, ascending. */
  *aliveIndices(): Generator<number> {
    for (let i = 0; i < this.pks.length; i++) if (this.droppedBy[i] === -1) yield i;
  }
}

/** Binary search of a pk in ascending pks (a working set's, a decision set's); -1 when absent. */
export function indexOfPk(pks: Int32Array, pk: number): number {
  let lo = 0;
  let hi = pks.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = pks[mid]!;
    if (v === pk) return mid;
    if (v < pk) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** The reason's category for funnel counts: `duplicate_of:abc` → `duplicate_of`, `pii:email` stays. */
export function reasonCategory(reason: string): string {
  if (reason.startsWith('duplicate_of:')) return 'duplicate_of';
  return reason;
}
