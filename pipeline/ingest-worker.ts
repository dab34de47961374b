/** Worker thread for ingest: prepares batches (parse, validate, digest, signals) while the main thread writes SQL. */
import { serveBatches } from './batch-worker.js';
import { prepareBatch, type PackedBatch } from './prepare.js';

serveBatches((batch: PackedBatch) => prepareBatch(batch));
