/**
 * Validation of chat training files with OpenAI's error kinds (SPEC §5), token counts and a cost estimate
 * (SPEC §1's `validate` JSON). Emit runs checkExample on every example before writing it.
 */
import { stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { MESSAGE_KEYS, ROLES, TrainingExampleSchema } from '../schemas/training-example.js';
import { canonicalJson } from './canonical.js';
import { decodeUtf8, isBlank, readLines } from './lines.js';
import { autoEpochs, estimateCostUsd, resolveModel, type EncodingName } from './models.js';
import { countCompletionTokens, countExampleTokens, getTokenizer, tokenStats, type ChatMessageLike } from './tokens.js';
import { plainIssueMessage } from './errors.js';

export type ValidationErrorKind =
  | 'data_type'
  | 'missing_messages_list'
  | 'message_missing_key'
  | 'message_unrecognized_key'
  | 'unrecognized_role'
  | 'missing_content'
  | 'example_missing_assistant_message'
  | 'invalid_weight'
  | 'invalid_json';

export interface ValidationError {
  readonly kind: ValidationErrorKind;
  readonly message: string;
}

export const DEFAULT_VALIDATE_MODEL = 'gpt-4o-mini-2024-07-18';
/** OpenAI's minimum number of training examples. */
export const MIN_EXAMPLES = 10;
/** OpenAI's upload limit for a training file. */
export const MAX_FILE_BYTES = 512 * 1024 * 1024;
/** A file with an error on every line must not turn into a JSON report of millions of entries. */
export const MAX_LISTED_ERRORS = 1000;
/** How many line numbers a warning quotes before "…". */
const QUOTED_LINES = 5;

const ROLE_SET: ReadonlySet<string> = new Set(ROLES);
const KEY_SET: ReadonlySet<string> = new Set(MESSAGE_KEYS);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return v.length === 0 ? 'an empty array' : 'an array';
  if (typeof v === 'string') return v === '' ? '""' : 'a string';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** A short JSON rendering of a bad value for an error message. */
function show(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function carriesCall(m: Record<string, unknown>): boolean {
  return (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) || isObject(m.function_call);
}

function checkMessage(m: unknown, at: string, errors: ValidationError[]): void {
  if (!isObject(m)) {
    errors.push({ kind: 'data_type', message: `${at}: expected a message object, got ${kindOf(m)}` });
    return;
  }
  const unknownKeys = Object.keys(m).filter((k) => !KEY_SET.has(k));
  if (unknownKeys.length > 0) {
    errors.push({
      kind: 'message_unrecognized_key',
      message: `${at}: unrecognized key${unknownKeys.length > 1 ? 's' : ''} ${unknownKeys.map((k) => `"${k}"`).join(', ')} (allowed: ${MESSAGE_KEYS.join(', ')})`,
    });
  }

  if (!('role' in m)) {
    errors.push({ kind: 'message_missing_key', message: `${at}: missing key "role"` });
  } else if (typeof m.role !== 'string' || !ROLE_SET.has(m.role)) {
    errors.push({ kind: 'unrecognized_role', message: `${at}.role: expected one of ${ROLES.join('|')}, got ${show(m.role)}` });
  }

  // A call that is not one is named whatever the content says (beside `content: null` it was the real problem).
  if (m.tool_calls !== undefined && m.tool_calls !== null && !Array.isArray(m.tool_calls)) {
    errors.push({ kind: 'data_type', message: `${at}.tool_calls: expected an array of calls, got ${kindOf(m.tool_calls)}` });
  }
  if (m.function_call !== undefined && m.function_call !== null && !isObject(m.function_call)) {
    errors.push({ kind: 'data_type', message: `${at}.function_call: expected an object {name, arguments}, got ${kindOf(m.function_call)}` });
  }
  const call = carriesCall(m);
  if (!('content' in m)) {
    if (!call) errors.push({ kind: 'message_missing_key', message: `${at}: missing key "content"` });
  } else if (call) {
    // Beside a tool or function call the text is optional: null, absent or any string.
    if (m.content !== null && typeof m.content !== 'string') {
      errors.push({ kind: 'missing_content', message: `${at}.content: expected a string or null, got ${kindOf(m.content)}` });
    }
  } else if (typeof m.content !== 'string' || m.content === '') {
    errors.push({ kind: 'missing_content', message: `${at}.content: expected a non-empty string, got ${kindOf(m.content)}` });
  }

  if ('weight' in m) {
    if (m.weight !== 0 && m.weight !== 1) {
      errors.push({ kind: 'invalid_weight', message: `${at}.weight: expected 0 or 1, got ${show(m.weight)}` });
    } else if (m.role !== 'assistant') {
      errors.push({ kind: 'invalid_weight', message: `${at}.weight: only assistant messages may carry a weight, this one is ${show(m.role)}` });
    }
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out === '' ? '' : '.'}${String(p)}`;
  return out === '' ? '(example)' : out;
}

/**
 * OpenAI's checks on one example; [] when it may be written. Anything OpenAI's kinds do not name (a tool call
 * without a function name, a numeric `name`, …) is left to the training-example schema and reported as
 * `data_type` with its path, so an example that passes here always parses as a TrainingExample.
 */
export function checkExample(value: unknown): ValidationError[] {
  if (!isObject(value)) return [{ kind: 'data_type', message: `expected a JSON object, got ${kindOf(value)}` }];
  const messages = value.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    const got = messages === undefined ? 'no "messages" key' : kindOf(messages);
    return [{ kind: 'missing_messages_list', message: `messages: expected a non-empty array of messages, got ${got}` }];
  }
  const errors: ValidationError[] = [];
  messages.forEach((m, i) => checkMessage(m, `messages[${i}]`, errors));
  if (!messages.some((m) => isObject(m) && m.role === 'assistant')) {
    errors.push({ kind: 'example_missing_assistant_message', message: 'messages: no message has role "assistant"' });
  }
  if (errors.length > 0) return errors;
  if (plainExample(value, messages)) return [];

  const parsed = TrainingExampleSchema.safeParse(value);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => ({ kind: 'data_type' as const, message: `${formatPath(issue.path)}: ${plainIssueMessage(issue)}` }));
}

/**
 * An example the checks above have already settled: no `tools` key, and messages of role, content and weight
 * only. For those the checks above are the schema's own conditions (a known role, a non-empty string content, a
 * weight of 0 or 1 on an assistant turn, an assistant turn somewhere), so zod is asked only about the rest —
 * names, tool calls, tools. Emit checks every example it writes, and zod took ~2 µs of each.
 */
function plainExample(value: Record<string, unknown>, messages: readonly unknown[]): boolean {
  if ('tools' in value) return false;
  for (const m of messages) {
    if (!isObject(m)) return false;
    for (const k of Object.keys(m)) if (k !== 'role' && k !== 'content' && k !== 'weight') return false;
  }
  return true;
}

/** A `{prompt, completion}` line without `messages`: the legacy completion format. */
function isCompletionShape(value: unknown): boolean {
  return isObject(value) && !('messages' in value) && 'prompt' in value && 'completion' in value;
}

/** The legacy format's checks: two strings, a non-empty completion, no other keys. */
export function checkCompletionExample(value: unknown): ValidationError[] {
  if (!isObject(value)) return [{ kind: 'data_type', message: `expected a JSON object, got ${kindOf(value)}` }];
  const errors: ValidationError[] = [];
  for (const key of Object.keys(value)) {
    if (key !== 'prompt' && key !== 'completion') {
      errors.push({ kind: 'message_unrecognized_key', message: `${key}: unrecognized key in a prompt/completion example; expected only prompt and completion` });
    }
  }
  // A chat line in a prompt/completion file has neither key: say so rather than naming undefined's type.
  const got = (key: 'prompt' | 'completion'): string => (Object.hasOwn(value, key) ? kindOf(value[key]) : `no "${key}" key`);
  if (typeof value.prompt !== 'string') errors.push({ kind: 'data_type', message: `prompt: expected a string, got ${got('prompt')}` });
  if (typeof value.completion !== 'string' || value.completion === '') {
    errors.push({ kind: 'missing_content', message: `completion: expected a non-empty string, got ${got('completion')}` });
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------------------
// Files

export interface ValidateReport {
  readonly file: string;
  /** false when any line has an error. */
  readonly valid: boolean;
  /** Non-blank lines, valid or not. Tokens and cost cover the ones without errors. */
  readonly examples: number;
  /** At most MAX_LISTED_ERRORS entries; `error_count` has the full number. */
  readonly errors: readonly { readonly line: number; readonly kind: ValidationErrorKind; readonly message: string }[];
  readonly error_count: number;
  readonly warnings: readonly string[];
  readonly tokens: {
    readonly total: number;
    readonly assistant: number;
    readonly min: number;
    readonly mean: number;
    readonly p50: number;
    readonly p95: number;
    readonly max: number;
    readonly over_limit: number;
  };
  readonly cost: {
    readonly currency: 'USD';
    readonly n_epochs: number;
    readonly epochs_source: 'auto';
    readonly billing_tokens: number;
    readonly estimated_usd: number | null;
  };
  readonly model: {
    readonly name: string;
    readonly encoding: EncodingName;
    readonly max_tokens_per_example: number | null;
    readonly price_per_1m_training_tokens: number | null;
  };
}

/** Kept apart from validateFile so the rule is testable without writing half a gigabyte. */
export function fileSizeWarning(bytes: number): string | null {
  if (bytes <= MAX_FILE_BYTES) return null;
  return `The file is ${(bytes / (1024 * 1024)).toFixed(1)} MB: OpenAI accepts training files up to 512 MB.`;
}

function quoteLines(lines: readonly number[]): string {
  const shown = lines.slice(0, QUOTED_LINES).join(', ');
  return lines.length > QUOTED_LINES ? `${shown}, …` : shown;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Streams a JSONL training file (UTF-8, optional BOM, `\n` or `\r\n`) and checks every line. A blank line is a
 * `data_type` error: OpenAI rejects files with empty lines, and the fix (delete it) is the user's to make.
 */
export async function validateFile(path: string, opts: { model?: string; pricePer1M?: number } = {}): Promise<ValidateReport> {
  const model = resolveModel(opts.model ?? DEFAULT_VALIDATE_MODEL, { pricePer1M: opts.pricePer1M });
  const tok = getTokenizer(model.encoding);
  const limit = model.maxTokensPerExample;
  const { size } = await stat(path);

  const errors: { line: number; kind: ValidationErrorKind; message: string }[] = [];
  let errorCount = 0;
  const addError = (line: number, kind: ValidationErrorKind, message: string): void => {
    errorCount++;
    if (errors.length < MAX_LISTED_ERRORS) errors.push({ line, kind, message });
  };

  let examples = 0;
  const totals: number[] = [];
  let assistant = 0;
  let billing = 0;
  const overLimitLines: number[] = [];
  const noPromptLines: number[] = [];
  const firstLineOf = new Map<string, number>();
  const duplicates: { line: number; of: number }[] = [];

  let fileIsLegacy: boolean | undefined;
  for await (const { lineNo, bytes } of readLines(path)) {
    const text = decodeUtf8(bytes);
    if (text === null) {
      examples++;
      addError(lineNo, 'invalid_json', 'line is not valid UTF-8');
      continue;
    }
    if (isBlank(text)) {
      addError(lineNo, 'data_type', 'blank line: expected a JSON object (OpenAI rejects empty lines)');
      continue;
    }
    examples++;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      addError(lineNo, 'invalid_json', `not valid JSON: ${(err as Error).message}`);
      continue;
    }
    // A file is in the legacy shape (emit's openai_completion) when its first example is; then every line is
    // held to that shape, and in a chat file a stray prompt/completion line is a missing_messages_list error.
    fileIsLegacy ??= isCompletionShape(value);
    const legacy = fileIsLegacy;
    const found = legacy ? checkCompletionExample(value) : checkExample(value);
    if (found.length > 0) {
      for (const e of found) addError(lineNo, e.kind, e.message);
      continue;
    }

    let counted: { total: number; assistant: number };
    if (legacy) {
      counted = countCompletionTokens(value as { prompt: string; completion: string }, tok);
      if ((value as { prompt: string }).prompt === '') noPromptLines.push(lineNo);
    } else {
      const messages = (value as { messages: ChatMessageLike[] }).messages;
      counted = countExampleTokens(messages, tok);
      if (!messages.some((m) => m.role === 'system' || m.role === 'user')) noPromptLines.push(lineNo);
    }
    totals.push(counted.total);
    assistant += counted.assistant;
    if (limit !== null && counted.total > limit) overLimitLines.push(lineNo);
    billing += limit === null ? counted.total : Math.min(limit, counted.total);

    const digest = createHash('sha256').update(canonicalJson(value)).digest('base64');
    const first = firstLineOf.get(digest);
    if (first === undefined) firstLineOf.set(digest, lineNo);
    else duplicates.push({ line: lineNo, of: first });
  }

  const valid = totals.length;
  const warnings: string[] = [...model.warnings];
  if (errorCount > errors.length) {
    warnings.push(`${errorCount} errors found; only the first ${errors.length} are listed.`);
  }
  if (noPromptLines.length > 0) {
    warnings.push(
      `${plural(noPromptLines.length, 'example has', 'examples have')} no system or user message (line${noPromptLines.length > 1 ? 's' : ''} ${quoteLines(noPromptLines)}).`,
    );
  }
  if (overLimitLines.length > 0) {
    warnings.push(
      `${plural(overLimitLines.length, 'example exceeds', 'examples exceed')} ${model.base}'s limit of ${limit} tokens per example and will be truncated in training (line${overLimitLines.length > 1 ? 's' : ''} ${quoteLines(overLimitLines)}).`,
    );
  }
  if (valid < MIN_EXAMPLES) {
    warnings.push(`Only ${plural(valid, 'valid example')}: OpenAI requires at least ${MIN_EXAMPLES} training examples.`);
  }
  const sizeWarning = fileSizeWarning(size);
  if (sizeWarning) warnings.push(sizeWarning);
  if (duplicates.length > 0) {
    const shown = duplicates.slice(0, QUOTED_LINES).map((d) => `line ${d.line} repeats line ${d.of}`);
    warnings.push(
      `${plural(duplicates.length, 'example is an exact duplicate', 'examples are exact duplicates')} of an earlier one (${shown.join(', ')}${duplicates.length > QUOTED_LINES ? ', …' : ''}).`,
    );
  }

  const stats = tokenStats(totals);
  const epochs = autoEpochs(valid);
  return {
    file: path,
    valid: errorCount === 0,
    examples,
    errors,
    error_count: errorCount,
    warnings,
    tokens: {
      total: stats.total,
      assistant,
      min: stats.min,
      mean: stats.mean,
      p50: stats.p50,
      p95: stats.p95,
      max: stats.max,
      over_limit: overLimitLines.length,
    },
    cost: {
      currency: 'USD',
      n_epochs: epochs,
      epochs_source: 'auto',
      billing_tokens: billing,
      estimated_usd: estimateCostUsd(billing, epochs, model.pricePer1M),
    },
    model: {
      name: model.name,
      encoding: model.encoding,
      max_tokens_per_example: limit,
      price_per_1m_training_tokens: model.pricePer1M,
    },
  };
}

/** How many errors the human summary lists before pointing at --json. */
const SUMMARY_ERRORS = 10;

/** A short human summary for stdout; `--json` prints the report itself. */
export function formatValidateReport(r: ValidateReport): string {
  const n = (v: number): string => v.toLocaleString('en-US');
  const t = r.tokens;
  const m = r.model;
  const price = m.price_per_1m_training_tokens === null ? 'price unknown' : `$${m.price_per_1m_training_tokens.toFixed(2)} per 1M tokens`;
  const limit = m.max_tokens_per_example === null ? 'no limit' : `limit ${n(m.max_tokens_per_example)} tokens/example`;
  const cost =
    r.cost.estimated_usd === null
      ? 'unknown (no price for this model)'
      : `$${r.cost.estimated_usd.toFixed(r.cost.estimated_usd < 1 ? 4 : 2)} (${n(r.cost.billing_tokens)} billing tokens × ${r.cost.n_epochs} epochs, ${r.cost.epochs_source})`;
  const rows: [string, string][] = [
    ['file', r.file],
    ['valid', r.valid ? 'yes' : `no (${plural(r.error_count, 'error')})`],
    ['examples', n(r.examples)],
    ['model', `${m.name} (${m.encoding}, ${limit}, ${price})`],
    ['tokens', `${n(t.total)} total, ${n(t.assistant)} assistant; per example min ${n(t.min)}, mean ${t.mean}, p50 ${n(t.p50)}, p95 ${n(t.p95)}, max ${n(t.max)}`],
    ['over limit', n(t.over_limit)],
    ['est. cost', cost],
  ];
  const lines = rows.map(([k, v]) => `${k.padEnd(11)}${v}`);
  if (r.errors.length > 0) {
    lines.push('errors');
    for (const e of r.errors.slice(0, SUMMARY_ERRORS)) lines.push(`  line ${e.line}: ${e.kind}: ${e.message}`);
    if (r.error_count > SUMMARY_ERRORS) {
      const listed = r.error_count > MAX_LISTED_ERRORS ? `--json lists the first ${n(MAX_LISTED_ERRORS)}` : 'see --json';
      lines.push(`  … ${n(r.error_count - SUMMARY_ERRORS)} more (${listed})`);
    }
  }
  if (r.warnings.length > 0) {
    lines.push('warnings');
    for (const w of r.warnings) lines.push(`  - ${w}`);
  }
  return lines.join('\n');
}
