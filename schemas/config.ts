/**
 * The curation config (SPEC §3), top level. Each stage's params schema lives with its stage in `stages/`;
 * the loader (pipeline/config.ts) validates `stages` item by item against the registry.
 */
import { z } from 'zod';
import { INPUT_FORMATS } from './log-record.js';

export const inputSchema = z.union(
  [z.string().min(1), z.strictObject({ path: z.string().min(1), format: z.enum(INPUT_FORMATS).optional() })],
  { error: 'expected a path/glob string or { path, format }' },
);

export const configSchema = z.strictObject({
  name: z
    .string({ error: 'expected a string' })
    .regex(/^[a-z0-9._-]+$/, { error: 'expected [a-z0-9._-]+ (lowercase letters, digits, dot, underscore, dash)' }),
  store: z.string().min(1).optional(),
  // The error applies to every check: a wrong type, a fraction and either bound all get the range.
  seed: z.number({ error: `expected an integer from 0 to ${2 ** 32 - 1}` }).int().min(0).max(2 ** 32 - 1).default(0),
  inputs: z.array(inputSchema, { error: 'expected a list of paths or { path, format }' }).default([]),
  stages: z.array(z.unknown(), { error: 'expected a list of { <stage>: <params> }' }).min(1, { error: 'expected at least one stage' }),
});

export type ConfigFile = z.infer<typeof configSchema>;

/** Reusable param pieces. */
export const feedbackAggregateSchema = z.enum(['latest', 'mean', 'min', 'max']);

/** A regular expression given as a string; it must compile. */
export const regexSchema = z.string().superRefine((src, ctx) => {
  try {
    new RegExp(src, 'iu');
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `invalid regular expression: ${(err as Error).message}` });
  }
});

/**
 * A mapping of any string keys to `value`s. z.record drops a `__proto__` key (assigning it to a plain object
 * would set the prototype); this keeps every own key, `__proto__` included, in an object with a null prototype.
 * Look keys up with Object.hasOwn.
 */
export function ownKeyRecord<V extends z.ZodType>(value: V, error: string): z.ZodType<Record<string, z.output<V>>, unknown> {
  return z.unknown().transform((input, ctx) => {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      ctx.addIssue({ code: 'custom', message: `${error}, got ${Array.isArray(input) ? 'a list' : input === null ? 'null' : typeof input}` });
      return z.NEVER;
    }
    const out = Object.create(null) as Record<string, z.output<V>>;
    for (const key of Object.keys(input)) {
      const r = value.safeParse((input as Record<string, unknown>)[key]);
      if (r.success) Object.defineProperty(out, key, { value: r.data, enumerable: true, writable: true, configurable: true });
      else for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: [key, ...issue.path] } as Parameters<typeof ctx.addIssue>[0]);
    }
    return out;
  });
}

/** `tags.<key>` or a plain key. */
export const tagKeySchema = z.string().min(1);
