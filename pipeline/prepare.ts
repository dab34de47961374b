/**
 * The CPU-heavy half of ingest, pure and thread-safe: raw line → a prepared row (decoded, parsed, validated,
 * digested, serialised) or a quarantine reason. The SQL half (pipeline/ingest.ts) applies prepared units in
 * input order, so running this on a worker thread changes nothing but the speed.
 */
import type { InputFormat } from '../schemas/log-record.js';
import type { ConversationsTable } from './store.js';
import { decodeUtf8, isBlank } from './lines.js';
import { parseCsvRow, parseRecord, storedDigest, type FeedbackEventInput, type ParsedRecord } from './records.js';
import { encodeSignals } from './signals.js';
import { signalRow } from './signal-row.js';
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

/** A feedback event as it crosses from the worker: [key, logId, name, value, createdAt, createdAtMs]. */
export type FeedbackValues = readonly [string, string, string, number, string | null, number | null];

const feedbackValues = (events: readonly FeedbackEventInput[]): FeedbackValues[] => events.map((e) => [e.key, e.logId, e.name, e.value, e.createdAt, e.createdAtMs]);

/** A row's values in CONVERSATION_COLUMNS order: id first, content_sha256 second. */
export type ConversationValues = readonly ConversationRow[keyof ConversationRow][];

export type Prepared =
  | { readonly k: 'blank' }
  | { readonly k: 'quarantine'; readonly reason: string }
  | { readonly k: 'feedback'; readonly events: readonly FeedbackValues[] }
  | {
      readonly k: 'conversation';
      /**
       * Values, not an object: a batch crosses from the worker by structured clone, which writes every object's
       * keys again and rebuilds it key by key (deserialising 40,000 rows took ~380 ms as objects, ~155 ms as arrays).
       */
      readonly values: ConversationValues;
      readonly feedback: readonly FeedbackValues[];
      /** The signals as numbers (signalRow), for the chunk of columns ingest builds (pipeline/columns.ts). */
      readonly signalRow: readonly number[];
    };

export function prepareUnit(u: UnitInput, forced?: InputFormat): Prepared {
  try {
    return prepareUnchecked(u, forced);
  } catch (err) {
    // Hostile input must cost one line, never the file: JSON nested thousands deep parses but overflows the
    // stack of any recursive walk (canonical JSON, serialisation). The line is kept whole in quarantine.
    const message = err instanceof RangeError ? 'nested too deeply to process' : (err as Error).message;
    return { k: 'quarantine', reason: `unprocessable record: ${message}` };
  }
}

function prepareUnchecked(u: UnitInput, forced?: InputFormat): Prepared {
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
    parsed = parseRecord(value, forced);
  }
  if (parsed.kind === 'invalid') return { k: 'quarantine', reason: parsed.reason };
  if (parsed.kind === 'feedback') return { k: 'feedback', events: feedbackValues(parsed.events) };
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
  return { k: 'conversation', feedback: feedbackValues(c.feedback), values: CONVERSATION_COLUMNS.map((col) => row[col]), signalRow: signalRow(row.signals!) };
}

/** A batch as it crosses to a worker: all raw bytes in one transferable buffer, plus offsets. */
export interface PackedBatch {
  readonly bytes: Uint8Array;
  readonly offsets: Int32Array;
  readonly csv: (Record<string, string> | null | undefined)[];
  readonly csvError: (string | undefined)[];
  readonly forced?: InputFormat;
}

export function prepareBatch(b: PackedBatch): Prepared[] {
  const out: Prepared[] = new Array<Prepared>(b.csv.length);
  for (let i = 0; i < b.csv.length; i++) {
    const raw = b.bytes.subarray(b.offsets[i]!, b.offsets[i + 1]!);
    out[i] = prepareUnit({ raw, csv: b.csv[i], csvError: b.csvError[i] }, b.forced);
  }
  return out;
}

function lastRole(messages: readonly unknown[]): string | null {
  const last = messages[messages.length - 1] as { role?: unknown } | undefined;
  return typeof last?.role === 'string' ? last.role : null;
}
