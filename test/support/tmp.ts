/** Temp folders and CLI invocation for tests: real files, real SQLite, the real built CLI. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll } from 'vitest';

export const REPO = resolve(import.meta.dirname, '..', '..');
export const CLI = join(REPO, 'dist', 'pipeline', 'cli.js');

/** A fresh temp folder removed after the test file (set KEEP_TMP=1 to keep it). */
export function tempDir(prefix = 'logcurate-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => {
    if (!process.env.KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (npm test builds first) as a user would, with stderr not a terminal. */
export function cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? REPO,
    env: { ...withoutDb(process.env), ...opts.env },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function jsonl(records: unknown[]): string {
  return records.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

function withoutDb(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { LOGCURATE_DB: _ignored, ...rest } = env;
  return rest;
}
