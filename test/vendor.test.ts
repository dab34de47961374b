/**
 * pipeline/vendor.ts is the one door to the third-party modules the commands load at start (zod excepted), and
 * the build bundles it into one file. These checks keep both true: a direct import elsewhere would load a second
 * copy of a package beside the bundled one (and its startup cost), and an unbundled vendor.js would load the
 * ~290 modules again. zod stays out of the bundle (see vendor.ts: bundled, it raised the 1M peak).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, REPO } from './support/tmp.js';

const VENDOR = readFileSync(join(REPO, 'pipeline', 'vendor.ts'), 'utf8');
/** The packages vendor.ts re-exports, read from its own export statements. */
const PACKAGES = [...VENDOR.matchAll(/^export .* from '([^']+)';$/gm)].map((m) => m[1]!);

/** Runtime imports of `pkg` (or a subpath of it) in `text`: static, re-exports and dynamic; `import type` excluded. */
function runtimeImports(text: string, pkg: string): string[] {
  const name = pkg.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const spec = `['"]${name}(?:/[^'"]*)?['"]`;
  const patterns = [
    new RegExp(`^\\s*import\\s+(?!type\\s)[^;]*?\\bfrom\\s+${spec}`, 'gm'),
    new RegExp(`^\\s*import\\s+${spec}`, 'gm'),
    new RegExp(`^\\s*export\\s+(?!type\\s)[^;]*?\\bfrom\\s+${spec}`, 'gm'),
    new RegExp(`\\bimport\\(\\s*${spec}\\s*\\)`, 'g'),
  ];
  return patterns.flatMap((re) => [...text.matchAll(re)].map((m) => m[0].trim()));
}

describe('vendor bundle', () => {
  it('re-exports the packages the commands use at start, zod excepted', () => {
    expect(PACKAGES).toEqual(expect.arrayContaining(['arquero', 'yaml', 'commander', 'cli-progress', 'tinyglobby', 'csv-parse']));
    expect(PACKAGES).not.toContain('zod');
  });

  it('is the only runtime importer of those packages in pipeline/, stages/ and schemas/', () => {
    const offenders: string[] = [];
    for (const dir of ['pipeline', 'stages', 'schemas']) {
      for (const f of readdirSync(join(REPO, dir)).filter((f) => f.endsWith('.ts'))) {
        if (dir === 'pipeline' && f === 'vendor.ts') continue;
        const text = readFileSync(join(REPO, dir, f), 'utf8');
        for (const pkg of PACKAGES) for (const hit of runtimeImports(text, pkg)) offenders.push(`${dir}/${f}: ${hit}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('the import check itself finds direct imports and lets type-only ones pass', () => {
    expect(runtimeImports(`import { z } from 'zod';`, 'zod')).toHaveLength(1);
    expect(runtimeImports(`import * as aq from 'arquero';`, 'arquero')).toHaveLength(1);
    expect(runtimeImports(`import {\n  a,\n  b,\n} from 'csv-parse/sync';`, 'csv-parse')).toHaveLength(1);
    expect(runtimeImports(`export { z } from 'zod';`, 'zod')).toHaveLength(1);
    expect(runtimeImports(`const y = await import('yaml');`, 'yaml')).toHaveLength(1);
    expect(runtimeImports(`import 'commander';`, 'commander')).toHaveLength(1);
    expect(runtimeImports(`import type { z } from 'zod';`, 'zod')).toEqual([]);
    expect(runtimeImports(`import { z } from 'zodiac';`, 'zod')).toEqual([]);
    expect(runtimeImports(`import { z } from './vendor.js';`, 'zod')).toEqual([]);
  });

  it('is built as one module that imports nothing but Node built-ins, with the source\'s exports, and without zod', async () => {
    const built = readFileSync(join(REPO, 'dist', 'pipeline', 'vendor.js'), 'utf8');
    const specifiers = [...built.matchAll(/^\s*(?:import|export)\s[^;]*?\bfrom\s+['"]([^'"]+)['"]/gm), ...built.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
    expect(specifiers.length).toBeGreaterThan(0); // the banner's node:module, at least
    expect(specifiers.filter((s) => !s.startsWith('node:') && !builtinModules.includes(s))).toEqual([]);
    for (const pkg of PACKAGES) expect(built).toContain(`node_modules/${pkg}/`);
    expect(built).not.toContain('node_modules/zod/');
    const bundled = await import(join(REPO, 'dist', 'pipeline', 'vendor.js'));
    const source = await import('../pipeline/vendor.js');
    expect(Object.keys(bundled).sort()).toEqual(Object.keys(source).sort());
    // The bundled packages work: a table aggregates, YAML reads.
    expect(bundled.aq.table({ g: ['x', 'x', 'y'] }).groupby('g').count().objects()).toEqual([{ g: 'x', count: 2 }, { g: 'y', count: 1 }]);
    expect(bundled.YAML.parse('a: [1, 2]')).toEqual({ a: [1, 2] });
  });

  it('the built CLI runs on it: --version and a usage error from commander', () => {
    const version = cli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const bad = cli(['no-such-command']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown command 'no-such-command'/);
  });
});
