/**
 * A run's decisions, one per conversation it considered, stored as a few JSON records per run
 * (`run_decision_sets`, one per CHUNK conversations) instead of one SQL row per conversation: inserting
 * 200,000 rows cost every run ~0.3 s and ~16 MB of store. Being JSON, the `run_decisions` view (store.ts)
 * still gives SQL a row per conversation; `explain` decodes the one chunk it needs.
 *
 *   stages:    ["filter", "dedupe", …]                       the run's stage names, by index
 *   decisions: [[pk, stage, reason, split, line, tokens], …] in pk order, one per conversation
 *     stage:   index of the stage that dropped it, or null when kept
 *     reason:  the drop reason, or null
 *     split:   1 train, 2 test, 0 neither
 *     line:    1-based line in train.jsonl / test.jsonl, or null
 *     tokens:  the example's token count, or null when not counted
 */
import { indexOfPk, SPLIT_TEST, type WorkingSet } from './working-set.js';
import { writeDecimal } from './canonical.js';

export interface Decision {
  readonly status: 'train' | 'test' | 'dropped';
  readonly stage: string | null;
  readonly stageIndex: number | null;
  readonly reason: string | null;
  readonly line: number | null;
  readonly tokens: number | null;
}

/** One run_decision_sets row: a chunk of consecutive conversations. */
export interface EncodedChunk {
  readonly firstPk: number;
  readonly lastPk: number;
  readonly n: number;
  readonly decisions: string;
}

/**
 * Conversations per chunk. One JSON text for a whole run would be ~40 MB at a million conversations, built,
 * copied and written at once (measured at 1M: +317 MB peak RSS, +3.6 s); chunks of this size stay ~0.7 MB.
 */
export const CHUNK = 16_384;

/**
 * The run's decisions as JSON chunks of CHUNK consecutive conversations (none for an empty run). Each chunk is
 * assembled as bytes in one buffer and decoded once: a template string per conversation joined cost ~0.3 s of a
 * million-conversation run. Reasons are JSON-escaped once each.
 */
export function* encodeDecisions(ws: WorkingSet): Generator<EncodedChunk> {
  const reasonJson = ws.reasons.map((r) => Buffer.from(JSON.stringify(r), 'utf8'));
  let buf = Buffer.allocUnsafe(64 * CHUNK);
  for (let from = 0; from < ws.size; from += CHUNK) {
    const to = Math.min(ws.size, from + CHUNK);
    let p = 0;
    buf[p++] = 0x5b; // [
    for (let i = from; i < to; i++) {
      const by = ws.droppedBy[i]!;
      const reason = by >= 0 ? reasonJson[ws.reasonOf[i]!] : undefined;
      // Room for this entry: six numbers of at most 16 digits, punctuation, and the reason.
      const need = 128 + (reason?.length ?? 0);
      if (p + need > buf.length) {
        const grown = Buffer.allocUnsafe(2 * buf.length + need);
        buf.copy(grown, 0, 0, p);
        buf = grown;
      }
      if (i > from) buf[p++] = 0x2c; // ,
      buf[p++] = 0x5b;
      p = writeDecimal(buf, p, ws.pks[i]!);
      buf[p++] = 0x2c;
      if (by >= 0) {
        p = writeDecimal(buf, p, by);
        buf[p++] = 0x2c;
        if (reason === undefined) p = writeNull(buf, p);
        else p += reason.copy(buf, p);
        buf[p++] = 0x2c;
        p = writeDecimal(buf, p, ws.split[i]!);
        buf[p++] = 0x2c;
        p = writeNull(buf, p);
      } else {
        p = writeNull(buf, p);
        buf[p++] = 0x2c;
        p = writeNull(buf, p);
        buf[p++] = 0x2c;
        p = writeDecimal(buf, p, ws.split[i]!);
        buf[p++] = 0x2c;
        const line = ws.line[i]!;
        p = line ? writeDecimal(buf, p, line) : writeNull(buf, p);
      }
      buf[p++] = 0x2c;
      const tokens = ws.tokens[i]!;
      p = tokens >= 0 ? writeDecimal(buf, p, tokens) : writeNull(buf, p);
      buf[p++] = 0x5d; // ]
    }
    buf[p++] = 0x5d;
    yield { firstPk: ws.pks[from]!, lastPk: ws.pks[to - 1]!, n: to - from, decisions: buf.toString('utf8', 0, p) };
  }
}

function writeNull(buf: Buffer, p: number): number {
  buf[p] = 0x6e;
  buf[p + 1] = 0x75;
  buf[p + 2] = 0x6c;
  buf[p + 3] = 0x6c;
  return p + 4;
}

type Entry = [number, number | null, string | null, number, number | null, number | null];

/** A decoded chunk of a set: look conversations up by pk. */
export class DecisionSet {
  private constructor(
    private readonly stages: readonly string[],
    private readonly entries: readonly Entry[],
    private readonly pks: Int32Array,
  ) {}

  static decode(stagesJson: string, decisionsJson: string): DecisionSet {
    const stages = JSON.parse(stagesJson) as unknown;
    const entries = JSON.parse(decisionsJson) as unknown;
    if (!Array.isArray(stages) || !Array.isArray(entries) || !entries.every((e) => Array.isArray(e) && e.length === 6 && typeof e[0] === 'number')) {
      throw new Error('decision set: not the layout pipeline/decisions.ts writes');
    }
    const list = entries as Entry[];
    return new DecisionSet(stages as string[], list, Int32Array.from(list, (e) => e[0]));
  }

  get size(): number {
    return this.entries.length;
  }

  /** The decision about the conversation with this pk, or undefined when the run did not consider it. */
  get(pk: number): Decision | undefined {
    const i = indexOfPk(this.pks, pk);
    if (i === -1) return undefined;
    const [, by, reason, split, line, tokens] = this.entries[i]!;
    if (by !== null) return { status: 'dropped', stage: this.stages[by] ?? null, stageIndex: by, reason, line: null, tokens };
    return { status: split === SPLIT_TEST ? 'test' : 'train', stage: null, stageIndex: null, reason: null, line, tokens };
  }
}
