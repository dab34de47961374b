// Build step after tsc: bundles dist/pipeline/vendor.js (pipeline/vendor.ts re-exports the third-party modules
// the commands load at start, zod excepted) into one file, so that Node loads one module instead of ~290. See
// pipeline/vendor.ts.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const file = join(root, 'dist', 'pipeline', 'vendor.js');
await build({
  absWorkingDir: root,
  entryPoints: [file],
  outfile: file,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Some of the packages are CommonJS and call require() for Node's own modules; an ES module has no require.
  banner: { js: "import { createRequire as __vendorRequire } from 'node:module'; const require = __vendorRequire(import.meta.url);" },
  logLevel: 'warning',
});
// tsc's source map described the unbundled file.
rmSync(`${file}.map`, { force: true });
