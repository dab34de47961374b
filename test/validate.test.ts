import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  checkCompletionExample,
  checkExample,
  fileSizeWarning,
  formatValidateReport,
  MAX_LISTED_ERRORS,
  validateFile,
  type ValidateReport,
} from '../pipeline/validate.js';
import { countExampleTokens, getTokenizer, tokenStats, type ChatMessageLike } from '../pipeline/tokens.js';
import { autoEpochs, estimateCostUsd } from '../pipeline/models.js';
import { TrainingExampleSchema } from '../schemas/training-example.js';

let dir: string;
let fileNo = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'logcurate-validate-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeLines(lines: readonly string[], opts: { eol?: string; bom?: boolean; name?: string } = {}): string {
  const path = join(dir, opts.name ?? `f${++fileNo}.jsonl`);
  const eol = opts.eol ?? '\n';
  writeFileSync(path, (opts.bom ? '\ufeff' : '') + lines.map((l) => l + eol).join(''));
  return path;
}

function example(i: number, extra: Partial<{ system: string; answer: string }> = {}): object {
  const messages: object[] = [];
  if (extra.system) messages.push({ role: 'system', content: extra.system });
  messages.push({ role: 'user', content: `Question number ${i}: where is my order?` });
  messages.push({ role: 'assistant', content: extra.answer ?? `Answer ${i}: it ships tomorrow.` });
  return { messages };
}

const asLines = (examples: readonly object[]): string[] => examples.map((e) => JSON.stringify(e));

const kinds = (errors: readonly { kind: string }[]): string[] => errors.map((e) => e.kind);

describe('checkExample: OpenAI error kinds', () => {
  it('accepts a plain example, tool calls with null content, weights and names', () => {
    expect(checkExample(example(1))).toEqual([]);
    expect(
      checkExample({
        messages: [
          { role: 'system', content: 'You are helpful.' },
          { role: 'user', name: 'alice', content: 'Weather?' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }],
          },
          { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
          { role: 'assistant', content: 'It is 18°C.', weight: 1 },
          { role: 'user', content: 'Thanks' },
          { role: 'assistant', content: 'Bye', weight: 0 },
        ],
        tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
      }),
    ).toEqual([]);
    expect(
      checkExample({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', function_call: { name: 'f', arguments: '{}' } }] }),
    ).toEqual([]);
  });

  it('reports data_type for anything but an object', () => {
    for (const v of [[], 'text', 42, null, true]) expect(kinds(checkExample(v))).toEqual(['data_type']);
    expect(checkExample([1])[0].message).toBe('expected a JSON object, got an array');
  });

  it('prompt/completion: a missing key is named as missing, a wrong value by its kind', () => {
    expect(checkCompletionExample({ completion: 'b' })).toEqual([{ kind: 'data_type', message: 'prompt: expected a string, got no "prompt" key' }]);
    expect(checkCompletionExample({ prompt: 'a' })).toEqual([{ kind: 'missing_content', message: 'completion: expected a non-empty string, got no "completion" key' }]);
    expect(checkCompletionExample({ prompt: 1, completion: null })).toEqual([
      { kind: 'data_type', message: 'prompt: expected a string, got a number' },
      { kind: 'missing_content', message: 'completion: expected a non-empty string, got null' },
    ]);
    // A value that is present but undefined (a JS caller, not JSON) is not "a undefined" either.
    expect(checkExample({ messages: [undefined, { role: 'assistant', content: 'x' }] })[0]!.message).toBe('messages[0]: expected a message object, got undefined');
  });

  it('reports missing_messages_list for absent, empty or non-array messages', () => {
    for (const v of [{}, { messages: [] }, { messages: 'hi' }, { prompt: 'a', completion: 'b' }]) {
      expect(kinds(checkExample(v))).toEqual(['missing_messages_list']);
    }
  });

  it('names the message index and the bad value', () => {
    const errors = checkExample({
      messages: [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: 'b' },
        { role: 'bot', content: 'c' },
      ],
    });
    expect(errors).toEqual([
      { kind: 'unrecognized_role', message: 'messages[2].role: expected one of system|user|assistant|tool|function, got "bot"' },
    ]);
  });

  it('reports each problem of a message', () => {
    const errors = checkExample({
      messages: [
        { content: 'no role' },
        { role: 'user' },
        { role: 'user', content: 'x', extra: 1, meta: {} },
        { role: 'user', content: '' },
        { role: 'user', content: null },
        { role: 'user', content: [{ type: 'text', text: 'parts' }] },
        { role: 'user', content: 'x', weight: 1 },
        { role: 'assistant', content: 'y', weight: 0.5 },
        'not a message',
      ],
    });
    expect(errors.map((e) => [e.kind, e.message.split(':')[0]])).toEqual([
      ['message_missing_key', 'messages[0]'],
      ['message_missing_key', 'messages[1]'],
      ['message_unrecognized_key', 'messages[2]'],
      ['missing_content', 'messages[3].content'],
      ['missing_content', 'messages[4].content'],
      ['missing_content', 'messages[5].content'],
      ['invalid_weight', 'messages[6].weight'],
      ['invalid_weight', 'messages[7].weight'],
      ['data_type', 'messages[8]'],
    ]);
    expect(errors[2].message).toContain('"extra", "meta"');
  });

  it('reports example_missing_assistant_message', () => {
    expect(kinds(checkExample({ messages: [{ role: 'user', content: 'hello' }] }))).toEqual(['example_missing_assistant_message']);
  });

  it('reports structural problems OpenAI\'s kinds do not name as data_type with their path', () => {
    const errors = checkExample({
      messages: [
        { role: 'user', content: 'x' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: { a: 1 } } }] },
      ],
    });
    expect(kinds(errors)).toEqual(['data_type']);
    expect(errors[0].message).toMatch(/^messages\[1\]\.tool_calls\[0\]\.function\.arguments: /);
  });

  it('names a malformed call even beside content: null, where missing content is only its consequence', () => {
    const errors = checkExample({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: 'x' }] });
    expect(errors.map((e) => `${e.kind}: ${e.message}`)).toEqual([
      'data_type: messages[1].tool_calls: expected an array of calls, got a string',
      'missing_content: messages[1].content: expected a non-empty string, got null',
    ]);
    const fc = checkExample({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, function_call: 'f()' }] });
    expect(fc[0]).toEqual({ kind: 'data_type', message: 'messages[1].function_call: expected an object {name, arguments}, got a string' });
  });

  it('words data_type errors as this tool does ("expected …, got …"), not in the schema library\'s terms', () => {
    const messageOf = (m: Record<string, unknown>): string =>
      checkExample({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, ...m }] })[0]!.message;
    expect(messageOf({ tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f' } }] })).toBe('messages[1].tool_calls[0].function.arguments: missing (expected a string)');
    expect(messageOf({ content: 'y', name: '' })).toBe('messages[1].name: expected a non-empty string');
    expect(messageOf({ content: 'y', name: 7 })).toBe('messages[1].name: expected a string, got a number');
  });

  it('accepts only what the training-example schema also accepts', () => {
    const samples: unknown[] = [
      example(1),
      example(2, { system: 'Be brief.' }),
      { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y', name: '' }] },
      { messages: [{ role: 'user', content: 'x', name: 7 }, { role: 'assistant', content: 'y' }] },
      { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }], tools: 'nope' },
      { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ function: { name: 'f' } }] }] },
      { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [] }] },
    ];
    for (const s of samples) {
      expect(checkExample(s).length === 0).toBe(TrainingExampleSchema.safeParse(s).success);
    }
  });
});

describe('checkExample: agrees with the training-example schema', () => {
  it('on every mutation of every field of examples of each shape (the plain ones skip zod)', () => {
    const bases: Record<string, unknown>[] = [
      { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }] },
      { messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'x' }, { role: 'assistant', content: 'y', weight: 0 }, { role: 'assistant', content: 'z', weight: 1 }] },
      { messages: [{ role: 'user', content: 'x', name: 'ann' }, { role: 'assistant', content: 'y' }], extra: 1 },
      { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', content: 'r', tool_call_id: 'c' }, { role: 'assistant', content: 'y' }] },
      { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }], tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }] },
      { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', function_call: { name: 'f', arguments: '{}' } }, { role: 'function', name: 'f', content: '1' }, { role: 'assistant', content: 'y' }] },
    ];
    const values: unknown[] = [undefined, null, '', 'x', 'bogus', 0, 1, 2, -1, 0.5, true, [], [{}], {}, { a: 1 }, 'assistant', 'user', 'function'];
    const keys = ['role', 'content', 'name', 'weight', 'tool_calls', 'tool_call_id', 'function_call', 'refusal', '__proto__', 'tools'];
    let checked = 0;
    let accepted = 0;
    const agree = (s: unknown, what: string): void => {
      expect(checkExample(s).length === 0, what).toBe(TrainingExampleSchema.safeParse(s).success);
      checked++;
      if (checkExample(s).length === 0) accepted++;
    };
    for (const base of bases) {
      agree(base, 'base');
      const text = JSON.stringify(base);
      const msgs = (base.messages as unknown[]).length;
      for (let i = 0; i < msgs; i++) {
        for (const k of keys) {
          for (const v of values) {
            // A fresh copy each time, through JSON.parse as validate reads lines (an own "__proto__" key stays one).
            const copy = JSON.parse(text) as { messages: Record<string, unknown>[] };
            const m = copy.messages[i]!;
            if (v === undefined) delete m[k];
            else Object.defineProperty(m, k, { value: v, enumerable: true, writable: true, configurable: true });
            agree(copy, `messages[${i}].${k} = ${JSON.stringify(v)}`);
            agree(JSON.parse(JSON.stringify(copy)) as unknown, `re-parsed messages[${i}].${k} = ${JSON.stringify(v)}`);
          }
        }
      }
      for (const v of values) {
        const copy = JSON.parse(text) as Record<string, unknown>;
        if (v === undefined) delete copy.tools;
        else copy.tools = v;
        agree(copy, `tools = ${JSON.stringify(v)}`);
        agree({ ...copy, messages: [v, ...(copy.messages as unknown[])] }, `a message that is ${JSON.stringify(v)}`);
      }
    }
    // A sparse messages array (not from JSON, but an array all the same).
    const sparse: unknown[] = [];
    sparse[1] = { role: 'assistant', content: 'y' };
    agree({ messages: sparse }, 'sparse');
    expect(checked).toBeGreaterThan(2000);
    expect(accepted).toBeGreaterThan(100);
  });
});

describe('validateFile: errors by line', () => {
  it('reports each error kind on the line where it occurs', async () => {
    const lines = [
      JSON.stringify(example(1)), // 1 ok
      '{"messages": [', // 2 invalid_json
      '[1, 2]', // 3 data_type
      '{"messages": []}', // 4 missing_messages_list
      JSON.stringify({ messages: [{ content: 'x' }, { role: 'assistant', content: 'y' }] }), // 5
      JSON.stringify({ messages: [{ role: 'user', content: 'x', id: 3 }, { role: 'assistant', content: 'y' }] }), // 6
      JSON.stringify({ messages: [{ role: 'bot', content: 'x' }, { role: 'assistant', content: 'y' }] }), // 7
      JSON.stringify({ messages: [{ role: 'user', content: '' }, { role: 'assistant', content: 'y' }] }), // 8
      JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }), // 9
      JSON.stringify({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y', weight: 2 }] }), // 10
      '', // 11 blank
      JSON.stringify(example(2)), // 12 ok
    ];
    const r = await validateFile(writeLines(lines));
    expect(r.errors.map((e) => [e.line, e.kind])).toEqual([
      [2, 'invalid_json'],
      [3, 'data_type'],
      [4, 'missing_messages_list'],
      [5, 'message_missing_key'],
      [6, 'message_unrecognized_key'],
      [7, 'unrecognized_role'],
      [8, 'missing_content'],
      [9, 'example_missing_assistant_message'],
      [10, 'invalid_weight'],
      [11, 'data_type'],
    ]);
    expect(r.errors.find((e) => e.line === 7)?.message).toBe(
      'messages[0].role: expected one of system|user|assistant|tool|function, got "bot"',
    );
    expect(r.errors.find((e) => e.line === 11)?.message).toMatch(/blank line/);
    expect(r.valid).toBe(false);
    expect(r.error_count).toBe(10);
    expect(r.examples).toBe(11); // every non-blank line
    // Only the two valid examples are counted.
    const tok = getTokenizer('o200k_base');
    const expected = [example(1), example(2)].map((e) => countExampleTokens((e as { messages: ChatMessageLike[] }).messages, tok).total);
    expect(r.tokens.total).toBe(expected[0] + expected[1]);
  });

  it('reports a line that is not UTF-8 as invalid_json', async () => {
    const path = join(dir, 'latin1.jsonl');
    const good = Buffer.from(`${JSON.stringify(example(1))}\n`);
    const bad = Buffer.concat([Buffer.from('{"messages": [{"role": "user", "content": "caf'), Buffer.from([0xe9]), Buffer.from('"}]}\n')]);
    writeFileSync(path, Buffer.concat([good, bad]));
    const r = await validateFile(path);
    expect(r.errors).toEqual([{ line: 2, kind: 'invalid_json', message: 'line is not valid UTF-8' }]);
  });

  it('handles a UTF-8 BOM and CRLF line ends like plain LF', async () => {
    const examples = Array.from({ length: 12 }, (_, i) => example(i, { system: 'Be kind.' }));
    const lf = await validateFile(writeLines(asLines(examples)));
    const crlf = await validateFile(writeLines(asLines(examples), { eol: '\r\n', bom: true }));
    expect(crlf.valid).toBe(true);
    expect(crlf.errors).toEqual([]);
    expect(crlf.examples).toBe(12);
    expect(crlf.tokens).toEqual(lf.tokens);
    expect(crlf.cost).toEqual(lf.cost);
  });

  it('lists at most MAX_LISTED_ERRORS errors but counts them all', async () => {
    const lines = Array.from({ length: MAX_LISTED_ERRORS + 5 }, () => '{"messages": []}');
    const r = await validateFile(writeLines(lines));
    expect(r.errors).toHaveLength(MAX_LISTED_ERRORS);
    expect(r.error_count).toBe(MAX_LISTED_ERRORS + 5);
    expect(r.warnings.some((w) => w.includes(`${MAX_LISTED_ERRORS + 5} errors`))).toBe(true);
    // The human summary does not send the reader to --json for errors it does not list either.
    expect(formatValidateReport(r)).toContain(`more (--json lists the first ${MAX_LISTED_ERRORS.toLocaleString('en-US')})`);
  });

  it('reads gzip-compressed files', async () => {
    const examples = Array.from({ length: 10 }, (_, i) => example(i));
    const path = join(dir, 'train.jsonl.gz');
    writeFileSync(path, gzipSync(asLines(examples).join('\n') + '\n'));
    const plain = await validateFile(writeLines(asLines(examples)));
    const r = await validateFile(path);
    expect(r.valid).toBe(true);
    expect(r.tokens).toEqual(plain.tokens);
  });
});

describe('validateFile: tokens, cost and model', () => {
  it('sums countExampleTokens over a valid file and prices it from the table', async () => {
    const examples = Array.from({ length: 40 }, (_, i) =>
      example(i, { system: i % 2 ? 'You are Acme support.' : '', answer: `Sure. ${'Details follow. '.repeat(i)}` }),
    );
    const r: ValidateReport = await validateFile(writeLines(asLines(examples)), { model: 'gpt-4o-mini-2024-07-18' });
    const tok = getTokenizer('o200k_base');
    const counted = examples.map((e) => countExampleTokens((e as { messages: ChatMessageLike[] }).messages, tok));
    const totals = counted.map((c) => c.total);
    const stats = tokenStats(totals);
    const sum = totals.reduce((a, b) => a + b, 0);
    expect(r.valid).toBe(true);
    expect(r.warnings).toEqual([]);
    expect(r.tokens).toEqual({ ...stats, assistant: counted.reduce((a, c) => a + c.assistant, 0), over_limit: 0 });
    expect(r.tokens.total).toBe(sum);
    expect(r.cost).toEqual({
      currency: 'USD',
      n_epochs: 3,
      epochs_source: 'auto',
      billing_tokens: sum,
      estimated_usd: Math.round(sum * 3 * 3) / 1e6,
    });
    expect(r.model).toEqual({
      name: 'gpt-4o-mini-2024-07-18',
      encoding: 'o200k_base',
      max_tokens_per_example: 65536,
      price_per_1m_training_tokens: 3,
    });
  });

  it('defaults to gpt-4o-mini-2024-07-18 and counts cl100k_base for a gpt-3.5 model', async () => {
    const path = writeLines(asLines(Array.from({ length: 10 }, (_, i) => example(i))));
    const byDefault = await validateFile(path);
    expect(byDefault.model.name).toBe('gpt-4o-mini-2024-07-18');
    const turbo = await validateFile(path, { model: 'gpt-3.5-turbo-0125' });
    expect(turbo.model).toEqual({ name: 'gpt-3.5-turbo-0125', encoding: 'cl100k_base', max_tokens_per_example: 16385, price_per_1m_training_tokens: 8 });
    const cl = getTokenizer('cl100k_base');
    const expected = Array.from({ length: 10 }, (_, i) => countExampleTokens((example(i) as { messages: ChatMessageLike[] }).messages, cl).total);
    expect(turbo.tokens.total).toBe(expected.reduce((a, b) => a + b, 0));
  });

  for (const n of [1, 33, 34, 8333, 8334]) {
    it(`uses auto epochs and prices billing tokens at n = ${n}`, async () => {
      const r = await validateFile(writeLines(asLines(Array.from({ length: n }, (_, i) => example(i)))));
      expect(r.examples).toBe(n);
      expect(r.cost.n_epochs).toBe(autoEpochs(n));
      expect(r.cost.n_epochs).toBe({ 1: 25, 33: 3, 34: 3, 8333: 3, 8334: 2 }[n]);
      expect(r.cost.billing_tokens).toBe(r.tokens.total);
      expect(r.cost.estimated_usd).toBe(estimateCostUsd(r.tokens.total, r.cost.n_epochs, 3));
      expect(r.cost.estimated_usd).toBeCloseTo((r.tokens.total * r.cost.n_epochs * 3) / 1e6, 6);
    });
  }

  it('caps billing at the model limit and warns about examples over it', async () => {
    const long = example(1, { answer: 'word '.repeat(5000) }); // > 4096 tokens
    const lines = asLines([long, ...Array.from({ length: 10 }, (_, i) => example(i + 2))]);
    const r = await validateFile(writeLines(lines), { model: 'davinci-002' });
    const cl = getTokenizer('cl100k_base');
    const longTokens = countExampleTokens((long as { messages: ChatMessageLike[] }).messages, cl).total;
    expect(longTokens).toBeGreaterThan(4096);
    expect(r.tokens.over_limit).toBe(1);
    expect(r.tokens.max).toBe(longTokens);
    expect(r.cost.billing_tokens).toBe(r.tokens.total - longTokens + 4096);
    expect(r.cost.estimated_usd).toBe(estimateCostUsd(r.cost.billing_tokens, autoEpochs(11), 6));
    expect(r.warnings).toEqual([
      "1 example exceeds davinci-002's limit of 4096 tokens per example and will be truncated in training (line 1).",
    ]);
    expect(r.valid).toBe(true);
  });
});

describe('validateFile: warnings', () => {
  it('warns about examples without a system or user message, with their lines', async () => {
    const noPrompt = { messages: [{ role: 'assistant', content: 'Unprompted.' }] };
    const lines = asLines([example(1), noPrompt, ...Array.from({ length: 9 }, (_, i) => example(i + 2)), noPrompt]);
    // Make the two prompt-less examples distinct so the duplicate warning stays out of this test.
    lines[11] = JSON.stringify({ messages: [{ role: 'assistant', content: 'Also unprompted.' }] });
    const r = await validateFile(writeLines(lines));
    expect(r.valid).toBe(true);
    expect(r.warnings).toEqual(['2 examples have no system or user message (lines 2, 12).']);
  });

  it('warns about fewer than 10 examples', async () => {
    const r = await validateFile(writeLines(asLines([example(1), example(2), example(3)])));
    expect(r.warnings).toEqual(['Only 3 valid examples: OpenAI requires at least 10 training examples.']);
    const ten = await validateFile(writeLines(asLines(Array.from({ length: 10 }, (_, i) => example(i)))));
    expect(ten.warnings).toEqual([]);
  });

  it('warns about exact duplicates, whatever their key order', async () => {
    const a = example(1);
    const reordered = JSON.stringify({ messages: [{ content: 'Question number 1: where is my order?', role: 'user' }, { content: 'Answer 1: it ships tomorrow.', role: 'assistant' }] });
    const lines = [...asLines(Array.from({ length: 10 }, (_, i) => example(i + 1))), JSON.stringify(a), reordered];
    const r = await validateFile(writeLines(lines));
    expect(r.warnings).toEqual(['2 examples are exact duplicates of an earlier one (line 11 repeats line 1, line 12 repeats line 1).']);
  });

  it('passes on the model table warning and prices with null when unknown', async () => {
    const r = await validateFile(writeLines(asLines(Array.from({ length: 10 }, (_, i) => example(i)))), { model: 'gpt-4-0613' });
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toContain('not in the price and limit table');
    expect(r.cost.estimated_usd).toBeNull();
    expect(r.model.max_tokens_per_example).toBeNull();
    expect(r.tokens.over_limit).toBe(0);
    const priced = await validateFile(writeLines(asLines(Array.from({ length: 10 }, (_, i) => example(i)))), { model: 'gpt-4-0613', pricePer1M: 10 });
    expect(priced.cost.estimated_usd).toBe(estimateCostUsd(priced.cost.billing_tokens, autoEpochs(10), 10));
  });

  it('warns about files over 512 MB', () => {
    expect(fileSizeWarning(512 * 1024 * 1024)).toBeNull();
    expect(fileSizeWarning(600 * 1024 * 1024)).toBe('The file is 600.0 MB: OpenAI accepts training files up to 512 MB.');
  });
});

describe('formatValidateReport', () => {
  it('summarises a failing file with its errors and warnings', async () => {
    const lines = [JSON.stringify(example(1)), '{"messages": []}', 'nope'];
    const r = await validateFile(writeLines(lines));
    const text = formatValidateReport(r);
    const rows = text.split('\n');
    expect(rows[1]).toBe('valid      no (2 errors)');
    expect(rows[2]).toBe('examples   3');
    expect(text).toContain('line 2: missing_messages_list: messages: expected a non-empty array of messages, got an empty array');
    expect(text).toContain('line 3: invalid_json: ');
    expect(text).toContain('  - Only 1 valid example: OpenAI requires at least 10 training examples.');
    // Labels share one column.
    for (const row of rows.slice(0, 7)) expect(row.charAt(11)).not.toBe(' ');
  });

  it('shows the estimated cost of a valid file', async () => {
    const r = await validateFile(writeLines(asLines(Array.from({ length: 12 }, (_, i) => example(i)))));
    const text = formatValidateReport(r);
    expect(text).toContain('valid      yes');
    expect(text).toContain(`$${r.cost.estimated_usd!.toFixed(4)}`);
    expect(text).toContain(`${r.cost.n_epochs} epochs`);
    expect(text).not.toContain('errors');
  });
});
