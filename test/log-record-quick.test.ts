/**
 * `quickValid` (schemas/log-record.ts) may only say "valid" where zod does: ingest skips zod for those records.
 * Checked on every record of the bundled sample and on mutations of every field of records of each shape.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  chatRecordSchema,
  feedbackEventSchema,
  promptCompletionRecordSchema,
  quickValid,
  requestResponseRecordSchema,
} from '../schemas/log-record.js';
import { parseRecord } from '../pipeline/records.js';

const SCHEMAS: Record<Parameters<typeof quickValid>[0], z.ZodType> = {
  chat: chatRecordSchema,
  request_response: requestResponseRecordSchema,
  prompt_completion: promptCompletionRecordSchema,
  feedback: feedbackEventSchema,
};
const FORMATS = Object.keys(SCHEMAS) as (keyof typeof SCHEMAS)[];

const SAMPLE_DIR = fileURLToPath(new URL('../data/sample', import.meta.url));

function sampleRecords(): unknown[] {
  const out: unknown[] = [];
  for (const f of ['chat.jsonl', 'feedback.jsonl', 'legacy.jsonl', 'requests.jsonl.gz']) {
    let bytes = readFileSync(join(SAMPLE_DIR, f));
    if (f.endsWith('.gz')) bytes = gunzipSync(bytes);
    for (const line of bytes.toString('utf8').split('\n')) {
      try {
        out.push(JSON.parse(line));
      } catch {
        // Lines that are not JSON never reach the schemas.
      }
    }
  }
  return out;
}

/** Every format's quick verdict against zod's, on one value; counts the quick acceptances. */
function agree(value: unknown, tally: { quick: number; zod: number; checks: number }): void {
  for (const f of FORMATS) {
    const zodOk = SCHEMAS[f].safeParse(value).success;
    const quickOk = quickValid(f, value);
    if (quickOk && !zodOk) throw new Error(`quickValid('${f}') accepts what zod rejects: ${show(value)}`);
    if (zodOk) tally.zod++;
    if (quickOk) tally.quick++;
    tally.checks++;
  }
}

function show(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (v === undefined ? '<undefined>' : typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)).slice(0, 400);
  } catch {
    return String(value);
  }
}

/** Records of every shape with every optional field the schemas know about. */
const SEEDS: unknown[] = [
  {
    id: 'c1',
    created_at: '2024-09-01T00:00:00Z',
    model: 'gpt-4o',
    user_id: 'u1',
    session_id: 7,
    tags: { product: 'web', n: 3, ok: true, none: null },
    metadata: { anything: [1, { x: 2 }] },
    status: 'ok',
    feedback: [{ value: 4, name: 'score', created_at: 1725148800 }, { value: 'up' }],
    tools: [{ type: 'function', function: { name: 'f' } }],
    messages: [
      { role: 'system', content: 'Be brief.', name: 'sys' },
      { role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image_url' }], weight: null },
      { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
      { role: 'tool', content: 'done', tool_call_id: 't1' },
      { role: 'assistant', content: null, function_call: { name: 'g', arguments: { b: 2 } } },
      { role: 'function', content: 'ok', name: 'g' },
      { role: 'assistant', content: null, refusal: 'I cannot help with that.' },
      { role: 'assistant', content: 'Bye.', weight: 1, tool_calls: [], refusal: null },
    ],
  },
  { id: 2, messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }], feedback: { score: 5, thumbs: 'down' } },
  { messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }], feedback: true, tags: null, tools: null },
  {
    id: 'r1',
    created_at: 1725148800000,
    request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'q' }], tools: [], temperature: 0 },
    response: { model: 'gpt-4o-mini', choices: [{ message: { role: 'assistant', content: 'a' } }, {}], usage: { total_tokens: 3 }, error: null },
    status_code: 200,
    error: null,
  },
  { request: { messages: [{ role: 'user', content: 'q' }] }, response: null, status_code: '500' },
  { id: 'p1', prompt: 'q', completion: 'a', feedback: 0.5, model: null, user_id: 3 },
  { log_id: 'c1', value: 'thumbs_up', name: 'thumbs', created_at: '2024-09-02' },
  { log_id: 9, value: 3 },
];

const PALETTE: (() => unknown)[] = [
  () => undefined,
  () => null,
  () => 0,
  () => -1.5,
  () => Infinity,
  () => NaN,
  () => '',
  () => 'x',
  () => 'up',
  () => 'user',
  () => true,
  () => [],
  () => [{}],
  () => ['x'],
  () => ({}),
  () => ({ type: 'text' }),
  () => ({ name: 'f', arguments: 'x' }),
  () => JSON.parse('{"__proto__": "polluted"}') as unknown,
  () => Object.create(null) as unknown,
  () => new Date(0),
  () => [{ role: 'user', content: 'q' }],
];

/** Schema keys tried as additions at every object, beside the value palette. */
const KEYS = [
  'id', 'created_at', 'model', 'user_id', 'session_id', 'tags', 'metadata', 'status', 'feedback', 'messages', 'tools', 'request',
  'response', 'choices', 'message', 'status_code', 'error', 'prompt', 'completion', 'log_id', 'value', 'name', 'role', 'content',
  'tool_calls', 'tool_call_id', 'function_call', 'function', 'arguments', 'weight', 'refusal', 'type', 'text',
];

type Path = readonly (string | number)[];

function paths(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  if (typeof v !== 'object' || v === null) return out;
  for (const k of Array.isArray(v) ? v.keys() : Object.keys(v)) {
    const p = [...at, k];
    out.push(p);
    paths((v as Record<string | number, unknown>)[k], p, out);
  }
  return out;
}

function objectsAt(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  if (typeof v !== 'object' || v === null) return out;
  if (!Array.isArray(v)) out.push(at);
  for (const k of Array.isArray(v) ? v.keys() : Object.keys(v)) objectsAt((v as Record<string | number, unknown>)[k], [...at, k], out);
  return out;
}

/** A deep copy of `v` with the value at `path` replaced (undefined: the key removed). */
function withValue(v: unknown, path: Path, value: unknown): unknown {
  const copy = structuredClone(v) as Record<string | number, unknown>;
  let o = copy;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (value === undefined && !Array.isArray(o)) delete o[last];
  else Object.defineProperty(o, last, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

describe('quickValid', () => {
  it('accepts only what zod accepts, and most of what it accepts, on every record of the bundled sample', () => {
    const records = sampleRecords();
    expect(records.length).toBeGreaterThan(1000);
    const tally = { quick: 0, zod: 0, checks: 0 };
    for (const r of records) agree(r, tally);
    // The sample is mostly well-formed records: nearly all of them must take the quick path, or it buys nothing.
    expect(tally.quick).toBeGreaterThan(0.95 * tally.zod);
  });

  it('accepts every seed record, as zod does', () => {
    for (const seed of SEEDS) {
      const accepted = FORMATS.filter((f) => quickValid(f, seed));
      expect(accepted.length, show(seed)).toBeGreaterThan(0);
      for (const f of accepted) expect(SCHEMAS[f].safeParse(seed).success).toBe(true);
    }
  });

  it('never accepts what zod rejects: every field of every seed replaced, removed or added, with hostile values', () => {
    const tally = { quick: 0, zod: 0, checks: 0 };
    let cases = 0;
    for (const seed of SEEDS) {
      for (const p of paths(seed)) {
        for (const make of PALETTE) {
          agree(withValue(seed, p, make()), tally);
          cases++;
        }
      }
      for (const at of objectsAt(seed)) {
        for (const key of KEYS) {
          for (const make of PALETTE) {
            agree(withValue(seed, [...at, key], make()), tally);
            cases++;
          }
        }
      }
    }
    expect(cases).toBeGreaterThan(20_000);
    // Both verdicts occur often: the mutations reach acceptances and rejections alike.
    expect(tally.quick).toBeGreaterThan(1000);
    expect(tally.checks - tally.zod).toBeGreaterThan(1000);
  });

  it('leaves the quarantine reason to zod', () => {
    const parsed = parseRecord({ messages: [{ role: 'user', content: 'q' }, { role: 'robot', content: 'a' }] });
    expect(parsed).toEqual({ kind: 'invalid', reason: expect.stringMatching(/^messages\[1\]\.role: expected one of system\|user\|assistant\|tool\|function, got "robot"$/) });
    const finiteOnly = parseRecord({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a', weight: Infinity }] });
    expect(finiteOnly.kind).toBe('invalid');
    // 1e400 parses as Infinity: the reason says so, not "got null" (JSON.stringify's rendering of it).
    const huge = parseRecord(JSON.parse('{"log_id":"a","name":"score","value":-1e400}'));
    expect(huge).toEqual({ kind: 'invalid', reason: 'value: expected a number, a boolean or one of up|down|positive|negative|thumbs_up|thumbs_down, got a number out of range (-Infinity)' });
  });
});
