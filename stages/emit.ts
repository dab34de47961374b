/**
 * emit — the training files (SPEC §3 emit, §4, §5). Each surviving conversation becomes one example: cleaned to
 * the keys OpenAI accepts, checked by the same validator as `logcurate validate`, counted by the one token
 * formula, held to the model's limit (drop | truncate | fail). Files are written into a staging folder and
 * renamed into place only when the whole run has succeeded (pipeline/outputs.ts).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { defineStage, type Message } from '../pipeline/stage.js';
import { resolveModel } from '../pipeline/models.js';
import { countCompletionTokens, countExampleTokens, lazyTokenizer, type Tokenizer } from '../pipeline/tokens.js';
import { checkExample } from '../pipeline/validate.js';
import { contentText, finalAssistantText, keyText } from '../pipeline/messages.js';
import { hashText, normalizeText } from '../pipeline/normalize.js';
import { REFUSAL_UNKNOWN, REFUSAL_YES, SPLIT_NONE, SPLIT_TEST, SPLIT_TRAIN } from '../pipeline/working-set.js';
import { JobError } from '../pipeline/errors.js';
import { OutputWriter, type SplitAccumulator } from '../pipeline/outputs.js';
import { canonicalJson, escapeLineBreaks, jsonLine } from '../pipeline/canonical.js';
import { toTrainingMessage } from '../pipeline/training-message.js';
import { TokenCache } from '../pipeline/token-cache.js';
import { TokenCounter } from '../pipeline/token-counter.js';
import { Precount, precountPlan } from '../pipeline/precount.js';
import type { RunFactsInternal } from '../pipeline/runner.js';
import { FLAG_NO_SYSTEM_OR_USER, FLAG_OVER_LIMIT, FLAG_TRUNCATED, OutcomeRecorder, OutcomeStore, renderKey, ReuseSource } from '../pipeline/emit-reuse.js';

export const emitParams = z.strictObject({
  dir: z.string().min(1),
  format: z.enum(['openai_chat', 'openai_completion']).default('openai_chat'),
  // Trimmed once here, so the price, the limit, the manifest and job_request all see the same name.
  model: z.string().trim().min(1, { error: 'expected a model name such as gpt-4o-mini-2024-07-18' }),
  // The cap is far above any real price and keeps the cost finite (1e6 × 50 epochs × the billing tokens).
  price_per_1m_training_tokens: z.number({ error: 'expected a price from 0 to 1000000 USD per 1M training tokens' }).min(0).max(1_000_000).optional(),
  epochs: z
    .union([z.literal('auto'), z.number({ error: 'expected auto or a whole number from 1 to 50' }).int().min(1).max(50)], {
      error: 'expected auto or a whole number from 1 to 50',
    })
    .default('auto'),
  over_limit: z.enum(['drop', 'truncate', 'fail']).default('drop'),
  min_examples: z.number({ error: 'expected a whole number ≥ 0' }).int({ error: 'expected a whole number ≥ 0 (at most 9007199254740991)' }).min(0).default(10),
  lineage: z.boolean().default(true),
  report: z.boolean().default(true),
});

export type EmitParams = z.output<typeof emitParams>;

export { toTrainingMessage };

/**
 * `over_limit: truncate`: remove whole turns from the front until `fits` — keeping every system message and the
 * last turn (the last user message and everything after it, the last assistant message included). A turn
 * starts at a user message, so the kept part starts with one. Returns null when even the last turn alone does
 * not fit (or there is no assistant message): an answer without its question is not worth training on.
 */
export function truncateTurns<M extends { readonly role?: unknown }>(messages: readonly M[], fits: (kept: M[]) => boolean): M[] | null {
  let lastAssistant = -1;
  for (let k = messages.length - 1; k >= 0; k--) if (messages[k]!.role === 'assistant') { lastAssistant = k; break; }
  if (lastAssistant === -1) return null;
  let lastTurn = lastAssistant;
  for (let k = lastAssistant - 1; k >= 0; k--) if (messages[k]!.role === 'user') { lastTurn = k; break; }
  const starts: number[] = [];
  for (let k = 1; k <= lastTurn; k++) if (messages[k]!.role === 'user' || k === lastTurn) starts.push(k);
  if (starts.length === 0) return null;
  const keep = (start: number): M[] => messages.filter((m, k) => k >= start || m.role === 'system');
  // The kept part only shrinks as its start moves on, so the earliest start that fits is found by bisection.
  let lo = 0;
  let hi = starts.length - 1;
  if (!fits(keep(starts[hi]!))) return null;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (fits(keep(starts[mid]!))) hi = mid;
    else lo = mid + 1;
  }
  return keep(starts[lo]!);
}

/** The legacy completion shape: the turns before the final assistant message become the prompt. */
export function toCompletionExample(messages: readonly Message[]): { prompt: string; completion: string } | null {
  let last = -1;
  for (let k = messages.length - 1; k >= 0; k--) if (messages[k]!.role === 'assistant') { last = k; break; }
  if (last === -1) return null;
  const before = messages.slice(0, last);
  const prompt =
    before.length === 1 && before[0]!.role === 'user'
      ? contentText(before[0]!.content)
      : before.map((m) => `${m.role}: ${contentText(m.content)}`).join('\n\n');
  return { prompt, completion: contentText(messages[last]!.content) };
}

type Tokens = { total: number; assistant: number };

/**
 * What one conversation becomes: a line to write, or the reason it is dropped. Of the messages written, only
 * what settling needs is kept — whether one is a system or user message, and (under `over_limit: truncate`)
 * the prompt's hash — not the messages themselves, which would otherwise outlive a window or two of building.
 */
type Built =
  | { readonly line: string; readonly tokens: Tokens; readonly truncated: boolean; readonly systemOrUser: boolean; readonly prompt: string | null }
  | { readonly drop: string; readonly overLimit?: number };

/** The type of the first content part without text (`image_url`, `input_audio`, …), or null when all have text. */
function nonTextPart(messages: readonly Message[]): string | null {
  for (const m of messages) {
    if (!Array.isArray(m.content)) continue;
    for (const part of m.content) if (typeof part?.text !== 'string') return typeof part?.type === 'string' && part.type !== '' ? part.type.slice(0, 40) : 'unknown';
  }
  return null;
}

const hasSystemOrUser = (messages: readonly { readonly role?: unknown }[]): boolean => messages.some((m) => m.role === 'system' || m.role === 'user');

/** The hash of the prompt written, which truncation may change after split grouped the prompts (settle's check). */
const promptOf = (messages: readonly Message[], truncate: boolean): string | null => (truncate ? hashText(normalizeText(keyText(messages, 'prompt'))) : null);

function buildCompletion(messages: readonly Message[], limit: number | null, truncate: boolean, tok: Tokenizer): Built {
  let kept = messages;
  let ex = toCompletionExample(kept);
  if (!ex) return { drop: 'invalid:example_missing_assistant_message' };
  if (ex.completion === '') return { drop: 'invalid:missing_content' };
  let tokens = countCompletionTokens(ex, tok);
  let truncated = false;
  if (limit !== null && tokens.total > limit) {
    const over = tokens.total;
    const cut = truncate
      ? truncateTurns(messages, (part) => {
          const e = toCompletionExample(part);
          return e !== null && countCompletionTokens(e, tok).total <= limit;
        })
      : null;
    if (!cut) return { drop: 'over_limit', overLimit: over };
    kept = cut;
    ex = toCompletionExample(kept)!;
    tokens = countCompletionTokens(ex, tok);
    truncated = true;
  }
  return { line: jsonLine(ex), tokens, truncated, systemOrUser: hasSystemOrUser(kept), prompt: promptOf(kept, truncate) };
}

/**
 * A chat example built and checked, waiting for its token count (from the cache, or counted in a batch). It
 * holds the example as text only: a window's message objects would survive a collection or two while the
 * window is counted, and copying them is most of what the main thread's collections cost in emit. The rare
 * example over the limit parses its messages back from `json` (the same values: strings, numbers, null).
 */
interface PreparedChat {
  /** JSON.stringify(msgs): the token-cache key's text, what gets counted, and the line's first part. */
  readonly json: string;
  readonly key: string;
  /** JSON.stringify of the example's tools; undefined when it has none. */
  readonly tools: string | undefined;
  readonly systemOrUser: boolean;
  readonly prompt: string | null;
  tokens: Tokens | null;
}

function prepareChat(messages: readonly Message[], tools: readonly unknown[] | null, cache: TokenCache, truncate: boolean): PreparedChat | { readonly drop: string } {
  const msgs = messages.map(toTrainingMessage);
  const example: Record<string, unknown> = { messages: msgs };
  if (tools && tools.length > 0) example.tools = tools;
  const errors = checkExample(example);
  if (errors.length > 0) return { drop: `invalid:${errors[0]!.kind}` };
  const json = JSON.stringify(msgs);
  const key = cache.keyOf(json);
  return {
    json,
    key,
    tools: example.tools === undefined ? undefined : JSON.stringify(example.tools),
    systemOrUser: hasSystemOrUser(msgs),
    prompt: promptOf(msgs as Message[], truncate),
    tokens: null,
  };
}

/** The line of a counted example, held to the limit (dropped or truncated). */
function finishChat(prep: PreparedChat, limit: number | null, truncate: boolean, tok: Tokenizer): Built {
  let tokens = prep.tokens!;
  if (limit !== null && tokens.total > limit) {
    const over = tokens.total;
    const cut = truncate ? truncateTurns(JSON.parse(prep.json) as Record<string, unknown>[], (kept) => countExampleTokens(kept as never, tok).total <= limit) : null;
    if (!cut) return { drop: 'over_limit', overLimit: over };
    const example: Record<string, unknown> = { messages: cut };
    if (prep.tools !== undefined) example.tools = JSON.parse(prep.tools);
    // Cutting at turn boundaries keeps an example valid; checked anyway, emit never writes an invalid one.
    if (checkExample(example).length > 0) return { drop: 'over_limit', overLimit: over };
    tokens = countExampleTokens(cut as never, tok);
    return { line: jsonLine(example), tokens, truncated: true, systemOrUser: hasSystemOrUser(cut), prompt: promptOf(cut as Message[], truncate) };
  }
  // The same bytes as jsonLine(example) (keys messages, then tools), without serialising the messages twice.
  const line = escapeLineBreaks(`{"messages":${prep.json}${prep.tools === undefined ? '' : `,"tools":${prep.tools}`}}`);
  return { line, tokens, truncated: false, systemOrUser: prep.systemOrUser, prompt: prep.prompt };
}

/** Conversations built per window: one window is counted (on a worker) while the next one is built. */
const WINDOW = 2048;
/** A window holds at most this many conversations in all, reused ones included. */
const WINDOW_ITEMS = 16 * WINDOW;

/** From this many conversations in a run, the token worker is started ahead of emit (see `warm`). */
const WARM_MIN_CONVERSATIONS = 2 * WINDOW;

/** Token counters started by `warm`, by the params object the same run hands to `run`. */
const warmed = new WeakMap<object, TokenCounter>();
/** Counts made ahead on those counters' workers (pipeline/precount.ts), with the transforms they assumed. */
const ahead = new WeakMap<object, { pre: Precount; transforms: string }>();

export default defineStage({
  name: 'emit',
  params: emitParams,
  prepare(p, env) {
    return { ...p, dir: resolve(env.configDir, p.dir) };
  },
  // The token worker's start (thread, module, ~0.3 s of rank tables) overlaps the stages before emit, instead of
  // holding up emit's first window — on a first run, and on the next night when a few hundred examples are new.
  warm(p, run) {
    if (p.format !== 'openai_chat' || run.conversations < WARM_MIN_CONVERSATIONS) return;
    const encoding = resolveModel(p.model, { pricePer1M: p.price_per_1m_training_tokens }).encoding;
    // Counting ahead, where it is sound (precountPlan) and worth it: a store whose token cache has no count for
    // this encoding yet. The plan's transforms are checked against the run's own before a count is used.
    const prompts = precountPlan(run.before);
    const fresh = prompts !== null && existsSync(run.store.path) && !TokenCache.holds(run.store, encoding);
    const counter = new TokenCounter(encoding, lazyTokenizer(encoding));
    counter.warm();
    warmed.set(p, counter);
    const channel = fresh ? counter.precountChannel() : null;
    const pre = channel ? new Precount(channel, run.store.path, prompts!, run.conversations) : null;
    if (pre) {
      const transforms = run.before.filter((b) => b.name === 'system_prompt').map((b) => ({ stage: b.name, params: canonicalJson(b.params) }));
      ahead.set(p, { pre, transforms: JSON.stringify(transforms) });
    }
    return {
      done: async () => {
        ahead.delete(p);
        if (warmed.get(p) !== counter) return;
        warmed.delete(p);
        await counter.close();
      },
      ahead: pre ? (ws) => pre.settle(ws) : undefined,
    };
  },
  async run(ctx, p) {
    const facts = ctx.facts as RunFactsInternal;
    const model = resolveModel(p.model, { pricePer1M: p.price_per_1m_training_tokens });
    const tok = lazyTokenizer(model.encoding);
    const cache = new TokenCache(ctx.store, model.encoding);
    const limit = model.maxTokensPerExample;
    const truncate = p.over_limit === 'truncate';
    const outDir = facts.outOverride !== undefined ? resolve(facts.outOverride) : p.dir;
    const writer = new OutputWriter({ outDir, runId: ctx.runId, dryRun: ctx.dryRun });
    const warnings: string[] = [...model.warnings, ...writer.recovered, ...(ctx.facts.warnings ?? [])];
    for (const r of writer.recovered) ctx.progress.log(`warning: ${r}`);
    const detectRefusal = ctx.facts.refusalDetector;
    let truncated = 0;
    // Truncation changes prompts after split grouped them; these catch a prompt that now sits on both sides.
    const prompts = truncate ? { train: new Set<string>(), test: new Set<string>() } : null;
    let noSystemOrUser = 0;
    const noSystemOrUserIds: string[] = [];
    const counter = warmed.get(p) ?? new TokenCounter(model.encoding, tok);
    warmed.delete(p);
    const planned = ahead.get(p);
    ahead.delete(p);
    // What the run whose files are in the folder made of each conversation, where it still holds (emit-reuse.ts).
    const key = renderKey({ format: p.format, model: p.model, encoding: model.encoding, limit, overLimit: p.over_limit, seed: ctx.seed, transforms: facts.transforms ?? [] });
    const opened = ReuseSource.open(ctx.store, outDir, key, truncate);
    const reuse = opened.source;
    const reuseAt = reuse ? reuse.indexFor(ctx.ws.pks) : null;
    // Reused where recorded, unless the refusal verdict would need the text (no rebalance verdict, but a detector).
    const reusable = (i: number): boolean => reuseAt !== null && reuseAt[i]! >= 0 && (ctx.ws.refusal[i] !== REFUSAL_UNKNOWN || !detectRefusal);
    // Counts made ahead hold only if the run rewrote the messages as planned; else what is queued is taken back.
    const pre = planned && planned.transforms === JSON.stringify(facts.transforms ?? []) ? planned.pre : null;
    if (pre) pre.settle(ctx.ws, reuse ? reusable : undefined);
    else planned?.pre.cancel();
    // What this run makes of each conversation, saved as it goes (not on a dry run: it writes no files).
    const outcomes = ctx.dryRun ? null : new OutcomeStore(ctx.store, ctx.runId, outDir, key);
    const recorder = new OutcomeRecorder(truncate, (c) => outcomes?.save(c));
    let reused = 0;
    type Pending = { readonly i: number; readonly isTest: boolean; readonly refusal: boolean; readonly built: Built | PreparedChat | { readonly reuse: number } };
    const drop = (pend: Pending, split: SplitAccumulator, reason: string, overLimit: number | undefined): void => {
      if (overLimit !== undefined) {
        split.droppedOverLimit++;
        if (p.over_limit === 'fail') throw overLimitError(ctx.ws.id(pend.i), overLimit, limit!, p.model);
        ctx.ws.tokens[pend.i] = overLimit;
      }
      ctx.drop(pend.i, reason);
      recorder.dropped(ctx.ws.pks[pend.i]!, reason, overLimit);
    };
    const noSystemOrUserSeen = (i: number): void => {
      noSystemOrUser++;
      if (noSystemOrUserIds.length < 5) noSystemOrUserIds.push(ctx.ws.id(i));
    };
    /** Writes one conversation's outcome, in scan order. */
    const settle = (pend: Pending): void => {
      // Written in scan order: the counts made ahead for conversations before this one are no longer needed.
      pre?.releaseBefore(pend.i);
      const split: SplitAccumulator = pend.isTest ? writer.test : writer.train;
      if ('reuse' in pend.built) return settleReused(pend, split, pend.built.reuse);
      const built = 'json' in pend.built ? finishChat(pend.built, limit, truncate, tok) : pend.built;
      if ('drop' in built) return drop(pend, split, built.drop, built.overLimit);
      let flags = 0;
      if (built.truncated) {
        split.truncated++;
        truncated++;
        flags |= FLAG_TRUNCATED;
      }
      const prompt = built.prompt;
      if (prompt !== null) (pend.isTest ? prompts!.test : prompts!.train).add(prompt);
      if (!built.systemOrUser) {
        noSystemOrUserSeen(pend.i);
        flags |= FLAG_NO_SYSTEM_OR_USER;
      }
      ctx.ws.tokens[pend.i] = built.tokens.total;
      ctx.ws.line[pend.i] = split.write(built.line, built.tokens, limit, pend.refusal);
      record(pend, split, built.tokens, flags, prompt);
    };
    /** The same, from what the previous run recorded: its line's bytes are copied from its file. */
    const settleReused = (pend: Pending, split: SplitAccumulator, e: number): void => {
      const r = reuse!;
      reused++;
      const flags = r.flags(e);
      if (r.file(e) === SPLIT_NONE) return drop(pend, split, r.dropReason(e), flags & FLAG_OVER_LIMIT ? r.total(e) : undefined);
      if (flags & FLAG_TRUNCATED) {
        split.truncated++;
        truncated++;
      }
      const prompt = r.prompt(e);
      if (prompts && prompt !== null) (pend.isTest ? prompts.test : prompts.train).add(prompt);
      if (flags & FLAG_NO_SYSTEM_OR_USER) noSystemOrUserSeen(pend.i);
      const tokens = { total: r.total(e), assistant: r.assistant(e) };
      ctx.ws.tokens[pend.i] = tokens.total;
      ctx.ws.line[pend.i] = split.writeBytes(r.bytes(e), r.digest(e), tokens, limit, pend.refusal);
      record(pend, split, tokens, flags, prompt);
    };
    const record = (pend: Pending, split: SplitAccumulator, tokens: Tokens, flags: number, prompt: string | null): void => {
      recorder.written(ctx.ws.pks[pend.i]!, pend.isTest ? SPLIT_TEST : SPLIT_TRAIN, split.lastOffset, split.lastLength, tokens.total, tokens.assistant, flags, split.lastDigest, prompt);
    };
    /**
     * Looks a window's examples up in the token cache and sends the rest to be counted; resolves once every
     * example in it has its tokens (and the new counts are saved).
     */
    const count = (window: Pending[]): Promise<Pending[]> => {
      const chats = window.filter((w): w is Pending & { readonly built: PreparedChat } => 'json' in w.built);
      cache.getMany(chats.map((c) => c.built.key)).forEach((hit, k) => {
        chats[k]!.built.tokens = hit;
      });
      const missing = chats.filter((c) => c.built.tokens === null);
      // Counted ahead where it could be (waiting for those batches), the rest now.
      return (pre ? pre.ready(missing.map((m) => m.i)) : Promise.resolve()).then(() => {
        const now: PreparedChat[] = [];
        for (const m of missing) {
          const t = pre?.tokens(m.i) ?? null;
          if (t === null) now.push(m.built);
          else {
            m.built.tokens = t;
            cache.put(m.built.key, t);
          }
        }
        return counter.count(now.map((m) => m.json)).then((counts) => {
          now.forEach((m, k) => {
            m.tokens = { total: counts[2 * k]!, assistant: counts[2 * k + 1]! };
          });
          for (const m of now) cache.put(m.key, m.tokens!);
          return window;
        });
      });
    };
    try {
      let window: Pending[] = [];
      let built = 0;
      let inFlight: Promise<Pending[]> | null = null;
      /** Queues one conversation; when that fills the window, returns what to await (else null: no await per item). */
      const push = (pend: Pending): Promise<void> | null => {
        window.push(pend);
        if (!('reuse' in pend.built)) built++;
        if (built < WINDOW && window.length < WINDOW_ITEMS) return null;
        // Build the next window while this one is counted; lines are still written strictly in scan order.
        const previous: Promise<Pending[]> | null = inFlight;
        inFlight = count(window);
        window = [];
        built = 0;
        return previous && previous.then((done) => done.forEach(settle));
      };
      /** Queues the reused conversations before working-set index `to` (they are not scanned). */
      let next = 0;
      const pushReused = async (to: number): Promise<void> => {
        for (; next < to; next++) {
          if (!ctx.ws.isAlive(next) || !reusable(next)) continue;
          const full = push({ i: next, isTest: ctx.ws.split[next] === SPLIT_TEST, refusal: ctx.ws.refusal[next] === REFUSAL_YES, built: { reuse: reuseAt![next]! } });
          if (full) await full;
        }
      };
      // Text and tools only: ids are looked up for the few examples a warning or an error names.
      for (const c of ctx.scan('emit', { fields: [], where: reuse ? (i) => !reusable(i) : undefined })) {
        if (reuse) await pushReused(c.i);
        next = c.i + 1;
        const isTest = ctx.ws.split[c.i] === SPLIT_TEST;
        // An image or audio part cannot be written as text: its text alone would teach answers to a question
        // whose picture is gone.
        const nonText = nonTextPart(c.messages);
        const b: Built | PreparedChat =
          nonText !== null
            ? { drop: `non_text_content:${nonText}` }
            : p.format === 'openai_completion'
              ? buildCompletion(c.messages, limit, truncate, tok)
              : prepareChat(c.messages, c.tools, cache, truncate);
        // rebalance_refusals' own verdict (tags included) where it judged this conversation; else its text detector.
        const verdict = ctx.ws.refusal[c.i]!;
        const refusal = verdict !== REFUSAL_UNKNOWN ? verdict === REFUSAL_YES : detectRefusal ? detectRefusal(finalAssistantText(c.messages)) : false;
        const full = push({ i: c.i, isTest, refusal, built: b });
        if (full) await full;
      }
      if (reuse) await pushReused(ctx.ws.size);
      // Assigned inside push(): not narrowed to null here.
      const last = inFlight as Promise<Pending[]> | null;
      if (last) for (const pend of await last) settle(pend);
      for (const pend of await count(window)) settle(pend);
      cache.flush();
    } catch (err) {
      writer.abort();
      throw err;
    } finally {
      reuse?.close();
      await counter.close();
    }
    ctx.stats.token_cache = { hits: cache.hits, misses: cache.misses, batches_on_worker: counter.threaded, counted_ahead: pre?.used ?? 0 };
    ctx.stats.reuse = reuse ? { from_run: reuse.runId, examples: reused, built: recorder.size - reused } : { examples: 0, why: opened.why };
    ctx.stats.truncated = truncated;
    if (truncated > 0) warnings.push(`${truncated} example(s) over the ${limit}-token limit of ${p.model} were truncated (whole turns removed from the front)`);
    if (prompts && truncated > 0) {
      let both = 0;
      for (const h of prompts.test) if (prompts.train.has(h)) both++;
      if (both > 0) warnings.push(`${both} prompt(s) are in both train and test after truncation: a truncated example's remaining prompt matches one in the other split`);
    }
    const overLimit = writer.train.droppedOverLimit + writer.test.droppedOverLimit;
    if (overLimit > 0) warnings.push(`${overLimit} example(s) over the ${limit}-token limit of ${p.model} were dropped`);
    if (noSystemOrUser > 0) {
      warnings.push(`${noSystemOrUser} example(s) have no system or user message (e.g. ${noSystemOrUserIds.map((i) => JSON.stringify(i)).join(', ')})`);
    }
    const nTrain = writer.train.examples;
    if (nTrain < p.min_examples) {
      writer.abort();
      // An empty store is most often the wrong one (a mistyped `store`, --db or LOGCURATE_DB; SPEC §1 creates it).
      const why = ctx.ws.size === 0 ? `; the store ${ctx.store.path} holds no conversations (check the config's store and inputs, --db or $LOGCURATE_DB)` : '';
      throw new JobError(
        `emit: ${nTrain} train example(s), fewer than min_examples ${p.min_examples}; no files were written (the previous run's files are untouched)${why}`,
      );
    }
    recorder.finish();
    facts.emit = writer.handoff({ params: p, model, warnings, ctx, outcomes: outcomes ?? undefined });
  },
});

function overLimitError(id: string, tokens: number, limit: number, model: string): JobError {
  return new JobError(`emit: conversation ${JSON.stringify(id)} has ${tokens} tokens, over the ${limit}-token limit of ${model} (over_limit: fail)`);
}
