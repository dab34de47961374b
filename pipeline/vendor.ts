/**
 * Every third-party module the commands load at start, in one place. `npm run build` bundles the compiled file
 * into a single module (scripts/bundle-vendor.mjs): Node then reads, parses and links one file instead of the
 * ~380 small modules zod, arquero, yaml, commander and the rest are published as. On this project's 2-core
 * machine that took importing the runner from ~310 to ~175 ms, which every `run` (and every other command, in
 * part) pays before it does any work. Run from source (tests), this file simply re-exports the packages.
 *
 * Import these packages from here, never directly (test/vendor.test.ts checks): a direct import would load a
 * second copy of the package beside the bundled one, and classes such as CommanderError would no longer match.
 * Type-only imports (`import type`) are erased and may name the packages.
 */
export { z } from 'zod';
export * as aq from 'arquero';
export { default as YAML, LineCounter } from 'yaml';
export { default as cliProgress } from 'cli-progress';
export { Command, CommanderError, Option } from 'commander';
export { glob, isDynamicPattern } from 'tinyglobby';
export { parse as parseCsv } from 'csv-parse';
