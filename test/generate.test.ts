import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { parse as parseCsv } from 'csv-parse/sync';
import { afterAll, describe, expect, it } from 'vitest';
import { SAMPLE_FILE_NAMES, SAMPLE_FILES, generateRecords, writeSample, type Expected, type SampleFileName } from '../data/generate.js';
import { REALDATA_PATH, locateRealdata, parseHhTranscript, writeRealdataInputs } from './support/realdata.js';
import { ingest } from '../pipeline/ingest.js';
import { openStore } from '../pipeline/store.js';

const SAMPLE_DIR = fileURLToPath(new URL('../data/sample', import.meta.url));
const ROLES = new Set(['system', 'user', 'assistant', 'tool', 'function']);
const tmpDirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'logcurate-gen-'));
  tmpDirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const readBytes = (dir: string, f: SampleFileName): Buffer => {
  const raw = readFileSync(join(dir, f));
  return SAMPLE_FILES[f].gzip ? gunzipSync(raw) : raw;
};
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const utf8 = new TextDecoder('utf-8', { fatal: true });

type Parsed = { kind: 'blank' } | { kind: 'bad'; why: string } | { kind: 'record'; shape: string; value: Record<string, unknown>; text: string };

/** An independent reading of a JSONL line: what ingest should make of it (without id conflicts). */
function classify(bytes: Buffer): Parsed {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { kind: 'bad', why: 'invalid_utf8' };
  }
  if (text.trim() === '') return { kind: 'blank' };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { kind: 'bad', why: 'invalid_json' };
  }
  if (!isObj(v)) return { kind: 'bad', why: 'non_object' };
  const rolesOk = (msgs: unknown): boolean => Array.isArray(msgs) && msgs.length > 0 && msgs.every((m) => isObj(m) && ROLES.has(m.role as string));
  if ('messages' in v) return rolesOk(v.messages) ? { kind: 'record', shape: 'chat', value: v, text } : { kind: 'bad', why: 'bad_role' };
  if ('request' in v) return isObj(v.request) && rolesOk(v.request.messages) ? { kind: 'record', shape: 'request_response', value: v, text } : { kind: 'bad', why: 'request' };
  if ('prompt' in v) return typeof v.prompt === 'string' && typeof v.completion === 'string' ? { kind: 'record', shape: 'prompt_completion', value: v, text } : { kind: 'bad', why: 'prompt' };
  if ('log_id' in v && 'value' in v) return { kind: 'record', shape: 'feedback', value: v, text };
  return { kind: 'bad', why: 'no_shape' };
}

function splitLines(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, start)) {
    out.push(buf.subarray(start, i > start && buf[i - 1] === 0x0d ? i - 1 : i));
    start = i + 1;
  }
  if (start < buf.length) out.push(buf.subarray(start));
  return out;
}

interface Recount {
  lines: number;
  physical: number;
  blank: number;
  bad: string[];
  repeats: number;
  records: Extract<Parsed, { kind: 'record' }>[];
  crlf: boolean;
  bom: boolean;
}

function recountJsonl(buf: Buffer): Recount {
  const bom = buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf;
  const body = bom ? buf.subarray(3) : buf;
  const lines = splitLines(body);
  const res: Recount = { lines: lines.length, physical: lines.length, blank: 0, bad: [], repeats: 0, records: [], crlf: body.includes('\r\n'), bom };
  const byId = new Map<string, string>();
  const idless = new Set<string>();
  for (const l of lines) {
    const p = classify(l);
    if (p.kind === 'blank') res.blank++;
    else if (p.kind === 'bad') res.bad.push(p.why);
    else {
      const id = p.value.id;
      if (p.shape !== 'feedback' && id !== undefined) {
        const prev = byId.get(String(id));
        if (prev !== undefined && prev !== p.text) {
          res.bad.push('id_conflict');
          continue;
        }
        byId.set(String(id), p.text);
      } else if (p.shape !== 'feedback') {
        if (idless.has(p.text)) res.repeats++;
        idless.add(p.text);
      }
      res.records.push(p);
    }
  }
  return res;
}

function recountCsv(buf: Buffer): { rows: Record<string, string>[]; physical: number } {
  const rows = parseCsv(buf, { columns: true, bom: true }) as Record<string, string>[];
  return { rows, physical: splitLines(buf).length };
}

function checkAgainstExpected(dir: string, exp: Expected): void {
  for (const f of SAMPLE_FILE_NAMES) {
    const e = exp.files[f];
    const buf = readBytes(dir, f);
    expect(statSync(join(dir, f)).size, `${f} bytes`).toBe(e.bytes);
    if (f.endsWith('.csv')) {
      const { rows, physical } = recountCsv(buf);
      expect(rows.length, `${f} rows`).toBe(e.lines);
      expect(physical, `${f} physical lines`).toBe(e.physical_lines);
      expect(e.blank + e.bad).toBe(0);
      continue;
    }
    const c = recountJsonl(buf);
    expect({ f, lines: c.lines, physical: c.physical, blank: c.blank, bad: c.bad.length, repeats: c.repeats }).toEqual({
      f,
      lines: e.lines,
      physical: e.physical_lines,
      blank: e.blank,
      bad: e.bad,
      repeats: e.repeats,
    });
    expect(c.bom, `${f} BOM`).toBe(e.bom);
    expect(c.crlf, `${f} CRLF`).toBe(e.eol === 'CRLF');
    expect(e.expected_ingest).toEqual({ inserted: e.valid - e.repeats, already_present: e.repeats, blank: e.blank, quarantined: e.bad });
    expect(e.lines).toBe(e.valid + e.blank + e.bad);
    const kinds = exp.bad_lines.filter((b) => b.file === f).map((b) => b.kind).sort();
    expect([...c.bad].sort(), `${f} bad line kinds`).toEqual(kinds.map((k) => (k === 'no_value' ? 'no_shape' : k)));
  }
  // The listed line numbers point at the lines they name.
  for (const b of exp.bad_lines) {
    if (b.file.endsWith('.csv')) continue;
    let buf = readBytes(dir, b.file);
    if (SAMPLE_FILES[b.file].bom) buf = buf.subarray(3);
    const line = splitLines(buf)[b.line - 1]!;
    const p = classify(line);
    if (b.kind === 'id_conflict') expect(p.kind).toBe('record');
    else expect(p.kind === 'bad' ? p.why : p.kind, `${b.file}:${b.line}`).toBe(b.kind === 'no_value' ? 'no_shape' : b.kind);
  }
}

describe('data/generate', () => {
  it('is deterministic: the same seed gives identical bytes, another seed different ones', async () => {
    const [a, b, c] = [tmp(), tmp(), tmp()];
    await writeSample(a, { n: 400, seed: 11 });
    await writeSample(b, { n: 400, seed: 11 });
    await writeSample(c, { n: 400, seed: 12 });
    for (const f of [...SAMPLE_FILE_NAMES, 'EXPECTED.json']) {
      expect(sha(join(a, f)), f).toBe(sha(join(b, f)));
      if (f !== 'EXPECTED.json') expect(sha(join(a, f)), f).not.toBe(sha(join(c, f)));
    }
  });

  it('idBase: a second batch of logs (the second night of the bench) takes new ids, so ingest inserts it instead of quarantining id conflicts', async () => {
    const [first, second] = [tmp(), tmp()];
    await writeSample(first, { n: 300, seed: 7, anomalies: false });
    const exp = await writeSample(second, { n: 300, seed: 8, anomalies: false, idBase: 300 });
    const store = openStore(join(tmp(), 'store.db'));
    try {
      await ingest(store, [join(first, '*.{jsonl,jsonl.gz,csv}')]);
      const s = await ingest(store, [join(second, '*.{jsonl,jsonl.gz,csv}')]);
      expect(s.totals.quarantined).toBe(0);
      expect(s.totals.inserted + s.totals.already_present).toBe(exp.totals.valid);
      const conflicts = store.sqlite.prepare(`SELECT count(*) FROM quarantine WHERE reason = 'id_conflict'`).pluck().get();
      expect(conflicts).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('yields lines lazily (a generator, not an array)', () => {
    const gen = generateRecords({ n: 1_000_000_000, seed: 1 });
    const first = [];
    for (const line of gen) {
      first.push(line);
      if (first.length === 50) break;
    }
    expect(first).toHaveLength(50);
    expect(first[0]).toMatchObject({ file: 'export.csv', kind: 'header' });
  });

  it('writes EXPECTED.json counts that match the files it wrote', async () => {
    const dir = tmp();
    const exp = await writeSample(dir, { n: 600, seed: 3 });
    expect(JSON.parse(readFileSync(join(dir, 'EXPECTED.json'), 'utf8'))).toEqual(exp);
    checkAgainstExpected(dir, exp);
    expect(exp.totals.bad).toBe(8);
    expect(exp.special_lines.map((s) => s.kind).sort()).toEqual(['empty_assistant', 'large_message', 'proto_keys', 'special_tokens', 'whitespace_only']);
  });

  it('covers every input shape and the mess of production logs', async () => {
    const dir = tmp();
    await writeSample(dir, { n: 1500, seed: 5 });
    const chat = recountJsonl(readBytes(dir, 'chat.jsonl')).records.filter((r) => r.shape === 'chat');
    const reqs = recountJsonl(readBytes(dir, 'requests.jsonl.gz')).records;
    const legacy = recountJsonl(readBytes(dir, 'legacy.jsonl')).records;
    const fb = recountJsonl(readBytes(dir, 'feedback.jsonl')).records;
    const csv = recountCsv(readBytes(dir, 'export.csv')).rows;
    expect(new Set(reqs.map((r) => r.shape))).toEqual(new Set(['request_response']));
    expect(new Set(legacy.map((r) => r.shape))).toEqual(new Set(['prompt_completion']));
    expect(new Set(fb.map((r) => r.shape))).toEqual(new Set(['feedback']));
    expect(chat.length).toBeGreaterThan(800);
    expect(Object.keys(csv[0]!)).toEqual(['id', 'question', 'answer', 'score', 'created_at', 'model']);
    expect(csv.some((r) => r.answer!.includes('\n')) && csv.some((r) => r.question!.includes(','))).toBe(true);

    type M = { role: string; content: string | null; tool_calls?: { function: { name: string; arguments: string } }[]; tool_call_id?: string };
    const msgs = (r: { value: Record<string, unknown> }): M[] => r.value.messages as M[];
    const finalText = (r: { value: Record<string, unknown> }): string => msgs(r).filter((m) => m.role === 'assistant').at(-1)?.content ?? '';

    // Tool calls: content null beside tool_calls, then a tool message answering that call id, and top-level tools.
    const withTools = chat.filter((r) => msgs(r).some((m) => m.tool_calls));
    expect(withTools.length).toBeGreaterThan(10);
    for (const r of withTools) {
      const i = msgs(r).findIndex((m) => m.tool_calls);
      expect(msgs(r)[i]!.content).toBeNull();
      expect(msgs(r)[i + 1]!.role).toBe('tool');
      expect(Array.isArray(r.value.tools)).toBe(true);
      expect(() => JSON.parse(msgs(r)[i]!.tool_calls![0]!.function.arguments)).not.toThrow();
    }
    // Refusals around 8%, with straight and curly apostrophes.
    const refusals = chat.filter((r) => /\b(sorry|can[’']t|cannot|unable|won[’']t|apologi[sz]e)\b/i.test(finalText(r)) && finalText(r).length < 160);
    expect(refusals.length / chat.length).toBeGreaterThan(0.04);
    expect(refusals.length / chat.length).toBeLessThan(0.14);
    expect(refusals.some((r) => finalText(r).includes('’'))).toBe(true);
    expect(chat.some((r) => msgs(r)[0]!.role === 'system')).toBe(true);
    expect(Math.max(...chat.map((r) => msgs(r).filter((m) => m.role === 'assistant' && m.content !== null).length))).toBeGreaterThanOrEqual(4);

    // Duplicates: the same messages under another id, and near duplicates that differ only slightly.
    const norm = (s: string): string => s.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
    const byMessages = new Map<string, Set<unknown>>();
    const byPromptNorm = new Map<string, Set<string>>();
    for (const r of chat) {
      const key = JSON.stringify(r.value.messages);
      (byMessages.get(key) ?? byMessages.set(key, new Set()).get(key)!).add(r.value.id);
      const u = msgs(r).find((m) => m.role === 'user')!.content!;
      (byPromptNorm.get(norm(u)) ?? byPromptNorm.set(norm(u), new Set()).get(norm(u))!).add(u);
    }
    expect([...byMessages.values()].filter((ids) => ids.size > 1).length).toBeGreaterThan(5);
    expect([...byPromptNorm.values()].filter((v) => v.size > 1).length).toBeGreaterThan(3);

    // PII and secrets in user turns.
    const userText = chat.flatMap((r) => msgs(r).filter((m) => m.role === 'user').map((m) => m.content ?? '')).join('\n');
    const luhn = (d: string): boolean => [...d].reverse().reduce((s, c, i) => s + (i % 2 ? ((+c * 2) % 10) + Math.floor((+c * 2) / 10) : +c), 0) % 10 === 0;
    const cards = [...userText.matchAll(/(?:card I used was|Card number) ((?:\d[ -]?){14,15}\d)\b/g)].map((m) => m[1]!.replace(/\D/g, ''));
    expect(cards.length).toBeGreaterThan(3);
    expect(cards.every(luhn)).toBe(true);
    for (const re of [/[\w.+-]+@[\w-]+\.[a-z]{2,}/, /\bsk-proj-[\w-]{40,}/, /\bsk-[A-Za-z0-9]{48}\b/, /\bAKIA[A-Z2-7]{16}\b/, /\bghp_[A-Za-z0-9]{36}\b/, /Bearer [\w-]{20,}/, /eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/, /\b\d{3}-\d{2}-\d{4}\b/, /\b(?:\d{1,3}\.){3}\d{1,3}\b/, /555[-.]\d{4}/]) {
      expect(userText, String(re)).toMatch(re);
    }

    // Feedback in every embedded form, and feedback events for unknown ids.
    const forms = new Set(chat.map((r) => r.value.feedback).filter((f) => f !== undefined).map((f) => (Array.isArray(f) ? 'array' : typeof f)));
    expect(forms).toEqual(new Set(['number', 'boolean', 'string', 'object', 'array']));
    const known = new Set([...chat, ...reqs, ...legacy].map((r) => String(r.value.id)).concat(csv.map((r) => r.id!)));
    expect(fb.some((r) => !known.has(String(r.value.log_id)))).toBe(true);
    expect(fb.filter((r) => known.has(String(r.value.log_id))).length).toBeGreaterThan(100);
    const scores = [...chat.map((r) => r.value.feedback), ...fb.map((r) => r.value.value)].filter((v): v is number => typeof v === 'number' && v > 1);
    expect(scores.filter((s) => s >= 4).length / scores.length).toBeGreaterThan(0.6);

    // Timestamps in all three forms, the three models, tags and metadata.
    const ts = chat.map((r) => r.value.created_at);
    expect(ts.some((t) => typeof t === 'string')).toBe(true);
    expect(ts.some((t) => typeof t === 'number' && t < 1e11)).toBe(true);
    expect(ts.some((t) => typeof t === 'number' && t > 1e11)).toBe(true);
    expect(new Set(chat.map((r) => r.value.model))).toEqual(new Set(['gpt-4o-mini-2024-07-18', 'gpt-4o-2024-08-06', 'gpt-3.5-turbo-0125']));
    expect(new Set(chat.map((r) => (r.value.tags as Record<string, unknown> | undefined)?.lang))).toEqual(new Set(['en', 'de', 'es', undefined]));

    // Failed API calls among the request/response records.
    const failed = reqs.filter((r) => Number(r.value.status_code) >= 400 || r.value.error !== undefined || !(r.value.response as { choices?: unknown[] } | null)?.choices?.length);
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.length / reqs.length).toBeLessThan(0.15);
  });

  it('keeps the committed sample in sync with the generator', async () => {
    const expPath = join(SAMPLE_DIR, 'EXPECTED.json');
    expect(existsSync(expPath), `${expPath} missing: run node dist/data/generate.js --out data/sample --n 1500 --seed 7`).toBe(true);
    const committed = JSON.parse(readFileSync(expPath, 'utf8')) as Expected;
    checkAgainstExpected(SAMPLE_DIR, committed);
    const dir = tmp();
    await writeSample(dir, { n: committed.generator.n, seed: committed.generator.seed, anomalies: committed.generator.anomalies });
    let total = 0;
    for (const f of [...SAMPLE_FILE_NAMES, 'EXPECTED.json']) {
      expect(sha(join(dir, f)), `data/sample/${f} is stale: regenerate it`).toBe(sha(join(SAMPLE_DIR, f)));
      total += statSync(join(SAMPLE_DIR, f)).size;
    }
    expect(total).toBeLessThan(3 * 1024 * 1024);
  });
});

const realdata = locateRealdata();
const mustRun = Boolean(process.env.CI);
if (!realdata && !mustRun) console.warn(`[generate.test] real-data adapter tests skipped: ${REALDATA_PATH} not found`);

describe.skipIf(!realdata && !mustRun)('test/support/realdata adapters', () => {
  it('finds the real data (required in CI)', () => {
    expect(realdata, `real data missing at ${REALDATA_PATH}`).not.toBeNull();
  });

  it('parses hh-rlhf transcripts, keeping empty assistant turns', () => {
    expect(parseHhTranscript('\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: bye\n\nAssistant: ')).toEqual([
      { role: 'user', content: 'hi there' },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'bye' },
      { role: 'assistant', content: '' },
    ]);
  });

  it('writes only well-formed records of our shapes, one per line', async () => {
    const dir = tmp();
    const { files } = await writeRealdataInputs(dir);
    expect(new Set(files.map((f) => f.format))).toEqual(new Set(['chat', 'request_response', 'prompt_completion', 'feedback']));
    const ids = new Set<string>();
    const events = new Set<string>();
    for (const f of files) {
      const buf = f.path.endsWith('.gz') ? gunzipSync(readFileSync(f.path)) : readFileSync(f.path);
      const lines = splitLines(buf);
      expect(lines.length, f.path).toBe(f.lines);
      expect(f.expectedRecords, f.path).toBe(f.lines - f.blankLines);
      expect(f.lines, f.path).toBeGreaterThan(50);
      for (const [i, l] of lines.entries()) {
        const p = classify(l);
        expect(p.kind === 'record' ? p.shape : p, `${f.path}:${i + 1}`).toBe(f.format);
        if (p.kind !== 'record') continue;
        if (f.format === 'feedback') {
          events.add(JSON.stringify([p.value.log_id, p.value.name, p.value.value, p.value.created_at]));
          continue;
        }
        const id = String(p.value.id);
        expect(ids.has(id), `duplicate id ${id}`).toBe(false);
        ids.add(id);
        const msgs = (f.format === 'request_response' ? (p.value.request as { messages: unknown[] }).messages : (p.value.messages as unknown[] | undefined)) ?? [];
        for (const m of msgs) expect(typeof (m as { content: unknown }).content, `${f.path}:${i + 1}`).toBe('string');
      }
    }
    // Events are distinct (nothing would count as already present) and point at conversations we wrote.
    const fbFile = files.find((f) => f.format === 'feedback')!;
    expect(events.size).toBe(fbFile.lines);
    for (const e of events) expect(ids.has(String((JSON.parse(e) as unknown[])[0]))).toBe(true);
    const hh = files.find((f) => f.path.endsWith('hh-rlhf.jsonl.gz'))!;
    const hhRecords = splitLines(gunzipSync(readFileSync(hh.path))).map((l) => JSON.parse(l.toString()) as { messages: { role: string; content: string }[] });
    expect(hhRecords.some((r) => r.messages.some((m) => m.role === 'assistant' && m.content === ''))).toBe(true);
  });
});
