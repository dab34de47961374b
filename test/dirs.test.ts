/** makeDirs (pipeline/dirs.ts): mkdir -p that returns, also where Node 20's recursive mkdirSync spins forever. */
import { describe, expect, it } from 'vitest';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { makeDirs } from '../pipeline/dirs.js';
import { CLI, tempDir } from './support/tmp.js';

const root = tempDir('logcurate-dirs-');

describe('makeDirs', () => {
  it('creates the missing levels and returns the first it created; undefined when none was missing', () => {
    const deep = join(root, 'a', 'b', 'c');
    expect(makeDirs(deep)).toBe(join(root, 'a'));
    expect(statSync(deep).isDirectory()).toBe(true);
    expect(makeDirs(deep)).toBeUndefined();
    expect(makeDirs(join(root, 'a', 'b', 'd'))).toBe(join(root, 'a', 'b', 'd'));
  });

  it('fails, naming the cause, under a file', () => {
    const file = join(root, 'plain.txt');
    writeFileSync(file, 'x');
    expect(() => makeDirs(join(file, 'sub'))).toThrow(/ENOTDIR|EEXIST/);
  });

  it.runIf(existsSync('/proc/self'))('fails where mkdir reports ENOENT under a parent that exists (/proc), and the CLI says which store', () => {
    // Before, `--db` there spun at 100% CPU: run it in a process of its own, with a deadline.
    const r = spawnSync(process.execPath, [CLI, 'stats', '--db', '/proc/logcurate-no-such/s.db'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('/proc/logcurate-no-such/s.db: cannot open the store');
  });
});
