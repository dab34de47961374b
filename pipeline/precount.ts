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
import type { WorkingSet } from './working-set.js';
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
    const k = indexOf(pks, pk);
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

function indexOf(sorted: Int32Array, pk: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid]!;
    if (v === pk) return mid;
    if (v < pk) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** How the main thread hands batches to the worker and takes back the ones it has not started. */
export interface PrecountChannel {
  post(input: PrecountInput): { seq: number; output: Promise<Int32Array | undefined> };
  steal(seq: number): boolean;
}

interface Batch {
  readonly seq: number;
  /** Working-set indexes, in order. */
  readonly at: Int32Array;
  taken: boolean;
  readonly done: Promise<void>;
}

/** The main thread's side: what was handed over, and the counts that came back (by working-set index). */
export class Precount {
  private readonly total: Int32Array;
  private readonly assistant: Int32Array;
  /** By working-set index: 1 + the index in `batches` of the batch counting it; 0 when none is. */
  private readonly batchOf: Uint32Array;
  private readonly batches: Batch[] = [];
  /** Counts taken from here (stats). */
  used = 0;

  constructor(
    private readonly channel: PrecountChannel,
    private readonly db: string,
    readonly prompts: readonly SystemPrompt[],
    size: number,
  ) {
    this.total = new Int32Array(size).fill(-1);
    this.assistant = new Int32Array(size);
    this.batchOf = new Uint32Array(size);
  }

  /**
   * The stages so far dropped what they dropped: batches the worker has not started are taken back, and every
   * live conversation not counted or being counted is handed over, in working-set order. `skip`: conversations
   * not to count (emit reuses their lines).
   */
  settle(ws: WorkingSet, skip?: (i: number) => boolean): void {
    for (const b of this.batches) {
      if (b.taken || !this.channel.steal(b.seq)) continue;
      b.taken = true;
      for (const i of b.at) this.batchOf[i] = 0;
    }
    let at: number[] = [];
    for (let i = 0; i < ws.size; i++) {
      if (this.batchOf[i] !== 0 || !ws.isAlive(i) || (skip && skip(i))) continue;
      at.push(i);
      if (at.length === BATCH) {
        this.post(ws, at);
        at = [];
      }
    }
    if (at.length > 0) this.post(ws, at);
  }

  private post(ws: WorkingSet, list: number[]): void {
    const at = Int32Array.from(list);
    const pks = Int32Array.from(list, (i) => ws.pks[i]!);
    const { seq, output } = this.channel.post({ db: this.db, pks, prompts: this.prompts });
    const done = output.then(
      (counts) => {
        // Undefined: taken back before the worker started it.
        if (counts === undefined) return;
        for (let k = 0; k < at.length; k++) {
          if (counts[2 * k]! < 0) continue;
          this.total[at[k]!] = counts[2 * k]!;
          this.assistant[at[k]!] = counts[2 * k + 1]!;
        }
      },
      // A batch that failed is counted the usual way (emit sends what has no count here).
      () => undefined,
    );
    this.batches.push({ seq, at, taken: false, done });
    const n = this.batches.length;
    for (const i of at) this.batchOf[i] = n;
  }

  /** Resolves once every batch counting one of these working-set indexes has answered. */
  ready(indexes: readonly number[]): Promise<void> {
    const waiting = new Set<Promise<void>>();
    for (const i of indexes) {
      const b = this.batchOf[i]!;
      if (b !== 0 && this.total[i]! < 0) waiting.add(this.batches[b - 1]!.done);
    }
    return waiting.size === 0 ? Promise.resolve() : Promise.all(waiting).then(() => undefined);
  }

  /** The count made ahead for working-set index `i`, or null. */
  tokens(i: number): { total: number; assistant: number } | null {
    const total = this.total[i]!;
    if (total < 0) return null;
    this.used++;
    return { total, assistant: this.assistant[i]! };
  }

  /** Takes back every batch the worker has not started (the counts will not be used). */
  cancel(): void {
    for (const b of this.batches) if (!b.taken && this.channel.steal(b.seq)) b.taken = true;
  }
}
