/**
 * manifest.json (SPEC §4, manifest_version 1): what job-submission tools read. Validated before it is written.
 * Fixed keys are required; a few keys of our own are added beside them (SPEC: more keys may be added).
 */
import { z } from 'zod';

const count = z.number().int().min(0);
const rate = z.number().min(0).max(1);

export const tokenSummarySchema = z.object({
  total: count,
  assistant: count,
  min: count,
  mean: z.number().min(0),
  p50: count,
  p95: count,
  max: count,
});

export const fileEntrySchema = z.object({
  path: z.string(),
  examples: count,
  bytes: count,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Examples in the file over the model's limit (as `validate` counts them). */
  over_limit: count,
  /** Examples bound for the file that were over the limit: truncated (and in the file), or dropped. */
  truncated: count,
  dropped_over_limit: count,
  tokens: tokenSummarySchema,
});

export const manifestShape = z.object({
  manifest_version: z.literal(1),
  tool: z.object({ name: z.literal('logcurate'), version: z.string() }),
  run: z.object({
    id: z.string(),
    name: z.string(),
    started_at: z.string(),
    finished_at: z.string(),
    config_sha256: z.string().regex(/^[0-9a-f]{64}$/),
    seed: z.number().int().min(0),
    dry_run: z.boolean(),
  }),
  store: z.object({ path: z.string(), conversations: count }),
  model: z.object({
    name: z.string(),
    base: z.string(),
    encoding: z.enum(['o200k_base', 'cl100k_base']),
    max_tokens_per_example: count.nullable(),
    price_per_1m_training_tokens: z.number().min(0).nullable(),
  }),
  stages: z.array(z.object({ name: z.string(), in: count, out: count, dropped: z.record(z.string(), count) })),
  refusals: z
    .object({
      target_rate: rate,
      before: z.object({ count, rate }),
      after: z.object({ count, rate }),
    })
    .nullable(),
  files: z.object({ train: fileEntrySchema, test: fileEntrySchema }),
  outputs: z.object({ lineage: z.string().nullable(), report: z.string().nullable() }),
  cost: z.object({
    currency: z.literal('USD'),
    n_epochs: z.number().int().min(1).max(50),
    epochs_source: z.enum(['auto', 'config']),
    billing_tokens: count,
    estimated_usd: z.number().min(0).nullable(),
  }),
  warnings: z.array(z.string()),
  job_request: z.object({
    model: z.string(),
    training_file: z.string(),
    validation_file: z.string().nullable(),
    suffix: z.string().max(64),
    seed: z.number().int().min(0),
    method: z.object({
      type: z.literal('supervised'),
      supervised: z.object({ hyperparameters: z.object({ n_epochs: z.number().int().min(1).max(50) }) }),
    }),
  }),
});

/**
 * Facts that tie the figures together. Job-submission tools trust the manifest, so one that contradicts itself
 * is an internal error caught before it is written, not a file handed on.
 */
export const manifestSchema = manifestShape.superRefine((m, ctx) => {
  const issue = (path: (string | number)[], message: string): void => void ctx.addIssue({ code: 'custom', path, message });
  for (const split of ['train', 'test'] as const) {
    const f = m.files[split];
    const t = f.tokens;
    if (f.examples === 0) {
      if (f.bytes !== 0 || t.total !== 0 || t.max !== 0) issue(['files', split], 'a file without examples has no bytes and no tokens');
    } else {
      if (!(t.min <= t.p50 && t.p50 <= t.p95 && t.p95 <= t.max)) issue(['files', split, 'tokens'], 'expected min ≤ p50 ≤ p95 ≤ max');
      if (!(t.min * f.examples <= t.total && t.total <= t.max * f.examples)) issue(['files', split, 'tokens', 'total'], 'expected min × examples ≤ total ≤ max × examples');
    }
    if (t.assistant > t.total) issue(['files', split, 'tokens', 'assistant'], 'assistant tokens cannot exceed the total');
  }
  if (m.cost.billing_tokens > m.files.train.tokens.total) issue(['cost', 'billing_tokens'], 'billing tokens cannot exceed the train tokens');
  if (m.cost.n_epochs !== m.job_request.method.supervised.hyperparameters.n_epochs) {
    issue(['job_request', 'method', 'supervised', 'hyperparameters', 'n_epochs'], 'expected the same n_epochs as cost.n_epochs');
  }
  if ((m.cost.estimated_usd === null) !== (m.model.price_per_1m_training_tokens === null)) {
    issue(['cost', 'estimated_usd'], 'expected a cost exactly when the model has a price');
  }
  if ((m.job_request.validation_file === null) !== (m.files.test.examples === 0)) {
    issue(['job_request', 'validation_file'], 'expected a validation file exactly when test.jsonl has examples');
  }
});

export type Manifest = z.infer<typeof manifestSchema>;
export type FileEntry = z.infer<typeof fileEntrySchema>;
