/**
 * Loading a curation config: YAML or JSON, validated with zod, every mistake a UsageError (exit 2) that names
 * the key path and what was expected — before anything is written.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, YAML } from './vendor.js';
import { z } from 'zod';
import { configSchema, type ConfigFile } from '../schemas/config.js';
import { formatPath } from '../schemas/log-record.js';
import { sha256Hex } from './canonical.js';
import { plainIssueMessage, UsageError } from './errors.js';
import { utf8FileText } from './lines.js';
import type { InputSpec } from './ingest.js';
import type { StageDefinition } from './stage.js';
import { STAGES } from '../stages/index.js';

export interface ConfiguredStage {
  readonly name: string;
  readonly def: StageDefinition;
  readonly params: unknown;
  /** `stages[3].dedupe` — for messages. */
  readonly path: string;
}

export interface LoadedConfig {
  readonly path: string;
  readonly dir: string;
  readonly name: string;
  readonly seed: number;
  /** Resolved against the config's folder. */
  readonly store?: string;
  readonly inputs: readonly InputSpec[];
  readonly stages: readonly ConfiguredStage[];
  readonly sha256: string;
  readonly raw: ConfigFile;
}

export function loadConfig(path: string): LoadedConfig {
  const abs = resolve(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(abs);
  } catch (err) {
    throw new UsageError(`${path}: cannot read the config: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  // Invalid bytes would otherwise become U+FFFD in a system prompt or tag value, and so in the files.
  const bad = utf8FileText(bytes);
  if (typeof bad === 'number') throw new UsageError(`${path}:${bad}: not valid UTF-8; expected the config as UTF-8 text`);
  const text = bytes.toString('utf8');
  const value = parseConfigText(text, path);
  return validateConfig(value, { path, dir: dirname(abs), sha256: sha256Hex(text) });
}

export function parseConfigText(text: string, path: string): unknown {
  if (/\.json$/i.test(path)) {
    // Editors on Windows like to start files with a byte-order mark; JSON.parse does not accept one.
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      // V8's messages give a position only for some errors ("Unexpected token ']'" has none): find it ourselves.
      const { line, col } = lineCol(text, jsonErrorOffset(text));
      throw new UsageError(`${path}:${line}:${col}: invalid JSON: ${(err as Error).message.split('\n')[0]}`);
    }
    // JSON.parse keeps the last of a repeated key; YAML (uniqueKeys) rejects it, and so does this.
    const dup = walkJson(text).duplicate;
    if (dup) {
      const { line, col } = lineCol(text, dup.at);
      throw new UsageError(`${path}:${line}:${col}: invalid JSON: duplicate key ${formatPath(dup.path)} (first on line ${lineCol(text, dup.firstAt).line})`);
    }
    return value;
  }
  const lineCounter = new LineCounter();
  // merge: YAML 1.1's `<<: *anchor` (shared stage settings), which the yaml package leaves off by default.
  const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter, merge: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0] ?? (e.pos ? lineCounter.linePos(e.pos[0]) : undefined);
    const where = pos ? `${path}:${pos.line}:${pos.col}` : path;
    throw new UsageError(`${where}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new UsageError(`${path}: invalid YAML: ${(err as Error).message}`);
  }
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: offset - start + 1 };
}

const JSON_STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const JSON_SCALAR = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;

/** The offset of the first JSON syntax error in `text` (text.length when there is none). */
export function jsonErrorOffset(text: string): number {
  return walkJson(text).errorAt;
}

/**
 * A small recursive-descent checker of RFC 8259: the offset of the first syntax error (text.length when
 * there is none), and the first key repeated within one object (its offset, the first one's, its key path).
 */
function walkJson(text: string): { errorAt: number; duplicate?: { at: number; firstAt: number; path: (string | number)[] } } {
  let i = 0;
  let duplicate: { at: number; firstAt: number; path: (string | number)[] } | undefined;
  const fail = (): never => {
    throw new RangeError(String(i));
  };
  const ws = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const token = (re: RegExp): void => {
    re.lastIndex = i;
    if (!re.test(text)) fail();
    i = re.lastIndex;
  };
  const expect = (c: string): void => {
    ws();
    if (text[i] !== c) fail();
    i++;
  };
  const path: (string | number)[] = [];
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      // Keys decoded ("a" and "\u0061" are one key), with the offset of their first appearance.
      const seen = c === '{' ? new Map<string, number>() : null;
      let index = 0;
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        let key: string | number = index++;
        if (c === '{') {
          ws();
          if (text[i] !== '"') fail();
          const start = i;
          token(JSON_STRING);
          key = JSON.parse(text.slice(start, i)) as string;
          const first = seen!.get(key);
          if (first === undefined) seen!.set(key, start);
          else duplicate ??= { at: start, firstAt: first, path: [...path, key] };
          expect(':');
        }
        path.push(key);
        value();
        path.pop();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === close) {
          i++;
          return;
        } else fail();
      }
    }
    token(c === '"' ? JSON_STRING : JSON_SCALAR);
  };
  try {
    value();
    ws();
    if (i < text.length) fail();
    return { errorAt: text.length, duplicate };
  } catch (err) {
    if (err instanceof RangeError && /^\d+$/.test(err.message)) return { errorAt: Number(err.message) };
    return { errorAt: 0 };
  }
}

/** Whether `path` leads to a value in `input` (zod issues do not carry the input unless asked to). */
function present(input: unknown, path: readonly PropertyKey[]): boolean {
  let cur = input;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, k as string)) return false;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur !== undefined;
}

/** Names the key path of the first zod issue, listing allowed keys for a typo. `input` is what was parsed. */
export function describeConfigIssue(error: z.ZodError, prefix: string, input?: unknown): string {
  const issue = firstIssue(error);
  const base = [prefix, formatPath(issue.path)].filter(Boolean).join(issue.path.length && typeof issue.path[0] === 'number' ? '' : '.');
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    return `${base ? `${base}.` : ''}${keys[0]}: unknown key${keys.length > 1 ? ` (also ${keys.slice(1).join(', ')})` : ''}`;
  }
  if (issue.code === 'invalid_type' && !present(input, issue.path)) {
    return `${base}: required key is missing (${issue.message.replace(/^Invalid input: /, '').replace(/, received undefined$/, '')})`;
  }
  return `${base || '(config)'}: ${plainIssueMessage(issue)}`;
}

type Issue = z.ZodError['issues'][number];

/**
 * The issue to report. A union fails as a whole ("expected a path or { path, format }"); when exactly one of its
 * branches got past the value's type and failed deeper (`{ path, format: feedbak }`), that branch's issue is the
 * precise one.
 */
function firstIssue(error: z.ZodError): Issue {
  // An unknown key is usually the cause of the other issues (`stage:` for `stages:` also makes `stages`
  // missing): name the typo first.
  let issue = error.issues.find((i) => i.code === 'unrecognized_keys') ?? error.issues[0]!;
  while (issue.code === 'invalid_union') {
    const branches = (issue as { errors?: Issue[][] }).errors ?? [];
    const deeper = branches.map((b) => b[0]).filter((i): i is Issue => i !== undefined && i.path.length > 0);
    if (deeper.length !== 1) break;
    issue = { ...deeper[0]!, path: [...issue.path, ...deeper[0]!.path] } as Issue;
  }
  return issue;
}

export function validateConfig(value: unknown, where: { path: string; dir: string; sha256: string }): LoadedConfig {
  const { path, dir } = where;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError(`${path}: expected a mapping with name, stages, …`);
  }
  const top = configSchema.safeParse(value);
  if (!top.success) throw new UsageError(`${path}: ${withAllowed(describeConfigIssue(top.error, '', value), top.error, configSchema)}`);
  const cfg = top.data;
  const stages: ConfiguredStage[] = [];
  cfg.stages.forEach((item, i) => {
    const at = `stages[${i}]`;
    if (item === null || typeof item !== 'object' || Array.isArray(item) || Object.keys(item).length !== 1) {
      throw new UsageError(`${path}: ${at}: expected exactly one { <stage>: <params> }, e.g. { filter: { … } }`);
    }
    const [name, rawParams] = Object.entries(item as Record<string, unknown>)[0]!;
    const def = Object.prototype.hasOwnProperty.call(STAGES, name) ? STAGES[name] : undefined;
    if (!def) throw new UsageError(`${path}: ${at}.${name}: unknown stage (expected one of ${Object.keys(STAGES).join(', ')})`);
    const parsed = def.params.safeParse(rawParams ?? {});
    if (!parsed.success) {
      throw new UsageError(`${path}: ${withAllowed(describeConfigIssue(parsed.error, `${at}.${name}`, rawParams ?? {}), parsed.error, def.params)}`);
    }
    let prepared: unknown;
    try {
      prepared = def.prepare?.(parsed.data, { configDir: dir, path: `${at}.${name}` }) ?? parsed.data;
    } catch (err) {
      // Stages name the key path; the file is named here, like every other config error.
      if (err instanceof UsageError) throw new UsageError(`${path}: ${err.message}`);
      throw err;
    }
    stages.push({ name, def, params: prepared, path: `${at}.${name}` });
  });
  const splits = stages.filter((s) => s.name === 'split');
  if (splits.length > 1) throw new UsageError(`${path}: ${splits[1]!.path}: split may appear only once (first at ${splits[0]!.path})`);
  const emitAt = stages.findIndex((s) => s.name === 'emit');
  if (emitAt === -1) throw new UsageError(`${path}: stages: the last stage must be emit (none found)`);
  if (emitAt !== stages.length - 1) throw new UsageError(`${path}: ${stages[emitAt]!.path}: emit must be the last stage`);
  const rel = (p: string): string => (isAbsolute(p) ? p : resolve(dir, p));
  return {
    path: resolve(path),
    dir,
    name: cfg.name,
    seed: cfg.seed,
    store: cfg.store === undefined ? undefined : rel(cfg.store),
    inputs: cfg.inputs.map((inp) => (typeof inp === 'string' ? { path: inp } : { path: inp.path, format: inp.format })),
    stages,
    sha256: where.sha256,
    raw: cfg,
  };
}

/** For an unknown key, append the keys that are allowed at that level (found by walking the schema). */
function withAllowed(message: string, error: z.ZodError, schema: z.ZodType): string {
  const issue = firstIssue(error);
  if (issue.code !== 'unrecognized_keys') return message;
  let s: unknown = schema;
  for (const p of issue.path) {
    s = objectOf(unwrap(s));
    const shape = (s as { shape?: Record<string, unknown> }).shape;
    const element = (s as { element?: unknown }).element;
    if (typeof p === 'number' && element) s = element;
    else if (shape && typeof p === 'string' && Object.hasOwn(shape, p)) s = shape[p];
    else return message;
  }
  const shape = (objectOf(unwrap(s)) as { shape?: Record<string, unknown> }).shape;
  return shape ? `${message}; expected one of ${Object.keys(shape).join(', ')}` : message;
}

/** A union's object branch (an input is a path or { path, format }), where the keys are; else the schema itself. */
function objectOf(s: unknown): unknown {
  const options = (s as { def?: { type?: string; options?: unknown[] } }).def;
  if (options?.type !== 'union' || !options.options) return s;
  return options.options.map(unwrap).find((o) => (o as { shape?: unknown }).shape !== undefined) ?? s;
}

function unwrap(s: unknown): unknown {
  let cur = s as { def?: { innerType?: unknown; in?: unknown; type?: string } };
  for (let k = 0; k < 10 && cur?.def; k++) {
    if (cur.def.innerType) cur = cur.def.innerType as typeof cur;
    else if (cur.def.type === 'pipe' && cur.def.in) cur = cur.def.in as typeof cur;
    else break;
  }
  return cur;
}
