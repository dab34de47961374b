/**
 * One parsed input record → what the store keeps: a conversation (with its embedded feedback events), a list
 * of feedback events, or a quarantine reason naming the field. Pure: no I/O, so every rule is unit-testable.
 */
import type { z } from 'zod';
import {
  chatRecordSchema,
  describeZodError,
  feedbackEventSchema,
  promptCompletionRecordSchema,
  quickValid,
  requestResponseRecordSchema,
  THUMBS_WORDS,
  type InputFormat,
} from '../schemas/log-record.js';
import { canonicalJson, sha256, sha256Hex } from './canonical.js';

/** What a conversation's identity covers: the same id with other content is a conflict (SPEC §2). */
export interface ConversationContent {
  readonly messages: readonly unknown[];
  readonly tools: readonly unknown[] | null;
  readonly created_at_ms: number | null;
  readonly model: string | null;
  readonly user_id: string | null;
  readonly session_id: string | null;
  readonly tags: unknown;
  readonly metadata: unknown;
  readonly status: 'ok' | 'error';
}

/**
 * The content's canonical digest: SHA-256 of its canonical JSON (sorted keys), whatever the key order it was
 * logged in. A derived id is its first 32 digits, so it must never change.
 */
export function contentDigest(content: ConversationContent): string {
  return sha256Hex(canonicalJson(content));
}

/** A conversation's content as the store keeps it (conversations columns: JSON texts and scalars). */
export interface StoredContent {
  readonly messages: string;
  readonly tools: string | null;
  readonly created_at_ms: number | null;
  readonly model: string | null;
  readonly user_id: string | null;
  readonly session_id: string | null;
  readonly tags: string | null;
  readonly metadata: string | null;
  readonly status: string;
}

/** The content a stored row holds, parsed back (JSON texts round-trip to equal values). */
export function contentOfStored(r: StoredContent): ConversationContent {
  const json = (t: string | null): unknown => (t === null ? null : JSON.parse(t));
  return {
    messages: JSON.parse(r.messages) as unknown[],
    tools: json(r.tools) as unknown[] | null,
    created_at_ms: r.created_at_ms,
    model: r.model,
    user_id: r.user_id,
    session_id: r.session_id,
    tags: json(r.tags),
    metadata: json(r.metadata),
    status: r.status as 'ok' | 'error',
  };
}

/**
 * The digest ingest keeps (content_sha256) for a conversation with its own id: SHA-256 of its stored texts, in
 * one call. Equal stored texts are equal content, so an equal digest settles an id seen again; a different one
 * (content logged in another key order, or a digest kept by an older version: the canonical one) is settled by
 * contentDigest. JSON texts never hold a raw NUL (JSON.stringify escapes it), so NUL separates them; the scalars
 * go in as JSON.
 */
export function storedDigest(r: StoredContent): string {
  const scalars = JSON.stringify([r.created_at_ms, r.model, r.user_id, r.session_id, r.status]);
  return sha256Hex(`logcurate-stored-content-1\u0000${r.messages}\u0000${r.tools ?? 'null'}\u0000${r.tags ?? 'null'}\u0000${r.metadata ?? 'null'}\u0000${scalars}`);
}

export interface FeedbackEventInput {
  readonly logId: string;
  readonly name: string;
  readonly value: number;
  readonly createdAt: string | null;
  readonly createdAtMs: number | null;
  readonly key: string;
}

export interface ConversationInput {
  readonly id: string;
  /** The canonical content digest (contentDigest) when the id was derived from it; null when the record has its own id. */
  readonly contentSha256: string | null;
  readonly format: Exclude<InputFormat, 'feedback'>;
  readonly status: 'ok' | 'error';
  readonly messages: readonly unknown[];
  readonly tools: readonly unknown[] | null;
  readonly createdAt: string | null;
  readonly createdAtMs: number | null;
  readonly model: string | null;
  readonly userId: string | null;
  readonly sessionId: string | null;
  readonly tags: Record<string, unknown> | null;
  readonly metadata: unknown;
  readonly extra: Record<string, unknown> | null;
  readonly nAssistant: number;
  readonly feedback: readonly FeedbackEventInput[];
}

export type ParsedRecord =
  | { readonly kind: 'conversation'; readonly conversation: ConversationInput }
  | { readonly kind: 'feedback'; readonly events: readonly FeedbackEventInput[] }
  | { readonly kind: 'invalid'; readonly reason: string };

type Obj = Record<string, unknown>;
const own = (o: Obj, k: string): unknown => (Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined);
const has = (o: Obj, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** Detects the shape of one record (SPEC §2) unless `format` forces one. */
export function detectFormat(value: Obj): Exclude<InputFormat, 'csv'> | null {
  if (has(value, 'messages')) return 'chat';
  if (has(value, 'request') || has(value, 'response')) return 'request_response';
  if (has(value, 'prompt') && has(value, 'completion')) return 'prompt_completion';
  if (has(value, 'log_id') && has(value, 'value')) return 'feedback';
  return null;
}

export function parseRecord(value: unknown, forced?: InputFormat): ParsedRecord {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const what = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    return { kind: 'invalid', reason: `expected a JSON object, got ${what}` };
  }
  const obj = value as Obj;
  const format = forced && forced !== 'csv' ? forced : detectFormat(obj);
  switch (format) {
    case 'chat':
      return parseChat(obj);
    case 'request_response':
      return parseRequestResponse(obj);
    case 'prompt_completion':
      return parsePromptCompletion(obj);
    case 'feedback':
      return parseFeedbackEvent(obj);
    default:
      return {
        kind: 'invalid',
        reason:
          'unrecognised record: expected an object with `messages` (chat), `request`/`response`, `prompt` and `completion`, or `log_id` and `value` (feedback)',
      };
  }
}

function fail(error: z.ZodError): ParsedRecord {
  return { kind: 'invalid', reason: describeZodError(error) };
}

function parseChat(obj: Obj): ParsedRecord {
  if (!quickValid('chat', obj)) {
    const r = chatRecordSchema.safeParse(obj);
    if (!r.success) return fail(r.error);
  }
  const messages = own(obj, 'messages') as unknown[];
  const tools = (own(obj, 'tools') as unknown[] | null | undefined) ?? null;
  return build(obj, 'chat', messages, tools, statusOf(obj), extraOf(obj, CHAT_KEYS));
}

function parsePromptCompletion(obj: Obj): ParsedRecord {
  if (!quickValid('prompt_completion', obj)) {
    const r = promptCompletionRecordSchema.safeParse(obj);
    if (!r.success) return fail(r.error);
  }
  const messages = [
    { role: 'user', content: own(obj, 'prompt') },
    { role: 'assistant', content: own(obj, 'completion') },
  ];
  return build(obj, 'prompt_completion', messages, null, statusOf(obj), extraOf(obj, PC_KEYS));
}

function parseRequestResponse(obj: Obj): ParsedRecord {
  if (!quickValid('request_response', obj)) {
    const r = requestResponseRecordSchema.safeParse(obj);
    if (!r.success) return fail(r.error);
  }
  const request = own(obj, 'request') as Obj;
  const response = (own(obj, 'response') as Obj | null | undefined) ?? null;
  const messages = [...(own(request, 'messages') as unknown[])];
  const choices = response ? (own(response, 'choices') as Obj[] | undefined) : undefined;
  const reply = choices && choices.length > 0 ? (own(choices[0]!, 'message') as unknown) : undefined;
  const statusCode = Number(own(obj, 'status_code') ?? NaN);
  const failed =
    (Number.isFinite(statusCode) && statusCode >= 400) ||
    (own(obj, 'error') ?? null) !== null ||
    (response !== null && (own(response, 'error') ?? null) !== null) ||
    reply === undefined;
  if (!failed) messages.push(reply);
  const tools = (own(request, 'tools') as unknown[] | null | undefined) ?? null;
  const model =
    (own(obj, 'model') as string | undefined) ??
    (response ? (own(response, 'model') as string | undefined) : undefined) ??
    (own(request, 'model') as string | undefined) ??
    null;
  // Everything of the call that is not a message is kept beside it (params, usage, ids), so nothing is lost.
  const { messages: _m, tools: _t, ...requestRest } = request;
  // choices[0].message became the last turn; a failed call keeps its choices whole here.
  const responseRest = response ? Object.fromEntries(Object.entries(response).filter(([k]) => failed || k !== 'choices')) : null;
  const extra = extraOf(obj, RR_KEYS) ?? {};
  if (Object.keys(requestRest).length > 0) extra.request = requestRest;
  if (responseRest && Object.keys(responseRest).length > 0) extra.response = responseRest;
  if (!failed && choices && choices.length > 1) extra.other_choices = choices.slice(1);
  return build(obj, 'request_response', messages, tools, failed ? 'error' : statusOf(obj), Object.keys(extra).length ? extra : null, model);
}

const COMMON_KEYS = ['id', 'created_at', 'model', 'user_id', 'session_id', 'tags', 'metadata', 'status', 'feedback'];
const CHAT_KEYS = new Set([...COMMON_KEYS, 'messages', 'tools']);
const PC_KEYS = new Set([...COMMON_KEYS, 'prompt', 'completion']);
const RR_KEYS = new Set([...COMMON_KEYS, 'request', 'response', 'status_code', 'error']);

function extraOf(obj: Obj, known: ReadonlySet<string>): Obj | null {
  let extra: Obj | null = null;
  for (const k of Object.keys(obj)) {
    if (known.has(k)) continue;
    extra ??= Object.create(null) as Obj;
    // defineProperty keeps a `__proto__` key as data instead of re-pointing the prototype.
    Object.defineProperty(extra, k, { value: obj[k], enumerable: true, writable: true, configurable: true });
  }
  if (has(obj, 'status_code')) (extra ??= Object.create(null) as Obj).status_code = obj.status_code;
  if ((own(obj, 'error') ?? null) !== null) (extra ??= Object.create(null) as Obj).error = obj.error;
  // The stored status is ok or error; a status logged in other words ("timeout", "completed", 500) is kept as
  // it came too.
  const status = own(obj, 'status');
  if (status !== undefined && status !== null && status !== 'ok' && status !== 'error') (extra ??= Object.create(null) as Obj).status = status;
  return extra;
}

/** Status words of a call that failed (any case); anything else, and no status, is ok. */
const FAILED_STATUS = /^(error|errored|failed|failure|fail|timeout|timed[ _-]?out|cancell?ed|aborted|rejected)$/i;

/**
 * A record's status: error for a failed call, in words (FAILED_STATUS) or as an HTTP status of 400 and up given
 * as `status` or `status_code`, or with `error` set — what SPEC §2 says of request/response records, for every
 * shape. Before, "timeout" or `status_code: 500` on a chat record was stored as ok.
 */
function statusOf(obj: Obj): 'ok' | 'error' {
  const s = own(obj, 'status');
  if (typeof s === 'string' && FAILED_STATUS.test(s.trim())) return 'error';
  const code = Number(typeof s === 'number' || (typeof s === 'string' && /^\s*\d{3}\s*$/.test(s)) ? s : (own(obj, 'status_code') ?? NaN));
  if (Number.isFinite(code) && code >= 400) return 'error';
  return (own(obj, 'error') ?? null) !== null ? 'error' : 'ok';
}

function textOrNull(v: unknown): string | null {
  return v === undefined || v === null ? null : String(v);
}

function build(
  obj: Obj,
  format: ConversationInput['format'],
  messages: readonly unknown[],
  tools: readonly unknown[] | null,
  status: 'ok' | 'error',
  extra: Obj | null,
  modelOverride?: string | null,
): ParsedRecord {
  const ts = parseTimestamp(own(obj, 'created_at'), 'created_at');
  if (typeof ts === 'string') return { kind: 'invalid', reason: ts };
  const model = modelOverride !== undefined ? modelOverride : textOrNull(own(obj, 'model'));
  const tags = (own(obj, 'tags') as Record<string, unknown> | null | undefined) ?? null;
  const metadata = own(obj, 'metadata') ?? null;
  const content: ConversationContent = {
    messages,
    tools,
    created_at_ms: ts?.ms ?? null,
    model,
    user_id: textOrNull(own(obj, 'user_id')),
    session_id: textOrNull(own(obj, 'session_id')),
    tags,
    metadata,
    status,
  };
  const rawId = own(obj, 'id');
  // A derived id is the content digest, so the same line ingested twice is the same conversation. A record with
  // its own id is compared by the digest of its stored text instead (storedDigest), far cheaper to take.
  const contentSha256 = rawId === undefined || rawId === null ? contentDigest(content) : null;
  const id = contentSha256 !== null ? contentSha256.slice(0, 32) : String(rawId);
  const feedback = embeddedFeedback(own(obj, 'feedback'), id);
  if (typeof feedback === 'string') return { kind: 'invalid', reason: feedback };
  let nAssistant = 0;
  for (const m of messages) if ((m as Obj).role === 'assistant') nAssistant++;
  return {
    kind: 'conversation',
    conversation: {
      id,
      contentSha256,
      format,
      status,
      messages,
      tools,
      createdAt: ts ? ts.text : null,
      createdAtMs: ts ? ts.ms : null,
      model,
      userId: content.user_id,
      sessionId: content.session_id,
      tags,
      metadata,
      extra,
      nAssistant,
      feedback,
    },
  };
}

/**
 * ISO 8601 text, or epoch seconds or milliseconds (as numbers or digit strings). Values below 1e11 are
 * seconds: 1e11 s is the year 5138, while 1e11 ms is 1973, so the two ranges do not overlap in practice.
 */
export function parseTimestamp(v: unknown, path?: string): { text: string; ms: number } | null | string {
  if (v === undefined || v === null) return null;
  const at = path === undefined ? '' : `${path}: `;
  const bad = `${at}expected ISO 8601 or epoch seconds/milliseconds, got ${JSON.stringify(v)?.slice(0, 60)}`;
  let ms: number;
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) return bad;
    ms = Math.round(Math.abs(v) < 1e11 ? v * 1000 : v);
  } else if (typeof v === 'string') {
    const t = v.trim();
    if (/^\d+(\.\d+)?$/.test(t)) {
      const n = Number(t);
      ms = Math.round(n < 1e11 ? n * 1000 : n);
    } else if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/i.test(t)) {
      // A time without a zone is UTC: Date.parse would read it in this machine's zone, and a store must not
      // depend on where ingest ran. (A date alone is already UTC in ECMAScript.)
      const iso = t.replace(' ', 'T');
      ms = Date.parse(/T[\d:.]+$/i.test(iso) ? `${iso}Z` : iso);
      if (Number.isNaN(ms)) return bad;
      // Date.parse rolls a day the month does not have over into the next month (2026-02-30 → March 2).
      if (!calendarDay(Number(t.slice(0, 4)), Number(t.slice(5, 7)), Number(t.slice(8, 10)))) return `${at}expected a date that exists, got ${JSON.stringify(v)}`;
    } else return bad;
  } else return bad;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return bad;
  return { text: String(v), ms };
}

/** Whether day `d` of month `m` (1-12) exists in year `y` (proleptic Gregorian). */
function calendarDay(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return d <= (m === 2 ? (leap ? 29 : 28) : m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31);
}

/**
 * Ids given as JSON numbers beyond 2^53 (64-bit ids are common in logs): JSON.parse rounds them, and two ids
 * could become one (12345678901234567890 and ...891 both read 12345678901234567000). Such an `id`, `log_id`,
 * `user_id` or `session_id` of the top-level object takes its digits from the line's text instead, as a string
 * (two users merged into one would also be one group to `split: { group_by: user_id }`). Only for those numbers:
 * every other id reads as before (String of the number).
 */
export function keepLargeIdDigits(obj: Obj, text: string): void {
  for (const key of ['id', 'log_id', 'user_id', 'session_id']) {
    const v = own(obj, key);
    if (typeof v !== 'number' || !Number.isInteger(v) || Number.isSafeInteger(v)) continue;
    const literal = topLevelNumberText(text, key);
    if (literal !== null && /^-?\d+$/.test(literal)) obj[key] = literal;
  }
}

/** The text of the number that member `key` of the JSON object `text` holds (its last such member), or null. */
function topLevelNumberText(text: string, key: string): string | null {
  let depth = 0;
  let expectKey = false;
  let member: string | null = null;
  let found: string | null = null;
  for (let i = 0; i < text.length; ) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (depth === 1 && expectKey) {
        member = JSON.parse(text.slice(i, j + 1)) as string;
        expectKey = false;
      }
      i = j + 1;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      expectKey = depth === 1;
      i++;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      i++;
    } else if (depth === 1 && c === 0x2c) {
      expectKey = true;
      i++;
    } else if (depth === 1 && c === 0x3a) {
      i++;
      while (i < text.length && /\s/.test(text[i]!)) i++;
      if (member === key) found = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400))?.[0] ?? found;
    } else i++;
  }
  return found;
}

/** Feedback value → number: numbers as they are, thumbs (booleans and words) as 1 or 0. */
function feedbackNumber(v: unknown): { value: number; thumbs: boolean } | null {
  if (typeof v === 'number' && Number.isFinite(v)) return { value: v, thumbs: false };
  if (typeof v === 'boolean') return { value: v ? 1 : 0, thumbs: true };
  if (typeof v === 'string' && (THUMBS_WORDS as readonly string[]).includes(v)) {
    return { value: v === 'up' || v === 'positive' || v === 'thumbs_up' ? 1 : 0, thumbs: true };
  }
  return null;
}

function makeEvent(logId: string, name: string, value: number, createdAt: unknown): FeedbackEventInput | string {
  const ts = parseTimestamp(createdAt, 'created_at');
  if (typeof ts === 'string') return ts;
  const createdAtMs = ts ? ts.ms : null;
  return {
    logId,
    name,
    value,
    createdAt: ts ? ts.text : null,
    createdAtMs,
    // Identical events (same conversation, name, value and time) are one event: overlapping files add nothing.
    // 128 bits in 22 characters: the key only has to be unique, and a short key keeps its index small.
    key: sha256(canonicalJson([logId, name, value, createdAtMs]), 'base64url').slice(0, 22),
  };
}

function embeddedFeedback(fb: unknown, id: string): FeedbackEventInput[] | string {
  if (fb === undefined || fb === null) return [];
  const single = feedbackNumber(fb);
  if (single) {
    const e = makeEvent(id, single.thumbs ? 'thumbs' : 'score', single.value, undefined);
    return typeof e === 'string' ? e : [e];
  }
  const out: FeedbackEventInput[] = [];
  if (Array.isArray(fb)) {
    for (let i = 0; i < fb.length; i++) {
      const item = fb[i] as Obj;
      const v = feedbackNumber(own(item, 'value'));
      if (!v) return `feedback[${i}].value: expected a number, a boolean or a thumbs word`;
      const name = (own(item, 'name') as string | undefined) ?? (v.thumbs ? 'thumbs' : 'score');
      const e = makeEvent(id, name, v.value, own(item, 'created_at'));
      if (typeof e === 'string') return `feedback[${i}].${e}`;
      out.push(e);
    }
    return out;
  }
  if (typeof fb === 'object') {
    for (const name of Object.keys(fb as Obj).sort()) {
      const v = feedbackNumber((fb as Obj)[name]);
      if (!v) return `feedback.${name}: expected a number, a boolean or a thumbs word`;
      const e = makeEvent(id, name, v.value, undefined);
      if (typeof e === 'string') return e;
      out.push(e);
    }
    return out;
  }
  return `feedback: expected a number, boolean, thumbs word, {name: value} object or array of events`;
}

function parseFeedbackEvent(obj: Obj): ParsedRecord {
  if (!quickValid('feedback', obj)) {
    const r = feedbackEventSchema.safeParse(obj);
    if (!r.success) return fail(r.error);
  }
  const v = feedbackNumber(own(obj, 'value'))!;
  const name = (own(obj, 'name') as string | undefined) ?? 'score';
  const e = makeEvent(String(own(obj, 'log_id')), name, v.value, own(obj, 'created_at'));
  if (typeof e === 'string') return { kind: 'invalid', reason: e };
  return { kind: 'feedback', events: [e] };
}

/** The CSV columns SPEC §2 recognises (case-insensitive), mapped to our field names. A Map: a header may be any text, `constructor` or `__proto__` too. */
const CSV_COLUMNS: ReadonlyMap<string, string> = new Map([
  ['question', 'user'],
  ['prompt', 'user'],
  ['user', 'user'],
  ['answer', 'assistant'],
  ['completion', 'assistant'],
  ['assistant', 'assistant'],
  ['system', 'system'],
  ['id', 'id'],
  ['score', 'score'],
  ['feedback', 'score'],
  ['created_at', 'created_at'],
  ['model', 'model'],
]);

/** The names `--map column=field` accepts as a field. */
export const CSV_FIELD_NAMES: readonly string[] = [...CSV_COLUMNS.keys()];

/**
 * Maps a CSV header to field names (null: a column kept as metadata); `map` (from `--map column=field`, fields
 * among CSV_FIELD_NAMES) renames other columns.
 */
export function csvFieldNames(header: readonly string[], map: Readonly<Record<string, string>> = {}): (string | null)[] {
  const lowerMap = new Map(Object.entries(map).map(([k, v]) => [k.trim().toLowerCase(), v.trim().toLowerCase()]));
  return header.map((h) => {
    const key = h.trim().toLowerCase();
    const mapped = lowerMap.get(key);
    return CSV_COLUMNS.get(mapped ?? key) ?? null;
  });
}

/** One CSV row (already mapped to field names) → a conversation. */
export function parseCsvRow(fields: Readonly<Record<string, string>>): ParsedRecord {
  const user = fields.user;
  const assistant = fields.assistant;
  if (user === undefined || user === '') return { kind: 'invalid', reason: 'question: expected a non-empty user turn (column question|prompt|user)' };
  if (assistant === undefined) return { kind: 'invalid', reason: 'answer: expected a column answer|completion|assistant' };
  const messages: unknown[] = [];
  if (fields.system) messages.push({ role: 'system', content: fields.system });
  messages.push({ role: 'user', content: user }, { role: 'assistant', content: assistant });
  const obj: Obj = { messages };
  if (fields.id) obj.id = fields.id;
  if (fields.model) obj.model = fields.model;
  if (fields.created_at) obj.created_at = fields.created_at;
  const score = fields.score?.trim();
  if (score) {
    if (/^-?\d+(\.\d+)?$/.test(score)) obj.feedback = Number(score);
    else if (/^(true|false)$/i.test(score)) obj.feedback = score.toLowerCase() === 'true';
    else if ((THUMBS_WORDS as readonly string[]).includes(score.toLowerCase())) obj.feedback = score.toLowerCase();
    else return { kind: 'invalid', reason: `score: expected a number, true/false or a thumbs word, got ${JSON.stringify(score.slice(0, 40))}` };
  }
  const extra: Obj = Object.create(null) as Obj;
  for (const [k, v] of Object.entries(fields)) {
    if (['user', 'assistant', 'system', 'id', 'model', 'created_at', 'score'].includes(k)) continue;
    Object.defineProperty(extra, k.startsWith('column:') ? k.slice(7) : k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  if (Object.keys(extra).length > 0) obj.metadata = extra;
  const parsed = parseChat(obj);
  if (parsed.kind === 'conversation') {
    return { kind: 'conversation', conversation: { ...parsed.conversation, format: 'csv' } };
  }
  return parsed;
}
