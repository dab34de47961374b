/**
 * The model table (SPEC §5): encoding, per-example token limit and training price by base model, plus
 * OpenAI's automatic epoch rule and the cost estimate. The only place these facts live.
 */

export type EncodingName = 'o200k_base' | 'cl100k_base';

export interface ModelInfo {
  /** The name as given, e.g. `ft:gpt-4o-mini-2024-07-18:acme::abc123`. */
  readonly name: string;
  /** The base model the name resolves to (`ft:` prefix removed). */
  readonly base: string;
  readonly encoding: EncodingName;
  /** null when the model is not in the table: no limit is enforced. */
  readonly maxTokensPerExample: number | null;
  /** USD per 1M training tokens; null when unknown (not in the table and no override). */
  readonly pricePer1M: number | null;
  readonly inTable: boolean;
  readonly warnings: readonly string[];
}

interface TableRow {
  readonly family: string;
  readonly pricePer1M: number;
  readonly maxTokensPerExample: number;
}

/**
 * Looked up by exact family or a dated snapshot of it, specific rows first, so gpt-3.5-turbo-0613 wins over
 * gpt-3.5-turbo and gpt-4o-mini-… never falls back to gpt-4o (its suffix "-mini-…" is not a date).
 */
const TABLE: readonly TableRow[] = [
  { family: 'gpt-4.1', pricePer1M: 25.0, maxTokensPerExample: 65536 },
  { family: 'gpt-4.1-mini', pricePer1M: 5.0, maxTokensPerExample: 65536 },
  { family: 'gpt-4.1-nano', pricePer1M: 1.5, maxTokensPerExample: 32768 },
  { family: 'gpt-4o', pricePer1M: 25.0, maxTokensPerExample: 65536 },
  { family: 'gpt-4o-mini', pricePer1M: 3.0, maxTokensPerExample: 65536 },
  { family: 'gpt-3.5-turbo-0613', pricePer1M: 8.0, maxTokensPerExample: 4096 },
  { family: 'gpt-3.5-turbo', pricePer1M: 8.0, maxTokensPerExample: 16385 },
  { family: 'davinci-002', pricePer1M: 6.0, maxTokensPerExample: 4096 },
  { family: 'babbage-002', pricePer1M: 0.4, maxTokensPerExample: 4096 },
];

/** OpenAI snapshot suffixes: `-2024-07-18` (current) or `-0125` (older gpt-3.5/gpt-4 style). */
const SNAPSHOT = /^-(\d{4}-\d{2}-\d{2}|\d{4})$/;

function tableRow(base: string): TableRow | undefined {
  const exact = TABLE.find((row) => row.family === base);
  if (exact) return exact;
  return TABLE.find((row) => base.startsWith(row.family) && SNAPSHOT.test(base.slice(row.family.length)));
}

/**
 * Encoding by family prefix, as tiktoken's model registry has it. davinci-002 and babbage-002 are cl100k_base
 * in OpenAI's tiktoken (js-tiktoken's own model map disagrees, which is why it is not used). gpt-4.5 and
 * chatgpt-4o are o200k_base too; SPEC §5 is silent on them.
 */
function encodingOf(base: string): EncodingName | null {
  const o200k = ['gpt-4o', 'gpt-4.1', 'gpt-4.5', 'gpt-5', 'chatgpt-4o', 'o1', 'o3', 'o4'];
  if (o200k.some((prefix) => base.startsWith(prefix))) return 'o200k_base';
  if (base.startsWith('gpt-3.5-turbo') || base.startsWith('gpt-35-turbo')) return 'cl100k_base';
  if (base === 'gpt-4' || base.startsWith('gpt-4-')) return 'cl100k_base';
  if (base === 'davinci-002' || base === 'babbage-002') return 'cl100k_base';
  return null;
}

/** `ft:<base>:<org>:<suffix>:<id>` → `<base>`; any other name is its own base. */
export function baseModelOf(name: string): string {
  const trimmed = name.trim();
  if (!trimmed.startsWith('ft:')) return trimmed;
  const base = trimmed.split(':')[1] ?? '';
  return base === '' ? trimmed : base;
}

export function resolveModel(given: string, opts: { pricePer1M?: number } = {}): ModelInfo {
  // The base is looked up trimmed, so the name reported is trimmed too: both describe the same model.
  const name = given.trim();
  const override = opts.pricePer1M;
  if (override !== undefined && !(Number.isFinite(override) && override >= 0)) {
    throw new RangeError(`price_per_1m_training_tokens: expected a non-negative number, got ${String(override)}`);
  }
  const base = baseModelOf(name);
  const key = base.toLowerCase();
  const warnings: string[] = [];

  let encoding = encodingOf(key);
  if (encoding === null) {
    encoding = 'o200k_base';
    warnings.push(`Model "${name}" has no known encoding; counting tokens with o200k_base.`);
  }
  const row = tableRow(key);
  if (!row) {
    warnings.push(
      override === undefined
        ? `Model "${name}" is not in the price and limit table: no per-example token limit is applied and the cost is unknown (set price_per_1m_training_tokens to estimate it).`
        : `Model "${name}" is not in the price and limit table: no per-example token limit is applied; cost uses the given price of ${override} USD per 1M tokens.`,
    );
  }
  return {
    name,
    base,
    encoding,
    maxTokensPerExample: row ? row.maxTokensPerExample : null,
    pricePer1M: override ?? row?.pricePer1M ?? null,
    inTable: row !== undefined,
    warnings,
  };
}

/**
 * OpenAI's `n_epochs: auto` for n training examples: 3, raised to min(25, ⌊100/n⌋) when 3n < 100 so small sets
 * see ~100 example-passes, lowered to max(1, ⌊25000/n⌋) when 3n > 25000. n = 0 follows the small-set branch
 * (100/0 → ∞, capped at 25), which keeps the value inside OpenAI's accepted 1..50; with no examples there are
 * no billing tokens, so the estimate is 0 either way.
 */
export function autoEpochs(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`autoEpochs: expected a non-negative integer, got ${n}`);
  if (n === 0) return 25;
  if (3 * n < 100) return Math.min(25, Math.floor(100 / n));
  if (3 * n > 25000) return Math.max(1, Math.floor(25000 / n));
  return 3;
}

/** billing tokens × epochs × price / 1e6, rounded to 6 decimals (a micro-dollar) to drop float noise. */
export function estimateCostUsd(billingTokens: number, epochs: number, pricePer1M: number | null): number | null {
  if (pricePer1M === null) return null;
  // tokens × epochs × USD-per-1M is the cost in micro-dollars.
  return Math.round(billingTokens * epochs * pricePer1M) / 1e6;
}
