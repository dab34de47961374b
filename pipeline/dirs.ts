/**
 * mkdir -p. Node 20's `mkdirSync(dir, { recursive: true })` never returns when mkdir reports ENOENT under a
 * parent that exists — as it does anywhere under /proc: `--db /proc/x/store.db` spun at 100% CPU until killed.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** Creates `dir` and its missing parents; returns the first directory it created (undefined: none was missing). */
export function makeDirs(dir: string): string | undefined {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  let first: string | undefined;
  for (let k = missing.length - 1; k >= 0; k--) {
    try {
      mkdirSync(missing[k]!);
      first ??= missing[k];
    } catch (err) {
      // Made meanwhile by another process (or a dangling symlink, which the next level then reports).
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return first;
}
