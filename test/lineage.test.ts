/**
 * lineage.jsonl's lines are assembled as bytes (pipeline/lineage.ts); each must be exactly the compact JSON of its
 * record as jsonLine writes it, whatever the id, file name or reason holds.
 */
import { describe, expect, it } from 'vitest';
import { jsonLine } from '../pipeline/canonical.js';
import { jsonBytes, LineageWriter } from '../pipeline/lineage.js';

const HOSTILE = [
  'plain-id-123',
  '',
  'with "quotes" and \\ backslash',
  'only a back\\slash',
  'tab\tnew\nline\r\u0000nul\u001f',
  'del\u007f and naïve 日本語 🙂',
  'breaks \u2028 \u2029 \u0085',
  'lone \ud800 high and \udc00 low',
  '__proto__',
  '<|endoftext|>',
  'x'.repeat(200_000),
  '"'.repeat(30_000),
  '日'.repeat(70_000),
];

type Row = { id: string; status: 'train' | 'test' | 'dropped'; stage: string | null; reason: string | null; line: number | null; source: { file: string; line: number } };

function expected(rows: Row[]): string {
  return rows.map((r) => `${jsonLine({ id: r.id, status: r.status, stage: r.stage, reason: r.reason, line: r.line, source: r.source })}\n`).join('');
}

/** A writer whose sink keeps a copy of each flush (the writer reuses its buffer). */
function capturing(): { w: LineageWriter; captured: Buffer[] } {
  const captured: Buffer[] = [];
  return { w: new LineageWriter((b) => captured.push(Buffer.from(b))), captured };
}

function written(rows: Row[]): string {
  const { w, captured } = capturing();
  for (const r of rows) {
    const file = jsonBytes(r.source.file);
    // Lines larger than the buffer make it flush and grow.
    if (r.status === 'dropped') w.dropped(r.id, jsonBytes(r.stage), jsonBytes(r.reason), file, r.source.line);
    else w.kept(r.id, r.status === 'test', r.line ?? 0, file, r.source.line);
  }
  w.flush();
  return Buffer.concat(captured).toString('utf8');
}

describe('LineageWriter', () => {
  it('writes each line exactly as jsonLine of its record, for hostile ids, files and reasons', () => {
    const rows: Row[] = [];
    HOSTILE.forEach((s, k) => {
      rows.push({ id: s, status: 'train', stage: null, reason: null, line: k + 1, source: { file: HOSTILE[(k + 3) % HOSTILE.length]!, line: k + 1 } });
      rows.push({ id: s, status: 'test', stage: null, reason: null, line: null, source: { file: 'f.jsonl', line: 10 ** k } });
      rows.push({ id: s, status: 'dropped', stage: 'dedupe', reason: `duplicate_of:${HOSTILE[(k + 1) % HOSTILE.length]!}`, line: null, source: { file: s, line: 9_007_199_254_740_991 } });
      rows.push({ id: s, status: 'dropped', stage: null, reason: s, line: null, source: { file: '', line: 0 } });
    });
    const got = written(rows);
    expect(got).toBe(expected(rows));
    expect(got.split('\n')).toHaveLength(rows.length + 1);
  });

  it('flushes a megabyte at a time and keeps the lines in order', () => {
    const { w, captured } = capturing();
    const rows: Row[] = [];
    for (let k = 0; k < 20_000; k++) {
      const id = k % 7 === 0 ? `ü-${k}` : `id-${k}`;
      const row: Row =
        k % 3 === 0
          ? { id, status: 'dropped', stage: 'filter', reason: 'no_feedback', line: null, source: { file: 'a.jsonl', line: k + 1 } }
          : { id, status: k % 3 === 1 ? 'train' : 'test', stage: null, reason: null, line: k, source: { file: 'b "x".jsonl', line: k + 1 } };
      rows.push(row);
      const file = jsonBytes(row.source.file);
      if (row.status === 'dropped') w.dropped(id, jsonBytes('filter'), jsonBytes('no_feedback'), file, k + 1);
      else w.kept(id, row.status === 'test', k, file, k + 1);
    }
    w.flush();
    expect(captured.length).toBeGreaterThan(1);
    expect(Buffer.concat(captured).toString('utf8')).toBe(expected(rows));
  });
});
