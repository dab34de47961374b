/**
 * The third-party modules the commands load at start, in one place (zod in vendor-zod.ts). `npm run build`
 * bundles each of the two compiled files into a single module (scripts/bundle-vendor.mjs): Node then reads, parses
 * and links two files instead of the ~380 small modules zod, arquero, yaml, commander and the rest are published
 * as. On this project's 2-core machine importing the runner went from 280–334 to 137–156 ms, which every `run`
 * (and every other command, in part) pays before it does any work. zod is apart so that the ingest worker, which
 * needs only zod, does not load the rest. Run from source (tests), these files simply re-export the packages.
 *
 * Import these packages from here, never directly (test/vendor.test.ts checks): a direct import would load a
 * second copy of the package beside the bundled one, and classes such as CommanderError would no longer match.
 * Type-only imports (`import type`) are erased and may name the packages.
 */
export * as aq from 'arquero';
export { default as YAML, LineCounter } from 'yaml';
export { default as cliProgress } from 'cli-progress';
export { Command, CommanderError, Option } from 'commander';
export { glob, isDynamicPattern } from 'tinyglobby';
export { parse as parseCsv } from 'csv-parse';
