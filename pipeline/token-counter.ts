/**
 * Token counting off the main thread (issue 6: "use both cores where it pays"). Emit hands over the messages
 * JSON of the examples the token cache does not know, a window at a time, and builds the next window's lines
 * while a worker thread counts. Counts are the same function on the same text either way (tokens.ts), so a
 * worker changes the speed only. Small batches are counted inline: a worker's start-up (loading the ranks)
 * costs more than it saves on a few hundred examples. LOGCURATE_TOKEN_WORKER=0 turns the worker off.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { countExampleTokens, type ChatMessageLike, type Tokenizer } from './tokens.js';
import type { EncodingName } from './models.js';

/** Below this many examples in one batch, count on this thread. */
const WORKER_MIN_BATCH = 256;

export class TokenCounter {
  private worker: Worker | null = null;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (c: Int32Array) => void; reject: (e: Error) => void }>();
  private readonly script: string | null;
  /** Batches counted on the worker thread (for tests and stats). */
  threaded = 0;

  constructor(
    private readonly encoding: EncodingName,
    private readonly tok: Tokenizer,
  ) {
    this.script = process.env.LOGCURATE_TOKEN_WORKER === '0' ? null : workerScript();
  }

  /** [total, assistant] per example, in order. */
  count(examples: readonly string[]): Promise<Int32Array> {
    if (examples.length === 0) return Promise.resolve(new Int32Array(0));
    if (examples.length < WORKER_MIN_BATCH || this.script === null) return Promise.resolve(this.countInline(examples));
    const worker = this.start();
    const id = this.seq++;
    this.threaded++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ seq: id, examples });
    });
  }

  private countInline(examples: readonly string[]): Int32Array {
    const out = new Int32Array(examples.length * 2);
    examples.forEach((json, k) => {
      const c = countExampleTokens(JSON.parse(json) as ChatMessageLike[], this.tok);
      out[2 * k] = c.total;
      out[2 * k + 1] = c.assistant;
    });
    return out;
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(this.script!, { workerData: { encoding: this.encoding } });
    worker.unref();
    const failAll = (err: Error): void => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('message', (msg: { seq: number; counts?: Int32Array; error?: string }) => {
      const p = this.pending.get(msg.seq);
      if (!p) return;
      this.pending.delete(msg.seq);
      if (msg.error !== undefined) p.reject(new Error(`token worker: ${msg.error}`));
      else p.resolve(msg.counts!);
    });
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`token worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    if (!this.worker) return;
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
    this.worker = null;
  }
}

/** The compiled worker script: beside this module, or in dist/ when this module runs from source (tests). */
function workerScript(): string | null {
  const here = fileURLToPath(import.meta.url);
  const candidates = [here.replace(/token-counter\.(js|ts)$/, 'token-worker.js'), here.replace(/pipeline[\\/]token-counter\.ts$/, 'dist/pipeline/token-worker.js')];
  return candidates.find((c) => c.endsWith('.js') && existsSync(c)) ?? null;
}
