/**
 * A run's decisions, one per conversation it considered, stored as one compressed record per run
 * (`run_decision_sets`) instead of one SQL row per conversation: writing 200,000 rows cost every run ~0.3 s and
 * grew the store by ~10 MB a night; the packed set takes milliseconds and a few hundred KB. `explain` decodes it.
 *
 * Layout (before raw deflate), all integers little-endian:
 *   u32 header length, header JSON { v: 1, n, stages, reasons },
 *   then n entries of each column in turn: pk delta from the previous pk (u32), dropped-by stage index + 1
 *   (u16; 0 = kept), reason index + 1 (u32; 0 = none), split (u8: 0 none, 1 train, 2 test), line (u32; 0 = none),
 *   tokens + 1 (u32; 0 = not counted).
 * Columns, not rows, so each compresses on its own terms (pk deltas are mostly 1, most lines 0).
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { indexOfPk, SPLIT_TEST, type WorkingSet } from './working-set.js';

export interface Decision {
  readonly status: 'train' | 'test' | 'dropped';
  readonly stage: string | null;
  readonly stageIndex: number | null;
  readonly reason: string | null;
  readonly line: number | null;
  readonly tokens: number | null;
}

interface Header {
  readonly v: 1;
  readonly n: number;
  readonly stages: readonly string[];
  readonly reasons: readonly string[];
}

/** Bytes per conversation across the six columns. */
const ENTRY_BYTES = 4 + 2 + 4 + 1 + 4 + 4;

export function encodeDecisions(ws: WorkingSet, stageNames: readonly string[]): Buffer {
  const n = ws.size;
  const header = Buffer.from(JSON.stringify({ v: 1, n, stages: stageNames, reasons: ws.reasons } satisfies Header), 'utf8');
  const body = Buffer.alloc(4 + header.length + n * ENTRY_BYTES);
  body.writeUInt32LE(header.length, 0);
  header.copy(body, 4);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let o = 4 + header.length;
  let prev = 0;
  for (let i = 0; i < n; i++, o += 4) {
    view.setUint32(o, ws.pks[i]! - prev, true);
    prev = ws.pks[i]!;
  }
  for (let i = 0; i < n; i++, o += 2) view.setUint16(o, ws.droppedBy[i]! + 1, true);
  for (let i = 0; i < n; i++, o += 4) view.setUint32(o, ws.reasonOf[i]! + 1, true);
  for (let i = 0; i < n; i++, o += 1) view.setUint8(o, ws.split[i]!);
  for (let i = 0; i < n; i++, o += 4) view.setUint32(o, ws.line[i]!, true);
  for (let i = 0; i < n; i++, o += 4) view.setUint32(o, ws.tokens[i]! + 1, true);
  return deflateRawSync(body, { level: 1 });
}

/** A decoded set: look conversations up by pk. */
export class DecisionSet {
  private constructor(
    private readonly header: Header,
    private readonly view: DataView,
    private readonly pks: Int32Array,
  ) {}

  static decode(blob: Uint8Array): DecisionSet {
    const body = inflateRawSync(blob);
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const headerLength = view.getUint32(0, true);
    const header = JSON.parse(body.subarray(4, 4 + headerLength).toString('utf8')) as Header;
    if (header.v !== 1 || body.length !== 4 + headerLength + header.n * ENTRY_BYTES) {
      throw new Error(`decision set: unknown layout (version ${String(header.v)}, ${body.length} bytes for ${header.n} entries)`);
    }
    const pks = new Int32Array(header.n);
    let prev = 0;
    const base = 4 + headerLength;
    for (let i = 0; i < header.n; i++) pks[i] = prev += view.getUint32(base + i * 4, true);
    return new DecisionSet(header, new DataView(body.buffer, body.byteOffset + base, body.byteLength - base), pks);
  }

  get size(): number {
    return this.header.n;
  }

  /** The decision about the conversation with this pk, or undefined when the run did not consider it. */
  get(pk: number): Decision | undefined {
    const i = indexOfPk(this.pks, pk);
    if (i === -1) return undefined;
    const n = this.header.n;
    const v = this.view;
    const by = v.getUint16(n * 4 + i * 2, true) - 1;
    const reason = v.getUint32(n * 6 + i * 4, true) - 1;
    const split = v.getUint8(n * 10 + i);
    const line = v.getUint32(n * 11 + i * 4, true);
    const tokens = v.getUint32(n * 15 + i * 4, true) - 1;
    const common = { tokens: tokens >= 0 ? tokens : null };
    if (by >= 0) {
      return { status: 'dropped', stage: this.header.stages[by] ?? null, stageIndex: by, reason: reason >= 0 ? this.header.reasons[reason]! : null, line: null, ...common };
    }
    return { status: split === SPLIT_TEST ? 'test' : 'train', stage: null, stageIndex: null, reason: null, line: line || null, ...common };
  }
}
