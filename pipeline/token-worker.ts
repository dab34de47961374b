/** Worker thread for emit: counts SPEC §5 tokens of examples (their messages JSON) while the main thread builds lines. */
import { parentPort, workerData } from 'node:worker_threads';
import { countExampleTokens, getTokenizer, type ChatMessageLike } from './tokens.js';
import type { EncodingName } from './models.js';
import { keepHeapNearLiveSet, WORKER_HEAP_SLACK } from './memory.js';

const tok = getTokenizer((workerData as { encoding: EncodingName }).encoding);

parentPort!.on('message', (msg: { seq: number; examples: string[] }) => {
  try {
    const counts = new Int32Array(msg.examples.length * 2);
    msg.examples.forEach((json, k) => {
      const c = countExampleTokens(JSON.parse(json) as ChatMessageLike[], tok);
      counts[2 * k] = c.total;
      counts[2 * k + 1] = c.assistant;
    });
    parentPort!.postMessage({ seq: msg.seq, counts }, [counts.buffer]);
    // This thread's heap has its own limits: without a budget, garbage from a million parsed examples piles up.
    keepHeapNearLiveSet(WORKER_HEAP_SLACK);
  } catch (err) {
    parentPort!.postMessage({ seq: msg.seq, error: (err as Error).stack ?? String(err) });
  }
});
