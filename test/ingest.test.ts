import { describe, expect, it } from 'vitest';
import { writeFileSync, appendFileSync, readFileSync, copyFileSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { ingest } from '../pipeline/ingest.js';
import { openStore } from '../pipeline/store.js';
import { storeStats } from '../pipeline/stats.js';
import { tempDir, jsonl, cli } from './support/tmp.js';

const dir = tempDir();
let n = 0;
const fresh = () => openStore(join(dir, `s${++n}.db`));
const file = (name: string, text: string | Buffer) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const chat = (id: string | number | undefined, user: string, assistant: string, extra: Record<string, unknown> = {}) => ({
  ...(id === undefined ? {} : { id }),
  messages: [
    { role: 'user', content: user },
    { role: 'assistant', content: assistant },
  ],
  ...extra,
});

describe('ingest: shapes', () => {
  it('ingests chat, request/response, prompt/completion, feedback and CSV, each to the right messages', async () => {
    const store = fresh();
    const p1 = file(
      'shapes.jsonl',
      jsonl([
        chat('c1', 'hi', 'hello', { tools: [{ type: 'function', function: { name: 'f' } }], tags: { product: 'web' } }),
        {
          id: 'r1',
          request: { model: 'gpt-4o', messages: [{ role: 'user', content: 'q' }], temperature: 0.2 },
          response: { model: 'gpt-4o-2024-08-06', choices: [{ message: { role: 'assistant', content: 'a' } }], usage: { total_tokens: 9 } },
        },
        { id: 'r2', request: { messages: [{ role: 'user', content: 'q2' }] }, response: null, status_code: 500, error: { message: 'boom' } },
        { id: 'p1', prompt: 'P', completion: 'C', created_at: 1700000000 },
        { log_id: 'c1', value: 5, created_at: '2024-01-02T00:00:00Z' },
      ]),
    );
    const p2 = file('shapes.csv', 'ID,Question,Answer,Score,Model,Extra\nx1,"hello, world","multi\nline answer",4,gpt-4o,zz\n');
    const s = await ingest(store, [p1, p2]);
    expect(s.totals).toEqual({ lines: 6, inserted: 6, already_present: 0, blank: 0, quarantined: 0 });
    const db = store.sqlite;
    const row = (id: string) => db.prepare('SELECT * FROM conversations WHERE id = ?').get(id) as Record<string, unknown>;
    expect(JSON.parse(row('c1').messages as string)).toHaveLength(2);
    expect(JSON.parse(row('c1').tools as string)[0].function.name).toBe('f');
    expect(row('r1').format).toBe('request_response');
    expect(JSON.parse(row('r1').messages as string).map((m: { content: string }) => m.content)).toEqual(['q', 'a']);
    expect(row('r1').model).toBe('gpt-4o-2024-08-06');
    expect(JSON.parse(row('r1').extra as string).request.temperature).toBe(0.2);
    expect(row('r2').status).toBe('error');
    expect(JSON.parse(row('p1').messages as string)).toEqual([
      { role: 'user', content: 'P' },
      { role: 'assistant', content: 'C' },
    ]);
    expect(row('p1').created_at_ms).toBe(1700000000000);
    const x1 = row('x1');
    expect(x1.format).toBe('csv');
    expect(JSON.parse(x1.messages as string)[1].content).toBe('multi\nline answer');
    expect(JSON.parse(x1.metadata as string)).toEqual({ Extra: 'zz' });
    const fb = db.prepare('SELECT log_id, name, value FROM feedback ORDER BY log_id').all();
    expect(fb).toEqual([
      { log_id: 'c1', name: 'score', value: 5 },
      { log_id: 'x1', name: 'score', value: 4 },
    ]);
    await store.close();
  });

  it('CSV: any header text is a column (__proto__, constructor), kept as metadata', async () => {
    const store = fresh();
    const p = file('hostile.csv', 'question,answer,constructor,__proto__,toString,hasOwnProperty\nq,a,x,y,z,w\n');
    const s = await ingest(store, [p]);
    // The header is not a line of data.
    expect(s.totals).toEqual({ lines: 1, inserted: 1, already_present: 0, blank: 0, quarantined: 0 });
    const row = store.sqlite.prepare('SELECT metadata FROM conversations').get() as { metadata: string };
    expect(Object.entries(JSON.parse(row.metadata))).toEqual([
      ['constructor', 'x'],
      ['__proto__', 'y'],
      ['toString', 'z'],
      ['hasOwnProperty', 'w'],
    ]);
    await store.close();
  });

  it('CSV: two metadata columns with one header both keep their cells; two columns for one field are an error', async () => {
    const store = fresh();
    const p = file('dupmeta.csv', 'question,answer,notes,notes\nq,a,n1,n2\n');
    expect((await ingest(store, [p])).totals.inserted).toBe(1);
    const row = store.sqlite.prepare('SELECT metadata FROM conversations').get() as { metadata: string };
    expect(Object.entries(JSON.parse(row.metadata))).toEqual([
      ['notes', 'n1'],
      ['notes (column 4)', 'n2'],
    ]);
    const twice = file('dupq.csv', 'question,answer,question\nq1,a1,q1b\n');
    await expect(ingest(store, [twice])).rejects.toThrow(`${twice}:1: CSV header: columns 1 ("question") and 3 ("question") both give the field question`);
    const synonyms = file('dupsyn.csv', 'Prompt,answer,Question\nq1,a1,q1b\n');
    await expect(ingest(store, [synonyms])).rejects.toThrow(`${synonyms}:1: CSV header: columns 1 ("Prompt") and 3 ("Question") both give the field question`);
    expect(store.sqlite.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(1);
    await store.close();
  });

  it('CSV: a header that does not parse (a JSONL file read as CSV) is a usage error, and progress says stopped', () => {
    const p = file('forced.jsonl', jsonl([chat('f1', 'q', 'a'), chat('f2', 'q2', 'a2')]));
    const r = cli(['ingest', p, '--format', 'csv', '--db', join(dir, 'forced.db')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`logcurate: error: ${p}:1: cannot read the CSV header: Invalid Opening Quote`);
    expect(r.stderr).toContain('expected a header line of column names');
    expect(r.stderr).toMatch(/forced\.jsonl: stopped after [\d.]+s\n/);
    expect(r.stderr).not.toMatch(/forced\.jsonl: done/);
  });

  it('CSV: a row with more cells than the header is quarantined whole; --map takes only known fields', async () => {
    const store = fresh();
    const p = file('ragged.csv', 'question,answer\nq1,a1\nq2,a2,extra\nq3\n');
    const s = await ingest(store, [p]);
    // q3 has no answer cell: quarantined by the row's own check, as before.
    expect(s.totals).toEqual({ lines: 3, inserted: 1, already_present: 0, blank: 0, quarantined: 2 });
    const q = store.sqlite.prepare('SELECT line, reason, detail, raw FROM quarantine ORDER BY line').all() as { line: number; reason: string; detail: string | null; raw: Buffer }[];
    expect(q[0]).toMatchObject({ line: 3 });
    expect(`${q[0]!.reason} ${q[0]!.detail ?? ''}`).toContain('CSV: 3 cells, but the header has 2 columns');
    expect(Buffer.from(q[0]!.raw).toString()).toBe('q2,a2,extra');
    await expect(ingest(store, [p], { csvMap: { topic: 'subject' } })).rejects.toThrow('--map topic=subject: expected a field among question, prompt, user, answer');
    const r = cli(['ingest', file('proto.csv', '__proto__,answer\nq,a\n'), '--db', join(dir, 'proto-map.db'), '--map', '__proto__=question', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).totals).toMatchObject({ inserted: 1, quarantined: 0 });
    await store.close();
  });

  it('CSV: a record that is not UTF-8 is quarantined, not stored with U+FFFD; each record keeps its first line', async () => {
    const store = fresh();
    // Line 3 has a Latin-1 é (0xE9); the record on lines 4-5 spans two lines and is valid (é as UTF-8); a
    // character cut by the file's end is not UTF-8 either.
    const bytes = Buffer.concat([
      Buffer.from('question,answer\nok1,a\ncaf'),
      Buffer.from([0xe9]),
      Buffer.from(',b\n"multi\nlin\u00e9",c\nok2,"x""y"\nend,'),
      Buffer.from([0xe2, 0x82]),
    ]);
    const p = file('latin1.csv', bytes);
    const s = await ingest(store, [p]);
    expect(s.totals).toEqual({ lines: 5, inserted: 3, already_present: 0, blank: 0, quarantined: 2 });
    const q = store.sqlite.prepare('SELECT line, reason, hex(raw) AS raw FROM quarantine ORDER BY line').all() as { line: number; reason: string; raw: string }[];
    expect(q.map((r) => r.line)).toEqual([3, 7]);
    expect(q[0]!.reason).toBe('invalid UTF-8: the record is not valid UTF-8 text (the byte at offset 25 of the file is not; the copy here has U+FFFD there)');
    expect(q[0]!.raw).toBe(Buffer.from('caf\ufffd,b').toString('hex').toUpperCase());
    expect(q[1]!.reason).toContain('invalid UTF-8');
    const stored = store.sqlite.prepare('SELECT source_line, messages FROM conversations ORDER BY pk').all() as { source_line: number; messages: string }[];
    expect(stored.map((r) => r.source_line)).toEqual([2, 4, 6]);
    expect(JSON.parse(stored[1]!.messages)[0].content).toBe('multi\nlin\u00e9');
    expect(stored.every((r) => !r.messages.includes('\ufffd'))).toBe(true);
    // A header that is not UTF-8 is an error naming the file and line.
    const badHeader = file('latin1-header.csv', Buffer.concat([Buffer.from('question,r'), Buffer.from([0xe9]), Buffer.from('ponse\nq,a\n')]));
    await expect(ingest(store, [badHeader], { csvMap: { ['r\ufffdponse']: 'answer' } })).rejects.toThrow(`${badHeader}:1: the CSV header is not UTF-8 text`);
    await store.close();
  });

  it('CSV: read again with another --map, the file is read again (not skipped as present), with a warning', async () => {
    const store = fresh();
    const p = file('remap.csv', 'a,b,c\n1,2,3\n4,5,6\n');
    const first = await ingest(store, [p], { csvMap: { a: 'question', b: 'answer' } });
    expect(first.totals).toMatchObject({ inserted: 2 });
    // The same map (written otherwise): already ingested.
    const same = await ingest(store, [p], { csvMap: { b: 'Answer', a: 'question' } });
    expect(same.files[0]).toMatchObject({ skipped: true, already_present: 2 });
    expect(same.warnings).toEqual([]);
    const other = await ingest(store, [p], { csvMap: { a: 'question', c: 'answer' } });
    expect(other.files[0]).toMatchObject({ skipped: false, inserted: 2 });
    expect(other.warnings).toEqual([
      `${p}: read before with --map a=question,b=answer, now with --map a=question,c=answer: read again; what the other mapping stored stays in the store (ingest into a new store to have only this one)`,
    ]);
    const answers = store.sqlite.prepare('SELECT messages FROM conversations ORDER BY pk').pluck().all().map((m) => (JSON.parse(m as string) as { content: string }[])[1]!.content);
    expect(answers).toEqual(['2', '5', '3', '6']);
    // Each mapping is recorded: the second one again is already ingested.
    expect((await ingest(store, [p], { csvMap: { a: 'question', c: 'answer' } })).files[0]).toMatchObject({ skipped: true });
    await store.close();
  });

  it('CSV: a quote never closed is quarantined at the line its record starts on', async () => {
    for (const eol of ['\n', '\r\n']) {
      const store = fresh();
      const p = file(`unclosed-${eol.length}.csv`, ['question,answer', 'x1,y1', '"un,b', 'x2,y2', 'x3,y3', ''].join(eol));
      const s = await ingest(store, [p]);
      expect(s.totals).toMatchObject({ inserted: 1, quarantined: 1 });
      const q = store.sqlite.prepare('SELECT line, reason FROM quarantine').get() as { line: number; reason: string };
      expect(q).toEqual({ line: 3, reason: 'CSV: a quote opened in this record is never closed: the rest of the file was read into it' });
      await store.close();
    }
  });

  it('ids given as numbers beyond 2^53 keep their digits (ids, feedback log_ids, user and session ids); smaller ones read as before', async () => {
    const store = fresh();
    const p = file(
      'bigids.jsonl',
      [
        '{"id":12345678901234567890,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}',
        '{"messages":[{"role":"user","content":"c"},{"role":"assistant","content":"d"}],"meta":{"id":1},"id" : 12345678901234567891}',
        '{"id":42,"messages":[{"role":"user","content":"e"},{"role":"assistant","content":"f"}]}',
        '{"id":1e21,"messages":[{"role":"user","content":"g"},{"role":"assistant","content":"h"}]}',
        '{"log_id":12345678901234567891,"value":5}',
        '{"note":"an \\"id\\": 1 in a string","log_id":-98765432109876543210,"value":1}',
      ].join('\n') + '\n',
    );
    const s = await ingest(store, [p]);
    expect(s.totals).toEqual({ lines: 6, inserted: 6, already_present: 0, blank: 0, quarantined: 0 });
    const ids = store.sqlite.prepare('SELECT id FROM conversations ORDER BY pk').pluck().all();
    expect(ids).toEqual(['12345678901234567890', '12345678901234567891', '42', '1e+21']);
    expect(store.sqlite.prepare('SELECT log_id FROM feedback ORDER BY pk').pluck().all()).toEqual(['12345678901234567891', '-98765432109876543210']);
    // user_id and session_id too: two users must not become one (nor one group to split's group_by).
    const users = file(
      'bigusers.jsonl',
      [
        '{"id":"u1","user_id":12345678901234567891,"session_id":98765432109876543211,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}',
        '{"id":"u2","user_id":12345678901234567890,"session_id":7,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}',
      ].join('\n') + '\n',
    );
    await ingest(store, [users]);
    const rows = store.sqlite.prepare(`SELECT user_id, session_id FROM conversations WHERE id IN ('u1', 'u2') ORDER BY id`).raw().all();
    expect(rows).toEqual([
      ['12345678901234567891', '98765432109876543211'],
      ['12345678901234567890', '7'],
    ]);
    await store.close();
  });

  it('a failed call is stored with status error in any shape, and a status in other words is kept as it came', async () => {
    const store = fresh();
    const p = file(
      'statuses.jsonl',
      jsonl([
        chat('s-timeout', 'q', 'a', { status: 'Timeout' }),
        chat('s-cancelled', 'q', 'a', { status: 'cancelled' }),
        chat('s-500', 'q', 'a', { status: '500' }),
        chat('s-502', 'q', 'a', { status: 502 }),
        chat('s-201', 'q', 'a', { status: 201 }),
        chat('s-code', 'q', 'a', { status_code: 503 }),
        chat('s-error', 'q', 'a', { error: { message: 'upstream' } }),
        { id: 's-pc', prompt: 'p', completion: 'c', status: 'failed' },
        chat('s-done', 'q', 'a', { status: 'completed' }),
        chat('s-200', 'q', 'a', { status: '200', status_code: 200 }),
        chat('s-ok', 'q', 'a', { status: 'ok' }),
        chat('s-none', 'q', 'a'),
      ]),
    );
    expect((await ingest(store, [p])).totals.quarantined).toBe(0);
    const rows = store.sqlite.prepare('SELECT id, status, extra FROM conversations ORDER BY pk').all() as { id: string; status: string; extra: string | null }[];
    const status = Object.fromEntries(rows.map((r) => [r.id, r.status]));
    expect(status).toEqual({
      's-timeout': 'error',
      's-cancelled': 'error',
      's-500': 'error',
      's-502': 'error',
      's-201': 'ok',
      's-code': 'error',
      's-error': 'error',
      's-pc': 'error',
      's-done': 'ok',
      's-200': 'ok',
      's-ok': 'ok',
      's-none': 'ok',
    });
    const extra = Object.fromEntries(rows.map((r) => [r.id, r.extra === null ? null : (JSON.parse(r.extra) as { status?: unknown }).status]));
    expect(extra).toMatchObject({ 's-timeout': 'Timeout', 's-500': '500', 's-502': 502, 's-201': 201, 's-done': 'completed', 's-200': '200', 's-ok': null, 's-none': null });
    await store.close();
  });

  it('null for an optional field is the field left out (created_at, id, feedback name)', async () => {
    const store = fresh();
    const p = file(
      'nulls.jsonl',
      jsonl([
        chat('n1', 'q', 'a', { created_at: null }),
        chat(undefined, 'q2', 'a2', { id: null, created_at: null, feedback: [{ value: 4, name: null, created_at: null }] }),
        { prompt: 'P', completion: 'C', id: 'n3', created_at: null },
        { log_id: 'n1', value: 5, name: null, created_at: null },
      ]),
    );
    const s = await ingest(store, [p]);
    expect(s.totals).toEqual({ lines: 4, inserted: 4, already_present: 0, blank: 0, quarantined: 0 });
    const rows = store.sqlite.prepare('SELECT id, created_at, created_at_ms FROM conversations ORDER BY pk').all() as { id: string; created_at: null; created_at_ms: null }[];
    expect(rows.map((r) => [r.created_at, r.created_at_ms])).toEqual([
      [null, null],
      [null, null],
      [null, null],
    ]);
    // No id: derived from the content, as when the key is absent.
    expect(rows[1]!.id).toMatch(/^[0-9a-f]{32}$/);
    expect(store.sqlite.prepare('SELECT name, value FROM feedback ORDER BY pk').all()).toEqual([
      { name: 'score', value: 4 },
      { name: 'score', value: 5 },
    ]);
    await store.close();
  });

  it('a date the calendar does not have is quarantined, not rolled over into the next month', async () => {
    const store = fresh();
    const p = file(
      'dates.jsonl',
      jsonl([
        chat('d1', 'q', 'a', { created_at: '2026-02-30' }),
        chat('d2', 'q', 'a', { created_at: '2026-04-31T10:00:00Z' }),
        chat('d3', 'q', 'a', { created_at: '2024-02-29T10:00:00Z' }),
        chat('d4', 'q', 'a', { created_at: '2100-02-29' }),
        chat('d5', 'q', 'a', { created_at: '2000-02-29' }),
      ]),
    );
    const s = await ingest(store, [p]);
    expect(s.totals).toMatchObject({ lines: 5, inserted: 2, quarantined: 3 });
    expect(store.sqlite.prepare('SELECT id FROM conversations ORDER BY pk').pluck().all()).toEqual(['d3', 'd5']);
    const reasons = store.sqlite.prepare("SELECT reason || ' ' || coalesce(detail, '') FROM quarantine ORDER BY line").pluck().all();
    expect(reasons[0]).toContain('created_at: expected a date that exists, got "2026-02-30"');
    expect(reasons[1]).toContain('"2026-04-31T10:00:00Z"');
    await store.close();
  });

  it('maps embedded feedback forms to events (number, thumbs words and booleans, objects, arrays)', async () => {
    const store = fresh();
    const p = file(
      'fb.jsonl',
      jsonl([
        chat('a', 'u', 'x', { feedback: 3 }),
        chat('b', 'u', 'y', { feedback: 'thumbs_down' }),
        chat('c', 'u', 'z', { feedback: true }),
        chat('d', 'u', 'w', { feedback: { score: 4, helpful: 'up' } }),
        chat('e', 'u', 'v', { feedback: [{ value: 2, created_at: 1700000000 }, { name: 'thumbs', value: 'positive' }] }),
      ]),
    );
    await ingest(store, [p]);
    const rows = store.sqlite.prepare('SELECT log_id, name, value FROM feedback ORDER BY log_id, name').all();
    expect(rows).toEqual([
      { log_id: 'a', name: 'score', value: 3 },
      { log_id: 'b', name: 'thumbs', value: 0 },
      { log_id: 'c', name: 'thumbs', value: 1 },
      { log_id: 'd', name: 'helpful', value: 1 },
      { log_id: 'd', name: 'score', value: 4 },
      { log_id: 'e', name: 'score', value: 2 },
      { log_id: 'e', name: 'thumbs', value: 1 },
    ]);
    await store.close();
  });

  it('reads gzip and globs, and --format forces a shape', async () => {
    const store = fresh();
    file('g1.jsonl.gz', gzipSync(jsonl([chat('g1', 'a', 'b')])));
    file('g2.jsonl.gz', gzipSync(jsonl([chat('g2', 'a', 'c')])));
    const s = await ingest(store, [join(dir, 'g*.jsonl.gz')]);
    expect(s.files.map((f) => f.inserted)).toEqual([1, 1]);
    const forced = file('forced.jsonl', jsonl([{ log_id: 'g1', value: 1, messages: 'not a chat' }]));
    const s2 = await ingest(store, [{ path: forced, format: 'feedback' }]);
    expect(s2.totals.inserted).toBe(1);
    await store.close();
  });

  it('a path that names a file as written is that file, though it reads as a pattern too; else it is a pattern', async () => {
    const store = fresh();
    const braces = file('export{a,b}.jsonl', jsonl([chat('br1', 'a', 'b')]));
    file('exporta.jsonl', jsonl([chat('br2', 'a', 'b')]));
    const s = await ingest(store, [braces]);
    expect(s.warnings).toEqual([]);
    expect(s.files.map((f) => [f.path, f.inserted])).toEqual([[braces, 1]]);
    // No file of that name: the braces are a pattern again (matching exporta.jsonl).
    const s2 = await ingest(store, [join(dir, 'export{a,c}.jsonl')]);
    expect(s2.files.map((f) => [f.path, f.inserted])).toEqual([[join(dir, 'exporta.jsonl'), 1]]);
    await store.close();
  });
});

describe('ingest: nothing is lost', () => {
  it('a .gz that is not gzip, or ends before its first line, says so', async () => {
    const store = fresh();
    const plain = file('plain.jsonl.gz', jsonl([chat('z1', 'a', 'b')]));
    await expect(ingest(store, [plain])).rejects.toThrow(`${plain}: not gzip data (incorrect header check); expected a gzip-compressed file, as the .gz name says`);
    const empty = file('empty.jsonl.gz', '');
    await expect(ingest(store, [empty])).rejects.toThrow(`${empty}: the gzip data ends before its first line (unexpected end of file); expected a complete gzip file`);
    await store.close();
  });

  it('a file that breaks off (a truncated .gz) keeps the whole lines before the break; a rerun adds nothing twice', async () => {
    const store = fresh();
    // Incompressible text, so the cut falls well inside the lines: ~6,000 lines, 2-3 MB.
    const rand = (k: number): string => createHash('sha256').update(String(k)).digest('hex');
    const text = jsonl(Array.from({ length: 6000 }, (_, k) => chat(`t${k}`, `question ${rand(k)}`, `answer ${rand(-k)} ${rand(k + 0.5)}`)));
    const whole = gzipSync(text);
    const p = file('cut.jsonl.gz', whole.subarray(0, Math.floor(whole.length / 2)));
    const err = await ingest(store, [p]).then(
      () => null,
      (e: Error) => e,
    );
    const m = /^(.*): cannot read past line (\d+): unexpected end of file; the (\d+) line\(s\) before it are in the store/.exec(err?.message ?? '');
    expect(m?.[1], err?.message).toBe(p);
    expect(m![3]).toBe(m![2]);
    const kept = Number(m![2]);
    expect(kept).toBeGreaterThan(1000);
    expect(kept).toBeLessThan(6000);
    const ids = store.sqlite.prepare('SELECT id FROM conversations ORDER BY pk').pluck().all();
    expect(ids).toEqual(Array.from({ length: kept }, (_, k) => `t${k}`));
    // The same bytes again: it resumes after them and stops at the same place, adding nothing.
    await expect(ingest(store, [p])).rejects.toThrow(`cannot read past line ${kept}:`);
    expect(store.sqlite.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(kept);
    // The whole file, later: the rest comes in, the first lines are already present.
    const all = file('cut-whole.jsonl.gz', whole);
    const s = await ingest(store, [all]);
    expect(s.totals).toMatchObject({ lines: 6000, inserted: 6000 - kept, already_present: kept });
    // stats counts the cut file as interrupted until its path is ingested whole (here grown by a line since).
    expect((await storeStats(store)).files).toEqual({ ingested: 1, interrupted: 1 });
    writeFileSync(p, gzipSync(text + jsonl([chat('t-extra', 'q', 'a')])));
    expect((await ingest(store, [p])).totals).toMatchObject({ inserted: 1, already_present: 6000 });
    expect((await storeStats(store)).files).toEqual({ ingested: 2, interrupted: 0 });
    await store.close();
  });

  it('accounts for every line and quarantines bad ones whole with a reason naming the field', async () => {
    const store = fresh();
    const bad = Buffer.concat([
      Buffer.from(
        '\uFEFF' +
          jsonl([chat('ok1', 'hi', 'there')]).replace('\n', '\r\n') +
          '\n' + // blank
          '   \n' + // blank (whitespace)
          JSON.stringify({ id: 'b1', messages: [{ role: 'user', content: 'x' }, { role: 'bot', content: 'y' }] }) +
          '\n' +
          '{"id": "b2", "messages": [\n' + // invalid JSON
          '[1, 2, 3]\n' +
          JSON.stringify({ id: 'b3', created_at: 'last tuesday', messages: [{ role: 'user', content: 'x' }] }) +
          '\n' +
          JSON.stringify({ id: 'b4', messages: [{ role: 'assistant', content: null }] }) +
          '\n' +
          JSON.stringify({ foo: 1 }) +
          '\n',
      ),
      Buffer.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d, 0x0a]), // invalid UTF-8
    ]);
    const p = file('bad.jsonl', bad);
    const s = await ingest(store, [p]);
    const f = s.files[0]!;
    expect(f).toMatchObject({ lines: 10, inserted: 1, already_present: 0, blank: 2, quarantined: 7 });
    expect(f.lines).toBe(f.inserted + f.already_present + f.blank + f.quarantined);
    const q = store.sqlite.prepare('SELECT line, reason, raw FROM quarantine ORDER BY line').all() as { line: number; reason: string; raw: Buffer }[];
    expect(q.map((r) => r.line)).toEqual([4, 5, 6, 7, 8, 9, 10]);
    expect(q[0]!.reason).toBe('messages[1].role: expected one of system|user|assistant|tool|function, got "bot"');
    expect(q[1]!.reason).toMatch(/^invalid JSON/);
    expect(q[2]!.reason).toBe('expected a JSON object, got an array');
    expect(q[3]!.reason).toMatch(/^created_at: expected ISO 8601/);
    expect(q[4]!.reason).toMatch(/^messages\[0\]\.content: expected a string/);
    expect(q[5]!.reason).toMatch(/^unrecognised record/);
    expect(q[6]!.reason).toMatch(/^invalid UTF-8/);
    // Kept whole: the raw bytes, invalid UTF-8 included.
    expect(Buffer.compare(q[6]!.raw, Buffer.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]))).toBe(0);
    // The BOM and CRLF did not leak into the stored text.
    const stored = store.sqlite.prepare("SELECT messages FROM conversations WHERE id = 'ok1'").pluck().get() as string;
    expect(JSON.parse(stored)[1].content).toBe('there');
    // Reasons are in the tool's words, not zod's ("Too small: expected string to have >=1 characters").
    const worded = file('worded.jsonl', jsonl([{ id: '', messages: [{ role: 'user', content: 'q' }] }, { id: 'w2', messages: [null] }]));
    await ingest(store, [worded]);
    expect(store.sqlite.prepare('SELECT reason FROM quarantine WHERE file = ? ORDER BY line').pluck().all(worded)).toEqual([
      'id: expected a non-empty string',
      'messages[0]: expected an object, got null',
    ]);
    await store.close();
  });

  it('quarantines JSON nested thousands deep instead of failing the file', async () => {
    const store = fresh();
    const deep = (d: number) => `${'['.repeat(d)}${']'.repeat(d)}`;
    const p = file(
      'deep.jsonl',
      `{"id":"d1","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"metadata":${deep(5_000)}}\n` +
        `{"id":"d2","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"tools":${deep(200_000)}}\n` +
        `${JSON.stringify(chat('fine', 'q', 'a'))}\n`,
    );
    const s = await ingest(store, [p]);
    expect(s.totals).toMatchObject({ lines: 3, inserted: 1, quarantined: 2 });
    const reasons = store.sqlite.prepare('SELECT line, reason FROM quarantine ORDER BY line').all();
    expect(reasons).toEqual([
      { line: 1, reason: 'unprocessable record: nested too deeply to process' },
      { line: 2, reason: 'unprocessable record: nested too deeply to process' },
    ]);
    await store.close();
  });

  it('ignores a byte-order mark at the start of any line (concatenated exports), not only the first', async () => {
    const store = fresh();
    const p = file('concat.jsonl', `\uFEFF${JSON.stringify(chat('b1', 'x', 'y'))}\n\uFEFF${JSON.stringify(chat('b2', 'x', 'z'))}\n`);
    const s = await ingest(store, [p]);
    expect(s.totals).toMatchObject({ lines: 2, inserted: 2, quarantined: 0 });
    await store.close();
  });

  it('re-ingest adds nothing; a grown file adds only its new lines; overlapping files add nothing', async () => {
    const store = fresh();
    const p = file('grow.jsonl', jsonl([chat(undefined, 'a', 'b', { feedback: 5 }), chat('k', 'c', 'd')]));
    const first = await ingest(store, [p]);
    expect(first.totals.inserted).toBe(2);
    const again = await ingest(store, [p]);
    expect(again.files[0]!.skipped).toBe(true);
    expect(again.totals).toMatchObject({ lines: 2, inserted: 0, already_present: 2 });
    appendFileSync(p, jsonl([chat('k2', 'e', 'f')]));
    const grown = await ingest(store, [p]);
    expect(grown.files[0]).toMatchObject({ skipped: false, lines: 3, inserted: 1, already_present: 2 });
    const overlap = file('overlap.jsonl', readFileSync(p, 'utf8'));
    const o = await ingest(store, [overlap]);
    expect(o.totals).toMatchObject({ inserted: 0, already_present: 3 });
    expect(store.sqlite.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(3);
    expect(store.sqlite.prepare('SELECT count(*) FROM feedback').pluck().get()).toBe(1);
    await store.close();
  });

  it('a quarantined line stored later (a log still being written, a wrong --format) leaves the quarantine', async () => {
    const store = fresh();
    const count = (): number => store.sqlite.prepare('SELECT count(*) FROM quarantine').pluck().get() as number;
    // The logger had written half of line 2 when the nightly ingest read the file.
    const p = file('growing.jsonl', `${JSON.stringify(chat('g1', 'a', 'b'))}\n{"id":"g2","messages":[{"role":"user","content":"par`);
    expect((await ingest(store, [p])).totals).toMatchObject({ inserted: 1, quarantined: 1 });
    expect(count()).toBe(1);
    appendFileSync(p, `tly"},{"role":"assistant","content":"done"}]}\n${JSON.stringify({ messages: 'not a list' })}\n`);
    expect((await ingest(store, [p])).totals).toMatchObject({ inserted: 1, already_present: 1, quarantined: 1 });
    const q = store.sqlite.prepare('SELECT line, reason FROM quarantine').all() as { line: number; reason: string }[];
    // Line 2 is stored now; line 3 is the one bad line.
    expect(q).toEqual([{ line: 3, reason: expect.stringContaining('messages') }]);
    expect(store.sqlite.prepare(`SELECT count(*) FROM conversations WHERE id = 'g2'`).pluck().get()).toBe(1);

    // Read as chat, a prompt/completion line and its feedback are quarantined; read again as they are, stored.
    const legacy = file('legacy-fmt.jsonl', jsonl([{ id: 'p1', prompt: 'q', completion: 'a' }, { log_id: 'p1', value: 4 }]));
    expect((await ingest(store, [legacy], { format: 'chat' })).totals).toMatchObject({ quarantined: 2 });
    expect((await ingest(store, [legacy])).totals).toMatchObject({ inserted: 2, quarantined: 0 });
    expect(store.sqlite.prepare('SELECT count(*) FROM quarantine WHERE file = ?').pluck().get(legacy)).toBe(0);
    // A different line at the same place stays quarantined: only the same bytes, or the bytes it began with, go.
    const other = file('other.jsonl', `${JSON.stringify(chat('o1', 'a', 'b'))}\n{"id":"o2","messages":[{"role":"user","content":"x`);
    await ingest(store, [other]);
    writeFileSync(other, `${JSON.stringify(chat('o1', 'a', 'b'))}\n${JSON.stringify(chat('o3', 'c', 'd'))}\n`);
    expect((await ingest(store, [other])).totals).toMatchObject({ inserted: 1, already_present: 1 });
    expect(store.sqlite.prepare('SELECT line FROM quarantine WHERE file = ?').pluck().all(other)).toEqual([2]);
    expect(count()).toBe(2);
    await store.close();
  });

  it('a file listed again unchanged is recognised by its stat, not read; any change to it is read and ingested', async () => {
    const store = fresh();
    // stillMs 0: any file written before the ingest counts as untouched (by default it must be 10 s old).
    const opts = { stillMs: 0 };
    const p = file('still.jsonl', jsonl([chat('s1', 'a', 'b', { feedback: 4 }), chat('s2', 'c', 'd'), {}]));
    // A whole-second modification time, so that it can be put back exactly after a rewrite (below).
    const anHourAgo = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000);
    utimesSync(p, anHourAgo, anHourAgo);
    const first = await ingest(store, [p], opts);
    expect(first.files[0]).toMatchObject({ skipped: false, digested: true, lines: 3, inserted: 2, quarantined: 1 });
    const again = await ingest(store, [p], opts);
    expect(again.files[0]).toMatchObject({ skipped: true, digested: false, sha256: first.files[0]!.sha256, lines: 3, inserted: 0, already_present: 2, quarantined: 1 });
    expect(again.totals).toEqual({ lines: 3, inserted: 0, already_present: 2, blank: 0, quarantined: 1 });

    // The same bytes at another path: recognised by digest, as before.
    const copy = join(dir, 'still-copy.jsonl');
    copyFileSync(p, copy);
    expect((await ingest(store, [copy], opts)).files[0]).toMatchObject({ skipped: true, digested: true });

    // Rewritten to the same size with other bytes, its modification time put back: the change time moved, so it
    // is read, and the changed conversation is an id conflict.
    const text = readFileSync(p, 'utf8');
    const was = statSync(p, { bigint: true });
    writeFileSync(p, text.replace('"content":"c"', '"content":"x"'));
    utimesSync(p, anHourAgo, anHourAgo);
    const now = statSync(p, { bigint: true });
    expect([now.ino, now.size, now.mtimeNs]).toEqual([was.ino, was.size, was.mtimeNs]);
    const rewritten = await ingest(store, [p], opts);
    expect(rewritten.files[0]).toMatchObject({ skipped: false, digested: true, lines: 3, quarantined: 2 });
    expect(store.sqlite.prepare(`SELECT detail FROM quarantine WHERE reason = 'id_conflict'`).pluck().get()).toMatch(/"s2"/);

    // Appended to: read, and only the new line is new; then recognised by its new stat.
    appendFileSync(p, jsonl([chat('s3', 'e', 'f')]));
    expect((await ingest(store, [p], opts)).files[0]).toMatchObject({ skipped: false, digested: true, lines: 4, inserted: 1 });
    expect((await ingest(store, [p], opts)).files[0]).toMatchObject({ skipped: true, digested: false, lines: 4 });
    // A forced format is another ingest of the file: not recognised under the other format's row.
    expect((await ingest(store, [p], { ...opts, format: 'chat' })).files[0]).toMatchObject({ skipped: false, digested: true });
    await store.close();
  });

  it('a file written moments ago has no stat recorded, so it is digested each time it is listed until it is still', async () => {
    const store = fresh();
    const p = file('fresh.jsonl', jsonl([chat('f1', 'a', 'b')]));
    expect((await ingest(store, [p])).files[0]).toMatchObject({ skipped: false, digested: true });
    expect((await ingest(store, [p])).files[0]).toMatchObject({ skipped: true, digested: true });
    expect(store.sqlite.prepare(`SELECT stat FROM ingest_files`).pluck().all()).toEqual([null]);
    // Once it has been still for long enough (here: at once), the next listing recognises it by digest and
    // records its stat; the one after need not read it.
    expect((await ingest(store, [p], { stillMs: 0 })).files[0]).toMatchObject({ skipped: true, digested: true });
    expect((await ingest(store, [p])).files[0]).toMatchObject({ skipped: true, digested: false });
    await store.close();
  });

  it('derives ids from canonical content (key order does not matter) and quarantines id conflicts', async () => {
    const store = fresh();
    const p = file(
      'ids.jsonl',
      '{"messages":[{"role":"user","content":"same"},{"role":"assistant","content":"x"}]}\n' +
        '{"messages":[{"content":"same","role":"user"},{"content":"x","role":"assistant"}]}\n' +
        jsonl([chat(7, 'a', 'b'), chat('7', 'a', 'DIFFERENT')]),
    );
    const s = await ingest(store, [p]);
    expect(s.files[0]).toMatchObject({ lines: 4, inserted: 2, already_present: 1, quarantined: 1 });
    const q = store.sqlite.prepare('SELECT line, reason, detail FROM quarantine').get() as { line: number; reason: string; detail: string };
    expect(q).toMatchObject({ line: 4, reason: 'id_conflict' });
    expect(q.detail).toContain('ids.jsonl:3');
    // The stored one stays.
    const m = store.sqlite.prepare("SELECT messages FROM conversations WHERE id = '7'").pluck().get() as string;
    expect(JSON.parse(m)[1].content).toBe('b');
    await store.close();
  });

  it('settles an id met again by the digest of its stored text, and in canonical form where that differs', async () => {
    const store = fresh();
    const a = '{"id":"k1","tags":{"b":1,"a":"é"},"messages":[{"role":"user","content":"hi \\ud800"},{"role":"assistant","content":"yo","name":"bot"}],"metadata":{"__proto__":{"z":1},"n":1e21,"l":[2,{"y":null,"x":"é"}]}}';
    // The same content in another key order: not a conflict.
    const b = '{"messages":[{"content":"hi \\ud800","role":"user"},{"name":"bot","content":"yo","role":"assistant"}],"metadata":{"l":[2,{"x":"é","y":null}],"n":1e21,"__proto__":{"z":1}},"tags":{"a":"é","b":1},"id":"k1"}';
    const first = await ingest(store, [file('k-a.jsonl', `${a}\n`)]);
    expect(first.totals).toMatchObject({ inserted: 1, quarantined: 0 });
    const digest = (): string => store.sqlite.prepare(`SELECT content_sha256 FROM conversations WHERE id = 'k1'`).pluck().get() as string;
    const stored = digest();
    expect(stored).toMatch(/^[0-9a-f]{64}$/);
    // The other order: the same canonical content, so already present; the stored digest becomes that line's.
    expect((await ingest(store, [file('k-b.jsonl', `${b}\n`)])).totals).toMatchObject({ inserted: 0, already_present: 1, quarantined: 0 });
    const reordered = digest();
    expect(reordered).not.toBe(stored);
    // A digest an older version kept (the canonical one): the line is still already present, and its digest is
    // replaced by this version's, so the next reading of it compares digests only.
    const { contentDigest, contentOfStored } = await import('../pipeline/records.js');
    const row = store.sqlite.prepare(`SELECT * FROM conversations WHERE id = 'k1'`).get() as Parameters<typeof contentOfStored>[0];
    const canonical = contentDigest(contentOfStored(row));
    store.sqlite.prepare(`UPDATE conversations SET content_sha256 = ? WHERE id = 'k1'`).run(canonical);
    expect((await ingest(store, [file('k-b2.jsonl', `${b}\n\n`)])).totals).toMatchObject({ already_present: 1, quarantined: 0 });
    expect(digest()).toBe(reordered);
    // Other content under the same id is still a conflict, whichever kind of digest is stored.
    const c = a.replace('"yo"', '"no"');
    expect((await ingest(store, [file('k-c.jsonl', `${c}\n`)])).totals).toMatchObject({ inserted: 0, already_present: 0, quarantined: 1 });
    store.sqlite.prepare(`UPDATE conversations SET content_sha256 = ? WHERE id = 'k1'`).run(canonical);
    expect((await ingest(store, [file('k-c2.jsonl', `${c}\n\n`)])).totals).toMatchObject({ quarantined: 1 });
    // Each part of the content counts, in the digests alone too: with this version's digest of b stored again,
    // only a metadata value, then only the model, differ.
    expect((await ingest(store, [file('k-b3.jsonl', `${b}\n\n\n`)])).totals).toMatchObject({ already_present: 1 });
    expect(digest()).toBe(reordered);
    const d = b.replace('"n":1e21', '"n":2');
    expect((await ingest(store, [file('k-d.jsonl', `${d}\n`)])).totals).toMatchObject({ quarantined: 1 });
    const e = b.replace('"id":"k1"', '"id":"k1","model":"m"');
    expect((await ingest(store, [file('k-e.jsonl', `${e}\n`)])).totals).toMatchObject({ quarantined: 1 });
    expect(store.sqlite.prepare(`SELECT count(*) FROM quarantine WHERE reason = 'id_conflict'`).pluck().get()).toBe(4);
    await store.close();
  });

  it('keeps feedback that arrives before its conversation, in another file', async () => {
    const store = fresh();
    const fb = file('early-fb.jsonl', jsonl([{ log_id: 'late', value: 4 }]));
    await ingest(store, [fb]);
    const conv = file('late.jsonl', jsonl([chat('late', 'q', 'a')]));
    await ingest(store, [conv]);
    const joined = store.sqlite
      .prepare('SELECT f.value FROM feedback f JOIN conversations c ON c.id = f.log_id WHERE c.id = ?')
      .pluck()
      .get('late');
    expect(joined).toBe(4);
    await store.close();
  });

  it('stores hostile text exactly: special tokens, __proto__ keys, odd Unicode, 200 KB messages', async () => {
    const store = fresh();
    const big = 'x'.repeat(200_000);
    const weird = '\u0000\u202e\uFEFF \uD83D\uDE00 \u0301e \u2028';
    const line = `{"id":"h1","tags":{"__proto__":"p","ok":1},"metadata":{"__proto__":{"polluted":true}},"messages":[{"role":"user","content":${JSON.stringify(
      `<|endoftext|><|im_start|>${weird}`,
    )}},{"role":"assistant","content":${JSON.stringify(big)}}]}\n`;
    const p = file('hostile.jsonl', line);
    const s = await ingest(store, [p]);
    expect(s.totals.inserted).toBe(1);
    const row = store.sqlite.prepare("SELECT tags, metadata, messages FROM conversations WHERE id = 'h1'").get() as Record<string, string>;
    expect(row.tags).toBe('{"__proto__":"p","ok":1}');
    expect(row.metadata).toBe('{"__proto__":{"polluted":true}}');
    const msgs = JSON.parse(row.messages);
    expect(msgs[0].content).toBe(`<|endoftext|><|im_start|>${weird}`);
    expect(msgs[1].content).toHaveLength(200_000);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await store.close();
  });
});

describe('ingest: timestamps', () => {
  it('reads ISO times without a zone as UTC whatever the machine zone, and epochs in seconds or milliseconds', () => {
    const p = file(
      'times.jsonl',
      jsonl([
        chat('t1', 'a', 'b', { created_at: '2024-03-05T10:00:00' }),
        chat('t2', 'a', 'c', { created_at: '2024-03-05 10:00' }),
        chat('t3', 'a', 'd', { created_at: '2024-03-05T12:00:00+02:00' }),
        chat('t4', 'a', 'e', { created_at: 1709632800 }),
        chat('t5', 'a', 'f', { created_at: 1709632800000 }),
      ]),
    );
    const db = join(dir, 'tz.db');
    expect(cli(['ingest', p, '--db', db, '--quiet'], { env: { TZ: 'America/New_York' } }).code).toBe(0);
    const d = new Database(db, { readonly: true });
    const ms = d.prepare('SELECT created_at_ms FROM conversations ORDER BY id').pluck().all();
    expect(ms).toEqual([1709632800000, 1709632800000, 1709632800000, 1709632800000, 1709632800000]);
    d.close();
  });
});

describe('ingest: crash safety', () => {
  it('an ingest interrupted mid-file resumes to exactly the state of one clean run', async () => {
    const lines: unknown[] = [];
    for (let i = 0; i < 500; i++) {
      lines.push(i % 50 === 7 ? { id: `q${i}`, messages: [{ role: 'narrator', content: 'x' }] } : chat(`k${i}`, `question ${i}`, `answer ${i}`, { feedback: i % 5 }));
    }
    const p = file('crash.jsonl', jsonl(lines));
    const clean = fresh();
    await ingest(clean, [p], { batchSize: 37 });
    const crashed = fresh();
    // Batches of 37 lines commit in groups of two (74 lines): the crash after line 259 loses the open group's
    // first batch, and the rerun must resume after line 222, the last commit.
    await expect(
      ingest(crashed, [p], {
        batchSize: 37,
        commitLines: 74,
        afterBatch: (_f, done) => {
          if (done > 240) throw new Error('simulated crash');
        },
      }),
    ).rejects.toThrow(/simulated crash/);
    const committed = crashed.sqlite.prepare(`SELECT lines, status FROM ingest_files`).get() as { lines: number; status: string };
    expect(committed).toEqual({ lines: 222, status: 'running' });
    expect(crashed.sqlite.prepare(`SELECT count(*) FROM conversations`).pluck().get()).toBe(
      clean.sqlite.prepare(`SELECT count(*) FROM conversations WHERE source_line <= 222`).pluck().get(),
    );
    const resumed = await ingest(crashed, [p], { batchSize: 37 });
    expect(resumed.files[0]!.resumed).toBe(true);
    expect(resumed.files[0]).toMatchObject({ lines: 500, inserted: 490, quarantined: 10 });
    for (const t of ['conversations', 'feedback', 'quarantine']) {
      const q = `SELECT * FROM ${t} ORDER BY pk`;
      expect(crashed.sqlite.prepare(q).all()).toEqual(clean.sqlite.prepare(q).all());
    }
    await clean.close();
    await crashed.close();
  });

  it('kill -9 of the real CLI at several moments, then a finish, equals a clean ingest row for row', async () => {
    const { spawn } = await import('node:child_process');
    const { CLI } = await import('./support/tmp.js');
    const lines: unknown[] = [];
    for (let i = 0; i < 30_000; i++) lines.push(chat(`id${i}`, `question number ${i} `.repeat(5), `answer ${i}`, { feedback: { score: i % 5, thumbs: i % 2 === 0 } }));
    const p = file('big.jsonl', jsonl(lines));
    const cleanDb = join(dir, 'clean-kill.db');
    expect(cli(['ingest', p, '--db', cleanDb, '--quiet']).code).toBe(0);
    const db = join(dir, 'killed.db');
    const delays = [150, 300, 450, 600];
    let kills = 0;
    for (const ms of delays) {
      // Commits every 4,000 lines (not the default 64,000), so kills land between commits of one file.
      const child = spawn(process.execPath, [CLI, 'ingest', p, '--db', db, '--quiet'], {
        stdio: 'ignore',
        env: { ...process.env, LOGCURATE_INGEST_COMMIT_LINES: '4000' },
      });
      await new Promise((r) => setTimeout(r, ms));
      if (child.exitCode === null && child.kill('SIGKILL')) kills++;
      await new Promise((r) => child.on('close', r));
    }
    expect(kills).toBeGreaterThan(0);
    const finish = cli(['ingest', p, '--db', db, '--json', '--quiet']);
    expect(finish.code).toBe(0);
    const summary = JSON.parse(finish.stdout);
    expect(summary.totals.lines).toBe(30_000);
    const a = new Database(cleanDb, { readonly: true });
    const b = new Database(db, { readonly: true });
    for (const t of ['conversations', 'feedback', 'quarantine']) {
      const q = `SELECT * FROM ${t} ORDER BY pk`;
      expect(b.prepare(`SELECT count(*) FROM ${t}`).pluck().get()).toBe(a.prepare(`SELECT count(*) FROM ${t}`).pluck().get());
      expect(b.prepare(q).all()).toEqual(a.prepare(q).all());
    }
    expect(b.pragma('integrity_check', { simple: true })).toBe('ok');
    a.close();
    b.close();
  });
});

describe('ingest: two processes, one file', () => {
  it('each keeps its own accounting; together they insert every line exactly once', async () => {
    const { spawn } = await import('node:child_process');
    const { CLI } = await import('./support/tmp.js');
    const lines: unknown[] = [];
    for (let i = 0; i < 20_000; i++) lines.push(chat(`c${i}`, `concurrent question ${i} `.repeat(4), `answer ${i}`));
    const p = file('concurrent.jsonl', jsonl(lines));
    const db = join(dir, 'concurrent.db');
    const run = () =>
      new Promise<{ code: number | null; out: string }>((res) => {
        const child = spawn(process.execPath, [CLI, 'ingest', p, '--db', db, '--json', '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('close', (code) => res({ code, out }));
      });
    const [a, b] = await Promise.all([run(), run()]);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    const ta = JSON.parse(a.out).totals;
    const tb = JSON.parse(b.out).totals;
    expect(ta.lines).toBe(20_000);
    expect(tb.lines).toBe(20_000);
    expect(ta.inserted + tb.inserted).toBe(20_000);
    expect(ta.inserted + ta.already_present).toBe(20_000);
    const d = new Database(db, { readonly: true });
    expect(d.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(20_000);
    expect(d.prepare("SELECT count(*) FROM ingest_files WHERE status != 'complete'").pluck().get()).toBe(0);
    d.close();
  });
});

describe('store: created by several processes at once', () => {
  it('every process opens it (WAL switch and migrations race safely)', async () => {
    const { spawn } = await import('node:child_process');
    const { CLI } = await import('./support/tmp.js');
    for (let round = 0; round < 3; round++) {
      const db = join(dir, `race-${round}.db`);
      const codes = await Promise.all(
        Array.from(
          { length: 8 },
          () =>
            new Promise<{ code: number | null; err: string }>((res) => {
              const child = spawn(process.execPath, [CLI, 'stats', '--db', db, '--json'], { stdio: ['ignore', 'ignore', 'pipe'] });
              let err = '';
              child.stderr.on('data', (d: Buffer) => (err += d.toString()));
              child.on('close', (code) => res({ code, err }));
            }),
        ),
      );
      for (const c of codes) expect(c.code, c.err).toBe(0);
      const d = new Database(db, { readonly: true });
      expect(d.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(d.pragma('user_version', { simple: true })).toBeGreaterThanOrEqual(4);
      d.close();
    }
  });
});

describe('ingest: worker thread', () => {
  it('preparing on a worker (large inputs) and inline (small) leave identical stores', () => {
    const lines: unknown[] = [];
    for (let i = 0; i < 25_000; i++) {
      lines.push(i % 997 === 3 ? { id: `bad${i}`, messages: [{ role: 'bot', content: 'x' }] } : chat(`w${i}`, `prompt ${i} `.repeat(12), `reply ${i}`, { feedback: i % 5 }));
      // Hostile text in the columns that cross from the worker as bytes (pipeline/packed-rows.ts).
      if (i % 1000 === 7) {
        lines.push(chat(`h${i}`, 'a \ud800 b\u0000', '😀', { model: 'm\ud800\u0000😀', user_id: '', session_id: '__proto__', tags: { __proto__: 'x', é: '\udc00' } }));
        lines.push({ log_id: `h${i}`, name: 'score \ud800😀', value: 5, created_at: '2024-09-01T00:00:00Z' });
      }
    }
    const p = file('worker.jsonl', jsonl(lines));
    // Over the 4 MB threshold at which ingest hands parsing to a worker.
    expect(readFileSync(p).length).toBeGreaterThan(4 << 20);
    const viaWorker = join(dir, 'via-worker.db');
    const inline = join(dir, 'inline.db');
    const a = cli(['ingest', p, '--db', viaWorker, '--json', '--quiet']);
    const b = cli(['ingest', p, '--db', inline, '--json', '--quiet'], { env: { LOGCURATE_INGEST_WORKER: '0' } });
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    expect(JSON.parse(a.stdout).totals).toEqual(JSON.parse(b.stdout).totals);
    const x = new Database(viaWorker, { readonly: true });
    const y = new Database(inline, { readonly: true });
    for (const t of ['conversations', 'feedback', 'quarantine']) {
      const q = `SELECT * FROM ${t} ORDER BY pk`;
      expect(x.prepare(q).all()).toEqual(y.prepare(q).all());
    }
    expect(x.prepare('SELECT count(*) FROM quarantine').pluck().get()).toBe(26);
    // Every text column holds text (not a blob), byte for byte what binding the string stores (as ingest did before
    // its rows crossed packed), lone surrogates included.
    for (const [t, cols] of [
      ['conversations', ['id', 'content_sha256', 'format', 'status', 'messages', 'tools', 'created_at', 'model', 'user_id', 'session_id', 'tags', 'metadata', 'extra', 'last_role', 'signals']],
      ['feedback', ['event_key', 'log_id', 'name', 'created_at']],
    ] as const) {
      for (const c of cols) expect(x.prepare(`SELECT count(*) FROM ${t} WHERE typeof(${c}) NOT IN ('text', 'null')`).pluck().get(), `${t}.${c}`).toBe(0);
    }
    const hex = (v: string): string => x.prepare('SELECT hex(?)').pluck().get(v) as string;
    const hostile = x.prepare(`SELECT hex(model) model, hex(user_id) user_id, hex(session_id) session_id, tags, messages FROM conversations WHERE id = 'h7'`).get() as Record<string, string>;
    expect(hostile).toEqual({
      model: hex('m\ud800\u0000😀'),
      user_id: '',
      session_id: hex('__proto__'),
      tags: JSON.stringify({ __proto__: 'x', é: '\udc00' }),
      messages: JSON.stringify([{ role: 'user', content: 'a \ud800 b\u0000' }, { role: 'assistant', content: '😀' }]),
    });
    expect(hostile.model).toContain('EDA080');
    expect(x.prepare(`SELECT hex(name) FROM feedback WHERE log_id = 'h7'`).pluck().get()).toBe(hex('score \ud800😀'));
    x.close();
    y.close();
  });
});

describe('ingest CLI', () => {
  it('prints one JSON document with per-file accounting, and --strict exits 1 on quarantined lines', () => {
    const p = file('cli.jsonl', jsonl([chat('z1', 'a', 'b'), { nope: true }]) + '\n');
    const db = join(dir, 'cli.db');
    const r = cli(['ingest', p, '--db', db, '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.files[0]).toMatchObject({ path: p, lines: 3, inserted: 1, already_present: 0, blank: 1, quarantined: 1 });
    expect(doc.totals).toMatchObject({ lines: 3, inserted: 1, already_present: 0, blank: 1, quarantined: 1 });
    const strict = cli(['ingest', p, '--db', db, '--strict', '--json']);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(/--strict: 1 line\(s\) quarantined/);
    expect(() => JSON.parse(strict.stdout)).not.toThrow();
  });

  it('exits 1 naming a missing file, 2 on usage errors, and uses LOGCURATE_DB', () => {
    const missing = cli(['ingest', join(dir, 'nope.jsonl'), '--db', join(dir, 'm.db')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nope.jsonl');
    expect(cli(['ingest', '--bogus', 'x']).code).toBe(2);
    expect(cli(['ingest', 'x', '--format', 'xml']).code).toBe(2);
    const envDb = join(dir, 'env.db');
    const p = file('env.jsonl', jsonl([chat('e1', 'a', 'b')]));
    expect(cli(['ingest', p, '--quiet'], { env: { LOGCURATE_DB: envDb } }).code).toBe(0);
    const stats = cli(['stats', '--json'], { env: { LOGCURATE_DB: envDb } });
    expect(JSON.parse(stats.stdout)).toMatchObject({ conversations: 1, feedback_events: 0, quarantined: 0, runs: 0 });
  });

  it('writes progress lines to stderr when not a terminal, and nothing with --quiet', () => {
    const p = file('prog.jsonl', jsonl([chat('p1', 'a', 'b')]));
    const loud = cli(['ingest', p, '--db', join(dir, 'prog.db')]);
    expect(loud.stderr).toMatch(/logcurate: ingest .*prog\.jsonl: done/);
    const quiet = cli(['ingest', p, '--db', join(dir, 'prog2.db'), '--quiet']);
    expect(quiet.stderr).toBe('');
  });
});
