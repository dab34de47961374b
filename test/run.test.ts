import { beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { main } from '../pipeline/cli.js';
import { CLI, cli, jsonl, tempDir } from './support/tmp.js';
import { prng, readJsonl, tally, words, type LineageRow } from './support/pipeline.js';
import { locateRealdata, REALDATA_PATH, writeRealdataInputs } from './support/realdata.js';
import type { Manifest } from '../schemas/manifest.js';

const root = tempDir('logcurate-run-');

const EMAIL = 'someone' + '@example.org';
const REFUSAL = "I'm sorry, but I can't help with that.";

/** A small nightly-like data set with a known shape: feedback, near copies, refusals, PII, failed calls. */
function writeLogs(dir: string): { ids: string[] } {
  const rand = prng(99);
  const chats: unknown[] = [];
  const feedback: unknown[] = [];
  const ids: string[] = [];
  let prev = '';
  for (let k = 0; k < 240; k++) {
    const id = `e${String(k).padStart(3, '0')}`;
    ids.push(id);
    let prompt = words(rand, 8).join(' ');
    if (k % 11 === 10) prompt = prev.toUpperCase();
    prev = prompt;
    const answer = k % 5 === 0 ? REFUSAL : k % 7 === 0 ? `Write to ${EMAIL} for that.` : `Here is how: ${words(rand, 12).join(' ')}.`;
    chats.push({
      id,
      created_at: new Date(Date.UTC(2024, 5, 1) + k * 3_600_000).toISOString(),
      model: 'gpt-4o-mini',
      user_id: `u${k % 30}`,
      ...(k % 13 === 12 ? { status: 'error' } : {}),
      messages: [
        { role: 'system', content: 'old prompt' },
        { role: 'user', content: prompt },
        { role: 'assistant', content: answer },
      ],
    });
    // Half of the refusals and three quarters of the rest pass `min: 3`; every ninth conversation has no score.
    const value = k % 5 === 0 ? (k % 10 === 0 ? 5 : 2) : (k % 4) + 2;
    if (k % 9 !== 8) feedback.push({ log_id: id, value, created_at: new Date(Date.UTC(2024, 5, 2) + k * 1000).toISOString() });
  }
  mkdirSync(join(dir, 'logs'), { recursive: true });
  mkdirSync(join(dir, 'fb'), { recursive: true });
  writeFileSync(join(dir, 'logs', 'chat.jsonl'), jsonl(chats));
  writeFileSync(join(dir, 'fb', 'feedback.jsonl'), jsonl(feedback));
  return { ids };
}

const CONFIG = `
name: engine-test
seed: 11
store: store.db
inputs:
  - logs/*.jsonl
  - { path: fb/*.jsonl, format: feedback }
stages:
  - filter: { feedback: { min: 3 } }
  - redact_pii: {}
  - dedupe: { method: near, key: prompt }
  - rebalance_refusals: { target_rate: 0.1 }
  - system_prompt: { text: "You are helpful." }
  - split: { test_fraction: 0.2 }
  - emit: { dir: out, model: gpt-4o-mini-2024-07-18, min_examples: 10, report: false }
`;

interface RunOut {
  manifest: Manifest;
  lineage: LineageRow[];
  bytes: Record<string, Buffer>;
}

function readRun(out: string): RunOut {
  const bytes: Record<string, Buffer> = {};
  for (const f of ['train.jsonl', 'test.jsonl', 'lineage.jsonl', 'manifest.json']) bytes[f] = readFileSync(join(out, f));
  return { manifest: JSON.parse(bytes['manifest.json']!.toString('utf8')) as Manifest, lineage: readJsonl<LineageRow>(join(out, 'lineage.jsonl')), bytes };
}

function spawnCli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, LOGCURATE_DB: '' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function explainJson(db: string, id: string, run?: string): Promise<Record<string, unknown>> {
  let stdout = '';
  const code = await main(['explain', id, '--db', db, '--json', ...(run ? ['--run', run] : [])], { stdout: (s) => (stdout += s), stderr: () => {} });
  expect(code).toBe(0);
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('run: the engine over a nightly-like store', () => {
  const dir = join(root, 'engine');
  const db = join(dir, 'store.db');
  let ids: string[];
  let a: RunOut;
  let b: RunOut;

  beforeAll(() => {
    mkdirSync(dir, { recursive: true });
    ids = writeLogs(dir).ids;
    writeFileSync(join(dir, 'nightly.yaml'), CONFIG);
    const r1 = cli(['run', 'nightly.yaml', '--out', 'out-a', '--quiet'], { cwd: dir });
    expect(r1.code, r1.stderr).toBe(0);
    const r2 = cli(['run', 'nightly.yaml', '--out', 'out-b', '--quiet'], { cwd: dir });
    expect(r2.code, r2.stderr).toBe(0);
    a = readRun(join(dir, 'out-a'));
    b = readRun(join(dir, 'out-b'));
  });

  it('is deterministic: the same store and config give byte-identical train, test and lineage files', () => {
    for (const f of ['train.jsonl', 'test.jsonl', 'lineage.jsonl']) expect(b.bytes[f]!.equals(a.bytes[f]!), f).toBe(true);
    expect(a.manifest.run.id).not.toBe(b.manifest.run.id);
    expect(a.manifest.files.train.sha256).toBe(b.manifest.files.train.sha256);
    // The data set exercises every stage.
    const dropped = Object.fromEntries(a.manifest.stages.map((s) => [s.name, s.in - s.out]));
    expect(dropped.filter).toBeGreaterThan(0);
    expect(dropped.dedupe).toBeGreaterThan(0);
    expect(dropped.rebalance_refusals).toBeGreaterThan(0);
    expect(a.manifest.files.test.examples).toBeGreaterThan(0);
  });

  it('the funnel adds up, stage by stage, and matches the lineage', () => {
    const m = a.manifest;
    expect(m.stages.map((s) => s.name)).toEqual(['filter', 'redact_pii', 'dedupe', 'rebalance_refusals', 'system_prompt', 'split', 'emit']);
    expect(m.store.conversations).toBe(240);
    expect(m.stages[0]!.in).toBe(240);
    m.stages.forEach((s, k) => {
      const sum = Object.values(s.dropped).reduce((x, y) => x + y, 0);
      expect(s.in, s.name).toBe(s.out + sum);
      if (k > 0) expect(s.in, s.name).toBe(m.stages[k - 1]!.out);
    });
    const last = m.stages[m.stages.length - 1]!;
    expect(last.out).toBe(m.files.train.examples + m.files.test.examples);
    // Every conversation has one lineage line; every dropped one has its stage and a reason.
    expect(a.lineage.map((r) => r.id).sort()).toEqual([...ids].sort());
    for (const r of a.lineage) {
      if (r.status === 'dropped') {
        expect(r.stage, r.id).toBeTruthy();
        expect(r.reason, r.id).toBeTruthy();
        expect(r.line).toBeNull();
      } else {
        expect(r.stage).toBeNull();
        expect(r.reason).toBeNull();
        expect(r.line).toBeGreaterThan(0);
      }
    }
    // Per stage and reason category, the lineage counts are the funnel's.
    for (const s of m.stages) {
      const rows = a.lineage.filter((r) => r.status === 'dropped' && r.stage === s.name);
      const byCat = tally(rows.map((r) => (r.reason!.startsWith('duplicate_of:') ? 'duplicate_of' : r.reason!)));
      expect(Object.fromEntries(byCat), s.name).toEqual(s.dropped);
    }
    // Lines are 1..n in each file, each once, and match the files' line counts.
    for (const split of ['train', 'test'] as const) {
      const lines = a.lineage.filter((r) => r.status === split).map((r) => r.line!).sort((x, y) => x - y);
      expect(lines).toEqual(Array.from({ length: lines.length }, (_, k) => k + 1));
      expect(a.bytes[`${split}.jsonl`]!.toString('utf8').split('\n').filter(Boolean)).toHaveLength(lines.length);
      expect(m.files[split].examples).toBe(lines.length);
    }
  });

  it('the files hold what the stages decided: redacted, the new system prompt, the refusal rate at most the target', () => {
    const train = a.bytes['train.jsonl']!.toString('utf8');
    const test = a.bytes['test.jsonl']!.toString('utf8');
    expect(train + test).not.toContain(EMAIL);
    const examples = (train + test).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { messages: { role: string; content: string }[] });
    for (const ex of examples) expect(ex.messages[0]).toEqual({ role: 'system', content: 'You are helpful.' });
    const refusals = examples.filter((ex) => ex.messages[ex.messages.length - 1]!.content === REFUSAL).length;
    expect(refusals / examples.length).toBeLessThanOrEqual(0.1);
    expect(a.manifest.refusals!.after.count).toBe(refusals);
  });

  it('explain --json agrees with lineage.jsonl for every id; an unknown id is unknown', async () => {
    const runId = b.manifest.run.id;
    for (const row of b.lineage) {
      const e = await explainJson(db, row.id);
      expect({ id: e.id, run_id: e.run_id, status: e.status, stage: e.stage, reason: e.reason, line: e.line }).toEqual({
        id: row.id,
        run_id: runId,
        status: row.status,
        stage: row.stage,
        reason: row.reason,
        line: row.line,
      });
    }
    // SQL sees the same decisions through the run_decisions view, a row per conversation.
    const sql = new Database(db, { readonly: true });
    const rows = sql
      .prepare(`SELECT c.id, d.status, d.stage, d.reason, d.line FROM run_decisions d JOIN conversations c ON c.pk = d.conv_pk WHERE d.run_id = ? ORDER BY d.conv_pk`)
      .all(runId);
    sql.close();
    expect(rows).toEqual(b.lineage.map((r) => ({ id: r.id, status: r.status, stage: r.stage, reason: r.reason, line: r.line })));
    const unknown = await explainJson(db, 'no-such-id');
    expect(unknown.status).toBe('unknown');
    // And through the real CLI, for one conversation of each status.
    for (const status of ['train', 'test', 'dropped'] as const) {
      const row = b.lineage.find((r) => r.status === status)!;
      const r = cli(['explain', row.id, '--db', db, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ id: row.id, run_id: runId, status, stage: row.stage, reason: row.reason, line: row.line });
    }
  });

  it('explain --run selects an older run; without it, the latest', async () => {
    writeFileSync(join(dir, 'strict.yaml'), CONFIG.replace('min: 3', 'min: 5').replace('dir: out', 'dir: out-strict'));
    const r = cli(['run', 'strict.yaml', '--quiet', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const strict = readRun(join(dir, 'out-strict'));
    const changed = a.lineage.filter((row) => strict.lineage.find((s) => s.id === row.id)!.status !== row.status);
    expect(changed.length).toBeGreaterThan(0);
    for (const row of changed.slice(0, 20)) {
      const latest = await explainJson(db, row.id);
      const newer = strict.lineage.find((s) => s.id === row.id)!;
      expect(latest).toMatchObject({ run_id: strict.manifest.run.id, status: newer.status, stage: newer.stage, reason: newer.reason, line: newer.line });
      const older = await explainJson(db, row.id, a.manifest.run.id);
      expect(older).toMatchObject({ run_id: a.manifest.run.id, status: row.status, stage: row.stage, reason: row.reason, line: row.line });
    }
    const bad = cli(['explain', 'e000', '--db', db, '--run', 'no-such-run']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no-such-run');
    // Nothing has written to out-a since run a: its line numbers are of the files still there.
    const kept = a.lineage.find((row) => row.status === 'train')!;
    expect(await explainJson(db, kept.id, a.manifest.run.id)).toMatchObject({ status: 'train', line: kept.line, files_replaced_by: null });
  });

  it('explain --run of a run whose folder a later run has written to says that its files were replaced', async () => {
    const again = cli(['run', 'nightly.yaml', '--out', 'out-a', '--quiet', '--json'], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    const later = (JSON.parse(again.stdout) as Manifest).run.id;
    const kept = a.lineage.find((row) => row.status === 'test')!;
    expect(await explainJson(db, kept.id, a.manifest.run.id)).toMatchObject({ status: 'test', line: kept.line, files_replaced_by: later });
    const human = cli(['explain', kept.id, '--db', db, '--run', a.manifest.run.id]);
    expect(human.stdout).toContain(`note    the folder now holds run ${later}'s files: this line is of this run's test.jsonl, since replaced`);
    // The latest run's own answer has no such note.
    expect(await explainJson(db, kept.id)).toMatchObject({ run_id: later, files_replaced_by: null });
  });

  it('a failed run leaves the previous files in place, and explain keeps answering from the last good run', async () => {
    const before = readRun(join(dir, 'out-b'));
    writeFileSync(join(dir, 'too-few.yaml'), CONFIG.replace('min_examples: 10', 'min_examples: 100000'));
    const r = cli(['run', 'too-few.yaml', '--out', 'out-b', '--quiet'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('min_examples');
    const after = readRun(join(dir, 'out-b'));
    for (const f of ['train.jsonl', 'test.jsonl', 'lineage.jsonl', 'manifest.json']) expect(after.bytes[f]!.equals(before.bytes[f]!), f).toBe(true);
    expect(readdirSync(join(dir, 'out-b')).filter((f) => f.startsWith('.staging'))).toEqual([]);
    // The failed run never placed anything in the files: it is not what `explain` answers from by default.
    const row = before.lineage.find((x) => x.status === 'train')!;
    const sqlite = new Database(db, { readonly: true });
    const failed = sqlite.prepare(`SELECT id FROM runs WHERE status = 'failed'`).pluck().get() as string;
    const lastGood = sqlite.prepare(`SELECT id FROM runs WHERE status = 'succeeded' ORDER BY started_at DESC LIMIT 1`).pluck().get() as string;
    sqlite.close();
    const e = await explainJson(db, row.id);
    expect(e).toMatchObject({ run_id: lastGood, run_status: 'succeeded' });
    expect(e.status).not.toBe('unknown');
    // Asked about the failed run itself, it says the conversation reached no file.
    const f = await explainJson(db, row.id, failed);
    expect(f).toMatchObject({ run_id: failed, status: 'unknown', line: null });
    expect(f.reason).toMatch(/failed.*min_examples/);
    const dropped = before.lineage.find((x) => x.status === 'dropped' && x.stage === 'filter')!;
    expect(await explainJson(db, dropped.id, failed)).toMatchObject({ status: 'dropped', stage: 'filter', reason: dropped.reason });
  });

  it('--dry-run --json prints the manifest and writes no files', () => {
    const r = cli(['run', 'nightly.yaml', '--dry-run', '--json', '--quiet', '--out', 'out-dry'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout) as Manifest;
    expect(m.run.dry_run).toBe(true);
    expect(m.stages).toEqual(a.manifest.stages);
    expect(m.files.train.examples).toBe(a.manifest.files.train.examples);
    expect(m.files.train.sha256).toBe(a.manifest.files.train.sha256);
    expect(existsSync(join(dir, 'out-dry'))).toBe(false);
    const sqlite = new Database(db, { readonly: true });
    try {
      expect(sqlite.prepare('SELECT status FROM runs WHERE id = ?').pluck().get(m.run.id)).toBe('dry_run');
    } finally {
      sqlite.close();
    }
    // The human summary says so too.
    const h = cli(['run', 'nightly.yaml', '--dry-run', '--quiet', '--out', 'out-dry'], { cwd: dir });
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/dry run/);
    expect(existsSync(join(dir, 'out-dry'))).toBe(false);
  });

  it('two runs at once on one store both succeed with correct outputs', async () => {
    const cdir = join(root, 'concurrent');
    mkdirSync(cdir);
    cpSync(join(dir, 'logs'), join(cdir, 'logs'), { recursive: true });
    cpSync(join(dir, 'fb'), join(cdir, 'fb'), { recursive: true });
    writeFileSync(join(cdir, 'nightly.yaml'), CONFIG);
    const [x, y] = await Promise.all([
      spawnCli(['run', 'nightly.yaml', '--out', 'out-x', '--quiet', '--json'], cdir),
      spawnCli(['run', 'nightly.yaml', '--out', 'out-y', '--quiet', '--json'], cdir),
    ]);
    expect(x.code, x.stderr).toBe(0);
    expect(y.code, y.stderr).toBe(0);
    const rx = readRun(join(cdir, 'out-x'));
    const ry = readRun(join(cdir, 'out-y'));
    // Both saw the whole store and decided exactly what a run alone decides.
    for (const r of [rx, ry]) {
      expect(r.manifest.store.conversations).toBe(240);
      for (const f of ['train.jsonl', 'test.jsonl']) expect(r.bytes[f]!.equals(a.bytes[f]!), f).toBe(true);
      // Lineage names each conversation's source file, which lives in another folder here.
      const strip = (rows: LineageRow[]) => rows.map(({ id, status, stage, reason, line }) => ({ id, status, stage, reason, line }));
      expect(strip(r.lineage)).toEqual(strip(a.lineage));
    }
    const sqlite = new Database(join(cdir, 'store.db'), { readonly: true });
    try {
      expect(sqlite.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(240);
      expect(sqlite.prepare(`SELECT status FROM runs ORDER BY status`).pluck().all()).toEqual(['succeeded', 'succeeded']);
    } finally {
      sqlite.close();
    }
  });
});

const realdata = locateRealdata();
const mustRun = Boolean(process.env.CI);
if (!realdata && !mustRun) console.warn(`[run.test] real-data run SKIPPED: ${REALDATA_PATH} not found (set CI=1 to make this a failure)`);

describe.skipIf(!realdata && !mustRun)('run: a nightly config over real data', () => {
  it('only conversations meeting the feedback condition reach the files', async () => {
    expect(realdata, `real data missing at ${REALDATA_PATH}`).not.toBeNull();
    const dir = join(root, 'realdata');
    const { files } = await writeRealdataInputs(join(dir, 'in'));
    writeFileSync(
      join(dir, 'nightly.yaml'),
      [
        'name: realdata-nightly',
        'seed: 5',
        'inputs:',
        ...files.filter((f) => f.format !== 'feedback').map((f) => `  - in/${f.path.split('/').pop()}`),
        '  - { path: in/realdata-feedback.jsonl, format: feedback }',
        'stages:',
        '  - filter: { feedback: { name: score, min: 4 } }',
        '  - redact_pii: {}',
        '  - dedupe: { method: near, key: prompt }',
        '  - rebalance_refusals: { target_rate: 0.05 }',
        '  - system_prompt: { mode: if_missing, text: "You are a helpful assistant." }',
        '  - split: { test_fraction: 0.1 }',
        '  - emit: { dir: out, model: gpt-4o-mini-2024-07-18, report: false }',
      ].join('\n'),
    );
    const r = cli(['run', 'nightly.yaml', '--db', 'store.db', '--quiet', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout) as Manifest;
    // The score of each conversation, computed here from the feedback file (one event per conversation).
    const score = new Map<string, number>();
    for (const ev of readJsonl<{ log_id: string; name: string; value: number }>(join(dir, 'in', 'realdata-feedback.jsonl'))) {
      if (ev.name === 'score') score.set(ev.log_id, ev.value);
    }
    const lineage = readJsonl<LineageRow>(join(dir, 'out', 'lineage.jsonl'));
    const expectedTotal = files.filter((f) => f.format !== 'feedback').reduce((s, f) => s + f.expectedRecords, 0);
    expect(lineage).toHaveLength(expectedTotal);
    expect(m.store.conversations).toBe(expectedTotal);
    let kept = 0;
    for (const row of lineage) {
      const s = score.get(row.id);
      if (row.status !== 'dropped') {
        kept++;
        expect(s, row.id).toBeGreaterThanOrEqual(4);
      } else if (s === undefined || s < 4) {
        expect(row.stage, row.id).toBe('filter');
        expect(row.reason).toBe(s === undefined ? 'no_feedback' : 'feedback_below_min');
      }
    }
    expect(kept).toBe(m.files.train.examples + m.files.test.examples);
    expect(kept).toBeGreaterThan(100);
    expect(m.refusals!.after.rate).toBeLessThanOrEqual(0.05);
    const filterRow = m.stages[0]!;
    expect(filterRow.in - filterRow.out).toBe([...lineage].filter((x) => x.stage === 'filter').length);
  });
});

describe('run: an output folder the inputs would read back', () => {
  const emitTo = (dir: string): string => `  - emit: { dir: ${dir}, model: gpt-4o-mini-2024-07-18, min_examples: 0, report: false }\n`;
  const setUp = (name: string): { dir: string; config: (inputs: string, out?: string) => string } => {
    const dir = join(root, name);
    mkdirSync(join(dir, 'data'), { recursive: true });
    const rand = prng(5);
    const logs = Array.from({ length: 30 }, (_, k) => ({ id: `l${k}`, messages: [{ role: 'user', content: words(rand, 6).join(' ') }, { role: 'assistant', content: `answer ${k}` }] }));
    writeFileSync(join(dir, 'data', 'logs.jsonl'), jsonl(logs));
    let n = 0;
    return {
      dir,
      config: (inputs, out = 'data') => {
        const file = join(dir, `c${n++}.yaml`);
        writeFileSync(file, `name: loop\nstore: loop.db\ninputs: ${inputs}\nstages:\n${emitTo(out)}`);
        return file;
      },
    };
  };

  it('is a config error on the first night, before the outputs exist: nothing is ingested or written', () => {
    const { dir, config } = setUp('loop');
    const first = cli(['run', config('["data/*.jsonl"]'), '--quiet']);
    expect(first.code, first.stderr).toBe(2);
    expect(first.stderr).toContain(`inputs: "data/*.jsonl" matches ${join(dir, 'data', 'train.jsonl')}, which is one of this run's own output files (emit.dir ${join(dir, 'data')})`);
    expect(readdirSync(join(dir, 'data'))).toEqual(['logs.jsonl']);
    if (existsSync(join(dir, 'loop.db'))) {
      const store = new Database(join(dir, 'loop.db'), { readonly: true });
      expect(store.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(0);
      store.close();
    }
    // The same for patterns written otherwise, and for a path naming an output file that does not exist yet.
    for (const inputs of ['["./data/*.jsonl"]', '["**/*.jsonl"]', '["data/{logs,lineage}.jsonl"]', `["${join(dir, 'data')}/*"]`, '["data/test.jsonl"]']) {
      const r = cli(['run', config(inputs), '--quiet']);
      expect(r.code, `${inputs}: ${r.stderr}`).toBe(2);
      expect(r.stderr, inputs).toContain(`is one of this run's own output files (emit.dir ${join(dir, 'data')})`);
    }
    // --out overrides emit.dir for the check too.
    const out = cli(['run', config('["data/*.jsonl"]', 'elsewhere'), '--quiet', '--out', join(dir, 'data')]);
    expect(out.code).toBe(2);
    expect(readdirSync(join(dir, 'data'))).toEqual(['logs.jsonl']);
  });

  it('names an input pattern that matched no files in the manifest, so --quiet --json still says so', () => {
    const { config } = setUp('nomatch');
    const r = cli(['run', config('["data/*.jsonl", "dat/*.jsonl"]', 'out'), '--quiet', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const manifest = JSON.parse(r.stdout) as Manifest;
    expect(manifest.warnings).toContain('inputs: dat/*.jsonl: the pattern matched no files');
    expect(manifest.warnings.filter((w) => w.startsWith('inputs:'))).toHaveLength(1);
  });

  it('counts the lines its ingest quarantined in the manifest, and only that run\'s', () => {
    const { dir, config } = setUp('quarantined');
    writeFileSync(join(dir, 'data', 'bad.jsonl'), '{"id": "x", "messages": [\n{"oops"}\n');
    const file = config('["data/*.jsonl"]', 'out');
    const first = JSON.parse(cli(['run', file, '--quiet', '--json']).stdout) as Manifest;
    expect(first.warnings).toContain("inputs: 2 line(s) quarantined by this run's ingest, in no output (`logcurate stats` lists the reasons)");
    // The next night reads nothing new: nothing quarantined by it.
    const second = JSON.parse(cli(['run', file, '--quiet', '--json']).stdout) as Manifest;
    expect(second.warnings.filter((w) => w.startsWith('inputs:'))).toEqual([]);
  });

  it('lets a pattern beside the outputs run night after night when it cannot match them', () => {
    const { dir, config } = setUp('beside');
    const file = config('["data/logs*.jsonl", "data/.hidden/*.jsonl"]');
    for (let night = 0; night < 2; night++) {
      const r = cli(['run', file, '--quiet', '--json']);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(readdirSync(join(dir, 'data')).sort()).toEqual(['lineage.jsonl', 'logs.jsonl', 'manifest.json', 'test.jsonl', 'train.jsonl']);
    // Outputs under a dot folder are not matched by a pattern, as the glob skips dot folders.
    const dottedConfig = config('["data/**/*.jsonl"]', 'data/.out');
    for (let night = 0; night < 2; night++) {
      const dotted = cli(['run', dottedConfig, '--quiet', '--json']);
      expect(dotted.code, dotted.stderr).toBe(0);
    }
    expect(readdirSync(join(dir, 'data', '.out'))).toContain('train.jsonl');
  });
});
