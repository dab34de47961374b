/**
 * emit — the training files (SPEC §3 emit, §4, §5). Each surviving conversation becomes one example: cleaned to
 * the keys OpenAI accepts, checked by the same validator as `logcurate validate`, counted by the one token
 * formula, held to the model's limit (drop | truncate | fail). Files are written into a staging folder and
 * renamed into place only when the whole run has succeeded (pipeline/outputs.ts).
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { defineStage, type Message } from '../pipeline/stage.js';
import { resolveModel } from '../pipeline/models.js';
import { countExampleTokens, getTokenizer, type Tokenizer } from '../pipeline/tokens.js';
import { checkExample } from '../pipeline/validate.js';
import { contentText, finalAssistantText } from '../pipeline/messages.js';
import { SPLIT_TEST } from '../pipeline/working-set.js';
import { JobError } from '../pipeline/errors.js';
import { OutputWriter, type SplitAccumulator } from '../pipeline/outputs.js';
import { MESSAGE_KEYS } from '../schemas/training-example.js';
import type { RunFactsInternal } from '../pipeline/runner.js';

export const emitParams = z.strictObject({
  dir: z.string().min(1),
  format: z.enum(['openai_chat', 'openai_completion']).default('openai_chat'),
  model: z.string().min(1, { error: 'expected a model name such as gpt-4o-mini-2024-07-18' }),
  price_per_1m_training_tokens: z.number().min(0, { error: 'expected a price ≥ 0' }).optional(),
  epochs: z
    .union([z.literal('auto'), z.number().int().min(1).max(50)], { error: 'expected auto or a whole number from 1 to 50' })
    .default('auto'),
  over_limit: z.enum(['drop', 'truncate', 'fail']).default('drop'),
  min_examples: z.number().int().min(0).default(10),
  lineage: z.boolean().default(true),
  report: z.boolean().default(true),
});

export type EmitParams = z.output<typeof emitParams>;

/** A stored message → the keys OpenAI's format accepts. Content parts become their joined text. */
export function toTrainingMessage(m: Message): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of MESSAGE_KEYS) {
    const v = m[k];
    if (v === undefined) continue;
    if (k === 'content') out.content = v === null ? null : contentText(v as never);
    else if (k === 'tool_calls') {
      out.tool_calls = (v as NonNullable<Message['tool_calls']>).map((tc) => ({
        ...(tc.id !== undefined ? { id: tc.id } : {}),
        type: tc.type ?? 'function',
        function: { name: tc.function.name, arguments: argText(tc.function.arguments) },
      }));
    } else if (k === 'function_call') {
      const fc = v as NonNullable<Message['function_call']>;
      out.function_call = { name: fc.name, arguments: argText(fc.arguments) };
    } else out[k] = v;
  }
  // A message with a call may have no content key at all in the logs; OpenAI wants the key (null is fine).
  if (!('content' in out) && (out.tool_calls !== undefined || out.function_call !== undefined)) out.content = null;
  return out;
}

function argText(a: string | Record<string, unknown>): string {
  return typeof a === 'string' ? a : JSON.stringify(a);
}

/** Tokens of one message within an example (the example's total is 3 + the sum of these). */
function messageTokens(m: Record<string, unknown>, tok: Tokenizer): number {
  return countExampleTokens([m as never], tok).total - 3;
}

/**
 * `over_limit: truncate`: remove whole turns from the front — keeping the system message(s) and the last
 * assistant turn — until the example fits. A turn starts at a user message, so the kept part starts with one.
 * Returns null when even the shortest form is over the limit.
 */
export function truncateToLimit(messages: Record<string, unknown>[], limit: number, tok: Tokenizer): Record<string, unknown>[] | null {
  const system = messages.filter((m) => m.role === 'system');
  const rest = messages.filter((m) => m.role !== 'system');
  let lastAssistant = -1;
  for (let k = rest.length - 1; k >= 0; k--) if (rest[k]!.role === 'assistant') { lastAssistant = k; break; }
  if (lastAssistant === -1) return null;
  const cost = rest.map((m) => messageTokens(m, tok));
  let total = 3 + system.reduce((a, m) => a + messageTokens(m, tok), 0) + cost.reduce((a, b) => a + b, 0);
  let start = 0;
  while (total > limit && start < lastAssistant) {
    // Drop one whole turn: this message and everything up to the next user message (or the last assistant).
    do {
      total -= cost[start]!;
      start++;
    } while (start < lastAssistant && rest[start]!.role !== 'user');
  }
  if (total > limit) return null;
  return [...system, ...rest.slice(start)];
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

export default defineStage({
  name: 'emit',
  params: emitParams,
  prepare(p, env) {
    return { ...p, dir: resolve(env.configDir, p.dir) };
  },
  run(ctx, p) {
    const facts = ctx.facts as RunFactsInternal;
    const model = resolveModel(p.model, { pricePer1M: p.price_per_1m_training_tokens });
    const tok = getTokenizer(model.encoding);
    const limit = model.maxTokensPerExample;
    const outDir = facts.outOverride !== undefined ? resolve(facts.outOverride) : p.dir;
    const writer = new OutputWriter({ outDir, runId: ctx.runId, dryRun: ctx.dryRun });
    const warnings: string[] = [...model.warnings];
    const detectRefusal = ctx.facts.refusalDetector;
    let truncated = 0;
    let noSystemOrUser = 0;
    const noSystemOrUserIds: string[] = [];
    try {
      for (const c of ctx.scan('emit')) {
        const split: SplitAccumulator = ctx.ws.split[c.i] === SPLIT_TEST ? writer.test : writer.train;
        let line: string;
        let tokens: { total: number; assistant: number };
        if (p.format === 'openai_completion') {
          const ex = toCompletionExample(c.messages);
          if (!ex || ex.completion === '') {
            ctx.drop(c.i, 'invalid:missing_content');
            continue;
          }
          const t = tok.count(ex.prompt) + tok.count(ex.completion);
          tokens = { total: t, assistant: tok.count(ex.completion) };
          if (limit !== null && t > limit) {
            split.overLimit++;
            if (p.over_limit === 'fail') throw overLimitError(c.id, t, limit, p.model);
            ctx.drop(c.i, 'over_limit');
            continue;
          }
          line = JSON.stringify(ex);
        } else {
          let messages = c.messages.map(toTrainingMessage);
          const example: Record<string, unknown> = { messages };
          if (c.tools && c.tools.length > 0) example.tools = c.tools;
          const errors = checkExample(example);
          if (errors.length > 0) {
            ctx.drop(c.i, `invalid:${errors[0]!.kind}`);
            continue;
          }
          tokens = countExampleTokens(messages as never, tok);
          if (limit !== null && tokens.total > limit) {
            split.overLimit++;
            if (p.over_limit === 'fail') throw overLimitError(c.id, tokens.total, limit, p.model);
            const cut = p.over_limit === 'truncate' ? truncateToLimit(messages, limit, tok) : null;
            if (!cut) {
              ctx.drop(c.i, 'over_limit');
              continue;
            }
            messages = cut;
            example.messages = messages;
            if (checkExample(example).length > 0) {
              ctx.drop(c.i, 'over_limit');
              continue;
            }
            tokens = countExampleTokens(messages as never, tok);
            truncated++;
          }
          if (!messages.some((m) => m.role === 'system' || m.role === 'user')) {
            noSystemOrUser++;
            if (noSystemOrUserIds.length < 5) noSystemOrUserIds.push(c.id);
          }
          line = JSON.stringify(example);
        }
        ctx.ws.tokens[c.i] = tokens.total;
        ctx.ws.line[c.i] = split.write(line, tokens, limit, detectRefusal ? detectRefusal(finalAssistantText(c.messages)) : false);
      }
    } catch (err) {
      writer.abort();
      throw err;
    }
    ctx.stats.truncated = truncated;
    if (truncated > 0) warnings.push(`${truncated} example(s) over the ${limit}-token limit were truncated (whole turns removed from the front)`);
    const overLimit = writer.train.overLimit + writer.test.overLimit;
    if (overLimit > 0 && p.over_limit === 'drop') warnings.push(`${overLimit} example(s) over the ${limit}-token limit of ${p.model} were dropped`);
    if (noSystemOrUser > 0) {
      warnings.push(`${noSystemOrUser} example(s) have no system or user message (e.g. ${noSystemOrUserIds.map((i) => JSON.stringify(i)).join(', ')})`);
    }
    const nTrain = writer.train.examples;
    if (nTrain < p.min_examples) {
      writer.abort();
      throw new JobError(
        `emit: ${nTrain} train example(s), fewer than min_examples ${p.min_examples}; no files were written (the previous run's files are untouched)`,
      );
    }
    facts.emit = writer.handoff({ params: p, model, warnings, ctx });
  },
});

function overLimitError(id: string, tokens: number, limit: number, model: string): JobError {
  return new JobError(`emit: conversation ${JSON.stringify(id)} has ${tokens} tokens, over the ${limit}-token limit of ${model} (over_limit: fail)`);
}
