/**
 * BatchWorker's work stealing (pipeline/batch-worker.ts), which ingest uses to prepare a batch on its own thread
 * instead of waiting for the worker: a batch the worker has not started can be taken back, the worker then skips
 * it, and a batch the worker has started or finished cannot be. Run against ingest's real worker script.
 */
import { describe, expect, it } from 'vitest';
import { BatchWorker } from '../pipeline/batch-worker.js';
import { packBatch, prepareUnits, type PackedBatch, type PreparedBatch } from '../pipeline/prepare.js';
import { chat } from './support/pipeline.js';

const packed = (lines: string[]): PackedBatch => packBatch(lines.map((l) => ({ raw: Buffer.from(l, 'utf8') })), undefined).batch;

/** Batch b: 400 conversations, enough that preparing one takes the worker milliseconds. */
const linesOf = (b: number): string[] => Array.from({ length: 400 }, (_, k) => JSON.stringify(chat(`b${b}-${k}`, `question ${k} of batch ${b} `.repeat(20), `answer ${k}`)));

describe('BatchWorker: work stealing', () => {
  it('a batch not yet started is taken back and skipped; the others are prepared by the worker, in order', async () => {
    const worker = new BatchWorker<PackedBatch, PreparedBatch>('ingest-worker', 'LOGCURATE_INGEST_WORKER_TEST', null);
    expect(worker.available).toBe(true);
    try {
      const handed = Array.from({ length: 8 }, (_, b) => worker.post(packed(linesOf(b))));
      expect(handed.map((h) => h.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      // Taken back at once, from the newest, as ingest does: the worker has just been started, and has seven
      // batches of milliseconds each ahead of the last one.
      const stolen = [7, 6, 5].map((b) => worker.steal(handed[b]!.seq));
      expect(stolen[0]).toBe(true);
      // A batch cannot be taken twice.
      expect(worker.steal(handed[7]!.seq)).toBe(false);
      const outputs = await Promise.all(handed.map((h) => h.output));
      for (let b = 0; b < 8; b++) {
        const wasStolen = b >= 5 && stolen[7 - b];
        if (wasStolen) {
          expect(outputs[b], `batch ${b}`).toBeUndefined();
          // Never finished by the worker, which skipped it.
          expect(worker.finished(handed[b]!.seq)).toBe(false);
        } else {
          expect(worker.finished(handed[b]!.seq)).toBe(true);
          // What the worker prepared is what this thread would have.
          const inline = prepareUnits(linesOf(b).map((l) => ({ raw: Buffer.from(l, 'utf8') })));
          expect(outputs[b]!.units).toEqual(inline.units);
          expect(outputs[b]!.rows.n).toBe(400);
        }
      }
      // A finished batch cannot be taken back either.
      expect(worker.steal(handed[0]!.seq)).toBe(false);
      expect(worker.batches).toBe(8 - stolen.filter(Boolean).length);
    } finally {
      await worker.close();
    }
  });

  it('slots are reused without mistaking a later batch for an earlier one', async () => {
    const worker = new BatchWorker<PackedBatch, PreparedBatch>('ingest-worker', 'LOGCURATE_INGEST_WORKER_TEST', null);
    try {
      const small = packed([JSON.stringify(chat('s', 'q', 'a'))]);
      // More batches than the ring has slots (1,024), a few at a time, as ingest keeps at most ten out.
      let last = -1;
      for (let round = 0; round < 130; round++) {
        const hs = Array.from({ length: 8 }, () => worker.post(packed([JSON.stringify(chat(`r${round}`, 'q', 'a'))])));
        const outs = await Promise.all(hs.map((h) => h.output));
        for (const [k, h] of hs.entries()) {
          expect(worker.finished(h.seq)).toBe(true);
          expect(outs[k]!.units[0]!.k).toBe('conversation');
        }
        last = hs[hs.length - 1]!.seq;
      }
      expect(last).toBe(130 * 8 - 1);
      // Slot of seq 1039 is also that of seq 15: finished means the later batch, and the earlier one is not
      // "finished" again, nor can it be taken back.
      expect(worker.finished(15 + 1024)).toBe(true);
      expect(worker.finished(15)).toBe(false);
      expect(worker.steal(15)).toBe(false);
      const h = worker.post(small);
      expect((await h.output)!.units[0]!.k).toBe('conversation');
    } finally {
      await worker.close();
    }
  });

  it('a worker with a ring of its own size reuses its slots the same way', async () => {
    const worker = new BatchWorker<string[], Int32Array>('token-worker', 'LOGCURATE_TOKEN_WORKER_TEST', { encoding: 'o200k_base' }, 16);
    try {
      const example = (k: number): string => JSON.stringify([{ role: 'user', content: `question ${k}` }]);
      let last = -1;
      for (let round = 0; round < 10; round++) {
        const hs = Array.from({ length: 4 }, (_, j) => worker.post([example(round * 4 + j)]));
        const outs = await Promise.all(hs.map((h) => h.output));
        for (const [k, h] of hs.entries()) {
          expect(worker.finished(h.seq)).toBe(true);
          expect(outs[k]![0]).toBeGreaterThan(0);
        }
        last = hs[hs.length - 1]!.seq;
      }
      expect(last).toBe(39);
      // Seq 39 has the slot of 23 and 7: only the latest is finished, and none of them can be taken back.
      expect(worker.finished(39)).toBe(true);
      expect(worker.finished(23)).toBe(false);
      expect(worker.steal(23)).toBe(false);
      // One not yet started is taken back and skipped.
      const a = worker.post([example(100)]);
      const b = worker.post([example(101)]);
      const taken = worker.steal(b.seq);
      expect((await a.output)![0]).toBeGreaterThan(0);
      if (taken) expect(await b.output).toBeUndefined();
    } finally {
      await worker.close();
    }
  });
});
