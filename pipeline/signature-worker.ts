/** Worker thread for near dedupe: MinHash signatures of normalised texts while the main thread reads the next ones. */
import { serveBatches } from './batch-worker.js';
import { signatureBytes, type SignatureConfig } from './minhash.js';
import { keepHeapNearLiveSet, WORKER_HEAP_SLACK } from './memory.js';

serveBatches(
  (input: { texts: string[]; config: SignatureConfig }) => {
    const bytes = signatureBytes(input.texts, input.config);
    return { output: bytes, transfer: [bytes.buffer as ArrayBuffer] };
  },
  () => keepHeapNearLiveSet(WORKER_HEAP_SLACK),
);
