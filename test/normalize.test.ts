import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { hashText, key53, normalizeText, SeededUnits, seededUnit } from '../pipeline/normalize.js';
import { mulberry32 } from '../data/random.js';

/** Reference FNV-1a 64 with BigInt over TextEncoder's UTF-8, to check the split 32-bit arithmetic. */
function fnv1a64Reference(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(s)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

/** key53's definition, computed the slow way: SHA-1 over TextEncoder's UTF-8, the low 53 bits of its first 8 bytes. */
function key53Reference(s: string): number {
  const d = createHash('sha1').update(new TextEncoder().encode(s)).digest();
  return Number(d.readBigUInt64BE(0) & 0x1fffffffffffffn);
}

describe('normalizeText', () => {
  it('lower-cases ASCII and collapses whitespace runs to one space, trimmed', () => {
    expect(normalizeText('  Hello\t\tWORLD \r\n how  ARE you\f')).toBe('hello world how are you');
    expect(normalizeText('')).toBe('');
    expect(normalizeText(' \n\t ')).toBe('');
  });

  it('treats Unicode whitespace and zero-width space as word separators', () => {
    expect(normalizeText('a\u00a0b\u2003c\u3000d\u2028e\u200bf\u1680g\ufeffh')).toBe('a b c d e f g h');
  });

  it('applies NFKC: ligatures, fullwidth forms, compatibility signs and composed/decomposed accents agree', () => {
    expect(normalizeText('\ufb01le')).toBe('file');
    expect(normalizeText('ＡＢＣ　１２３')).toBe('abc 123');
    expect(normalizeText('\u212a')).toBe('k'); // Kelvin sign
    expect(normalizeText('A\u030angstr\u00f6m')).toBe(normalizeText('\u00c5ngstro\u0308m'));
    expect(normalizeText('Caf\u00e9')).toBe(normalizeText('CAFE\u0301'));
  });

  it('case-folds beyond toLowerCase: sharp s and final sigma', () => {
    expect(normalizeText('STRASSE')).toBe('strasse');
    expect(normalizeText('Straße')).toBe('strasse');
    expect(normalizeText('STRAẞE')).toBe('strasse');
    expect(normalizeText('ΟΔΟΣ')).toBe(normalizeText('οδος'));
    expect(normalizeText('ΟΔΟΣ')).toBe('οδοσ');
  });

  it('is locale-independent for the Turkish dotted capital I', () => {
    expect(normalizeText('İstanbul')).toBe('i\u0307stanbul');
  });

  it('drops soft hyphens and word joiners, which only change where a line may break', () => {
    expect(normalizeText('co\u00adoperate wi\u2060th')).toBe('cooperate with');
  });

  it('is idempotent', () => {
    const samples = [
      'Straße ΟΔΟΣ İstanbul \ufb03 ＡＢＣ',
      '  mixed\u00a0\u00a0SPACE\u200b\u200btext ',
      'ǅemal ǈ ǋ Ω Å ℌ ① ㍿',
      'emoji 👍🏽 and lone \ud800 surrogate',
    ];
    for (const s of samples) {
      const once = normalizeText(s);
      expect(normalizeText(once)).toBe(once);
    }
  });

  it('gives the same result on the ASCII fast path as on the full Unicode path', () => {
    const rand = mulberry32(7);
    const alphabet = 'abcXYZ09 \t\n\r\v\f.,!?-_\x1f';
    for (let i = 0; i < 500; i++) {
      let s = '';
      const len = Math.floor(rand() * 30);
      for (let j = 0; j < len; j++) s += alphabet[Math.floor(rand() * alphabet.length)];
      // Appending 'É' forces the Unicode path; appending 'E' keeps the fast path. Both fold to one letter.
      expect(normalizeText(s + 'É')).toBe(normalizeText(s + 'E').slice(0, -1) + 'é');
    }
  });
});

describe('hashText', () => {
  it('is FNV-1a 64 over UTF-8: the published test vectors', () => {
    expect(hashText('')).toBe('cbf29ce484222325');
    expect(hashText('a')).toBe('af63dc4c8601ec8c');
    expect(hashText('foobar')).toBe('85944171f73967e8');
  });

  it('matches a BigInt reference on multi-byte text, astral characters and lone surrogates', () => {
    const samples = ['café', 'straße οδοσ', '日本語のテキスト', 'emoji 👍🏽 ok', 'lone \ud800 high', 'lone \udc00 low', '\u0800\uffff'];
    for (const s of samples) expect(hashText(s)).toBe(fnv1a64Reference(s));
    const rand = mulberry32(11);
    for (let i = 0; i < 200; i++) {
      let s = '';
      for (let j = 0; j < 20; j++) s += String.fromCharCode(Math.floor(rand() * 0x10000));
      expect(hashText(s)).toBe(fnv1a64Reference(s));
    }
  });

  it('gives distinct keys to distinct texts across a large sample', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) seen.add(hashText(`prompt number ${i}`));
    expect(seen.size).toBe(100_000);
  });
});

describe('key53', () => {
  it('is the low 53 bits of the first 8 bytes of SHA-1 over UTF-8, lone surrogates as U+FFFD', () => {
    const samples = ['', 'a', 'café', 'straße οδοσ', '日本語のテキスト', 'emoji 👍🏽 ok', 'lone \ud800 high', 'lone \udc00 low', '\u0800\uffff', 'x'.repeat(100_000)];
    for (const s of samples) expect(key53(s), JSON.stringify(s.slice(0, 20))).toBe(key53Reference(s));
    const rand = mulberry32(12);
    for (let i = 0; i < 2_000; i++) {
      let s = '';
      const n = Math.floor(rand() * 40);
      // Every byte value must come through, so half the texts are Latin-1 and half any UTF-16 unit.
      const span = i % 2 === 0 ? 0x100 : 0x10000;
      for (let j = 0; j < n; j++) s += String.fromCharCode(Math.floor(rand() * span));
      expect(key53(s)).toBe(key53Reference(s));
    }
  });
});

describe('seededUnit', () => {
  it('is deterministic and lies in [0, 1)', () => {
    for (let i = 0; i < 1000; i++) {
      const u = seededUnit(42, `conv-${i}`);
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      expect(seededUnit(42, `conv-${i}`)).toBe(u);
    }
  });

  it('gives pinned values, so a split decided tonight is the same on any machine and in any later version', () => {
    expect(seededUnit(0, 'a')).toBe(0.21075136526929328);
    expect(seededUnit(42, 'conv-1')).toBe(0.1853997122743697);
    expect(seededUnit(7, 'user:ü')).toBe(0.9977568579866638);
  });

  it('is uniform: chi-square over 100 buckets for sequential keys stays within the 99.9% bound', () => {
    const buckets = new Array<number>(100).fill(0);
    const n = 100_000;
    for (let i = 0; i < n; i++) buckets[Math.floor(seededUnit(42, `conv-${i}`) * 100)]++;
    const expected = n / 100;
    const chi2 = buckets.reduce((acc, c) => acc + (c - expected) ** 2 / expected, 0);
    // 99 degrees of freedom: the 99.9th percentile is 148.2.
    expect(chi2).toBeLessThan(148.2);
  });

  it('SeededUnits gives seededUnit of prefix + key, for string keys and for 64-bit keys as hex', () => {
    const keys = ['', 'a', 'conv-1', 'user:ü', '日本語 🙂', 'lone \ud800', '__proto__', 'x'.repeat(1000)];
    for (const seed of [0, 7, 42, -3, 1.5, 2 ** 40]) {
      for (const prefix of ['', 'p:', 'g:', 'rebalance:']) {
        const units = new SeededUnits(seed, prefix);
        for (const k of keys) expect(units.of(k), `${seed} ${prefix} ${k}`).toBe(seededUnit(seed, prefix + k));
        // Interleaved with other hashing: the prefix state is restored each time, not carried on.
        for (let i = 0; i < 200; i++) {
          const hi = (Math.imul(i + 1, 0x9e3779b1) ^ (seed | 0)) >>> 0;
          const lo = Math.imul(i + 7, 0x85ebca6b) >>> 0;
          const text = hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
          hashText(text);
          expect(units.hex(hi, lo), text).toBe(seededUnit(seed, prefix + text));
        }
        expect(units.hex(0, 0)).toBe(seededUnit(seed, `${prefix}0000000000000000`));
        expect(units.hex(0xffffffff, 0xffffffff)).toBe(seededUnit(seed, `${prefix}ffffffffffffffff`));
      }
    }
    expect(() => new SeededUnits(Number.NaN, 'p:')).toThrow(RangeError);
  });

  it('decides a 10% test split independently for different seeds', () => {
    const n = 100_000;
    let a = 0;
    let b = 0;
    let both = 0;
    for (let i = 0; i < n; i++) {
      const inA = seededUnit(1, `user-${i}`) < 0.1;
      const inB = seededUnit(2, `user-${i}`) < 0.1;
      if (inA) a++;
      if (inB) b++;
      if (inA && inB) both++;
    }
    // Each ≈ 10% (sd 0.095%); overlap ≈ 1% (sd 0.031%) as for independent draws.
    expect(Math.abs(a / n - 0.1)).toBeLessThan(0.004);
    expect(Math.abs(b / n - 0.1)).toBeLessThan(0.004);
    expect(Math.abs(both / n - 0.01)).toBeLessThan(0.0015);
  });

  it('separates the seed from the key and rejects non-finite seeds', () => {
    expect(seededUnit(1, '23')).not.toBe(seededUnit(12, '3'));
    expect(seededUnit(0, '')).not.toBe(seededUnit(1, ''));
    expect(() => seededUnit(Number.NaN, 'x')).toThrow(RangeError);
  });
});

describe('hash53', () => {
  it('is the low 53 bits of hashText, as a number', async () => {
    const { hash53, hashText } = await import('../pipeline/normalize.js');
    for (const s of ['', 'a', 'hello world', 'naïve café ☕', 'x'.repeat(10_000), '\uD83D\uDE00 emoji']) {
      const full = BigInt(`0x${hashText(s)}`);
      expect(hash53(s)).toBe(Number(full & ((1n << 53n) - 1n)));
      expect(Number.isSafeInteger(hash53(s))).toBe(true);
    }
  });
});

describe('whitespace collapsing', () => {
  it('rewriting only the runs that change gives the same text as rewriting every run', async () => {
    const { collapseWhitespaceReference } = await import('../pipeline/normalize.js');
    const { mulberry32 } = await import('../data/random.js');
    const rand = mulberry32(11);
    const pieces = [' ', '  ', '\t', '\n', '\r\n', '\u00a0', '\u200b', '\u3000', '\ufeff', '\u2028', 'a', 'B', 'é', 'ß', '日'];
    for (let i = 0; i < 50_000; i++) {
      let s = '';
      const n = Math.floor(rand() * 10);
      for (let j = 0; j < n; j++) s += pieces[Math.floor(rand() * pieces.length)];
      // normalizeText as it was before the faster collapsing, step by step.
      let expected: string;
      if (/^[\x00-\x7f]*$/.test(s)) expected = collapseWhitespaceReference(s.toLowerCase());
      else {
        const nfkc = s.normalize('NFKC');
        let folded = nfkc.toLowerCase();
        if (/[ßς]/.test(folded)) folded = folded.replace(/ß/g, 'ss').replace(/ς/g, 'σ');
        if (folded !== nfkc) folded = folded.normalize('NFKC');
        expected = collapseWhitespaceReference(folded.replace(/[\u00ad\u2060]/g, ''));
      }
      expect(normalizeText(s), JSON.stringify(s)).toBe(expected);
    }
  });
});
