/** filter — keeps conversations that pass every condition given (SPEC §3). */
import { z } from 'zod';
import { feedbackAggregateSchema, ownKeyRecord, regexSchema } from '../schemas/config.js';
import { defineStage, type Message, type ScanField } from '../pipeline/stage.js';
import { parseTimestamp } from '../pipeline/records.js';
import { argumentsText, calls, globToRegExp, contentText } from '../pipeline/messages.js';

const scalar = z.union([z.string(), z.number(), z.boolean()], { error: 'expected a tag value (string, number or boolean)' });
const EXPECTED_TIME = 'expected ISO 8601 or epoch seconds/milliseconds';
const DAY_MS = 86_400_000;
/**
 * A time in ms. `wholeDay`: a date given alone stands for the last moment of that day, so that `until:
 * 2026-12-31` takes in the year's last day (as `since: 2026-01-01` takes in its first).
 */
const timestamp = (wholeDay: boolean) =>
  z
    // zod takes no infinite number: 1e999 fails the union, which says what it got (JSON would print null).
    .union([z.string(), z.number()], { error: (iss) => `${EXPECTED_TIME}, got ${typeof iss.input === 'number' ? String(iss.input) : JSON.stringify(iss.input)?.slice(0, 60)}` })
    .transform((v, ctx) => {
      // Without a path: zod names the key.
      const t = parseTimestamp(v);
      if (t === null || typeof t === 'string') {
        ctx.addIssue({ code: 'custom', message: typeof t === 'string' ? t : `${EXPECTED_TIME}, got ${JSON.stringify(v)}` });
        return z.NEVER;
      }
      return wholeDay && typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v.trim()) ? t.ms + DAY_MS - 1 : t.ms;
    });

export const filterParams = z
  .strictObject({
    feedback: z
      .strictObject({
        name: z.string().min(1).default('score'),
        min: z.number().optional(),
        max: z.number().optional(),
        aggregate: feedbackAggregateSchema.default('latest'),
      })
      .refine((f) => f.min === undefined || f.max === undefined || f.min <= f.max, { error: 'min must not exceed max', path: ['min'] })
      .optional(),
    require_feedback: z.boolean().optional(),
    since: timestamp(false).optional(),
    until: timestamp(true).optional(),
    models: z.array(z.string().min(1)).min(1).optional(),
    tags: ownKeyRecord(
      z.union([scalar, z.array(scalar).min(1, { error: 'expected a non-empty list of tag values' })], { error: 'expected a tag value (string, number or boolean) or a non-empty list of them' }),
      'expected a mapping of tag keys to values',
    ).optional(),
    exclude_errors: z.boolean().default(true),
    min_turns: z.number().int().min(0).optional(),
    max_turns: z.number().int().min(0).optional(),
    exclude_content: z.array(regexSchema).optional(),
    require_assistant_last: z.boolean().default(true),
  })
  .refine((p) => p.since === undefined || p.until === undefined || p.since <= p.until, { error: 'since must not be after until', path: ['since'] })
  .refine((p) => p.min_turns === undefined || p.max_turns === undefined || p.min_turns <= p.max_turns, {
    error: 'min_turns must not exceed max_turns',
    path: ['min_turns'],
  });

export default defineStage({
  name: 'filter',
  params: filterParams,
  run(ctx, p) {
    const fb = p.feedback ? ctx.feedback(p.feedback.name, p.feedback.aggregate) : null;
    if (p.feedback) ctx.facts.feedbackName = p.feedback.name;
    const requireFeedback = p.require_feedback ?? p.feedback !== undefined;
    const models = p.models?.map(globToRegExp);
    const tagRules = Object.entries(p.tags ?? {}).map(([k, v]) => [k, (Array.isArray(v) ? v : [v]).map(String)] as const);
    const excludes = p.exclude_content?.map((src) => new RegExp(src, 'iu'));
    const feedbackName = p.feedback?.name ?? 'score';

    // Message text is needed only for exclude_content; roles and turn counts come from the store's columns.
    const fields: ScanField[] = [];
    if (p.since !== undefined || p.until !== undefined) fields.push('createdAtMs');
    if (models) fields.push('model');
    if (tagRules.length > 0) fields.push('tags');
    // Conditions on status, feedback, turns and the last role only (the usual nightly filter): decided from the
    // columns read with the working set, without a scan of the store (~0.25 s at 200k).
    const core = excludes === undefined && fields.length === 0 ? ctx.core() : null;
    if (core) {
      const task = ctx.progress.task('filter', { total: ctx.ws.alive, unit: 'items' });
      const unread = (what: string) => (): never => {
        throw new Error(`internal: filter read ${what} without scanning`);
      };
      const row = {
        i: 0,
        status: 'ok',
        lastRole: null as string | null,
        assistantTurns: 0,
        get createdAtMs(): number | null {
          return unread('created_at')();
        },
        get model(): string | null {
          return unread('model')();
        },
        get tags(): Readonly<Record<string, unknown>> | null {
          return unread('tags')();
        },
        get messages(): readonly Message[] {
          return unread('messages')();
        },
      };
      for (let i = 0; i < ctx.ws.size; i++) {
        if (!ctx.ws.isAlive(i)) continue;
        row.i = i;
        row.status = core.error[i] ? 'error' : 'ok';
        row.lastRole = core.roles[core.lastRole[i]!]!;
        row.assistantTurns = core.assistantTurns[i]!;
        const reason = decide(row);
        if (reason) ctx.drop(i, reason);
        task.tick(1);
      }
      task.done();
    } else {
      for (const c of ctx.scan('filter', { messages: excludes !== undefined, fields })) {
        const reason = decide(c);
        if (reason) ctx.drop(c.i, reason);
      }
    }

    function decide(c: { i: number; status: string; createdAtMs: number | null; model: string | null; tags: Readonly<Record<string, unknown>> | null; messages: readonly Message[]; lastRole: string | null; assistantTurns: number }): string | null {
      if (p.exclude_errors && c.status === 'error') return 'error_status';
      if (fb) {
        const v = fb[c.i]!;
        if (Number.isNaN(v)) {
          if (requireFeedback) return 'no_feedback';
        } else {
          if (p.feedback!.min !== undefined && v < p.feedback!.min) return 'feedback_below_min';
          if (p.feedback!.max !== undefined && v > p.feedback!.max) return 'feedback_above_max';
        }
      } else if (requireFeedback) {
        // require_feedback without a feedback condition: any event under the default name counts.
        if (Number.isNaN(ctx.feedback(feedbackName, 'latest')[c.i]!)) return 'no_feedback';
      }
      if (p.since !== undefined || p.until !== undefined) {
        if (c.createdAtMs === null) return 'no_created_at';
        if (p.since !== undefined && c.createdAtMs < p.since) return 'before_since';
        if (p.until !== undefined && c.createdAtMs > p.until) return 'after_until';
      }
      if (models && !(c.model !== null && models.some((re) => re.test(c.model!)))) return 'model_not_selected';
      for (const [key, allowed] of tagRules) {
        const v = c.tags && Object.hasOwn(c.tags, key) ? c.tags[key] : undefined;
        if (v === undefined || v === null || !allowed.includes(String(v))) return `tag_mismatch:${key}`;
      }
      const turns = c.assistantTurns;
      if (p.min_turns !== undefined && turns < p.min_turns) return 'too_few_turns';
      if (p.max_turns !== undefined && turns > p.max_turns) return 'too_many_turns';
      if (p.require_assistant_last && c.lastRole !== 'assistant') return 'assistant_not_last';
      // Every text a message trains on: its content and its calls' arguments.
      if (excludes && c.messages.some((m) => excludes.some((re) => re.test(contentText(m.content)) || calls(m).some((f) => re.test(argumentsText(f.arguments)))))) return 'excluded_content';
      return null;
    }
  },
});
