// Build step after tsc: bundles dist/pipeline/vendor.js and vendor-zod.js (they re-export every third-party
// module the commands load at start) into one file each, so that Node loads two modules instead of ~380. See
// pipeline/vendor.ts.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
for (const name of ['vendor', 'vendor-zod']) {
  const file = join(root, 'dist', 'pipeline', `${name}.js`);
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
}
