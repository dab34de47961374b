import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../pipeline/cli.js';
import type { Manifest } from '../schemas/manifest.js';
import { cli, jsonl, tempDir } from './support/tmp.js';

const root = tempDir('logcurate-config-');
let n = 0;

const LOGS = jsonl(Array.from({ length: 12 }, (_, k) => ({ id: `c${k}`, messages: [{ role: 'user', content: `q${k}` }, { role: 'assistant', content: `a${k}` }] })));
const EMIT = '  - emit: { dir: out, model: gpt-4o-mini-2024-07-18, min_examples: 0, report: false }';

/**
 * Runs `logcurate run` on a config in a fresh folder and checks the config-error contract: exit 2, the message names
 * the file and the key path, and nothing was written — no store, no output folder, nothing besides the files the test
 * put there. `cli: true` spawns the real built CLI with the folder as working directory (so a default ./curation.db
 * would land there); otherwise the same `main()` runs in-process (a process start costs ~0.5 s), with --db inside the
 * folder.
 */
async function runBad(name: string, text: string | Buffer, opts: { files?: Record<string, string | Buffer>; json?: boolean; cli?: boolean } = {}): Promise<string> {
  const dir = join(root, `case-${++n}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'logs.jsonl'), LOGS);
  for (const [f, t] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, f), t);
  const cfgName = `${name}.${opts.json ? 'json' : 'yaml'}`;
  writeFileSync(join(dir, cfgName), text);
  const before = readdirSync(dir).sort();
  let r: { code: number; stdout: string; stderr: string };
  if (opts.cli) r = cli(['run', cfgName, '--quiet'], { cwd: dir });
  else {
    let stdout = '';
    let stderr = '';
    const code = await main(['run', join(dir, cfgName), '--quiet', '--db', join(dir, 'default.db')], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
    r = { code, stdout, stderr };
  }
  expect(r.code, `${name}: stderr ${r.stderr}`).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr).toContain(cfgName);
  expect(readdirSync(dir).sort(), `${name}: nothing may be written`).toEqual(before);
  expect(existsSync(join(dir, 'out'))).toBe(false);
  return r.stderr;
}

const CLI = { cli: true };

const yaml = (...stages: string[]): string => ['name: cfg-test', 'store: store.db', 'inputs: [logs.jsonl]', 'stages:', ...stages].join('\n') + '\n';

describe('config errors: exit 2, the key path named, nothing written', () => {
  it('an unknown stage', async () => {
    const err = await runBad('unknown-stage', yaml('  - filter: {}', '  - dedup: {}', EMIT), CLI);
    expect(err).toContain('stages[1].dedup');
    expect(err).toMatch(/unknown stage/);
    expect(err).toContain('dedupe');
  });

  it('an unknown key (a typo) names its full path and the allowed keys', async () => {
    const err = await runBad('typo', yaml('  - filter: {}', '  - dedupe: { treshold: 0.9 }', EMIT), CLI);
    expect(err).toContain('stages[1].dedupe.treshold');
    expect(err).toMatch(/unknown key/);
    expect(err).toContain('threshold');
    const nested = await runBad('nested-typo', yaml('  - filter: { feedback: { minn: 4 } }', EMIT));
    expect(nested).toContain('stages[0].filter.feedback.minn');
    // An input is a path or { path, format }: a typo in the object form lists that form's keys.
    const input = await runBad('input-typo', `name: cfg-test\ninputs:\n  - { path: logs.jsonl, fromat: chat }\nstages:\n${EMIT}\n`);
    expect(input).toContain('inputs[0].fromat: unknown key; expected one of path, format');
  });

  it('an unknown top-level key', async () => {
    const err = await runBad('top', `name: cfg-test\nsead: 4\nstages:\n${EMIT}\n`, CLI);
    expect(err).toContain('sead');
    expect(err).toMatch(/unknown key/);
  });

  it('a misspelled required key is named as the typo, not only as the key it leaves missing', async () => {
    const err = await runBad('stage-typo', `name: cfg-test\nstage:\n${EMIT}\n`);
    expect(err).toContain('stage: unknown key');
    expect(err).toContain('stages');
  });

  it('a wrong type', async () => {
    const turns = await runBad('type-turns', yaml('  - filter: { min_turns: two }', EMIT), CLI);
    expect(turns).toMatch(/stages\[0\]\.filter\.min_turns: expected a number, got a string/);
    expect(turns).not.toMatch(/missing/);
    expect(await runBad('type-params', yaml('  - filter: strict', EMIT))).toMatch(/stages\[0\]\.filter: expected an object, got a string/);
    expect(await runBad('type-seed', `name: cfg-test\nseed: abc\nstages:\n${EMIT}\n`)).toMatch(/seed: .*integer/);
    expect(await runBad('type-stages', 'name: cfg-test\nstages: { emit: {} }\n')).toMatch(/stages: .*list/);
    expect(await runBad('type-models', yaml('  - filter: { models: gpt-4o }', EMIT))).toContain('stages[0].filter.models');
    expect(await runBad('type-enum', yaml('  - filter: { feedback: { aggregate: median } }', EMIT))).toMatch(/stages\[0\]\.filter\.feedback\.aggregate: .*latest/);
    expect(await runBad('type-tag', yaml('  - filter: { tags: { plan: { pro: true } } }', EMIT))).toMatch(/stages\[0\]\.filter\.tags\.plan: expected a tag value/);
    expect(await runBad('type-tag-item', yaml('  - filter: { tags: { plan: [pro, { x: 1 }] } }', EMIT))).toContain('stages[0].filter.tags.plan[1]: expected a tag value (string, number or boolean)');
    expect(await runBad('type-tag-empty', yaml('  - filter: { tags: { plan: [] } }', EMIT))).toContain('stages[0].filter.tags.plan: expected a non-empty list of tag values');
    expect(await runBad('type-tags', yaml('  - filter: { tags: [plan] }', EMIT))).toContain('stages[0].filter.tags: expected a mapping of tag keys to values, got a list');
    // Inside a union (a path string or { path, format }), the branch that fits names the deeper key.
    const format = await runBad('type-format', `name: cfg-test\ninputs:\n  - { path: logs.jsonl, format: feedbak }\nstages:\n${EMIT}\n`);
    expect(format).toMatch(/inputs\[0\]\.format: expected one of .*feedback/);
  });

  it('a whole number too large to be exact names the bound, not only "whole"', async () => {
    expect(await runBad('huge-size', yaml('  - split: { test_size: 1e30 }', EMIT))).toContain('stages[0].split.test_size: expected a whole count (at most 9007199254740991)');
    expect(await runBad('frac-size', yaml('  - split: { test_size: 2.5 }', EMIT))).toContain('stages[0].split.test_size: expected a whole count');
  });

  it('impossible values: test_fraction 0.7, target_rate 1.5, threshold 0', async () => {
    const frac = await runBad('fraction', yaml('  - split: { test_fraction: 0.7 }', EMIT), CLI);
    expect(frac).toContain('stages[0].split.test_fraction');
    expect(frac).toContain('0.5');
    const rate = await runBad('rate', yaml('  - rebalance_refusals: { target_rate: 1.5 }', EMIT));
    expect(rate).toContain('stages[0].rebalance_refusals.target_rate');
    expect(rate).toMatch(/0 to 1/);
    expect(await runBad('threshold', yaml('  - dedupe: { method: near, threshold: 0 }', EMIT))).toContain('stages[0].dedupe.threshold');
    expect(await runBad('epochs', yaml('  - emit: { dir: out, model: gpt-4o-mini, epochs: 99 }'))).toContain('stages[0].emit.epochs');
    expect(await runBad('turns', yaml('  - filter: { min_turns: 3, max_turns: 1 }', EMIT))).toContain('stages[0].filter.min_turns');
    expect(await runBad('both-sizes', yaml('  - split: { test_fraction: 0.1, test_size: 5 }', EMIT))).toContain('stages[0].split.test_size');
    expect(await runBad('since', yaml('  - filter: { since: "last tuesday" }', EMIT))).toContain('stages[0].filter.since');
    expect(await runBad('group', yaml('  - split: { group_by: customer }', EMIT))).toContain('stages[0].split.group_by');
  });

  it('emit missing, not last, or without its required keys', async () => {
    expect(await runBad('emit-not-last', yaml(EMIT, '  - filter: {}'), CLI)).toMatch(/stages\[0\]\.emit: emit must be the last stage/);
    expect(await runBad('no-emit', yaml('  - filter: {}'))).toMatch(/emit/);
    expect(await runBad('emit-model', yaml('  - emit: { dir: out }'))).toMatch(/stages\[0\]\.emit\.model: required key is missing \(expected string\)/);
  });

  it('split twice', async () => {
    const err = await runBad('split-twice', yaml('  - split: {}', '  - filter: {}', '  - split: { test_fraction: 0.2 }', EMIT), CLI);
    expect(err).toContain('stages[2].split');
    expect(err).toMatch(/once/);
  });

  it('a missing system_prompt file', async () => {
    const err = await runBad('prompt-file', yaml('  - system_prompt: { file: prompts/missing.txt }', EMIT), CLI);
    expect(err).toContain('stages[0].system_prompt.file');
    expect(err).toContain('missing.txt');
    expect(err).toContain('ENOENT');
    expect(await runBad('prompt-none', yaml('  - system_prompt: { mode: replace }', EMIT))).toContain('stages[0].system_prompt.text');
    expect(await runBad('prompt-empty', yaml('  - system_prompt: { file: empty.txt }', EMIT), { files: { 'empty.txt': '\n' } })).toContain('stages[0].system_prompt.file');
    const latin1 = await runBad('prompt-latin1', yaml('  - filter: {}', '  - system_prompt: { file: latin1.txt }', EMIT), { files: { 'latin1.txt': Buffer.from('Caf\xe9 prompt\n', 'latin1') }, cli: true });
    expect(latin1).toMatch(/stages\[1\]\.system_prompt\.file: \S*latin1\.txt is not valid UTF-8 \(line 1\); expected the system prompt as UTF-8 text/);
  });

  it('a config that is not UTF-8 names the file and line, instead of writing U+FFFD into the prompt', async () => {
    const text = Buffer.concat([Buffer.from('name: cfg-test\nstages:\n  - system_prompt: { text: "Caf'), Buffer.from([0xe9]), Buffer.from(' support" }\n' + EMIT + '\n')]);
    const err = await runBad('latin1-config', text, CLI);
    expect(err).toMatch(/latin1-config\.yaml:3: not valid UTF-8; expected the config as UTF-8 text/);
  });

  it('unparseable YAML names the line', async () => {
    const err = await runBad('broken', 'name: cfg-test\nstages:\n  - filter: { min_turns: 1\n  - emit: { dir: out }\n', CLI);
    expect(err).toMatch(/broken\.yaml:\d+(:\d+)?: invalid YAML/);
    const line = Number(/broken\.yaml:(\d+)/.exec(err)![1]);
    expect(line).toBeGreaterThanOrEqual(3);
    expect(line).toBeLessThanOrEqual(4);
    const dup = await runBad('dup-key', 'name: cfg-test\nname: other\nstages:\n' + EMIT + '\n');
    expect(dup).toMatch(/dup-key\.yaml:2(:\d+)?: invalid YAML/);
  });

  it('an invalid regular expression in filter.exclude_content or rebalance patterns', async () => {
    const f = await runBad('regex-filter', yaml("  - filter: { exclude_content: ['ok', '(unclosed'] }", EMIT), CLI);
    expect(f).toContain('stages[0].filter.exclude_content[1]');
    expect(f).toMatch(/regular expression/);
    const p = await runBad('regex-rebalance', yaml("  - rebalance_refusals: { target_rate: 0.1, patterns: ['[a-'] }", EMIT));
    expect(p).toContain('stages[0].rebalance_refusals.patterns[0]');
  });

  it('a bad or missing name', async () => {
    const err = await runBad('bad-name', yaml(EMIT).replace('name: cfg-test', 'name: Support Nightly'), CLI);
    expect(err).toMatch(/name: expected \[a-z0-9._-\]\+/);
    expect(await runBad('no-name', `stages:\n${EMIT}\n`)).toMatch(/name: required/);
  });

  it('a stage item that is not one { <stage>: <params> }', async () => {
    expect(await runBad('two-keys', yaml('  - { filter: {}, dedupe: {} }', EMIT))).toContain('stages[0]');
    expect(await runBad('scalar-item', yaml('  - filter', EMIT))).toContain('stages[0]');
  });

  it('a JSON config gets the same checks, and a JSON syntax error names the line', async () => {
    const cfg = {
      name: 'cfg-test',
      store: 'store.db',
      inputs: ['logs.jsonl'],
      stages: [{ dedupe: { treshold: 0.9 } }, { emit: { dir: 'out', model: 'gpt-4o-mini' } }],
    };
    expect(await runBad('typo', JSON.stringify(cfg, null, 2), { json: true, cli: true })).toContain('stages[0].dedupe.treshold');
    const broken = '{\n  "name": "cfg-test",\n  "stages": [\n    { "emit": { "dir": "out" } },\n  ]\n}\n';
    const err = await runBad('broken', broken, { json: true });
    expect(err).toMatch(/broken\.json:5(:\d+)?: invalid JSON/);
  });

  it('emit: a price or epochs beyond their range, not an infinite cost later', async () => {
    const price = await runBad('price-huge', yaml('  - emit: { dir: out, model: gpt-4o-mini, price_per_1m_training_tokens: 1e308, epochs: 50 }'), CLI);
    expect(price).toContain('stages[0].emit.price_per_1m_training_tokens: expected a price from 0 to 1000000 USD per 1M training tokens');
    expect(price).not.toMatch(/internal|Infinity/);
    const json = { name: 'cfg-test', store: 'store.db', inputs: ['logs.jsonl'], stages: [{ filter: {} }, { emit: { dir: 'out', model: 'gpt-4o-mini', price_per_1m_training_tokens: 1000000.5 } }] };
    expect(await runBad('price-json', JSON.stringify(json), { json: true })).toContain('stages[1].emit.price_per_1m_training_tokens: expected a price from 0 to 1000000');
    expect(await runBad('price-neg', yaml('  - emit: { dir: out, model: gpt-4o-mini, price_per_1m_training_tokens: -1 }'))).toContain(
      'stages[0].emit.price_per_1m_training_tokens: expected a price from 0 to 1000000',
    );
    expect(await runBad('price-inf', yaml('  - emit: { dir: out, model: gpt-4o-mini, price_per_1m_training_tokens: .inf }'))).toContain(
      'stages[0].emit.price_per_1m_training_tokens: expected a price from 0 to 1000000',
    );
    expect(await runBad('epochs-zero', yaml('  - emit: { dir: out, model: gpt-4o-mini, epochs: 0 }'))).toContain('stages[0].emit.epochs: expected auto or a whole number from 1 to 50');
    expect(await runBad('epochs-half', yaml('  - emit: { dir: out, model: gpt-4o-mini, epochs: 2.5 }'))).toContain('stages[0].emit.epochs: expected auto or a whole number from 1 to 50');
  });

  it('filter since/until: an impossible calendar date or an infinite number', async () => {
    for (const [key, value] of [
      ['since', '"2026-02-30"'],
      ['until', '"2026-02-31T00:00:00Z"'],
    ]) {
      const err = await runBad(`date-${key}`, yaml(`  - filter: { ${key}: ${value} }`, EMIT));
      expect(err).toContain(`stages[0].filter.${key}: expected `);
      expect(err).toContain(`got ${value}`);
    }
    const inf = await runBad('since-inf', yaml('  - filter: { since: 1e999 }', EMIT));
    expect(inf).toContain('stages[0].filter.since: expected ISO 8601 or epoch seconds/milliseconds, got Infinity');
    const json = await runBad('until-type', JSON.stringify({ name: 'cfg-test', stages: [{ filter: { until: [2026] } }, { emit: { dir: 'out', model: 'gpt-4o-mini' } }] }), { json: true });
    expect(json).toContain('stages[0].filter.until: expected ISO 8601 or epoch seconds/milliseconds, got [2026]');
  });

  it('a seed outside 0 to 2^32 − 1 says the range', async () => {
    for (const seed of ['-1', '4294967296', '1.5', 'abc', '1e999']) {
      expect(await runBad(`seed-${seed}`, `name: cfg-test\nseed: ${seed}\nstages:\n${EMIT}\n`)).toContain('seed: expected an integer from 0 to 4294967295');
    }
  });

  it('emit.model: surrounding whitespace alone is not a model name', async () => {
    expect(await runBad('model-blank', yaml('  - emit: { dir: out, model: "   " }'))).toContain('stages[0].emit.model: expected a model name such as gpt-4o-mini-2024-07-18');
  });

  it('a JSON config with a key given twice names the key path and line, as YAML does', async () => {
    const top = await runBad('dup-top', '{\n  "name": "cfg-test",\n  "name": "other",\n  "stages": [{ "emit": { "dir": "out", "model": "gpt-4o-mini" } }]\n}\n', { json: true, cli: true });
    expect(top).toContain('dup-top.json:3:3: invalid JSON: duplicate key name (first on line 2)');
    const nested = await runBad(
      'dup-nested',
      '{"name": "cfg-test", "stages": [\n  {"filter": {}},\n  {"emit": {"dir": "out", "model": "gpt-4o-mini", "di\\u0072": "again"}}\n]}\n',
      { json: true },
    );
    expect(nested).toContain('dup-nested.json:3:51: invalid JSON: duplicate key stages[1].emit.dir (first on line 3)');
    const proto = await runBad('dup-proto', '{"name": "cfg-test", "stages": [{"filter": {"tags": {"__proto__": "a", "__proto__": "b"}}}, {"emit": {"dir": "out", "model": "gpt-4o-mini"}}]}', {
      json: true,
    });
    expect(proto).toContain('invalid JSON: duplicate key stages[0].filter.tags.__proto__ (first on line 1)');
  });

  it('a config file that does not exist', async () => {
    const dir = join(root, 'no-config');
    mkdirSync(dir);
    const r = cli(['run', 'nope.yaml', '--quiet'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('nope.yaml');
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('config: what a valid config means', () => {
  it('store and inputs are relative to the config file; --db overrides the store; JSON works like YAML', async () => {
    const dir = join(root, 'valid');
    mkdirSync(join(dir, 'cfg'), { recursive: true });
    writeFileSync(join(dir, 'cfg', 'logs.jsonl'), LOGS);
    writeFileSync(
      join(dir, 'cfg', 'c.json'),
      JSON.stringify({ name: 'ok', store: 'here.db', inputs: ['logs.jsonl'], stages: [{ emit: { dir: 'out', model: 'gpt-4o-mini-2024-07-18', report: false } }] }),
    );
    const r = cli(['run', 'cfg/c.json', '--json', '--quiet'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(dir, 'cfg', 'here.db'))).toBe(true);
    expect(existsSync(join(dir, 'cfg', 'out', 'train.jsonl'))).toBe(true);
    expect(JSON.parse(r.stdout).files.train.examples).toBe(12);
    const o = cli(['run', 'cfg/c.json', '--db', 'other.db', '--out', 'elsewhere', '--quiet'], { cwd: dir });
    expect(o.code, o.stderr).toBe(0);
    expect(existsSync(join(dir, 'other.db'))).toBe(true);
    expect(existsSync(join(dir, 'elsewhere', 'manifest.json'))).toBe(true);
  });

  /** Runs a valid config in a fresh folder in-process with --dry-run --json; returns the manifest. */
  async function dryRun(name: string, text: string, opts: { ext?: string; files?: Record<string, string> } = {}): Promise<Manifest> {
    const dir = join(root, `ok-${++n}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'logs.jsonl'), LOGS);
    for (const [f, t] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, f), t);
    const cfg = join(dir, `${name}.${opts.ext ?? 'yaml'}`);
    writeFileSync(cfg, text);
    let stdout = '';
    let stderr = '';
    const code = await main(['run', cfg, '--dry-run', '--json', '--quiet', '--db', join(dir, 'store.db')], { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
    expect(code, stderr).toBe(0);
    return JSON.parse(stdout) as Manifest;
  }

  it('the highest price and epochs accepted give a finite cost', async () => {
    const m = await dryRun('max-cost', yaml('  - emit: { dir: out, model: gpt-4o-mini, price_per_1m_training_tokens: 1000000, epochs: 50, min_examples: 0 }'));
    expect(m.cost.n_epochs).toBe(50);
    expect(m.cost.billing_tokens).toBeGreaterThan(0);
    expect(m.cost.estimated_usd).toBe(m.cost.billing_tokens * 50);
  });

  it('a model name with surrounding spaces is trimmed once: the manifest and job_request name the same model', async () => {
    const m = await dryRun('model-space', yaml('  - emit: { dir: out, model: " gpt-4o-mini-2024-07-18 ", min_examples: 0 }'));
    expect(m.model.name).toBe('gpt-4o-mini-2024-07-18');
    expect(m.job_request.model).toBe('gpt-4o-mini-2024-07-18');
    expect(m.model.price_per_1m_training_tokens).toBe(3);
    expect(m.warnings.join('\n')).not.toMatch(/not in the price/);
  });

  it('YAML merge keys (<<) share settings between stages', async () => {
    const text = 'name: merge-test\nstages:\n  - filter: &common { min_turns: 1 }\n  - filter: { <<: *common, exclude_errors: true }\n  - emit: { <<: { dir: out, model: gpt-4o-mini-2024-07-18 }, min_examples: 0 }\n';
    const m = await dryRun('merge', text);
    expect(m.stages.map((st) => st.name)).toEqual(['filter', 'filter', 'emit']);
    expect(m.model.name).toBe('gpt-4o-mini-2024-07-18');
    // A merged key that the stage does not take is still a config error naming it.
    const err = await runBad('merge-bad', 'name: merge-test\nstages:\n  - filter: { <<: { min_turn: 1 } }\n' + EMIT + '\n');
    expect(err).toContain('stages[0].filter.min_turn');
    expect(await runBad('min-examples', yaml('  - emit: { dir: out, model: gpt-4o-mini-2024-07-18, min_examples: 1e999 }'))).toContain('stages[0].emit.min_examples: expected a whole number ≥ 0');
  });

  it('a tag key named __proto__ in a YAML or JSON config is matched like any other', async () => {
    const files = {
      'tags.jsonl':
        '{"id":"p","tags":{"__proto__":"x"},"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}\n' +
        '{"id":"c","tags":{"constructor":"x"},"messages":[{"role":"user","content":"q2"},{"role":"assistant","content":"a2"}]}\n',
    };
    const emit = '  - emit: { dir: out, model: gpt-4o-mini, min_examples: 0 }';
    const fromYaml = await dryRun('tags', `name: t\ninputs: [tags.jsonl]\nstages:\n  - filter: { tags: { __proto__: x } }\n${emit}\n`, { files });
    expect(fromYaml.stages[0]).toEqual({ name: 'filter', in: 2, out: 1, dropped: { 'tag_mismatch:__proto__': 1 } });
    const json = '{"name":"t","inputs":["tags.jsonl"],"stages":[{"filter":{"tags":{"__proto__":"x"}}},{"emit":{"dir":"o","model":"gpt-4o-mini","min_examples":0}}]}';
    const fromJson = await dryRun('tags', json, { ext: 'json', files });
    expect(fromJson.stages[0]).toEqual({ name: 'filter', in: 2, out: 1, dropped: { 'tag_mismatch:__proto__': 1 } });
  });
});
