/**
 * Token counts identical to OpenAI's tiktoken (`encode_ordinary`), and SPEC §5's per-example formula.
 *
 * js-tiktoken is used only for its rank tables: its encoder throws on special-token strings by default, looks
 * every piece up through `bytes.join(",")`, and merges with an O(n²) loop that takes minutes on a pasted 200 KB
 * blob. Here text is split with tiktoken's own pattern, each piece's tokens are memoised, and long pieces are
 * merged with a heap (pipeline/bpe.ts).
 */
import { createRequire } from 'node:module';
import { bytePairEncode, parseRanks, toByteString, type RankTable } from './bpe.js';
import type { EncodingName } from './models.js';

export interface Tokenizer {
  readonly encoding: EncodingName;
  count(text: string): number;
  encode(text: string): number[];
  decode(tokens: readonly number[]): string;
}

/*
 * Split patterns. tiktoken runs these with Rust's fancy-regex, where `\s` is Unicode White_Space; JS's `\s`
 * differs (it adds U+FEFF and lacks U+0085), so `\p{White_Space}` is spelled out. tiktoken's `(?i:'s|…)`
 * folds case per Unicode, which also lets `'ſ` (U+017F, long s) match `'s`. Possessive quantifiers in
 * tiktoken's cl100k pattern have no JS syntax; every one of them sits where backtracking cannot change the
 * match, so the plain quantifier gives the same pieces. Its `\s++$` keeps trailing whitespace such as "\n  " in
 * one piece where the older pattern (js-tiktoken's) makes two; no token spans a newline followed by other
 * whitespace, so the tokens agree (an exhaustive check over such endings up to 8 characters found no difference).
 */
const WS = '\\p{White_Space}';
const NOT_WS = '\\P{White_Space}';

/** tiktoken's current cl100k_base pattern: `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s` */
const CL100K_PATTERN = [
  "'(?:[sdmtSDMT\\u017F]|[lL][lL]|[vV][eE]|[rR][eE])",
  '[^\\r\\n\\p{L}\\p{N}]?\\p{L}+',
  '\\p{N}{1,3}',
  ` ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*`,
  `${WS}+$`,
  `${WS}*[\\r\\n]`,
  `${WS}+(?!${NOT_WS})`,
  WS,
].join('|');

const UPPERISH = '[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]';
const LOWERISH = '[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]';
const CONTRACTION = "(?:'(?:[sStTmMdD\\u017F]|[rR][eE]|[vV][eE]|[lL][lL]))?";

/** tiktoken's o200k_base pattern. */
const O200K_PATTERN = [
  `[^\\r\\n\\p{L}\\p{N}]?${UPPERISH}*${LOWERISH}+${CONTRACTION}`,
  `[^\\r\\n\\p{L}\\p{N}]?${UPPERISH}+${LOWERISH}*${CONTRACTION}`,
  '\\p{N}{1,3}',
  ` ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*`,
  `${WS}*[\\r\\n]+`,
  `${WS}+(?!${NOT_WS})`,
  `${WS}+`,
].join('|');

const PATTERNS: Record<EncodingName, string> = { cl100k_base: CL100K_PATTERN, o200k_base: O200K_PATTERN };

/** Splits text into the pieces tiktoken encodes independently. Exported for tests of the split rules. */
export function splitPieces(encoding: EncodingName, text: string): string[] {
  const re = new RegExp(PATTERNS[encoding], 'gu');
  const pieces: string[] = [];
  for (let m = re.exec(text); m !== null; m = re.exec(text)) pieces.push(m[0]);
  return pieces;
}

/**
 * Pieces repeat heavily in chat text (words, indentation, punctuation), so each piece's tokens are memoised.
 * Two generations bound memory without per-hit bookkeeping: when the young map fills, it becomes the old one
 * and the previous old one is dropped; a hit in the old map is promoted.
 */
const CACHE_GENERATION = 50_000;
/** Longer pieces rarely repeat and would pin large strings in the cache. */
const CACHE_MAX_PIECE = 256;

class BpeTokenizer implements Tokenizer {
  private young = new Map<string, number | number[]>();
  private old = new Map<string, number | number[]>();
  private readonly re: RegExp;
  private readonly scratch: number[] = [];

  constructor(
    readonly encoding: EncodingName,
    private readonly table: RankTable,
  ) {
    this.re = new RegExp(PATTERNS[encoding], 'gu');
  }

  count(text: string): number {
    let total = 0;
    this.forEachPiece(text, (tokens) => {
      total += typeof tokens === 'number' ? 1 : tokens.length;
    });
    return total;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    this.forEachPiece(text, (tokens) => {
      if (typeof tokens === 'number') out.push(tokens);
      else for (const t of tokens) out.push(t);
    });
    return out;
  }

  decode(tokens: readonly number[]): string {
    let bytes = '';
    for (const t of tokens) {
      const b = this.table.bytesOf[t];
      if (b === undefined) throw new RangeError(`token ${t} is not in ${this.encoding}`);
      bytes += b;
    }
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }

  /**
   * tiktoken replaces a lone surrogate with U+FFFD before splitting. Nothing to do here: the pattern treats both
   * alike (neither letter, digit nor space) and UTF-8 encoding turns the surrogate into U+FFFD's bytes.
   */
  private forEachPiece(text: string, sink: (tokens: number | readonly number[]) => void): void {
    const re = this.re;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) sink(this.piece(m[0]));
  }

  private piece(piece: string): number | readonly number[] {
    const hit = this.young.get(piece);
    if (hit !== undefined) return hit;
    const older = this.old.get(piece);
    if (older !== undefined) {
      this.remember(piece, older);
      return older;
    }
    const scratch = this.scratch;
    scratch.length = 0;
    bytePairEncode(toByteString(piece), this.table.ranks, scratch);
    const tokens = scratch.length === 1 ? scratch[0] : scratch.slice();
    if (piece.length <= CACHE_MAX_PIECE) this.remember(piece, tokens);
    return tokens;
  }

  private remember(piece: string, tokens: number | number[]): void {
    if (this.young.size >= CACHE_GENERATION) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(piece, tokens);
  }
}

/**
 * js-tiktoken's rank files, loaded when a tokenizer is first built: 1.1 and 2.3 MB of JavaScript, which every
 * process importing this module parsed at start-up (ingest and the run's main thread included, which count no
 * tokens themselves): ~10-15 ms a process.
 */
const RANK_MODULES: Record<EncodingName, string> = {
  cl100k_base: 'js-tiktoken/ranks/cl100k_base',
  o200k_base: 'js-tiktoken/ranks/o200k_base',
};
const requireRanks = createRequire(import.meta.url);
const tokenizers = new Map<EncodingName, Tokenizer>();

/** One tokenizer per encoding per process: building the rank map costs ~0.1–0.3 s. */
export function getTokenizer(encoding: EncodingName): Tokenizer {
  let tok = tokenizers.get(encoding);
  if (!tok) {
    if (!Object.prototype.hasOwnProperty.call(RANK_MODULES, encoding)) throw new RangeError(`unknown encoding "${String(encoding)}"`);
    const source = requireRanks(RANK_MODULES[encoding]) as { bpe_ranks: string };
    tok = new BpeTokenizer(encoding, parseRanks(source.bpe_ranks));
    tokenizers.set(encoding, tok);
  }
  return tok;
}

/**
 * A tokenizer whose rank table is loaded on first use: emit needs one on this thread only for what the token
 * cache and the worker thread do not cover (truncation, small batches), and loading ranks costs time and memory.
 */
export function lazyTokenizer(encoding: EncodingName): Tokenizer {
  let tok: Tokenizer | null = null;
  const get = (): Tokenizer => (tok ??= getTokenizer(encoding));
  return {
    encoding,
    count: (text) => get().count(text),
    encode: (text) => get().encode(text),
    decode: (tokens) => get().decode(tokens),
  };
}

// ---------------------------------------------------------------------------------------------------------
// SPEC §5: tokens of one example

export interface ContentPartLike {
  readonly type?: string;
  readonly text?: string | null;
}
export interface FunctionLike {
  readonly name?: string | null;
  readonly arguments?: string | null;
}
export interface ToolCallLike {
  readonly function?: FunctionLike | null;
}
export interface ChatMessageLike {
  readonly role: string;
  readonly content?: string | readonly ContentPartLike[] | null;
  readonly name?: string | null;
  readonly tool_calls?: readonly ToolCallLike[] | null;
  readonly function_call?: FunctionLike | null;
}

/** A string as is; content parts as their texts joined with ""; null or absent as "". */
export function contentText(content: ChatMessageLike['content']): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content as readonly ContentPartLike[]) {
    if (part && typeof part.text === 'string') text += part.text;
  }
  return text;
}

/**
 * Logs sometimes carry tool-call arguments as a parsed object rather than the JSON string the API sends;
 * counting its JSON text is what the API would have seen.
 */
function fieldText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  return JSON.stringify(value);
}

const PER_MESSAGE = 3;
const PER_EXAMPLE = 3;
const PER_NAME = 1;

/**
 * SPEC §5: per message `3 + tok(role) + tok(content) + (name ? tok(name) + 1 : 0)` plus
 * `tok(function.name) + tok(function.arguments)` per tool call (and for a legacy function_call), plus 3 per
 * example. `assistant` is Σ tok(content) over assistant messages. Emit, the manifest and validate all call
 * this one function.
 */
export function countExampleTokens(
  messages: readonly ChatMessageLike[],
  tok: Tokenizer,
): { total: number; assistant: number } {
  let total = PER_EXAMPLE;
  let assistant = 0;
  for (const m of messages) {
    const content = tok.count(contentText(m.content));
    total += PER_MESSAGE + tok.count(fieldText(m.role)) + content;
    if (m.name) total += tok.count(fieldText(m.name)) + PER_NAME;
    if (Array.isArray(m.tool_calls)) {
      for (const call of m.tool_calls as readonly ToolCallLike[]) total += functionTokens(call?.function, tok);
    }
    if (m.function_call) total += functionTokens(m.function_call, tok);
    if (m.role === 'assistant') assistant += content;
  }
  return { total, assistant };
}

/**
 * The legacy `openai_completion` shape (SPEC §4): SPEC §5's formula is for chat messages; a prompt/completion
 * pair counts its two texts. `assistant` is the completion. Emit and validate both call this.
 */
export function countCompletionTokens(ex: { readonly prompt: string; readonly completion: string }, tok: Tokenizer): { total: number; assistant: number } {
  const assistant = tok.count(ex.completion);
  return { total: tok.count(ex.prompt) + assistant, assistant };
}

function functionTokens(fn: FunctionLike | null | undefined, tok: Tokenizer): number {
  if (!fn) return 0;
  return tok.count(fieldText(fn.name)) + tok.count(fieldText(fn.arguments));
}

export interface TokenStats {
  readonly total: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p95: number;
  readonly max: number;
}

/**
 * Summary of per-example token counts as the manifest shows it: integers except `mean` (one decimal);
 * percentiles by nearest rank (sorted ascending, index ceil(p·n) − 1), so each is an actual example's count.
 */
export function tokenStats(values: readonly number[]): TokenStats {
  const n = values.length;
  if (n === 0) return { total: 0, min: 0, mean: 0, p50: 0, p95: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  let total = 0;
  for (const v of values) total += v;
  const nearestRank = (p: number): number => sorted[Math.max(0, Math.ceil(p * n) - 1)];
  return {
    total,
    min: sorted[0],
    mean: Math.round((total / n) * 10) / 10,
    p50: nearestRank(0.5),
    p95: nearestRank(0.95),
    max: sorted[n - 1],
  };
}
