import { isUtf8 } from 'node:buffer';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Utf8Check } from '../pipeline/lines.js';

/** Streams `bytes` through a Utf8Check in chunks of `size` bytes and returns the offsets it noted, and what came out. */
async function check(bytes: Buffer, size: number): Promise<{ bad: number[]; out: Buffer }> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  const c = new Utf8Check();
  const out: Buffer[] = [];
  for await (const b of Readable.from(chunks).pipe(c) as AsyncIterable<Buffer>) out.push(b);
  return { bad: c.bad, out: Buffer.concat(out) };
}

describe('Utf8Check', () => {
  const cases: [string, Buffer, number[]][] = [
    ['ASCII', Buffer.from('plain text\n'), []],
    ['two-, three- and four-byte characters', Buffer.from('é € 😀 ok'), []],
    ['a Latin-1 byte', Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2c]), [3]],
    ['a lone continuation byte', Buffer.from([0x61, 0x80, 0x62]), [1]],
    ['an overlong form and a surrogate', Buffer.from([0xc0, 0xaf, 0x20, 0xed, 0xa0, 0x80]), [0, 1, 3, 4, 5]],
    ['above U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80]), [0, 1, 2, 3]],
    ['a character cut by the end', Buffer.from([0x61, 0xe2, 0x82]), [1, 2]],
  ];
  for (const [what, bytes, bad] of cases) {
    it(`${what}: the same offsets whatever the chunk size, and the bytes pass through unchanged`, async () => {
      for (const size of [1, 2, 3, 5, 1024]) {
        const r = await check(bytes, size);
        expect(r.bad, `chunks of ${size}`).toEqual(bad);
        expect(r.out.equals(bytes)).toBe(true);
      }
      expect(bad.length === 0).toBe(isUtf8(bytes));
    });
  }

  it('badIn finds an offset in a range, ranges asked in order', async () => {
    const c = new Utf8Check();
    c.bad.push(5, 9);
    expect(c.badIn(0, 5)).toBe(-1);
    expect(c.badIn(5, 8)).toBe(5);
    expect(c.badIn(8, 12)).toBe(9);
    expect(c.badIn(12, 20)).toBe(-1);
  });
});
