/**
 * manifest.json (SPEC §4): validated by schemas/manifest.ts, identical to `run --json`, and the warnings a
 * job-submission tool relies on. Runs go through the CLI's own main() in this process, one through the built CLI.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { main } from '../pipeline/cli.js';
import { manifestSchema, type Manifest } from '../schemas/manifest.js';
import { cli, jsonl, REPO, tempDir, type CliResult } from './support/tmp.js';

const root = tempDir('logcurate-manifest-');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

async function run(args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

let n = 0;
function project(name: string, records: unknown[], stages: unknown[], extra: Record<string, unknown> = {}) {
  const dir = join(root, `${name}-${++n}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'in.jsonl'), jsonl(records));
  const config = join(dir, 'config.json');
  const write = (st: unknown[]) => writeFileSync(config, JSON.stringify({ name, store: 'store.db', inputs: ['in.jsonl'], stages: st, ...extra }, null, 2));
  write(stages);
  return {
    dir,
    config,
    out: join(dir, 'out'),
    rewrite: write,
    async run(...args: string[]): Promise<CliResult & { manifest: Manifest }> {
      const r = await run(['run', config, '--json', '--quiet', ...args]);
      return { ...r, manifest: (r.code === 0 ? JSON.parse(r.stdout) : undefined) as Manifest };
    },
  };
}

const emit = (params: Record<string, unknown> = {}) => ({ emit: { dir: 'out', model: 'gpt-4o-mini-2024-07-18', min_examples: 0, report: false, ...params } });
const conv = (id: string, q: string, ans: string, extra: Record<string, unknown> = {}) => ({
  id,
  messages: [{ role: 'user', content: q }, { role: 'assistant', content: ans }],
  ...extra,
});
const many = (k: number) => Array.from({ length: k }, (_, i) => conv(`m${i}`, `Question ${i} about billing?`, `Answer ${i}.`));
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('manifest.json: the schema and the document', () => {
  it('is what `run --json` prints (built CLI), validates, and describes the run', () => {
    const p = project('doc', many(12), [{ split: { test_size: 2, method: 'exact' } }, emit()], { seed: 5 });
    const r = cli(['run', p.config, '--json', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const printed = JSON.parse(r.stdout) as Manifest;
    const onDisk = JSON.parse(readFileSync(join(p.out, 'manifest.json'), 'utf8')) as Manifest;
    expect(onDisk).toEqual(printed);
    const parsed = manifestSchema.safeParse(onDisk);
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    expect(onDisk.manifest_version).toBe(1);
    expect(onDisk.tool).toEqual({ name: 'logcurate', version: VERSION });
    expect(onDisk.run).toMatchObject({ name: 'doc', seed: 5, dry_run: false, config_sha256: sha256(readFileSync(p.config)) });
    expect(Date.parse(onDisk.run.started_at)).toBeLessThanOrEqual(Date.parse(onDisk.run.finished_at));
    expect(onDisk.store).toEqual({ path: join(p.dir, 'store.db'), conversations: 12 });
    expect(onDisk.files.train.examples).toBe(10);
    expect(onDisk.files.test.examples).toBe(2);
    expect(onDisk.outputs).toEqual({ lineage: 'lineage.jsonl', report: null });
    expect(readdirSync(p.out).sort()).toEqual(['lineage.jsonl', 'manifest.json', 'test.jsonl', 'train.jsonl']);
    // Every count is an integer, every token figure exact.
    for (const split of ['train', 'test'] as const) {
      const f = onDisk.files[split];
      for (const v of [f.examples, f.bytes, f.over_limit, f.truncated, f.dropped_over_limit, f.tokens.total, f.tokens.assistant, f.tokens.min, f.tokens.p50, f.tokens.p95, f.tokens.max]) expect(Number.isInteger(v)).toBe(true);
    }
  });

  it('rejects manifests that break the contract or contradict themselves', async () => {
    const p = project('schema', many(12), [{ split: { test_size: 2, method: 'exact' } }, emit()]);
    const { manifest } = await p.run();
    const good = structuredClone(manifest);
    expect(manifestSchema.safeParse(good).success).toBe(true);
    const broken: [string, (m: Manifest) => void][] = [
      ['a fractional count', (m) => void (m.files.train.examples = 1.5)],
      ['a negative byte count', (m) => void (m.files.test.bytes = -1)],
      ['a sha256 that is not one', (m) => void (m.files.train.sha256 = 'abc')],
      ['manifest_version 2', (m) => void ((m as { manifest_version: number }).manifest_version = 2)],
      ['zero epochs', (m) => void (m.cost.n_epochs = 0)],
      ['percentiles out of order', (m) => void (m.files.train.tokens.p50 = m.files.train.tokens.max + 1)],
      ['job request epochs that differ from the cost', (m) => void (m.job_request.method.supervised.hyperparameters.n_epochs = m.cost.n_epochs + 1)],
      ['more billing tokens than train tokens', (m) => void (m.cost.billing_tokens = m.files.train.tokens.total + 1)],
      ['a validation file for an empty test split', (m) => void (m.files.test = { ...m.files.test, examples: 0, bytes: 0, tokens: { total: 0, assistant: 0, min: 0, mean: 0, p50: 0, p95: 0, max: 0 } })],
      ['a cost without a price', (m) => void (m.model.price_per_1m_training_tokens = null)],
      ['a suffix over 64 characters', (m) => void (m.job_request.suffix = 'x'.repeat(65))],
    ];
    for (const [what, breakIt] of broken) {
      const m = structuredClone(good);
      breakIt(m);
      expect(manifestSchema.safeParse(m).success, what).toBe(false);
    }
    // More keys may be added (SPEC §1): an extra key is fine.
    expect(manifestSchema.safeParse({ ...good, extra: { anything: 1 } }).success).toBe(true);
  });

  it('without a split: an empty test.jsonl, and no validation file in the job request', async () => {
    const p = project('no-split', many(3), [emit()]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.manifest.files.test).toEqual({
      path: 'test.jsonl',
      examples: 0,
      bytes: 0,
      sha256: sha256(''),
      over_limit: 0,
      truncated: 0,
      dropped_over_limit: 0,
      tokens: { total: 0, assistant: 0, min: 0, mean: 0, p50: 0, p95: 0, max: 0 },
    });
    expect(readFileSync(join(p.out, 'test.jsonl'), 'utf8')).toBe('');
    expect(r.manifest.job_request.validation_file).toBeNull();
  });

  it('the funnel chains stage to stage and accounts for every drop', async () => {
    const records = [
      ...many(8).map((c, i) => ({ ...c, feedback: i < 6 ? 5 : 1 })),
      conv('dup-a', 'Where is my order?', 'Here.', { feedback: 5 }),
      conv('dup-b', 'where is  my ORDER?', 'There.', { feedback: 4 }),
      conv('empty', 'Hello?', '', { feedback: 5 }),
    ];
    const p = project('funnel', records, [
      { filter: { feedback: { min: 4 } } },
      { dedupe: { method: 'exact', key: 'prompt' } },
      { split: { test_size: 2, method: 'exact' } },
      emit(),
    ]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const st = r.manifest.stages;
    expect(st.map((s) => s.name)).toEqual(['filter', 'dedupe', 'split', 'emit']);
    expect(st[0]).toEqual({ name: 'filter', in: 11, out: 9, dropped: { feedback_below_min: 2 } });
    expect(st[1]).toEqual({ name: 'dedupe', in: 9, out: 8, dropped: { duplicate_of: 1 } });
    expect(st[2]).toMatchObject({ name: 'split', in: 8, out: 8, dropped: {} });
    expect(st[3]).toEqual({ name: 'emit', in: 8, out: 7, dropped: { 'invalid:missing_content': 1 } });
    for (let k = 1; k < st.length; k++) expect(st[k]!.in).toBe(st[k - 1]!.out);
    for (const s of st) expect(s.in - s.out).toBe(Object.values(s.dropped).reduce((a, b) => a + b, 0));
    expect(r.manifest.files.train.examples + r.manifest.files.test.examples).toBe(st[3]!.out);
  });

  it('refusals: measured again on what reached the files', async () => {
    const refusal = "I'm sorry, but I can't help with that.";
    const records = [
      ...many(16),
      ...Array.from({ length: 4 }, (_, i) => conv(`r${i}`, `Please do something bad ${i}`, refusal)),
    ];
    const p = project('refusals', records, [{ rebalance_refusals: { target_rate: 0.1 } }, emit()]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    const ref = r.manifest.refusals!;
    expect(ref.target_rate).toBe(0.1);
    expect(ref.before).toEqual({ count: 4, rate: 0.2 });
    const lines = readFileSync(join(p.out, 'train.jsonl'), 'utf8').trimEnd().split('\n');
    const inFiles = lines.filter((l) => l.includes(refusal)).length;
    expect(ref.after).toEqual({ count: inFiles, rate: Math.round((inFiles / lines.length) * 1e6) / 1e6 });
    expect(ref.after.rate).toBeLessThanOrEqual(0.1);
    const none = await project('no-refusals', many(3), [emit()]).run();
    expect(none.manifest.refusals).toBeNull();
  });
});

describe('manifest.json: warnings', () => {
  it('fewer than 10 train examples', async () => {
    const few = await project('warn-few', many(9), [emit()]).run();
    expect(few.manifest.warnings).toContain('only 9 train example(s); OpenAI requires at least 10');
    const enough = await project('warn-enough', many(10), [emit()]).run();
    expect(enough.manifest.warnings).toEqual([]);
  });

  it('examples without a system or user message', async () => {
    const records = [...many(10), { id: 'lonely', messages: [{ role: 'assistant', content: 'An answer nobody asked for.' }] }];
    const r = await project('warn-prompt', records, [emit()]).run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.manifest.files.train.examples).toBe(11);
    expect(r.manifest.warnings).toEqual(['1 example(s) have no system or user message (e.g. "lonely")']);
  });

  it('examples over the limit (dropped) and the over_limit counts', async () => {
    const long = Array.from({ length: 4200 }, () => 'hello').join(' ');
    const records = [...many(10), conv('long-1', long, 'ok'), conv('long-2', `again ${long}`, 'ok')];
    const r = await project('warn-limit', records, [emit({ model: 'davinci-002' })]).run();
    expect(r.code, r.stderr).toBe(0);
    // over_limit counts the file's examples over the limit (as validate does): none, both were dropped.
    expect(r.manifest.files.train).toMatchObject({ examples: 10, over_limit: 0, dropped_over_limit: 2, truncated: 0 });
    expect(r.manifest.warnings).toEqual(['2 example(s) over the 4096-token limit of davinci-002 were dropped']);
  });

  it('a model not in the table', async () => {
    const r = await project('warn-model', many(10), [emit({ model: 'gpt-4-0613' })]).run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.manifest.warnings).toHaveLength(1);
    expect(r.manifest.warnings[0]).toContain('"gpt-4-0613" is not in the price and limit table');
    expect(r.manifest.model).toMatchObject({ encoding: 'cl100k_base', max_tokens_per_example: null, price_per_1m_training_tokens: null });
    expect(r.manifest.cost.estimated_usd).toBeNull();
  });

  it('exact duplicates within a file', async () => {
    const records = [...many(10), conv('twin-a', 'Same question', 'Same answer'), conv('twin-b', 'Same question', 'Same answer')];
    const r = await project('warn-dup', records, [emit()]).run();
    expect(r.manifest.warnings).toEqual(['train.jsonl has 1 exact duplicate example(s) (lines 12)']);
  });
});

describe('manifest.json: dry runs and optional outputs', () => {
  it('--dry-run prints the manifest and writes nothing', async () => {
    const p = project('dry', many(12), [emit({ report: true })]);
    const r = await p.run('--dry-run');
    expect(r.code, r.stderr).toBe(0);
    expect(r.manifest.run.dry_run).toBe(true);
    expect(manifestSchema.safeParse(r.manifest).success).toBe(true);
    expect(r.manifest.files.train.examples).toBe(12);
    expect(existsSync(p.out)).toBe(false);
    // The same figures as a real run.
    const real = await p.run();
    expect(real.manifest.files).toEqual(r.manifest.files);
    expect(real.manifest.cost).toEqual(r.manifest.cost);
  });

  it('lineage: false and report: false leave no such files, not even older ones', async () => {
    const p = project('optional', many(12), [emit({ report: true })]);
    expect((await p.run()).code).toBe(0);
    expect(readdirSync(p.out).sort()).toEqual(['lineage.jsonl', 'manifest.json', 'report.html', 'test.jsonl', 'train.jsonl']);
    p.rewrite([emit({ lineage: false, report: false })]);
    const r = await p.run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.manifest.outputs).toEqual({ lineage: null, report: null });
    expect(readdirSync(p.out).sort()).toEqual(['manifest.json', 'test.jsonl', 'train.jsonl']);
  });
});
