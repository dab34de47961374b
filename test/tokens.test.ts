import { describe, expect, it } from 'vitest';
import { Tiktoken } from 'js-tiktoken/lite';
import cl100kRanks from 'js-tiktoken/ranks/cl100k_base';
import o200kRanks from 'js-tiktoken/ranks/o200k_base';
import {
  contentText,
  countExampleTokens,
  getTokenizer,
  splitPieces,
  tokenStats,
  type ChatMessageLike,
} from '../pipeline/tokens.js';
import type { EncodingName } from '../pipeline/models.js';
import { mulberry32 as rng } from '../data/random.js';

const ENCODINGS: readonly EncodingName[] = ['cl100k_base', 'o200k_base'];
const reference: Record<EncodingName, Tiktoken> = {
  cl100k_base: new Tiktoken(cl100kRanks),
  o200k_base: new Tiktoken(o200kRanks),
};
/** js-tiktoken with no special tokens allowed or disallowed: tiktoken's `encode_ordinary`. */
const ordinary = (enc: EncodingName, text: string): number[] => reference[enc].encode(text, [], []);


/*
 * Fragments chosen to hit every branch of both split patterns: contractions in all cases, letter case runs
 * (o200k splits on them), digit runs (split by 3), punctuation followed by newlines or "/", every whitespace
 * shape, marks, non-Latin scripts, emoji sequences and special-token strings. U+0085, U+FEFF and "ſ" are left
 * out here: on those js-tiktoken's JS-regex split differs from tiktoken's (tested separately below).
 */
const FRAGMENTS = [
  'hello', 'Hello', 'HELLO', 'HeLLo', 'world', ' the', ' quick brown fox', 'jumps', 'over',
  "don't", "DON'T", "we're", "They'VE", "I'm", "she'll", "he'd", "it's", "'S", "'re", "''", "o'clock",
  '0', '7', '42', '123', '1234', '1234567', '3.14159', '1,000,000', '2024-07-18', '٣٤٥', '१२३',
  '.', ',', '!', '?', '...', '!!!', '—', '–', '"', '“quoted”', '(', ')', '{', '}', '[]', '<', '>', '/', '//', '::',
  '=>', '!==', '#', '@user', '$5', '€', '%', '^', '&&', '||', '_', '__init__', '`code`', '```', '~/path/to/file.ts',
  ' ', '  ', '   ', '    ', '\t', '\t\t', '\n', '\n\n', '\n\n\n', '\r\n', '\r\n\r\n', ' \n', '\n ', '  \n  ', '\r',
  '\u00a0', '\u3000', '\u2003', '\u200b', '\u2028',
  'café', 'naïve', 'Größe', 'ÉCOLE', 'e\u0301', 'Привет', 'мир', 'ПРИВЕТ', 'Ελληνικά', 'עברית', 'مرحبا', 'हिन्दी',
  'ภาษาไทย', '日本語', 'こんにちは', 'カタカナ', '中文字符', '한국어', 'ǅemal', 'ᾈ',
  '👍', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷', '🎉🎉', '❤️', '\ud83d\ude00', '�',
  '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>',
  '<|endofprompt|>', '<|im_sep|>', '<|', '|>',
  'function f(x) {\n  return x * 2;\n}\n', 'def f(x):\n    return x\n', 'SELECT * FROM t WHERE a = 1;',
  '{"role": "user", "content": "hi"}', 'https://example.com/a/b?c=d&e=f', 'user@example.com',
];

function randomText(rand: () => number, fragments: number): string {
  let s = '';
  for (let i = 0; i < fragments; i++) {
    s += FRAGMENTS[Math.floor(rand() * FRAGMENTS.length)];
    if (rand() < 0.3) s += ' ';
  }
  return s;
}

describe('tokenizer: reference values from OpenAI tiktoken', () => {
  it('encodes "hello world" as tiktoken does in both encodings', () => {
    expect(getTokenizer('cl100k_base').encode('hello world')).toEqual([15339, 1917]);
    expect(getTokenizer('o200k_base').encode('hello world')).toEqual([24912, 2375]);
  });

  // tiktoken's own tests (tests/test_encoding.py): test_simple_regex, test_basic_encode, surrogate pairs.
  it('matches tiktoken test_simple_regex for cl100k_base', () => {
    const cl = getTokenizer('cl100k_base');
    expect(cl.encode('rer')).toEqual([38149]);
    expect(cl.encode("'rer")).toEqual([2351, 81]);
    expect(cl.encode('today\n ')).toEqual([31213, 198, 220]);
    expect(cl.encode('today\n \n')).toEqual([31213, 27907]);
    expect(cl.encode('today\n  \n')).toEqual([31213, 14211]);
  });

  it('treats U+0085 as whitespace, as tiktoken (Rust regex) does and JS \\s does not', () => {
    expect(getTokenizer('cl100k_base').encode(' \x850')).toEqual([220, 126, 227, 15]);
    // js-tiktoken splits this differently, which is why our own split pattern exists.
    expect(ordinary('cl100k_base', ' \x850')).not.toEqual([220, 126, 227, 15]);
  });

  it('encodes surrogate pairs as code points and lone surrogates as U+FFFD', () => {
    const cl = getTokenizer('cl100k_base');
    expect(cl.encode('👍')).toEqual([9468, 239, 235]);
    expect(cl.encode('\ud83d\udc4d')).toEqual([9468, 239, 235]);
    expect(cl.encode('\ud83d')).toEqual(cl.encode('�'));
  });

  it('encodes the empty string as no tokens', () => {
    for (const enc of ENCODINGS) {
      expect(getTokenizer(enc).encode('')).toEqual([]);
      expect(getTokenizer(enc).count('')).toBe(0);
    }
  });
});

describe('tokenizer: split rules where tiktoken and a naive JS regex differ', () => {
  it('splits on Unicode White_Space: U+0085 is whitespace, U+FEFF is not', () => {
    expect(splitPieces('cl100k_base', ' \x850')).toEqual([' ', '\x85', '0']);
    // U+FEFF is a format character, so it opens a punctuation run instead of being a space.
    expect(splitPieces('cl100k_base', 'a\ufeff!')).toEqual(['a', '\ufeff!']);
    expect(splitPieces('o200k_base', 'a\ufeff!')).toEqual(['a', '\ufeff!']);
  });

  it("case-folds contractions like tiktoken's (?i:…), which also matches the long s", () => {
    expect(splitPieces('o200k_base', "don'ſ")).toEqual(["don'ſ"]);
    expect(splitPieces('o200k_base', "DON'T stop")).toEqual(["DON'T", ' stop']);
    expect(splitPieces('cl100k_base', "DON'T")).toEqual(['DON', "'T"]);
  });

  it('groups digits by three and splits letters from digits', () => {
    expect(splitPieces('cl100k_base', 'abc1234567')).toEqual(['abc', '123', '456', '7']);
    expect(splitPieces('o200k_base', 'helloWorld')).toEqual(['hello', 'World']);
  });

  it('keeps trailing whitespace at the end of the text as tiktoken does', () => {
    expect(splitPieces('cl100k_base', 'a  ')).toEqual(['a', '  ']);
    expect(splitPieces('cl100k_base', 'a  b')).toEqual(['a', ' ', ' b']);
    expect(splitPieces('o200k_base', 'x\n\n  y')).toEqual(['x', '\n\n', ' ', ' y']);
  });
});

describe('tokenizer: agreement with js-tiktoken ordinary encoding', () => {
  for (const enc of ENCODINGS) {
    it(`${enc}: equal tokens on a broad generated corpus`, () => {
      const tok = getTokenizer(enc);
      const rand = rng(enc === 'cl100k_base' ? 1 : 2);
      let mismatches = 0;
      let first = '';
      for (let i = 0; i < 3000; i++) {
        const text = randomText(rand, 1 + Math.floor(rand() * 25));
        const ours = tok.encode(text);
        if (ours.join() !== ordinary(enc, text).join() || tok.count(text) !== ours.length) {
          if (mismatches++ === 0) first = text;
        }
      }
      expect(first).toBe('');
      expect(mismatches).toBe(0);
    });

    it(`${enc}: every fragment on its own, twice (the second time from the piece cache)`, () => {
      const tok = getTokenizer(enc);
      for (let round = 0; round < 2; round++) {
        for (const f of FRAGMENTS) expect(tok.encode(f)).toEqual(ordinary(enc, f));
      }
    });

    it(`${enc}: special-token strings are ordinary text, never an error`, () => {
      const tok = getTokenizer(enc);
      const specials = Object.keys(enc === 'cl100k_base' ? cl100kRanks.special_tokens : o200kRanks.special_tokens);
      const text = `${specials.join(' and ')} <|im_start|>user<|im_sep|>hi<|im_end|>`;
      const ids = tok.encode(text);
      const specialIds = new Set(Object.values(enc === 'cl100k_base' ? cl100kRanks.special_tokens : o200kRanks.special_tokens));
      expect(ids.some((id) => specialIds.has(id))).toBe(false);
      expect(ids).toEqual(ordinary(enc, text));
      expect(tok.decode(ids)).toBe(text);
      // js-tiktoken's default encode refuses the same text.
      expect(() => reference[enc].encode(text)).toThrow();
    });

    it(`${enc}: decode(encode(text)) round-trips the corpus`, () => {
      const tok = getTokenizer(enc);
      const rand = rng(7);
      for (let i = 0; i < 300; i++) {
        const text = randomText(rand, 20);
        expect(tok.decode(tok.encode(text))).toBe(text);
      }
    });
  }

  it('returns one cached tokenizer per encoding', () => {
    expect(getTokenizer('o200k_base')).toBe(getTokenizer('o200k_base'));
    expect(getTokenizer('o200k_base')).not.toBe(getTokenizer('cl100k_base'));
    expect(getTokenizer('cl100k_base').encoding).toBe('cl100k_base');
  });
});

describe('tokenizer: long unbroken pieces', () => {
  function randomBase64(rand: () => number, n: number): string {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * 64)];
    return s;
  }
  function randomLower(rand: () => number, n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(97 + Math.floor(rand() * 26));
    return s;
  }

  // Sizes js-tiktoken's quadratic merge still finishes in about a second: the heap merge must agree exactly.
  const MEDIUM: [string, (r: () => number) => string][] = [
    ['4,000 × "a"', () => 'a'.repeat(4000)],
    ['3,000 × "ab"', () => 'ab'.repeat(1500)],
    ['4,000 spaces then a word', () => `${' '.repeat(4000)}word`],
    ['3,000 random lowercase letters', (r) => randomLower(r, 3000)],
    ['5,000 random base64 chars', (r) => randomBase64(r, 5000)],
    ['1,200 × "日"', () => '日'.repeat(1200)],
    ['800 × "👍"', () => '👍'.repeat(800)],
    ['6,000 digits', (r) => Array.from({ length: 6000 }, () => Math.floor(r() * 10)).join('')],
  ];
  for (const enc of ENCODINGS) {
    for (const [name, make] of MEDIUM) {
      it(`${enc}: ${name} equals js-tiktoken`, () => {
        const text = make(rng(11));
        expect(getTokenizer(enc).encode(text)).toEqual(ordinary(enc, text));
      });
    }
  }

  it('agrees with js-tiktoken on pieces either side of the switch from the quadratic to the heap merge', () => {
    const rand = rng(3);
    for (const enc of ENCODINGS) {
      for (let n = 40; n <= 200; n += 3) {
        for (const text of [randomLower(rand, n), 'ab'.repeat(n >> 1), 'z'.repeat(n), `${' '.repeat(n)}x`]) {
          expect(getTokenizer(enc).encode(text)).toEqual(ordinary(enc, text));
        }
      }
    }
  });

  // 200 KB inputs: js-tiktoken would need minutes here; the test timeout is the guard against a quadratic merge.
  const LARGE: [string, (r: () => number) => string][] = [
    ['200 KB of "a"', () => 'a'.repeat(200_000)],
    ['200 KB of random base64', (r) => randomBase64(r, 200_000)],
    ['200 KB of random lowercase letters', (r) => randomLower(r, 200_000)],
    ['200 KB of spaces', () => ' '.repeat(200_000)],
    ['200 KB of newlines', () => '\n'.repeat(200_000)],
    ['200 KB of "!"', () => '!'.repeat(200_000)],
  ];
  for (const enc of ENCODINGS) {
    for (const [name, make] of LARGE) {
      it(`${enc}: ${name} round-trips and counts consistently`, () => {
        const text = make(rng(5));
        const tok = getTokenizer(enc);
        const ids = tok.encode(text);
        expect(tok.count(text)).toBe(ids.length);
        expect(tok.decode(ids)).toBe(text);
        expect(ids.length).toBeGreaterThan(0);
        expect(ids.length).toBeLessThan(text.length);
      });
    }
  }
});

describe('content text', () => {
  it('uses a string as is, joins content parts\' text and treats null as empty', () => {
    expect(contentText('abc')).toBe('abc');
    expect(contentText(null)).toBe('');
    expect(contentText(undefined)).toBe('');
    expect(
      contentText([
        { type: 'text', text: 'hello ' },
        { type: 'image_url' },
        { type: 'text', text: 'world' },
      ]),
    ).toBe('hello world');
  });
});

describe('countExampleTokens (SPEC §5)', () => {
  const cl = getTokenizer('cl100k_base');
  const o2 = getTokenizer('o200k_base');
  const js = (text: string): number => ordinary('cl100k_base', text).length;

  it('role words are single tokens in both encodings (the basis of the hand counts below)', () => {
    for (const tok of [cl, o2]) {
      for (const role of ['system', 'user', 'assistant', 'tool']) expect(tok.count(role)).toBe(1);
    }
    expect(cl.count('Hi!')).toBe(2);
  });

  it('counts an empty example as 3', () => {
    expect(countExampleTokens([], cl)).toEqual({ total: 3, assistant: 0 });
  });

  it('counts a user/assistant pair by hand', () => {
    const messages = [
      { role: 'user', content: 'hello world' },
      { role: 'assistant', content: 'Hi!' },
    ];
    // 3 (example) + [3 + 1 ("user") + 2 ("hello world")] + [3 + 1 ("assistant") + 2 ("Hi" "!")]
    expect(countExampleTokens(messages, cl)).toEqual({ total: 15, assistant: 2 });
  });

  it('adds tok(name) + 1 for a name', () => {
    const base = countExampleTokens([{ role: 'user', content: 'hello world' }], cl).total;
    const named = countExampleTokens([{ role: 'user', name: 'alice', content: 'hello world' }], cl).total;
    expect(named - base).toBe(cl.count('alice') + 1);
    expect(named).toBe(3 + 3 + 1 + 2 + cl.count('alice') + 1);
  });

  it('counts content parts by their concatenated text', () => {
    const parts = countExampleTokens(
      [{ role: 'user', content: [{ type: 'text', text: 'hello ' }, { type: 'image_url' }, { type: 'text', text: 'world' }] }],
      cl,
    );
    expect(parts).toEqual(countExampleTokens([{ role: 'user', content: 'hello world' }], cl));
  });

  it('counts each tool call\'s function name and arguments, and a legacy function_call the same way', () => {
    const args1 = '{"city": "Paris", "unit": "celsius"}';
    const args2 = '{"city": "Lyon"}';
    const withTools: ChatMessageLike[] = [
      { role: 'user', content: 'Weather in Paris and Lyon?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { function: { name: 'get_weather', arguments: args1 } },
          { function: { name: 'get_weather', arguments: args2 } },
        ],
      },
      { role: 'tool', content: '18°C' },
      { role: 'assistant', content: 'Paris is 18°C.' },
    ];
    const expected =
      3 +
      (3 + 1 + js('Weather in Paris and Lyon?')) +
      (3 + 1 + 0 + js('get_weather') + js(args1) + js('get_weather') + js(args2)) +
      (3 + 1 + js('18°C')) +
      (3 + 1 + js('Paris is 18°C.'));
    expect(countExampleTokens(withTools, cl)).toEqual({ total: expected, assistant: js('Paris is 18°C.') });

    const legacy = countExampleTokens(
      [{ role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: args1 } }],
      cl,
    );
    expect(legacy.total).toBe(3 + 3 + 1 + js('get_weather') + js(args1));
    expect(legacy.assistant).toBe(0);
  });

  it('counts arguments logged as an object by their JSON text', () => {
    const asObject = countExampleTokens(
      [{ role: 'assistant', content: null, tool_calls: [{ function: { name: 'f', arguments: { a: 1 } as unknown as string } }] }],
      cl,
    );
    const asString = countExampleTokens([{ role: 'assistant', content: null, tool_calls: [{ function: { name: 'f', arguments: '{"a":1}' } }] }], cl);
    expect(asObject).toEqual(asString);
  });

  it('sums assistant content over all assistant turns only', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'One?' },
      { role: 'assistant', content: 'Uno.' },
      { role: 'user', content: 'Two?' },
      { role: 'assistant', content: 'Dos, <|endoftext|> amigo.' },
    ];
    const r = countExampleTokens(messages, o2);
    expect(r.assistant).toBe(ordinary('o200k_base', 'Uno.').length + ordinary('o200k_base', 'Dos, <|endoftext|> amigo.').length);
    const independent = messages.reduce((n, m) => n + 3 + ordinary('o200k_base', m.role).length + ordinary('o200k_base', m.content).length, 3);
    expect(r.total).toBe(independent);
  });
});

describe('tokenStats', () => {
  it('is all zeros for no examples', () => {
    expect(tokenStats([])).toEqual({ total: 0, min: 0, mean: 0, p50: 0, p95: 0, max: 0 });
  });

  it('uses nearest-rank percentiles on unsorted input', () => {
    const values = Array.from({ length: 20 }, (_, i) => 20 - i); // 20..1
    // p50: ceil(0.5·20) − 1 = index 9 → 10; p95: ceil(0.95·20) − 1 = index 18 → 19
    expect(tokenStats(values)).toEqual({ total: 210, min: 1, mean: 10.5, p50: 10, p95: 19, max: 20 });
  });

  it('rounds the mean to one decimal and takes percentiles from actual values', () => {
    expect(tokenStats([1, 2, 2])).toEqual({ total: 5, min: 1, mean: 1.7, p50: 2, p95: 2, max: 2 });
    expect(tokenStats([7])).toEqual({ total: 7, min: 7, mean: 7, p50: 7, p95: 7, max: 7 });
    // 21 values: p95 index ceil(19.95) − 1 = 19, the second largest.
    const r = tokenStats(Array.from({ length: 21 }, (_, i) => i * 10));
    expect(r.p95).toBe(190);
    expect(r.p50).toBe(100);
  });
});
