#!/usr/bin/env node
/**
 * The command line (SPEC §1). Thin: it parses arguments and calls the same functions a library user would.
 * stdout carries the summary or exactly one JSON document; progress and logs go to stderr.
 */
import { Command, CommanderError, Option } from 'commander';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { INPUT_FORMATS, type InputFormat } from '../schemas/log-record.js';
import { exitCodeOf, JobError, UsageError } from './errors.js';
import { ingest, type IngestSummary } from './ingest.js';
import { createProgress, progressMode } from './progress.js';
import { openStore, resolveStorePath } from './store.js';
import { formatStats, storeStats } from './stats.js';
import { table } from './format.js';
import { VERSION } from './version.js';

interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const defaultIo: Io = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
};

function printJson(io: Io, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

function parseMap(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const eq = v.indexOf('=');
    if (eq <= 0 || eq === v.length - 1) throw new UsageError(`--map ${v}: expected column=field`);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

export function formatIngestSummary(s: IngestSummary): string {
  const rows = s.files.map((f) => [f.path + (f.skipped ? ' (already ingested)' : f.resumed ? ' (resumed)' : ''), f.lines, f.inserted, f.already_present, f.blank, f.quarantined]);
  rows.push(['total', s.totals.lines, s.totals.inserted, s.totals.already_present, s.totals.blank, s.totals.quarantined]);
  return table(['file', 'lines', 'inserted', 'already present', 'blank', 'quarantined'], rows);
}

export function buildProgram(io: Io = defaultIo): Command {
  const program = new Command();
  program
    .name('logcurate')
    .description('Turn production LLM chat logs into fine-tuning files.')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError();

  program
    .command('ingest')
    .description('load log files (JSONL, .gz, CSV; globs allowed) into the store')
    .argument('<files...>', 'files or glob patterns')
    .option('--db <file>', 'the SQLite store (default: $LOGCURATE_DB or ./curation.db)')
    .addOption(new Option('--format <format>', 'force one input shape').choices([...INPUT_FORMATS]))
    .option('--map <column=field...>', 'CSV: rename a column to a field (question, answer, system, id, score, created_at, model)')
    .option('--strict', 'exit 1 if any line was quarantined')
    .option('--json', 'print one JSON document')
    .option('--quiet', 'no progress on stderr')
    .action(async (files: string[], o: { db?: string; format?: InputFormat; map?: string[]; strict?: boolean; json?: boolean; quiet?: boolean }) => {
      const csvMap = parseMap(o.map);
      const store = openStore(resolveStorePath(o.db));
      try {
        const progress = createProgress(progressMode(o.quiet === true));
        const summary = await ingest(store, files, { format: o.format, csvMap, progress });
        for (const w of summary.warnings) if (!o.quiet) io.stderr(`logcurate: warning: ${w}\n`);
        if (o.json) {
          printJson(io, {
            files: summary.files.map(({ path, lines, inserted, already_present, blank, quarantined, sha256, skipped }) => ({
              path, lines, inserted, already_present, blank, quarantined, sha256, skipped,
            })),
            totals: summary.totals,
            store: store.path,
            warnings: summary.warnings,
          });
        } else {
          io.stdout(`${formatIngestSummary(summary)}\nstore: ${store.path}\n`);
        }
        if (o.strict && summary.totals.quarantined > 0) {
          throw new JobError(
            `--strict: ${summary.totals.quarantined} line(s) quarantined (${summary.files.filter((f) => f.quarantined > 0).map((f) => `${f.path}: ${f.quarantined}`).join(', ')}); see the quarantine table in ${store.path}`,
          );
        }
      } finally {
        await store.close();
      }
    });

  program
    .command('stats')
    .description('summarise the store')
    .option('--db <file>', 'the SQLite store')
    .option('--json', 'print one JSON document')
    .action(async (o: { db?: string; json?: boolean }) => {
      const store = openStore(resolveStorePath(o.db));
      try {
        const s = await storeStats(store);
        if (o.json) printJson(io, s);
        else io.stdout(`${formatStats(s, store.path)}\n`);
      } finally {
        await store.close();
      }
    });

  return program;
}

/** Runs the CLI and returns the exit code (0 done, 1 job failed, 2 usage or config error). */
export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 2;
    }
    io.stderr(`logcurate: error: ${(err as Error).message}\n`);
    if (process.env.LOGCURATE_DEBUG && err instanceof Error) io.stderr(`${err.stack}\n`);
    return exitCodeOf(err);
  }
}

function isEntryPoint(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`logcurate: internal error: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
