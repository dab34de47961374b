/**
 * The third-party modules the commands load at start, in one place. `npm run build` bundles the compiled file
 * into a single module (scripts/bundle-vendor.mjs): Node then reads, parses and links one file instead of the
 * ~290 small modules arquero, yaml, commander and the rest are published as.
 *
 * zod is not here: bundled, it cost the 1M bench's near run ~30 MB more peak memory (warm near runs on copies of
 * one store, alternating: 432–501 MB, median 457, with zod bundled; 422–426 MB with the rest bundled and zod not;
 * 413–438 MB with nothing bundled; why is not known), and that target is within a few percent. Importing zod as
 * published costs a command ~35 ms more than bundled.
 *
 * Import these packages from here, never directly (test/vendor.test.ts checks): a direct import would load a
 * second copy of the package beside the bundled one, and classes such as CommanderError would no longer match.
 * Type-only imports (`import type`) are erased and may name the packages. Run from source (tests), this file
 * simply re-exports them.
 */
export * as aq from 'arquero';
export { default as YAML, LineCounter } from 'yaml';
export { default as cliProgress } from 'cli-progress';
export { Command, CommanderError, Option } from 'commander';
export { glob, isDynamicPattern } from 'tinyglobby';
export { default as picomatch } from 'picomatch';
export { parse as parseCsv } from 'csv-parse';
