/**
 * Token counting off the main thread. Emit hands over the messages JSON of the examples the token cache does
 * not know, a window at a time, and builds the next window's lines while a worker thread counts. Counts are the
 * same function on the same text either way (tokens.ts). LOGCURATE_TOKEN_WORKER=0 turns the worker off.
 */
import { BatchWorker } from './batch-worker.js';
import { countExampleTokens, type ChatMessageLike, type Tokenizer } from './tokens.js';
import type { EncodingName } from './models.js';
import type { PrecountChannel, PrecountInput } from './precount.js';

/** Below this many examples in one batch, count on this thread (unless the worker was started ahead). */
const WORKER_MIN_BATCH = 256;

/** [total, assistant] per example, in order. */
export function countBatch(examples: readonly string[], tok: Tokenizer): Int32Array {
  const out = new Int32Array(examples.length * 2);
  examples.forEach((json, k) => {
    const c = countExampleTokens(JSON.parse(json) as ChatMessageLike[], tok);
    out[2 * k] = c.total;
    out[2 * k + 1] = c.assistant;
  });
  return out;
}

export class TokenCounter {
  private readonly worker: BatchWorker<string[] | PrecountInput, Int32Array>;

  constructor(
    encoding: EncodingName,
    private readonly tok: Tokenizer,
  ) {
    // A ring of 8,192: counting ahead hands a million-conversation store over as ~500 batches, and after each stage
    // the ones not started are taken back (outstanding until the worker skips them) and the survivors handed over.
    this.worker = new BatchWorker('token-worker', 'LOGCURATE_TOKEN_WORKER', { encoding }, 8192);
  }

  /** Batches counted on the worker thread (for tests and stats). */
  get threaded(): number {
    return this.worker.batches;
  }

  /**
   * Starts the worker and its tokenizer now. Once started, every batch goes to it: a run that counts a few
   * hundred new examples (the next night) then never loads the tokenizer on this thread (~0.2 s).
   */
  warm(): void {
    this.worker.warm();
  }

  /** [total, assistant] per example, in order. */
  count(examples: readonly string[]): Promise<Int32Array> {
    if (examples.length === 0) return Promise.resolve(new Int32Array(0));
    if (!this.worker.started && (examples.length < WORKER_MIN_BATCH || !this.worker.available)) return Promise.resolve(countBatch(examples, this.tok));
    return this.worker.run([...examples]);
  }

  /** Counting ahead on the worker thread (pipeline/precount.ts); null where no worker thread can run. */
  precountChannel(): PrecountChannel | null {
    if (!this.worker.available) return null;
    return {
      post: (input) => this.worker.post(input, [input.pks.buffer as ArrayBuffer]) as { seq: number; output: Promise<Int32Array | undefined> },
      steal: (seq) => this.worker.steal(seq),
      // Half the ring: emit's own batches need slots too.
      capacity: this.worker.ring / 2,
    };
  }

  close(): Promise<void> {
    return this.worker.close();
  }
}
