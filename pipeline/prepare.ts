/**
 * The CPU-heavy half of ingest, pure and thread-safe: raw line → a prepared row (decoded, parsed, validated,
 * digested, serialised) or a quarantine reason. The SQL half (pipeline/ingest.ts) applies prepared units in
 * input order, so running this on a worker thread changes nothing but the speed.
 */
import type { InputFormat } from '../schemas/log-record.js';
import type { ConversationsTable } from './store.js';
import { decodeUtf8, isBlank } from './lines.js';
import { keepLargeIdDigits, parseCsvRow, parseRecord, storedDigest, type FeedbackEventInput, type ParsedRecord } from './records.js';
import { encodeSignals } from './signals.js';
import { signalRow } from './signal-row.js';
import { RowPacker, packedTransfer, type ColumnKind, type PackedRows } from './packed-rows.js';
import type { Message } from './stage.js';

/** What ingest reads: a JSONL line's bytes, or a CSV record already split into named fields. */
export interface UnitInput {
  readonly raw: Uint8Array;
  /** CSV only: the record's fields (null = a blank record). */
  readonly csv?: Record<string, string> | null;
  readonly csvError?: string;
}

/** A conversations row as ingest inserts it: the table's columns less the key and the source (added on insert). */
export type ConversationRow = Omit<ConversationsTable, 'pk' | 'source_file' | 'source_line'>;

/** The order of a row's values as they cross from the worker (`Prepared.values`) and are bound on insert. */
export const CONVERSATION_COLUMNS = [
  'id',
  'content_sha256',
  'format',
  'status',
  'messages',
  'tools',
  'created_at',
  'created_at_ms',
  'model',
  'user_id',
  'session_id',
  'tags',
  'metadata',
  'extra',
  'n_messages',
  'n_assistant',
  'last_role',
  'signals',
] as const satisfies readonly (keyof ConversationRow)[];

/** A feedback event's columns as they are packed and bound: key, log id, name, value, created_at, created_at_ms. */
export const EVENT_COLUMNS = ['event_key', 'log_id', 'name', 'value', 'created_at', 'created_at_ms'] as const;
export const EVENT_KINDS: readonly ColumnKind[] = ['text', 'text', 'text', 'number', 'text', 'number'];

/** Packs the events; returns the first one's row (they are consecutive). */
function packEvents(events: readonly FeedbackEventInput[], packer: RowPacker): number {
  let first = -1;
  for (const e of events) {
    const r = packer.add([e.key, e.logId, e.name, e.value, e.createdAt, e.createdAtMs]);
    if (first < 0) first = r;
  }
  return first;
}

/**
 * The columns after id, packed (pipeline/packed-rows.ts) in this order and bound after it on insert. The id crosses
 * as a string: the inserting thread needs it as one (for the chunk of columns), and bound as a string it is
 * stored exactly as before, so ids stay equal to those of stores ingested by earlier versions.
 */
export const PACKED_COLUMNS = CONVERSATION_COLUMNS.slice(1);
const NUMBER_COLUMNS: ReadonlySet<string> = new Set<keyof ConversationRow>(['created_at_ms', 'n_messages', 'n_assistant']);
export const PACKED_KINDS: readonly ColumnKind[] = PACKED_COLUMNS.map((c) => (NUMBER_COLUMNS.has(c) ? 'number' : 'text'));

export type Prepared =
  | { readonly k: 'blank' }
  | { readonly k: 'quarantine'; readonly reason: string }
  | {
      readonly k: 'feedback';
      /** Its events: rows events … events + nEvents - 1 of the batch's packed events (PreparedBatch.events). */
      readonly events: number;
      readonly nEvents: number;
    }
  | {
      readonly k: 'conversation';
      readonly id: string;
      /** Its other columns: this row of the batch's packed rows (PreparedBatch.rows, PACKED_COLUMNS). */
      readonly row: number;
      readonly status: ConversationRow['status'];
      readonly lastRole: string | null;
      /** Its embedded feedback events, as for a feedback record. */
      readonly events: number;
      readonly nEvents: number;
      /** The signals as numbers (signalRow), for the chunk of columns ingest builds (pipeline/columns.ts). */
      readonly signalRow: readonly number[];
    };

/** A batch's units prepared, in input order, with the conversations' columns packed. */
export interface PreparedBatch {
  readonly units: Prepared[];
  /** The conversations' columns (PACKED_COLUMNS). */
  readonly rows: PackedRows;
  /** The feedback events' columns (EVENT_COLUMNS). */
  readonly events: PackedRows;
}

export function prepareUnits(units: readonly UnitInput[], forced?: InputFormat): PreparedBatch {
  // A conversation's stored texts take a little more than the bytes of its line; an event's ~100 bytes.
  let lineBytes = 0;
  for (const u of units) lineBytes += u.raw.length;
  const rows = new RowPacker(PACKED_KINDS, units.length, Math.ceil(lineBytes * 1.25) + 4096);
  const events = new RowPacker(EVENT_KINDS, units.length, units.length * 128);
  const out = units.map((u) => prepareUnit(u, rows, events, forced));
  return { units: out, rows: rows.finish(), events: events.finish() };
}

function prepareUnit(u: UnitInput, rows: RowPacker, events: RowPacker, forced?: InputFormat): Prepared {
  try {
    return prepareUnchecked(u, rows, events, forced);
  } catch (err) {
    // Hostile input must cost one line, never the file: JSON nested thousands deep parses but overflows the
    // stack of any recursive walk (canonical JSON, serialisation). The line is kept whole in quarantine.
    const message = err instanceof RangeError ? 'nested too deeply to process' : (err as Error).message;
    return { k: 'quarantine', reason: `unprocessable record: ${message}` };
  }
}

function prepareUnchecked(u: UnitInput, rows: RowPacker, events: RowPacker, forced?: InputFormat): Prepared {
  if (u.csvError !== undefined) return { k: 'quarantine', reason: u.csvError };
  let parsed: ParsedRecord;
  if (u.csv !== undefined) {
    if (u.csv === null) return { k: 'blank' };
    parsed = parseCsvRow(u.csv);
  } else {
    let text = decodeUtf8(Buffer.from(u.raw.buffer, u.raw.byteOffset, u.raw.byteLength));
    if (text === null) return { k: 'quarantine', reason: 'invalid UTF-8: the line is not valid UTF-8 text' };
    // A byte-order mark is not part of the JSON text (RFC 8259 lets parsers ignore it). Mid-file ones appear
    // where exports were concatenated (`cat a.jsonl b.jsonl`); the line itself is fine.
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (isBlank(text)) return { k: 'blank' };
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { k: 'quarantine', reason: `invalid JSON: ${(err as Error).message}` };
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) keepLargeIdDigits(value as Record<string, unknown>, text);
    parsed = parseRecord(value, forced);
  }
  if (parsed.kind === 'invalid') return { k: 'quarantine', reason: parsed.reason };
  if (parsed.kind === 'feedback') return { k: 'feedback', events: packEvents(parsed.events, events), nEvents: parsed.events.length };
  const c = parsed.conversation;
  const row: ConversationRow = {
      id: c.id,
      content_sha256: '',
      format: c.format,
      status: c.status,
      messages: JSON.stringify(c.messages),
      tools: c.tools === null ? null : JSON.stringify(c.tools),
      created_at: c.createdAt,
      created_at_ms: c.createdAtMs,
      model: c.model,
      user_id: c.userId,
      session_id: c.sessionId,
      tags: c.tags === null ? null : JSON.stringify(c.tags),
      metadata: c.metadata === null || c.metadata === undefined ? null : JSON.stringify(c.metadata),
      extra: c.extra === null ? null : JSON.stringify(c.extra),
      n_messages: c.messages.length,
      n_assistant: c.nAssistant,
      last_role: lastRole(c.messages),
      signals: encodeSignals(c.messages as readonly Message[]),
  };
  // The canonical digest where it derived the id; else the cheap one of the stored texts (records.ts storedDigest).
  row.content_sha256 = c.contentSha256 ?? storedDigest(row);
  return {
    k: 'conversation',
    id: row.id,
    row: rows.add(PACKED_COLUMNS.map((col) => row[col])),
    status: row.status,
    lastRole: row.last_role,
    events: packEvents(c.feedback, events),
    nEvents: c.feedback.length,
    signalRow: signalRow(row.signals!),
  };
}

/** A batch as it crosses to a worker: all raw bytes in one transferable buffer, plus offsets. */
export interface PackedBatch {
  readonly bytes: Uint8Array;
  readonly offsets: Int32Array;
  readonly csv: (Record<string, string> | null | undefined)[];
  readonly csvError: (string | undefined)[];
  readonly forced?: InputFormat;
}

/** Units packed to cross to ingest's worker (prepareBatch's input): their bytes copied into one buffer, not sent line by line. */
export function packBatch(units: readonly UnitInput[], forced: InputFormat | undefined): { batch: PackedBatch; transfer: ArrayBuffer[] } {
  const offsets = new Int32Array(units.length + 1);
  let total = 0;
  units.forEach((u, i) => {
    offsets[i] = total;
    total += u.raw.length;
  });
  offsets[units.length] = total;
  const bytes = new Uint8Array(total);
  units.forEach((u, i) => bytes.set(u.raw, offsets[i]!));
  return { batch: { bytes, offsets, csv: units.map((u) => u.csv), csvError: units.map((u) => u.csvError), forced }, transfer: [bytes.buffer, offsets.buffer] };
}

/** A packed batch prepared (on ingest's worker), and the buffers to transfer back. */
export function prepareBatch(b: PackedBatch): { output: PreparedBatch; transfer: ArrayBuffer[] } {
  const units = new Array<UnitInput>(b.csv.length);
  for (let i = 0; i < b.csv.length; i++) units[i] = { raw: b.bytes.subarray(b.offsets[i]!, b.offsets[i + 1]!), csv: b.csv[i], csvError: b.csvError[i] };
  const output = prepareUnits(units, b.forced);
  return { output, transfer: [...packedTransfer(output.rows), ...packedTransfer(output.events)] };
}

function lastRole(messages: readonly unknown[]): string | null {
  const last = messages[messages.length - 1] as { role?: unknown } | undefined;
  return typeof last?.role === 'string' ? last.role : null;
}
