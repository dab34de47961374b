import { describe, expect, it } from 'vitest';
import { autoEpochs, baseModelOf, estimateCostUsd, resolveModel } from '../pipeline/models.js';

describe('resolveModel: encodings (SPEC §5)', () => {
  const cases: [string, string][] = [
    ['gpt-4o', 'o200k_base'],
    ['gpt-4o-mini-2024-07-18', 'o200k_base'],
    ['gpt-4.1-nano-2025-04-14', 'o200k_base'],
    ['gpt-5-mini', 'o200k_base'],
    ['o1-mini', 'o200k_base'],
    ['o3', 'o200k_base'],
    ['o4-mini-2025-04-16', 'o200k_base'],
    ['gpt-3.5-turbo', 'cl100k_base'],
    ['gpt-3.5-turbo-0125', 'cl100k_base'],
    ['gpt-4', 'cl100k_base'],
    ['gpt-4-0613', 'cl100k_base'],
    ['gpt-4-turbo-2024-04-09', 'cl100k_base'],
    // OpenAI's tiktoken maps these to cl100k_base; js-tiktoken's model map says otherwise.
    ['davinci-002', 'cl100k_base'],
    ['babbage-002', 'cl100k_base'],
  ];
  for (const [name, encoding] of cases) {
    it(`${name} → ${encoding}`, () => expect(resolveModel(name).encoding).toBe(encoding));
  }
});

describe('resolveModel: the price and limit table', () => {
  const rows: [string, number, number][] = [
    ['gpt-4.1', 25, 65536],
    ['gpt-4.1-2025-04-14', 25, 65536],
    ['gpt-4.1-mini', 5, 65536],
    ['gpt-4.1-mini-2025-04-14', 5, 65536],
    ['gpt-4.1-nano-2025-04-14', 1.5, 32768],
    ['gpt-4o', 25, 65536],
    ['gpt-4o-2024-08-06', 25, 65536],
    ['gpt-4o-mini', 3, 65536],
    ['gpt-4o-mini-2024-07-18', 3, 65536],
    ['gpt-3.5-turbo-0613', 8, 4096],
    ['gpt-3.5-turbo-0125', 8, 16385],
    ['gpt-3.5-turbo-1106', 8, 16385],
    ['gpt-3.5-turbo', 8, 16385],
    ['davinci-002', 6, 4096],
    ['babbage-002', 0.4, 4096],
  ];
  for (const [name, price, limit] of rows) {
    it(`${name}: $${price}/1M, ${limit} tokens`, () => {
      const m = resolveModel(name);
      expect(m).toMatchObject({ name, base: name, pricePer1M: price, maxTokensPerExample: limit, inTable: true });
      expect(m.warnings).toEqual([]);
    });
  }

  it('resolves fine-tuned names through their base', () => {
    const m = resolveModel('ft:gpt-4o-mini-2024-07-18:acme::9xYz12');
    expect(m).toMatchObject({
      name: 'ft:gpt-4o-mini-2024-07-18:acme::9xYz12',
      base: 'gpt-4o-mini-2024-07-18',
      encoding: 'o200k_base',
      pricePer1M: 3,
      maxTokensPerExample: 65536,
      inTable: true,
    });
    expect(resolveModel('ft:gpt-3.5-turbo-0613:acme:support:abc').maxTokensPerExample).toBe(4096);
    expect(baseModelOf('gpt-4o')).toBe('gpt-4o');
  });

  it('reports the name it looked up: surrounding whitespace is trimmed from name and base alike', () => {
    expect(resolveModel(' gpt-4o-mini-2024-07-18 \t')).toMatchObject({ name: 'gpt-4o-mini-2024-07-18', base: 'gpt-4o-mini-2024-07-18', pricePer1M: 3, inTable: true });
    const ft = resolveModel('ft:gpt-4o-mini-2024-07-18:acme::9xYz12 ');
    expect(ft.name).toBe('ft:gpt-4o-mini-2024-07-18:acme::9xYz12');
    expect(ft.base).toBe('gpt-4o-mini-2024-07-18');
    expect(resolveModel(' llama-3 ').warnings[0]).toContain('Model "llama-3" has no known encoding');
  });

  it('does not let an unrelated suffix fall back to a shorter family', () => {
    const audio = resolveModel('gpt-4o-audio-preview');
    expect(audio.encoding).toBe('o200k_base');
    expect(audio.inTable).toBe(false);
    expect(audio.maxTokensPerExample).toBeNull();
    expect(resolveModel('gpt-3.5-turbo-16k').inTable).toBe(false);
  });

  it('gives a model with a known encoding but no table row no limit, no price and a warning', () => {
    const m = resolveModel('gpt-4-0613');
    expect(m).toMatchObject({ encoding: 'cl100k_base', maxTokensPerExample: null, pricePer1M: null, inTable: false });
    expect(m.warnings).toHaveLength(1);
    expect(m.warnings[0]).toContain('gpt-4-0613');
    expect(m.warnings[0]).toContain('not in the price and limit table');
  });

  it('falls back to o200k_base for an unknown model and says so', () => {
    const m = resolveModel('llama-3-70b');
    expect(m.encoding).toBe('o200k_base');
    expect(m.inTable).toBe(false);
    expect(m.warnings.some((w) => w.includes('o200k_base') && w.includes('llama-3-70b'))).toBe(true);
    expect(m.warnings.some((w) => w.includes('not in the price and limit table'))).toBe(true);
  });

  it('lets a price override replace the table price, or supply one', () => {
    expect(resolveModel('gpt-4o-mini', { pricePer1M: 2.5 }).pricePer1M).toBe(2.5);
    expect(resolveModel('gpt-4o-mini', { pricePer1M: 0 }).pricePer1M).toBe(0);
    const m = resolveModel('gpt-4-0613', { pricePer1M: 12 });
    expect(m.pricePer1M).toBe(12);
    expect(m.maxTokensPerExample).toBeNull();
    expect(m.warnings[0]).toContain('12');
    expect(() => resolveModel('gpt-4o', { pricePer1M: -1 })).toThrow(/price_per_1m_training_tokens/);
    expect(() => resolveModel('gpt-4o', { pricePer1M: Number.NaN })).toThrow(RangeError);
  });
});

describe('autoEpochs (OpenAI n_epochs: auto)', () => {
  const cases: [number, number][] = [
    [1, 25], // 3 < 100: min(25, 100)
    [4, 25],
    [5, 20],
    [33, 3], // 99 < 100: min(25, 3)
    [34, 3], // 102 ≥ 100: default
    [8333, 3], // 24999 ≤ 25000: default
    [8334, 2], // 25002 > 25000: max(1, 2)
    [12500, 2],
    [12501, 1],
    [100000, 1],
  ];
  for (const [n, epochs] of cases) it(`n=${n} → ${epochs}`, () => expect(autoEpochs(n)).toBe(epochs));

  it('treats an empty set as the small-set limit and rejects impossible counts', () => {
    expect(autoEpochs(0)).toBe(25);
    expect(() => autoEpochs(-1)).toThrow(RangeError);
    expect(() => autoEpochs(2.5)).toThrow(RangeError);
  });
});

describe('estimateCostUsd', () => {
  it('is billing tokens × epochs × price / 1e6, rounded to 6 decimals', () => {
    expect(estimateCostUsd(201234, 3, 3.0)).toBe(1.811106);
    expect(estimateCostUsd(1_000_000, 1, 25)).toBe(25);
    expect(estimateCostUsd(3, 1, 0.4)).toBe(0.000001); // 1.2 micro-dollars
    expect(estimateCostUsd(1, 1, 0.4)).toBe(0); // 0.4 micro-dollars
    expect(estimateCostUsd(123457, 7, 1.5)).toBe(1.296299); // 1.2962985 → half up
    expect(estimateCostUsd(0, 25, 3)).toBe(0);
  });

  it('is null without a price', () => {
    expect(estimateCostUsd(1000, 3, null)).toBeNull();
  });
});
