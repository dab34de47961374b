/**
 * Runs interrupted by a hard kill (kill -9, out of memory, power loss): no signal handler runs, so the next run
 * recovers what was left — the run's row is marked failed, `explain` says what happened, and the output folder is
 * put back in a consistent state (pipeline/outputs.ts recoverInterruptedRuns, pipeline/runner.ts).
 */
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { recoverInterruptedRuns } from '../pipeline/outputs.js';
import { activeRuns } from '../pipeline/owner.js';
import { writeSample } from '../data/generate.js';
import { CLI, cli, tempDir } from './support/tmp.js';

const root = tempDir('logcurate-interrupted-');

/** The pid of a process that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

const files = (dir: string): Record<string, string> =>
  Object.fromEntries(
    readdirSync(dir)
      .filter((f) => !f.startsWith('.'))
      .sort()
      .map((f) => [f, readFileSync(join(dir, f), 'utf8')]),
  );

/** The staging folder name a run writer with this pid on this host uses (pipeline/outputs.ts). */
const stagingOf = (run: string, pid: number): string => `.staging-${run}.${pid}-${createHash('sha256').update(hostname()).digest('hex').slice(0, 8)}`;

/** An output folder holding the files of "run A", and the files "run B" (written by `pid`) would install. */
function outputs(name: string, pid = deadPid()): { out: string; staging: string; a: Record<string, string>; b: Record<string, string> } {
  const out = join(root, name);
  mkdirSync(out);
  const a = { 'train.jsonl': 'A train\n', 'test.jsonl': 'A test\n', 'lineage.jsonl': 'A lineage\n', 'report.html': 'A report', 'manifest.json': 'A manifest\n' };
  const b = { 'train.jsonl': 'B train\n', 'test.jsonl': 'B test\n', 'lineage.jsonl': 'B lineage\n', 'manifest.json': 'B manifest\n' };
  for (const [f, text] of Object.entries(a)) writeFileSync(join(out, f), text);
  const staging = join(out, stagingOf('runB', pid));
  mkdirSync(staging);
  for (const [f, text] of Object.entries(b)) writeFileSync(join(staging, f), text);
  return { out, staging, a, b };
}

/** Does what OutputWriter.install does, up to `moved` files, then "dies" (B produces no report: it is stale). */
function installUpTo(staging: string, out: string, moved: number): void {
  const names = ['train.jsonl', 'test.jsonl', 'lineage.jsonl', 'manifest.json'];
  writeFileSync(join(staging, 'install.json'), JSON.stringify({ names, stale: ['report.html'], had: names }));
  renameSync(join(out, 'report.html'), join(staging, 'previous.report.html'));
  for (const name of names.slice(0, moved)) {
    linkSync(join(out, name), join(staging, `previous.${name}`));
    renameSync(join(staging, name), join(out, name));
  }
}

describe('an output folder left by an interrupted run', () => {
  it('killed while installing: the previous run files are put back exactly, the staging folder goes', () => {
    for (const moved of [0, 1, 3]) {
      const { out, staging, a } = outputs(`install-${moved}`);
      installUpTo(staging, out, moved);
      const notes = recoverInterruptedRuns(out);
      expect(files(out), `after ${moved} renames`).toEqual(a);
      expect(existsSync(staging)).toBe(false);
      expect(notes).toHaveLength(1);
      expect(notes[0]).toMatch(/run runB was interrupted while putting its files in place/);
    }
  });

  it('killed after manifest.json, renamed last, was in place: the new set is complete and stays', () => {
    const { out, staging, b } = outputs('install-complete');
    installUpTo(staging, out, 4);
    expect(recoverInterruptedRuns(out)[0]).toMatch(/complete \(manifest.json included\) and were kept/);
    expect(files(out)).toEqual(b);
    expect(existsSync(staging)).toBe(false);
  });

  it('killed while writing (no install yet): the partial files go, the previous ones are untouched', () => {
    const { out, staging, a } = outputs('writing');
    expect(recoverInterruptedRuns(out)).toEqual(['run runB was interrupted while writing; its partial files were removed']);
    expect(files(out)).toEqual(a);
    expect(existsSync(staging)).toBe(false);
  });

  it('a new output that had no previous version is removed; a torn journal means nothing was renamed yet', () => {
    const { out, staging, a } = outputs('first-report');
    writeFileSync(join(staging, 'report.html'), 'B report');
    rmSync(join(out, 'report.html'));
    writeFileSync(join(staging, 'install.json'), JSON.stringify({ names: ['report.html', 'manifest.json'], stale: [], had: ['manifest.json'] }));
    renameSync(join(staging, 'report.html'), join(out, 'report.html'));
    expect(recoverInterruptedRuns(out)).toEqual(['run runB was interrupted while putting its files in place; its new report.html removed']);
    const { 'report.html': _, ...rest } = a;
    expect(files(out)).toEqual(rest);

    const torn = outputs('torn-journal');
    writeFileSync(join(torn.staging, 'install.json'), '{"names":["train.jso');
    expect(recoverInterruptedRuns(torn.out)).toEqual(['run runB was interrupted while writing; its partial files were removed']);
    expect(files(torn.out)).toEqual(torn.a);
  });

  it('a folder it cannot recover stops the run with an error naming it, and is kept', () => {
    const { out, staging } = outputs('unrecoverable');
    installUpTo(staging, out, 1);
    rmSync(join(staging, 'previous.train.jsonl'));
    expect(() => recoverInterruptedRuns(out)).toThrow(/\.staging-runB\.\d+-[0-9a-f]{8}: cannot recover what interrupted run runB left: .*ENOENT/);
    expect(existsSync(staging)).toBe(true);
  });

  it('leaves alone the folder of a run this very process is making', () => {
    const { out, staging, a } = outputs('same-process', process.pid);
    activeRuns.add('runB');
    try {
      expect(recoverInterruptedRuns(out)).toEqual([]);
      expect(existsSync(staging)).toBe(true);
    } finally {
      activeRuns.delete('runB');
    }
    // Once this process is no longer making it, the folder is an interrupted run's (its pid cannot tell).
    expect(recoverInterruptedRuns(out)).toHaveLength(1);
    expect(files(out)).toEqual(a);
  });

  it('leaves alone a folder whose writer is alive, one on another host, and one that does not say who writes it', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
    try {
      const { out, staging, a } = outputs('alive', child.pid);
      mkdirSync(join(out, '.staging-older-version'));
      const elsewhere = join(out, `.staging-runC.${deadPid()}-00000000`);
      mkdirSync(elsewhere);
      expect(recoverInterruptedRuns(out)).toEqual([]);
      expect(existsSync(staging)).toBe(true);
      expect(existsSync(elsewhere)).toBe(true);
      expect(existsSync(join(out, '.staging-older-version'))).toBe(true);
      expect(files(out)).toEqual(a);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

/** A store of n generated conversations, ingested, and a nightly config writing to `out` in folder `name`. */
async function nightlySetup(name: string, n: number, seed: number): Promise<{ db: string; out: string; config: string }> {
  const dir = join(root, name);
  await writeSample(join(dir, 'logs'), { n, seed, anomalies: false });
  const db = join(dir, 'store.db');
  expect(cli(['ingest', join(dir, 'logs', '*.{jsonl,jsonl.gz,csv}'), '--db', db, '--quiet']).code).toBe(0);
  const out = join(dir, 'out');
  const config = join(dir, 'nightly.yaml');
  writeFileSync(
    config,
    ['name: nightly', 'stages:', '  - filter: { feedback: { name: score, min: 4 } }', '  - split: { test_fraction: 0.1 }', `  - emit: { dir: ${JSON.stringify(out)}, model: gpt-4o-mini-2024-07-18, report: false }`, ''].join('\n'),
  );
  return { db, out, config };
}

describe('kill -9 of a real run', () => {
  it('the next run marks it failed, explain says so, and its staging folder is removed', async () => {
    const { db, out, config } = await nightlySetup('kill', 30_000, 4);

    // Killed as soon as its staging folder appears: emit is writing the training files.
    const child = spawn(process.execPath, [CLI, 'run', config, '--db', db, '--quiet'], { stdio: 'ignore' });
    const exited = new Promise<void>((done) => child.on('exit', () => done()));
    let killed = false;
    for (let t = 0; t < 60_000 && child.exitCode === null; t += 5) {
      if (existsSync(out) && readdirSync(out).some((f) => f.startsWith('.staging-'))) {
        killed = child.kill('SIGKILL');
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await exited;
    expect(killed, 'the run finished before its staging folder was seen: the test needs a larger store').toBe(true);
    expect(readdirSync(out).filter((f) => f.startsWith('.staging-'))).toHaveLength(1);

    const store = new Database(db, { readonly: true });
    const killedRun = store.prepare(`SELECT id, status, pid FROM runs`).get() as { id: string; status: string; pid: number };
    const anyId = store.prepare(`SELECT id FROM conversations LIMIT 1`).pluck().get() as string;
    store.close();
    expect(killedRun).toMatchObject({ status: 'running', pid: child.pid });
    const before = JSON.parse(cli(['explain', anyId, '--db', db, '--run', killedRun.id, '--json']).stdout) as { reason: string };
    expect(before.reason).toMatch(/^the run was interrupted: its process \(pid \d+ on .+\) ended before the run finished$/);

    const next = cli(['run', config, '--db', db, '--json', '--quiet']);
    expect(next.code).toBe(0);
    const manifest = JSON.parse(next.stdout) as { warnings: string[] };
    expect(manifest.warnings, JSON.stringify(manifest.warnings)).toContain(`run ${killedRun.id} was interrupted while writing; its partial files were removed`);
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
    expect(readdirSync(out).sort()).toEqual(['lineage.jsonl', 'manifest.json', 'test.jsonl', 'train.jsonl']);

    const after = new Database(db, { readonly: true });
    const marked = after.prepare(`SELECT status, error FROM runs WHERE id = ?`).get(killedRun.id) as { status: string; error: string };
    after.close();
    expect(marked.status).toBe('failed');
    expect(marked.error).toMatch(/^interrupted: its process \(pid \d+ on .+\) ended before the run finished$/);
    const explained = JSON.parse(cli(['explain', anyId, '--db', db, '--run', killedRun.id, '--json']).stdout) as { reason: string };
    expect(explained.reason).toMatch(/^the run failed before recording any decision \(interrupted: /);
  }, 120_000);
});

describe('a run killed after its files were put in place', () => {
  it('is marked succeeded by the next run, which then reuses its lines', async () => {
    const { db, out, config } = await nightlySetup('installed', 3_000, 5);
    expect(cli(['run', config, '--db', db, '--quiet']).code).toBe(0);
    // What a kill between installing the files and recording the run's status leaves: its decisions and outcomes
    // recorded, its files (manifest.json last) in place, its row still 'running' under a process that is gone.
    const store = new Database(db);
    const done = store.prepare(`SELECT id, out_dir, manifest_json FROM runs`).get() as { id: string; out_dir: string; manifest_json: string };
    store.prepare(`UPDATE runs SET status = 'running', finished_at = NULL, out_dir = NULL, manifest_json = NULL, pid = ? WHERE id = ?`).run(deadPid(), done.id);
    store.close();
    const installed = files(out);

    const next = cli(['run', config, '--db', db, '--json', '--quiet']);
    expect(next.code, next.stderr).toBe(0);
    const after = new Database(db, { readonly: true });
    const marked = after.prepare(`SELECT status, error, finished_at, out_dir, manifest_json FROM runs WHERE id = ?`).get(done.id);
    const reuse = JSON.parse(after.prepare(`SELECT s.stats_json FROM run_stages s JOIN runs r ON r.id = s.run_id WHERE r.id <> ? AND s.name = 'emit'`).pluck().get(done.id) as string).reuse;
    after.close();
    // Finished when its manifest says (the status update would have come moments later).
    const finishedAt = (JSON.parse(done.manifest_json) as { run: { finished_at: string } }).run.finished_at;
    expect(marked).toEqual({ status: 'succeeded', error: null, finished_at: finishedAt, out_dir: done.out_dir, manifest_json: done.manifest_json });
    expect(reuse).toMatchObject({ from_run: done.id, built: 0 });
    expect(reuse.examples).toBeGreaterThan(100);
    // The same logs and config: the same files, but for the run's own id and times in the manifest.
    const again = files(out);
    for (const f of ['train.jsonl', 'test.jsonl', 'lineage.jsonl']) expect(again[f], f).toBe(installed[f]);
  }, 120_000);
});
