/**
 * A worker thread that processes batches in order (issue 6: "use both cores where it pays"): token counts for
 * emit, MinHash signatures for near dedupe. The main thread hands over a batch and goes on building the next
 * one; the worker runs the same pure function it would, so a worker changes the speed only. Callers process
 * small batches inline: a worker's start-up costs more than it saves on a few hundred items.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parentPort, Worker, type Transferable } from 'node:worker_threads';

export class BatchWorker<In, Out> {
  private worker: Worker | null = null;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (out: Out) => void; reject: (e: Error) => void }>();
  private readonly script: string | null;
  /** Batches run on the worker thread so far. */
  batches = 0;

  /** `name`: the compiled worker module beside this one (`token-worker` → token-worker.js); `env`: set to 0 to turn it off. */
  constructor(
    name: string,
    env: string,
    private readonly workerData: unknown,
  ) {
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
    const worker = this.start();
    const id = this.seq++;
    this.batches++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ seq: id, input }, transfer as Transferable[]);
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    if (this.script === null) throw new Error('internal: BatchWorker.run without a worker script');
    const worker = new Worker(this.script, { workerData: this.workerData });
    worker.unref();
    const failAll = (err: Error): void => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('message', (msg: { seq: number; output?: Out; error?: string }) => {
      const p = this.pending.get(msg.seq);
      if (!p) return;
      this.pending.delete(msg.seq);
      if (msg.error !== undefined) p.reject(new Error(`${this.script}: ${msg.error}`));
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
  parentPort!.on('message', (msg: { seq: number; input: In }) => {
    try {
      const { output, transfer } = handle(msg.input);
      parentPort!.postMessage({ seq: msg.seq, output }, transfer ?? []);
    } catch (err) {
      parentPort!.postMessage({ seq: msg.seq, error: (err as Error).stack ?? String(err) });
    }
    after?.();
  });
}

/** The compiled worker script: beside this module, or in dist/ when this module runs from source (tests). */
function workerScript(name: string): string | null {
  const here = fileURLToPath(import.meta.url);
  const candidates = [here.replace(/batch-worker\.(js|ts)$/, `${name}.js`), here.replace(/pipeline[\\/]batch-worker\.ts$/, `dist/pipeline/${name}.js`)];
  return candidates.find((c) => c.endsWith('.js') && existsSync(c)) ?? null;
}
