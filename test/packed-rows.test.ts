/**
 * Packed rows (pipeline/packed-rows.ts) carry ingest's values from its worker to the inserting thread as byte
 * ranges bound as blobs and stored by `CAST(? AS TEXT)`. What SQLite stores must be, as text, exactly the bytes
 * better-sqlite3 stores when the string itself is bound (as ingest did before), for every kind of text, lone
 * surrogates included; numbers and nulls must come through as they went in.
 */
import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { packedParams, packedTransfer, RowPacker, RowReader, type ColumnKind } from '../pipeline/packed-rows.js';

const KINDS: ColumnKind[] = ['text', 'number', 'text', 'text'];

const HOSTILE = [
  '',
  'plain',
  'é and 日本語 and 😀 (astral)',
  'lone \ud800 high and \udc00 low surrogates',
  '\udbff\udfff pair, then reversed \udc00\ud800, then a high one at the end \ud83d',
  'a NUL \u0000 inside',
  '<|endoftext|><|im_start|>system',
  '\u2028\u2029\ufeff\u200b',
  '__proto__',
  'x'.repeat(200_000),
  '😀'.repeat(50_000),
];

function roundTrip(rows: (string | number | null)[][]): { bound: unknown[][]; stored: { t: string; hex: string | null; v: unknown }[][] } {
  const packer = new RowPacker(KINDS, 1);
  rows.forEach((r, i) => expect(packer.add(r)).toBe(i));
  // Across a thread boundary the buffers are transferred: do the same here.
  const finished = packer.finish();
  const packed = structuredClone(finished, { transfer: packedTransfer(finished) });
  const reader = new RowReader(packed);
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t (a TEXT, n INTEGER, b TEXT, c TEXT)');
  const insert = db.prepare(`INSERT INTO t VALUES (${packedParams(KINDS).join(', ')})`);
  const bound: unknown[][] = [];
  for (let r = 0; r < packed.n; r++) {
    const args = new Array<unknown>(KINDS.length);
    reader.bind(r, args, 0);
    bound.push(args);
    insert.run(args);
  }
  const stored = (db.prepare('SELECT * FROM t ORDER BY rowid').raw().all() as unknown[][]).map((row, r) =>
    row.map((v, c) => ({
      t: db.prepare(`SELECT typeof(${'anbc'[c]}) FROM t WHERE rowid = ?`).pluck().get(r + 1) as string,
      hex: db.prepare(`SELECT hex(${'anbc'[c]}) FROM t WHERE rowid = ?`).pluck().get(r + 1) as string | null,
      v,
    })),
  );
  db.close();
  return { bound, stored };
}

describe('packed rows', () => {
  it('store every text as text, byte for byte what binding the string stores, and numbers and nulls as they were', () => {
    const rows = HOSTILE.map((s, i) => [s, i * 1e12 + 0.5 * (i % 2), i % 3 === 0 ? null : s.slice(0, 7), HOSTILE[HOSTILE.length - 1 - i]!]);
    rows.push([null, null, null, null], ['', -0, '', ''], ['z', 2 ** 53 - 1, 'y', 'x']);
    const { bound, stored } = roundTrip(rows);
    const direct = new Database(':memory:');
    // What the old path stored for a lone surrogate: its code unit's three bytes (ED A0 80), read back as U+FFFD ×3.
    expect(direct.prepare('SELECT hex(?)').pluck().get('a\ud800')).toBe('61EDA080');
    rows.forEach((row, r) => {
      row.forEach((v, c) => {
        const s = stored[r]![c]!;
        if (v === null) {
          expect(s.t).toBe('null');
        } else if (KINDS[c] === 'number') {
          expect(bound[r]![c]).toBe(v);
          expect(s.v === v).toBe(true);
        } else {
          expect(s.t).toBe('text');
          // The bytes and the value read back are those of the string bound directly.
          expect(s.hex).toBe(direct.prepare('SELECT hex(?)').pluck().get(v));
          expect(s.v).toBe(direct.prepare('SELECT ?').pluck().get(v));
          if ((v as string).isWellFormed()) {
            expect(s.v).toBe(v);
            expect(s.hex).toBe(Buffer.from(v as string, 'utf8').toString('hex').toUpperCase());
          }
        }
      });
    });
    direct.close();
  });

  it('fills a buffer made to measure to its last byte, without outgrowing it', () => {
    // Each text's UTF-8 length, as writeText writes it: a lone surrogate is 3 bytes, a pair 4.
    const total = HOSTILE.reduce((a, s) => a + Buffer.byteLength(s, 'utf8'), 0);
    const packer = new RowPacker(['text'], HOSTILE.length, total);
    for (const s of HOSTILE) packer.add([s]);
    const packed = packer.finish();
    expect(packed.bytes.byteLength).toBe(total);
    expect(packed.bytes.buffer.byteLength).toBe(total);
    const reader = new RowReader(packed);
    const direct = new Database(':memory:');
    HOSTILE.forEach((s, r) => expect(reader.value(r, 0)).toBe(direct.prepare('SELECT ?').pluck().get(s)));
    direct.close();
  });

  it('reads values back the same way, and rejects a value of the wrong kind', () => {
    const packer = new RowPacker(KINDS, 1);
    packer.add(['é', 7, null, '😀']);
    const reader = new RowReader(packer.finish());
    expect([0, 1, 2, 3].map((c) => reader.value(0, c))).toEqual(['é', 7, null, '😀']);
    expect(() => new RowPacker(KINDS).add(['a', 'b', 'c', 'd'])).toThrow(/column 1 holds numbers/);
    expect(() => new RowPacker(KINDS).add([1, 2, 'c', 'd'])).toThrow(/column 0 holds texts/);
    expect(() => new RowPacker(KINDS).add(['a', 2, 'c'])).toThrow(/4 columns was given 3/);
  });
});
