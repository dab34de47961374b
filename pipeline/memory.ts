/**
 * A garbage-collection budget for long loops over millions of rows (run scans, ingest batches).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Memory stays near the live set: V8 sizes its heap limit from the machine's memory and, on a big machine, lets
 * garbage from millions of parsed conversations pile up to gigabytes before a full collection. Between ingest
 * batches, once the heap has grown HEAP_SLACK past what was live after the last collection, collect now.
 * 128 MB: exact runs, peak RSS / seconds — 200k cold cache 549 MB / 4.73 s at 256 MB, 511 MB / 4.81 s at
 * 128 MB, 449 MB / 5.48 s at 64 MB; 1M warm cache 698 MB / 19.5 s, 554 MB / 20.0 s, 501 MB / 22.5 s. Ingest
 * keeps 128 MB: at 32 MB its 200k ingest took 7.50–8.07 s against 7.26–7.71 s, alternating (eighth round).
 */
const HEAP_SLACK = 128 * 1024 * 1024;

/**
 * Runs' budget, between scan pages (stage scans and emit's windows). Since the runs' live heap shrank (ids,
 * rank files and per-line strings no longer held: ~35 MB of objects at a million conversations, plus typed
 * arrays), a full collection is cheap, and most of a run's peak was garbage waiting for the 128 MB budget. At
 * 64 MB, alternating with 128 MB on the same stores (eighth round): 200k cold exact run 3.54–3.77 s and
 * 369–383 MB against 3.51–3.68 s and 402–409 MB; near 4.95–5.12 s and 379–386 MB against 4.92–5.01 s and
 * 409–413 MB; 1M exact 15.8–16.3 s and 449–450 MB against 16.7–17.7 s and 483–512 MB. 32 MB since the
 * nineteenth round, alternating with 64 MB: first 200k exact runs 271–285 against 318–331 MB peak RSS, 5.55
 * against 5.71 s mean (six pairs); first 1M exact runs 348–360 against 386–413 MB, times even but for one slow
 * outlier (19.8–23.1 s and one 28.8 s against 19.7–22.0 s, five pairs). 16 MB took ~12 MB more off at 200k but
 * was slower in each of four pairs.
 */
export const RUN_HEAP_SLACK = 32 * 1024 * 1024;
const collectGarbage: (() => void) | null = (() => {
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return null;
  }
})();
let liveAfterGc = 0;

/**
 * The token worker keeps a small live set (rank table, piece cache) and makes garbage steadily; it has its own
 * heap, so it gets its own, smaller budget (1M cold run: 743 -> 665 MB peak RSS, no slower). The ingest worker
 * gets none: it is often the bottleneck, and a 32 MB budget cost its ingest 0.6-1.0 s at 200k. 16 MB since the
 * token worker reads and parses the conversations it counts ahead (precount.ts): its heap is busy through every
 * stage, and at 32 MB a first 1M exact run peaked at 432-459 MB (median 441) against 420-445 (median 429) at
 * 16 MB and 426-459 (median 430) before counting ahead, five runs each, alternating; at 200k, 4.82 against
 * 4.93 s over eight alternating rounds, within this machine's noise.
 */
export const WORKER_HEAP_SLACK = 16 * 1024 * 1024;

/** A full collection now (when the runtime allows it): after a stage drops a large buffer, so it is freed at once. */
export function collectGarbageNow(): void {
  if (!collectGarbage) return;
  collectGarbage();
  liveAfterGc = process.memoryUsage().heapUsed;
}

export function keepHeapNearLiveSet(slack: number = HEAP_SLACK): void {
  if (!collectGarbage) return;
  if (process.memoryUsage().heapUsed - liveAfterGc < slack) return;
  collectGarbageNow();
}
