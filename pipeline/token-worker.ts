/**
 * Worker thread for emit: counts SPEC §5 tokens of examples (their messages JSON) while the main thread builds lines,
 * and, before emit, of the conversations the stages have kept so far (pipeline/precount.ts).
 */
import { workerData } from 'node:worker_threads';
import { serveBatches } from './batch-worker.js';
import { countBatch } from './token-counter.js';
import { precountRows, type PrecountInput } from './precount.js';
import { getTokenizer } from './tokens.js';
import type { EncodingName } from './models.js';
import { keepHeapNearLiveSet, WORKER_HEAP_SLACK } from './memory.js';

const tok = getTokenizer((workerData as { encoding: EncodingName }).encoding);

serveBatches(
  // Examples' messages JSON from emit, or conversations by pk to count ahead of it (pipeline/precount.ts).
  (input: string[] | PrecountInput) => {
    const counts = Array.isArray(input) ? countBatch(input, tok) : precountRows(input, tok);
    return { output: counts, transfer: [counts.buffer as ArrayBuffer] };
  },
  // This thread's heap has its own limits: without a budget, garbage from a million parsed examples piles up.
  () => keepHeapNearLiveSet(WORKER_HEAP_SLACK),
);
