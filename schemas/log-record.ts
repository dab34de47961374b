/**
 * The shapes of logged conversations we accept (SPEC §2). These schemas only *validate*: ingest keeps the
 * value JSON.parse produced (zod drops `__proto__` keys, and text must be stored exactly as it came).
 */
import { plainIssueMessage } from '../pipeline/errors.js';
import { z } from 'zod';

export const ROLES = ['system', 'user', 'assistant', 'tool', 'function'] as const;
export type Role = (typeof ROLES)[number];

export const INPUT_FORMATS = ['chat', 'request_response', 'prompt_completion', 'feedback', 'csv'] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

const got = (v: unknown): string => {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  // JSON has no infinities, but JSON.parse reads 1e400 as one; JSON.stringify would show it as null.
  if (typeof v === 'number' && !Number.isFinite(v)) return `a number out of range (${v})`;
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
};

export const roleSchema = z.enum(ROLES, {
  error: (iss) => `expected one of ${ROLES.join('|')}, got ${got(iss.input)}`,
});

const toolCallSchema = z.looseObject({
  id: z.string().optional(),
  type: z.string().optional(),
  function: z.looseObject({
    name: z.string({ error: (iss) => `expected a string, got ${got(iss.input)}` }),
    // Production logs sometimes carry parsed arguments; emit serialises them.
    arguments: z.union([z.string(), z.record(z.string(), z.unknown())], {
      error: (iss) => `expected a JSON string, got ${got(iss.input)}`,
    }),
  }),
});

const contentPartSchema = z.looseObject({
  type: z.string({ error: (iss) => `expected a content part type string, got ${got(iss.input)}` }),
  text: z.string().optional(),
});

export const messageSchema = z
  .looseObject({
    role: roleSchema,
    content: z
      .union([z.string(), z.array(contentPartSchema), z.null()], {
        error: (iss) => `expected a string, an array of content parts or null, got ${got(iss.input)}`,
      })
      .optional(),
    // SDK dumps (`model_dump()`) write absent fields as null: null means absent for every optional field.
    name: z.string({ error: (iss) => `expected a string, got ${got(iss.input)}` }).nullish(),
    tool_calls: z.array(toolCallSchema, { error: (iss) => `expected an array of tool calls, got ${got(iss.input)}` }).nullish(),
    tool_call_id: z.string({ error: (iss) => `expected a string, got ${got(iss.input)}` }).nullish(),
    function_call: z
      .looseObject(
        { name: z.string(), arguments: z.union([z.string(), z.record(z.string(), z.unknown())]) },
        { error: (iss) => `expected {name, arguments}, got ${got(iss.input)}` },
      )
      .nullish(),
    weight: z.number({ error: (iss) => `expected 0 or 1, got ${got(iss.input)}` }).nullish(),
    // OpenAI's structured refusal: `content: null, refusal: "I can't help with that."`.
    refusal: z.string({ error: (iss) => `expected a string, got ${got(iss.input)}` }).nullish(),
  })
  .superRefine((m, ctx) => {
    const hasCall = (m.tool_calls !== undefined && m.tool_calls !== null && m.tool_calls.length > 0) || (m.function_call ?? null) !== null;
    const hasRefusal = typeof m.refusal === 'string';
    if ((m.content === null || m.content === undefined) && !hasCall && !hasRefusal) {
      ctx.addIssue({
        code: 'custom',
        path: ['content'],
        message: `expected a string or content parts (null only beside tool_calls, function_call or refusal), got ${got(m.content)}`,
      });
    }
  });

export const messagesSchema = z
  .array(messageSchema, { error: (iss) => `expected an array of messages, got ${got(iss.input)}` })
  .min(1, { error: 'expected a non-empty array of messages' });

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()], {
  error: (iss) => `expected a scalar (string, number, boolean or null), got ${got(iss.input)}`,
});

const idSchema = z.union([z.string().min(1), z.number()], {
  error: (iss) => `expected a non-empty string or a number, got ${got(iss.input)}`,
});

export const timestampSchema = z.union([z.string(), z.number()], {
  error: (iss) => `expected ISO 8601 or epoch seconds/milliseconds, got ${got(iss.input)}`,
});

const optionalText = z.union([z.string(), z.null()], { error: (iss) => `expected a string, got ${got(iss.input)}` }).optional();
/** An optional field given as null is absent (exports write null for an empty column): a time, an id, a name. */
const optionalTimestamp = timestampSchema.nullable().optional();
const optionalName = z.string().min(1).nullable().optional();
/** The feedback values SPEC §2 accepts for thumbs. */
export const THUMBS_WORDS = ['up', 'down', 'positive', 'negative', 'thumbs_up', 'thumbs_down'] as const;

const feedbackValue = z.union([z.number(), z.boolean(), z.enum(THUMBS_WORDS)], {
  error: (iss) => `expected a number, a boolean or one of ${THUMBS_WORDS.join('|')}, got ${got(iss.input)}`,
});

export const feedbackEventSchema = z.looseObject({
  log_id: idSchema,
  value: feedbackValue,
  name: optionalName,
  created_at: optionalTimestamp,
});

/** Embedded `feedback`: a number, a thumbs word/boolean, an object {name: value}, or an array of events. */
export const embeddedFeedbackSchema = z.union(
  [
    feedbackValue,
    z.array(z.looseObject({ value: feedbackValue, name: optionalName, created_at: optionalTimestamp })),
    z.record(z.string(), feedbackValue),
    z.null(),
  ],
  { error: (iss) => `expected a number, boolean, thumbs word, {name: value} object or array of events, got ${got(iss.input)}` },
);

/** Fields shared by the chat, request/response and prompt/completion shapes. */
const commonFields = {
  id: idSchema.nullable().optional(),
  created_at: optionalTimestamp,
  model: optionalText,
  user_id: z.union([z.string(), z.number(), z.null()]).optional(),
  session_id: z.union([z.string(), z.number(), z.null()]).optional(),
  tags: z.union([z.record(z.string(), scalar), z.null()], { error: (iss) => `expected an object of scalars, got ${got(iss.input)}` }).optional(),
  metadata: z.unknown().optional(),
  // A word ("error", "timeout") or an HTTP status (500): logs write both.
  status: z.union([z.string(), z.number(), z.null()], { error: (iss) => `expected a string or a number, got ${got(iss.input)}` }).optional(),
  feedback: embeddedFeedbackSchema.optional(),
};

export const chatRecordSchema = z.looseObject({
  ...commonFields,
  messages: messagesSchema,
  tools: z.union([z.array(z.unknown()), z.null()], { error: (iss) => `expected an array, got ${got(iss.input)}` }).optional(),
});

export const requestResponseRecordSchema = z.looseObject({
  ...commonFields,
  request: z.looseObject({
    model: optionalText,
    messages: messagesSchema,
    tools: z.union([z.array(z.unknown()), z.null()]).optional(),
  }, { error: (iss) => `expected a chat-completions request object, got ${got(iss.input)}` }),
  response: z
    .union([
      z.looseObject({
        model: optionalText,
        choices: z.array(z.looseObject({ message: messageSchema.optional() })).optional(),
        usage: z.unknown().optional(),
        error: z.unknown().optional(),
      }),
      z.null(),
    ], { error: (iss) => `expected a chat-completions response object or null, got ${got(iss.input)}` })
    .optional(),
  status_code: z.union([z.number(), z.string(), z.null()]).optional(),
  error: z.unknown().optional(),
});

const promptText = z.string({ error: (iss) => `expected a string, got ${got(iss.input)}` });
export const promptCompletionRecordSchema = z.looseObject({
  ...commonFields,
  prompt: promptText,
  completion: promptText,
});

export type ChatRecord = z.infer<typeof chatRecordSchema>;
export type RequestResponseRecord = z.infer<typeof requestResponseRecordSchema>;
export type PromptCompletionRecord = z.infer<typeof promptCompletionRecordSchema>;
export type FeedbackEventRecord = z.infer<typeof feedbackEventSchema>;
export type LogMessage = z.infer<typeof messageSchema>;

/** Render a zod issue path the way users write it: `messages[2].role`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

/** The first issue of a failed parse as `path: expected …` — the quarantine reason. */
export function describeZodError(error: z.ZodError, prefix = ''): string {
  const issue = pickIssue(error.issues);
  const path = formatPath([...(prefix ? [prefix] : []), ...issue.path]);
  // In the tool's own words ("expected a non-empty string"), not zod's ("Too small: expected string to have
  // >=1 characters"), as config and validate errors are.
  const msg = plainIssueMessage(issue as Parameters<typeof plainIssueMessage>[0]);
  return path ? `${path}: ${msg}` : msg;
}

// Unions report "invalid_union" at the parent; dig into the branch that got furthest so the reason names the field.
function pickIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue {
  const first = issues[0]!;
  if (first.code === 'invalid_union' && 'errors' in first && Array.isArray(first.errors) && first.errors.length > 0) {
    let best: z.core.$ZodIssue | undefined;
    for (const branch of first.errors as z.core.$ZodIssue[][]) {
      for (const iss of branch) {
        if (iss.code === 'invalid_type' && iss.path.length === 0) continue;
        if (!best || iss.path.length > best.path.length) best = iss;
      }
    }
    if (best && best.path.length > 0) return { ...best, path: [...first.path, ...best.path] };
  }
  return first;
}

// ---------------------------------------------------------------------------------------------------------
// Quick checks: the schemas above, restated as plain predicates for ingest's hot path.
//
// zod takes about twice as long as JSON.parse on a typical chat record (5.3 µs against 2.5 µs), and ingest only
// needs its verdict. `quickValid` says true only for records every check above accepts — each predicate here is
// the schema it mirrors or stricter (numbers must be finite, objects plain, `__proto__` keys are not skipped) —
// and anything it is unsure of goes to zod, which gives the verdict and the message. So a record is accepted
// exactly when the schema accepts it; only the common case gets faster. Change a schema above, change its
// predicate here: test/log-record-quick.test.ts checks every accepted record against zod, on mutations of
// each field of every shape.
// ---------------------------------------------------------------------------------------------------------

type Loose = Record<string, unknown>;

/** A non-array object whose prototype is Object's or none: what JSON.parse makes, and what zod's object checks accept. */
function plain(v: unknown): v is Loose {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

const ROLE_SET: ReadonlySet<unknown> = new Set(ROLES);
const THUMBS_SET: ReadonlySet<unknown> = new Set(THUMBS_WORDS);

const finite = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const nullishString = (v: unknown): boolean => v === undefined || v === null || typeof v === 'string';
const optionalString = (v: unknown): boolean => v === undefined || typeof v === 'string';
const stringOrNumber = (v: unknown): boolean => typeof v === 'string' || finite(v);
const scalarOk = (v: unknown): boolean => v === null || typeof v === 'string' || typeof v === 'boolean' || finite(v);
const feedbackValueOk = (v: unknown): boolean => finite(v) || typeof v === 'boolean' || (typeof v === 'string' && THUMBS_SET.has(v));
const nonEmptyOptionalString = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'string' && v.length > 0);
const optionalTime = (v: unknown): boolean => v === undefined || v === null || stringOrNumber(v);
const idOk = (v: unknown): boolean => (typeof v === 'string' ? v.length > 0 : finite(v));

function everyOf(v: unknown, ok: (x: unknown) => boolean): boolean {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (!ok(v[i])) return false;
  return true;
}

function valuesAll(o: Loose, ok: (x: unknown) => boolean): boolean {
  for (const k of Object.keys(o)) if (!ok(o[k])) return false;
  return true;
}

const argumentsOk = (a: unknown): boolean => typeof a === 'string' || plain(a);

function toolCallOk(t: unknown): boolean {
  if (!plain(t) || !optionalString(t.id) || !optionalString(t.type)) return false;
  const f = t.function;
  return plain(f) && typeof f.name === 'string' && argumentsOk(f.arguments);
}

const partOk = (p: unknown): boolean => plain(p) && typeof p.type === 'string' && optionalString(p.text);

function messageOk(m: unknown): boolean {
  if (!plain(m) || !ROLE_SET.has(m.role)) return false;
  const content = m.content;
  if (!(content === undefined || content === null || typeof content === 'string' || everyOf(content, partOk))) return false;
  if (!nullishString(m.name) || !nullishString(m.tool_call_id) || !nullishString(m.refusal)) return false;
  const calls = m.tool_calls;
  if (!(calls === undefined || calls === null || everyOf(calls, toolCallOk))) return false;
  const fc = m.function_call;
  if (!(fc === undefined || fc === null || (plain(fc) && typeof fc.name === 'string' && argumentsOk(fc.arguments)))) return false;
  if (!(m.weight === undefined || m.weight === null || finite(m.weight))) return false;
  if (content === undefined || content === null) {
    const hasCall = (Array.isArray(calls) && calls.length > 0) || (fc !== undefined && fc !== null);
    if (!hasCall && typeof m.refusal !== 'string') return false;
  }
  return true;
}

const messagesOk = (v: unknown): boolean => Array.isArray(v) && v.length > 0 && everyOf(v, messageOk);

const eventOk = (e: unknown): boolean =>
  plain(e) && feedbackValueOk(e.value) && nonEmptyOptionalString(e.name) && optionalTime(e.created_at);

function embeddedFeedbackOk(f: unknown): boolean {
  if (f === null || feedbackValueOk(f)) return true;
  if (Array.isArray(f)) return everyOf(f, eventOk);
  return plain(f) && valuesAll(f, feedbackValueOk);
}

function commonOk(o: Loose): boolean {
  return (
    (o.id === undefined || o.id === null || idOk(o.id)) &&
    optionalTime(o.created_at) &&
    nullishString(o.model) &&
    (nullishString(o.user_id) || finite(o.user_id)) &&
    (nullishString(o.session_id) || finite(o.session_id)) &&
    (o.tags === undefined || o.tags === null || (plain(o.tags) && valuesAll(o.tags, scalarOk))) &&
    (nullishString(o.status) || finite(o.status)) &&
    (o.feedback === undefined || embeddedFeedbackOk(o.feedback))
  );
}

const toolsOk = (t: unknown): boolean => t === undefined || t === null || Array.isArray(t);

function choicesOk(v: unknown): boolean {
  return v === undefined || everyOf(v, (c) => plain(c) && (c.message === undefined || messageOk(c.message)));
}

/** True only for records the schema of `format` accepts (see above); false means "ask zod". */
export function quickValid(format: 'chat' | 'request_response' | 'prompt_completion' | 'feedback', o: unknown): boolean {
  if (!plain(o)) return false;
  switch (format) {
    case 'chat':
      return commonOk(o) && messagesOk(o.messages) && toolsOk(o.tools);
    case 'prompt_completion':
      return commonOk(o) && typeof o.prompt === 'string' && typeof o.completion === 'string';
    case 'request_response': {
      const req = o.request;
      const res = o.response;
      return (
        commonOk(o) &&
        plain(req) &&
        nullishString(req.model) &&
        messagesOk(req.messages) &&
        toolsOk(req.tools) &&
        (res === undefined || res === null || (plain(res) && nullishString(res.model) && choicesOk(res.choices))) &&
        (o.status_code === undefined || o.status_code === null || stringOrNumber(o.status_code))
      );
    }
    case 'feedback':
      return idOk(o.log_id) && feedbackValueOk(o.value) && nonEmptyOptionalString(o.name) && optionalTime(o.created_at);
  }
}
