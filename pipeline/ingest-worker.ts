/** Worker thread for ingest: prepares batches (parse, validate, digest) while the main thread writes SQL. */
import { parentPort } from 'node:worker_threads';
import { prepareBatch, type PackedBatch } from './prepare.js';

parentPort!.on('message', (msg: { seq: number; batch: PackedBatch }) => {
  try {
    parentPort!.postMessage({ seq: msg.seq, prepared: prepareBatch(msg.batch) });
  } catch (err) {
    parentPort!.postMessage({ seq: msg.seq, error: (err as Error).stack ?? String(err) });
  }
});
