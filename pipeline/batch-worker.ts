/**
 * A worker thread that processes batches in order (issue 6: "use both cores where it pays"): token counts for
 * emit, MinHash signatures for near dedupe. The main thread hands over a batch and goes on building the next
 * one; the worker runs the same pure function it would, so a worker changes the speed only. Callers process
 * small batches inline: a worker's start-up costs more than it saves on a few hundred items.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parentPort, Worker, type Transferable } from 'node:worker_threads';

/**
 * Who has a batch, for a caller that may take back (steal) a batch the worker has not started: one word per slot of
 * a ring, `seq * 4 + state`, so that a slot reused by a later batch never passes for an earlier one's.
 */
const FREE = 0;
const BY_WORKER = 1;
const STOLEN = 2;
const FINISHED = 3;
/** Slots of the ring, unless a caller asks for more: at most this many batches may be outstanding at once. */
const RING = 1024;

const tag = (seq: number, state: number): number => ((seq % (1 << 28)) << 2) | state;

export class BatchWorker<In, Out> {
  private worker: Worker | null = null;
  private seq = 0;
  /** Shared with the worker: who has each batch (see FREE…FINISHED). */
  private readonly claims: Int32Array;
  private readonly pending = new Map<number, { resolve: (out: Out) => void; reject: (e: Error) => void }>();
  private readonly script: string | null;
  /** Batches run on the worker thread so far. */
  batches = 0;

  /** `name`: the compiled worker module beside this one (`token-worker` → token-worker.js); `env`: set to 0 to turn it off. */
  /**
   * `ring`: how many batches may be outstanding (posted, not yet answered) at once — a batch taken back stays
   * outstanding until the worker reaches and skips it.
   */
  constructor(
    name: string,
    env: string,
    private readonly workerData: unknown,
    readonly ring: number = RING,
  ) {
    this.claims = new Int32Array(new SharedArrayBuffer(4 * ring));
    this.script = process.env[env] === '0' ? null : workerScript(name);
  }

  /** Whether batches can go to a worker thread here (the compiled script exists and it is not turned off). */
  get available(): boolean {
    return this.script !== null;
  }

  /** Whether the worker thread has been started (by `warm` or a first batch). */
  get started(): boolean {
    return this.worker !== null;
  }

  /** Starts the worker thread now, so its start-up overlaps other work instead of delaying the first batch. */
  warm(): void {
    if (this.script !== null) this.start();
  }

  run(input: In, transfer: readonly Transferable[] = []): Promise<Out> {
    return this.post(input, transfer).output;
  }

  /**
   * Hands a batch to the worker; `seq` names it to `steal` and `finished`. The output of a batch stolen back is
   * undefined: the worker skipped it.
   */
  post(input: In, transfer: readonly Transferable[] = []): { seq: number; output: Promise<Out> } {
    const worker = this.start();
    const id = this.seq++;
    this.batches++;
    Atomics.store(this.claims, id % this.ring, tag(id, FREE));
    const output = new Promise<Out>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ seq: id, input }, transfer as Transferable[]);
    });
    return { seq: id, output };
  }

  /**
   * Takes batch `seq` back if the worker has not started it (true): the caller processes it itself, and the
   * worker skips it. At most `ring` batches may be outstanding at once.
   */
  steal(seq: number): boolean {
    if (Atomics.compareExchange(this.claims, seq % this.ring, tag(seq, FREE), tag(seq, STOLEN)) !== tag(seq, FREE)) return false;
    this.batches--;
    return true;
  }

  /** Whether the worker has finished batch `seq` (its reply may still be on its way). */
  finished(seq: number): boolean {
    return Atomics.load(this.claims, seq % this.ring) === tag(seq, FINISHED);
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    if (this.script === null) throw new Error('internal: BatchWorker.run without a worker script');
    const worker = new Worker(this.script, { workerData: this.workerData });
    worker.unref();
    worker.postMessage({ claims: this.claims });
    const failAll = (err: Error): void => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('message', (msg: { seq: number; output?: Out; error?: string }) => {
      const p = this.pending.get(msg.seq);
      if (!p) return;
      this.pending.delete(msg.seq);
      if (msg.error !== undefined) p.reject(new Error(`${this.script}: ${msg.error}`));
      // A stolen batch's reply has no output.
      else p.resolve(msg.output as Out);
    });
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`${this.script} exited with code ${code}`)));
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

/** The worker side: answers each batch with `handle`'s output, transferring the buffers it names. */
export function serveBatches<In, Out>(handle: (input: In) => { output: Out; transfer?: Transferable[] }, after?: () => void): void {
  let claims: Int32Array | null = null;
  parentPort!.on('message', (msg: { seq: number; input: In } | { claims: Int32Array }) => {
    if ('claims' in msg) {
      claims = msg.claims;
      return;
    }
    const { seq } = msg;
    // Taken back by the caller before this thread got to it: skipped.
    if (claims && Atomics.compareExchange(claims, seq % claims.length, tag(seq, FREE), tag(seq, BY_WORKER)) !== tag(seq, FREE)) {
      parentPort!.postMessage({ seq });
      return;
    }
    let reply: { seq: number; output?: Out; error?: string };
    let transfer: Transferable[] = [];
    try {
      const done = handle(msg.input);
      reply = { seq, output: done.output };
      transfer = done.transfer ?? [];
    } catch (err) {
      reply = { seq, error: (err as Error).stack ?? String(err) };
    }
    // Finished before the reply is sent: the caller may see this before the reply arrives, never after.
    if (claims) Atomics.store(claims, seq % claims.length, tag(seq, FINISHED));
    parentPort!.postMessage(reply, transfer);
    after?.();
  });
}

/** The compiled worker script: beside this module, or in dist/ when this module runs from source (tests). */
function workerScript(name: string): string | null {
  const here = fileURLToPath(import.meta.url);
  const candidates = [here.replace(/batch-worker\.(js|ts)$/, `${name}.js`), here.replace(/pipeline[\\/]batch-worker\.ts$/, `dist/pipeline/${name}.js`)];
  return candidates.find((c) => c.endsWith('.js') && existsSync(c)) ?? null;
}
