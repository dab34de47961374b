#!/usr/bin/env node
/**
 * The command line (SPEC §1). Thin: it parses arguments and calls the same functions a library user would.
 * stdout carries the summary or exactly one JSON document; progress and logs go to stderr.
 */
import { Command, CommanderError, Option } from './vendor.js';
import { existsSync, realpathSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import { fileURLToPath } from 'node:url';
import { INPUT_FORMATS, type InputFormat } from '../schemas/log-record.js';
import { exitCodeOf, JobError, UsageError } from './errors.js';
import { ingest, type IngestSummary } from './ingest.js';
import { createProgress, progressMode } from './progress.js';
import { openStore, resolveStorePath, type Store } from './store.js';
import { table } from './format.js';
import { VERSION } from './version.js';
import type { RunResult } from './runner.js';
import { explain, formatExplanation } from './explain.js';

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
  // No prototype: a column may be named __proto__.
  const out = Object.create(null) as Record<string, string>;
  for (const v of values ?? []) {
    const eq = v.indexOf('=');
    if (eq <= 0 || eq === v.length - 1) throw new UsageError(`--map ${v}: expected column=field`);
    Object.defineProperty(out, v.slice(0, eq), { value: v.slice(eq + 1), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * The store of a command that only reads it (stats, explain). SPEC §1 creates a store on first use, so a mistyped
 * `--db` or `LOGCURATE_DB` gets a new, empty one, and its zeros or "unknown" read like the truth: `done` says so
 * on stderr (stdout keeps its one document).
 */
function openForReading(io: Io, flag: string | undefined): { store: Store; done: () => Promise<void> } {
  const path = resolveStorePath(flag);
  const isNew = !existsSync(path);
  const store = openStore(path);
  return {
    store,
    done: async () => {
      await store.close();
      if (isNew) io.stderr(`logcurate: note: there was no store at ${path}; an empty one was created there (check --db or $LOGCURATE_DB)\n`);
    },
  };
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
      // Ingest's refusal detector runs a few large regexes over every conversation, on both threads. V8 first
      // interprets a regex and compiles it to machine code only after it has run: compiling it at once is ~60 ms
      // cheaper per thread here, and as fast after (the curated detector over the first 2,000 bench answers:
      // 74-113 ms tiered, 24-38 ms compiled at once; the next 58,000 the same). A process-wide V8 flag, so set here,
      // in the CLI's own process, and only for ingest: runs compile many regexes they use once, which tiering suits.
      v8.setFlagsFromString('--no-regexp-tier-up');
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
      // Loaded here: stats is the one command that queries through kysely (see Store.kysely).
      const { formatStats, storeStats } = await import('./stats.js');
      const { store, done } = openForReading(io, o.db);
      try {
        const s = await storeStats(store);
        if (o.json) printJson(io, s);
        else io.stdout(`${formatStats(s, store.path)}\n`);
      } finally {
        await done();
      }
    });

  program
    .command('run')
    .description('ingest the config\'s inputs, run its stages and write the output directory')
    .argument('<config>', 'a curation config (.yaml, .yml or .json)')
    .option('--db <file>', 'the SQLite store (overrides the config\'s store)')
    .option('--out <dir>', 'the output directory (overrides emit.dir)')
    .option('--dry-run', 'run every stage and print the funnel and manifest, writing no files')
    .option('--json', 'print the manifest as one JSON document')
    .option('--quiet', 'no progress on stderr')
    .action(async (config: string, o: { db?: string; out?: string; dryRun?: boolean; json?: boolean; quiet?: boolean }) => {
      const progress = createProgress(progressMode(o.quiet === true));
      // Loaded on demand: the run engine pulls in the report's chart libraries, which `ingest` never needs.
      const { runConfigFile } = await import('./runner.js');
      const result = await runConfigFile(config, { db: o.db, out: o.out, dryRun: o.dryRun === true, progress });
      if (o.json) printJson(io, result.manifest);
      else io.stdout(`${formatRunSummary(result)}\n`);
    });

  program
    .command('validate')
    .description('check a training JSONL file the way OpenAI does; print tokens and a cost estimate')
    .argument('<file>', 'a training .jsonl file')
    .option('--model <model>', 'the base model (encoding, limit, price)', 'gpt-4o-mini-2024-07-18')
    .option('--json', 'print one JSON document')
    .action(async (file: string, o: { model: string; json?: boolean }) => {
      const { formatValidateReport, validateFile } = await import('./validate.js');
      let report;
      try {
        report = await validateFile(file, { model: o.model });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES') throw new JobError(`${file}: cannot read: ${code}`);
        throw err;
      }
      if (o.json) printJson(io, report);
      else io.stdout(`${formatValidateReport(report)}\n`);
      if (!report.valid) throw new ValidationFailed();
    });

  program
    .command('explain')
    .description('say which stage dropped a conversation and why, or which split and line it landed in')
    .argument('<conversation-id>', 'the conversation id')
    .option('--run <run-id>', 'a run id (default: the latest run)')
    .option('--db <file>', 'the SQLite store')
    .option('--json', 'print one JSON document')
    .action(async (id: string, o: { run?: string; db?: string; json?: boolean }) => {
      const { store, done } = openForReading(io, o.db);
      try {
        const e = explain(store, id, o.run);
        if (o.json) {
          const { id: cid, run_id, status, stage, reason, line, ...more } = e;
          printJson(io, { id: cid, run_id, status, stage, reason, line, ...more });
        } else io.stdout(`${formatExplanation(e)}\n`);
      } finally {
        await done();
      }
    });

  return program;
}

/** validate found errors: exit 1, the report itself already says what is wrong. */
class ValidationFailed extends JobError {
  constructor() {
    super('');
  }
}

export function formatRunSummary(r: RunResult): string {
  const m = r.manifest as import('../schemas/manifest.js').Manifest;
  const out: string[] = [];
  out.push(`run ${m.run.id}${m.run.dry_run ? ' (dry run: no files written)' : ''}`);
  out.push(`store ${r.storePath}: ${m.store.conversations.toLocaleString('en-US')} conversations`);
  if (r.ingest.totals.lines > 0) {
    const t = r.ingest.totals;
    out.push(`ingested ${r.ingest.files.length} file(s): ${t.inserted} inserted, ${t.already_present} already present, ${t.blank} blank, ${t.quarantined} quarantined`);
  }
  out.push('', table(['stage', 'in', 'out', 'dropped (by reason)'], m.stages.map((s) => [s.name, s.in, s.out, Object.entries(s.dropped).map(([k, v]) => `${k} ${v}`).join(', ') || '–'])));
  if (m.refusals) {
    const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
    out.push('', `refusals: ${pct(m.refusals.before.rate)} before → ${pct(m.refusals.after.rate)} in the files (target ≤ ${pct(m.refusals.target_rate)})`);
  }
  const f = m.files;
  out.push(
    '',
    table(
      ['file', 'examples', 'tokens', 'mean', 'p95', 'max', 'truncated', 'dropped over limit'],
      [
        ['train.jsonl', f.train.examples, f.train.tokens.total, f.train.tokens.mean, f.train.tokens.p95, f.train.tokens.max, f.train.truncated, f.train.dropped_over_limit],
        ['test.jsonl', f.test.examples, f.test.tokens.total, f.test.tokens.mean, f.test.tokens.p95, f.test.tokens.max, f.test.truncated, f.test.dropped_over_limit],
      ],
    ),
  );
  const usd = m.cost.estimated_usd === null ? 'unknown (model not in the price table)' : `$${m.cost.estimated_usd.toFixed(2)}`;
  out.push('', `model ${m.model.name} (${m.model.encoding}); ${m.cost.billing_tokens.toLocaleString('en-US')} billing tokens × ${m.cost.n_epochs} epochs → ${usd}`);
  for (const w of m.warnings) out.push(`warning: ${w}`);
  if (r.outDir) {
    out.push('', `wrote ${r.outDir}/`);
    for (const p of r.written) out.push(`  ${p.slice(r.outDir.length + 1)}`);
  }
  return out.join('\n');
}

/** Runs the CLI and returns the exit code (0 done, 1 job failed, 2 usage or config error). */
export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  // With --json, stdout carries exactly one JSON document (SPEC §1), a failed command's too: when it failed
  // before printing its own (a run's manifest, say), stdout gets {"error", "exit_code"} instead of nothing, so
  // `run --json > night.json` never leaves an empty file for the job that reads it.
  let printed = false;
  const tracked: Io = {
    stdout: (s) => {
      printed = true;
      io.stdout(s);
    },
    stderr: io.stderr,
  };
  const json = argv.includes('--json');
  const fail = (code: number, message: string): number => {
    if (json && !printed) printJson(io, { error: message, exit_code: code });
    return code;
  };
  const program = buildProgram(tracked);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return fail(2, err.message.replace(/^error: /, ''));
    }
    if (err instanceof ValidationFailed) return 1;
    io.stderr(`logcurate: error: ${(err as Error).message}\n`);
    if (process.env.LOGCURATE_DEBUG && err instanceof Error) io.stderr(`${err.stack}\n`);
    return fail(exitCodeOf(err), err instanceof Error ? err.message : String(err));
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
      // For the benchmark: the peak resident set of this whole command.
      if (process.env.LOGCURATE_RSS_FILE) writeFileSync(process.env.LOGCURATE_RSS_FILE, String(process.resourceUsage().maxRSS));
    },
    (err: unknown) => {
      process.stderr.write(`logcurate: internal error: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
