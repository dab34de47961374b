/**
 * Token counts made ahead of emit, on emit's token worker, while the main thread runs the stages before it.
 *
 * A first run's main thread is its bottleneck until emit, and emit's token worker sits idle until then (~0.85 s
 * of a 200k run); in emit the worker's counting is the longer of the two threads' work. So once the first stage
 * has run, the live conversations are handed to the worker by pk: it reads their stored messages from the store
 * itself (its own read-only connection; rows never change), applies the run's system prompts, makes them training
 * messages (pipeline/training-message.ts, what emit does) and counts them with the one formula (tokens.ts). After
 * each stage the batches it has not started are taken back and what is still alive is handed over again, so little
 * is counted for conversations a later stage drops. Emit then takes a conversation's count from here instead of
 * sending its text to be counted; the counts are equal by construction, and test/precount.test.ts holds them equal.
 *
 * Only where that construction holds: a chat format, and no stage before emit but filter, dedupe,
 * rebalance_refusals, split and system_prompt (redact_pii rewrites text: its runs count as before). Emit checks the
 * transforms the run really registered against the plan before it uses a count. And only when the token cache
 * holds no count for the encoding (a store's first run): later runs find most counts there or reuse whole lines
 * (emit-reuse.ts), and counting ahead would be work thrown away.
 */
import Database from 'better-sqlite3';
import { indexOfPk, type WorkingSet } from './working-set.js';
import type { Message } from './stage.js';
import { countExampleTokens, type ChatMessageLike, type Tokenizer } from './tokens.js';
import { applySystemPrompt, toTrainingMessage, type SystemPromptMode } from './training-message.js';

/** What the worker is handed: the store, the conversations (ascending pks) and the system prompts to apply, in order. */
export interface PrecountInput {
  readonly db: string;
  readonly pks: Int32Array;
  readonly prompts: readonly SystemPrompt[];
}

export interface SystemPrompt {
  readonly mode: SystemPromptMode;
  readonly text: string | undefined;
}

/** The stages that never rewrite a conversation's messages, and system_prompt, whose rewrite the worker replays. */
const NO_TRANSFORM = new Set(['filter', 'dedupe', 'rebalance_refusals', 'split']);

/**
 * The system prompts a run applies before emit, when counting ahead is sound for its stages (else null): every
 * stage before emit is one of NO_TRANSFORM or system_prompt. `params` are the stages' prepared parameters.
 */
export function precountPlan(before: readonly { readonly name: string; readonly params: unknown }[]): SystemPrompt[] | null {
  const prompts: SystemPrompt[] = [];
  for (const st of before) {
    if (st.name === 'system_prompt') {
      const p = st.params as { mode: SystemPromptMode; text?: string };
      prompts.push({ mode: p.mode, text: p.text });
    } else if (!NO_TRANSFORM.has(st.name)) return null;
  }
  return prompts;
}

/** Conversations per batch handed to the worker. */
const BATCH = 1024;

/** The worker's side: [total, assistant] per pk, in the order given; -1 where the store has no such conversation. */
export function precountRows(input: PrecountInput, tok: Tokenizer): Int32Array {
  const select = statement(input.db);
  const { pks } = input;
  const out = new Int32Array(pks.length * 2).fill(-1);
  for (const [pk, text] of select.iterate(JSON.stringify(Array.from(pks))) as Iterable<[number, string | null]>) {
    if (typeof text !== 'string') continue;
    const k = indexOfPk(pks, pk);
    if (k === -1) continue;
    let messages = JSON.parse(text) as readonly Message[];
    for (const p of input.prompts) messages = applySystemPrompt(messages, p.mode, p.text);
    const c = countExampleTokens(messages.map(toTrainingMessage) as unknown as ChatMessageLike[], tok);
    out[2 * k] = c.total;
    out[2 * k + 1] = c.assistant;
  }
  return out;
}

let open: { path: string; db: Database.Database; select: Database.Statement } | null = null;

function statement(path: string): Database.Statement {
  if (open?.path === path) return open.select;
  open?.db.close();
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 30000');
  open = { path, db, select: db.prepare(`SELECT pk, messages FROM conversations WHERE pk IN (SELECT value FROM json_each(?))`).raw() };
  return open.select;
}

/** How the main thread hands batches to the worker and takes back the ones it has not started. */
export interface PrecountChannel {
  post(input: PrecountInput): { seq: number; output: Promise<Int32Array | undefined> };
  steal(seq: number): boolean;
  /** How many batches may be outstanding (posted, not yet answered) at once. */
  readonly capacity: number;
}

interface Batch {
  readonly seq: number;
  /** Working-set indexes, ascending; emptied once the batch is taken back or let go. */
  at: Int32Array;
  /** The last of them. */
  readonly last: number;
  /** [total, assistant] per index of `at` once the worker has answered; null before, and once released. */
  counts: Int32Array | null;
  taken: boolean;
  released: boolean;
  readonly done: Promise<void>;
}

const NONE = new Int32Array(0);

/** At most this many batches are handed over in one run (batchOf is 16-bit): ~67 million conversations. */
const MAX_BATCHES = 0xffff;

/**
 * The main thread's side: what was handed over, and the counts that came back. Counts are kept by batch, and a
 * batch is let go once emit has passed it (`releaseBefore`): at a million conversations, arrays by working-set
 * index would hold ~8 MB at emit's end, where a run's memory peaks.
 */
export class Precount {
  /** By working-set index: 1 + the index in `batches` of the batch counting it; 0 when none is. */
  private readonly batchOf: Uint16Array;
  private readonly batches: Batch[] = [];
  /** The batches not taken back, by their last index (sorted when emit starts releasing), and how many are let go. */
  private active: Batch[] = [];
  private sorted = false;
  private releasedUpTo = 0;
  /** Batches posted and not yet answered (a batch taken back is answered when the worker reaches it). */
  private outstanding = 0;
  /** Working-set indexes still to hand over (as the ring makes room), from the last settle. */
  private queue: { ws: WorkingSet; at: Int32Array; next: number } | null = null;
  /** Counts taken from here (stats). */
  used = 0;

  constructor(
    private readonly channel: PrecountChannel,
    private readonly db: string,
    readonly prompts: readonly SystemPrompt[],
    size: number,
  ) {
    this.batchOf = new Uint16Array(size);
  }

  /**
   * The stages so far dropped what they dropped: batches the worker has not started are taken back, and every
   * live conversation not counted or being counted is handed over, in working-set order. `skip`: conversations
   * not to count (emit reuses their lines).
   */
  settle(ws: WorkingSet, skip?: (i: number) => boolean): void {
    for (const b of this.batches) {
      if (b.taken || b.released || b.counts !== null || !this.channel.steal(b.seq)) continue;
      b.taken = true;
      for (const i of b.at) this.batchOf[i] = 0;
      b.at = NONE;
    }
    this.active = this.active.filter((b) => !b.taken);
    const queue: number[] = [];
    for (let i = 0; i < ws.size; i++) if (this.batchOf[i] === 0 && ws.isAlive(i) && !(skip && skip(i))) queue.push(i);
    this.queue = { ws, at: Int32Array.from(queue), next: 0 };
    this.topUp();
  }

  /**
   * Posts queued conversations while the worker's ring has room: batches taken back stay outstanding until the
   * worker reaches them, so a large store's conversations are handed over as answers come back.
   */
  private topUp(): void {
    const q = this.queue;
    if (q === null) return;
    while (q.next < q.at.length && this.outstanding < this.channel.capacity && this.batches.length < MAX_BATCHES) {
      const list: number[] = [];
      for (; q.next < q.at.length && list.length < BATCH; q.next++) {
        const i = q.at[q.next]!;
        // Dropped since it was queued (a stage ran in between), or already handed over.
        if (this.batchOf[i] === 0 && q.ws.isAlive(i)) list.push(i);
      }
      if (list.length > 0) this.post(q.ws, list);
    }
  }

  private post(ws: WorkingSet, list: number[]): void {
    this.outstanding++;
    const at = Int32Array.from(list);
    const pks = Int32Array.from(list, (i) => ws.pks[i]!);
    const { seq, output } = this.channel.post({ db: this.db, pks, prompts: this.prompts });
    const batch: Batch = {
      seq,
      at,
      last: at[at.length - 1]!,
      counts: null,
      taken: false,
      released: false,
      done: output.then(
        // Undefined: taken back before the worker started it.
        (counts) => {
          this.outstanding--;
          if (counts !== undefined && !batch.released) batch.counts = counts;
          this.topUp();
        },
        // A batch that failed is counted the usual way (emit sends what has no count here).
        () => {
          this.outstanding--;
          this.topUp();
        },
      ),
    };
    this.batches.push(batch);
    this.active.push(batch);
    this.sorted = false;
    const n = this.batches.length;
    for (const i of list) this.batchOf[i] = n;
  }

  private batch(i: number): Batch | null {
    const b = this.batchOf[i]!;
    return b === 0 ? null : this.batches[b - 1]!;
  }

  /** Resolves once every batch counting one of these working-set indexes has answered. */
  ready(indexes: readonly number[]): Promise<void> {
    const waiting = new Set<Promise<void>>();
    for (const i of indexes) {
      const b = this.batch(i);
      if (b && !b.released && b.counts === null) waiting.add(b.done);
    }
    return waiting.size === 0 ? Promise.resolve() : Promise.all(waiting).then(() => undefined);
  }

  /** The count made ahead for working-set index `i`, or null. */
  tokens(i: number): { total: number; assistant: number } | null {
    const b = this.batch(i);
    if (!b || b.counts === null) return null;
    const k = indexOfPk(b.at, i);
    const total = b.counts[2 * k]!;
    if (total < 0) return null;
    this.used++;
    return { total, assistant: b.counts[2 * k + 1]! };
  }

  /** Emit is done with every working-set index below `i`: the batches wholly below it are let go. */
  releaseBefore(i: number): void {
    if (!this.sorted) {
      this.active.sort((a, b) => a.last - b.last);
      this.releasedUpTo = 0;
      this.sorted = true;
    }
    for (; this.releasedUpTo < this.active.length; this.releasedUpTo++) {
      const b = this.active[this.releasedUpTo]!;
      if (b.last >= i) break;
      b.released = true;
      b.counts = null;
      b.at = NONE;
    }
  }

  /** Takes back every batch the worker has not started (the counts will not be used). */
  cancel(): void {
    this.queue = null;
    for (const b of this.batches) if (!b.taken && !b.released && b.counts === null && this.channel.steal(b.seq)) b.taken = true;
  }
}
