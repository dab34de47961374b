/**
 * Progress on stderr (SPEC §1): a live bar on a terminal, plain periodic lines when stderr is not a terminal
 * (cron logs), nothing with --quiet. stdout stays reserved for the summary or the one JSON document.
 */
import { cliProgress } from './vendor.js';

export interface TaskOptions {
  readonly total?: number;
  readonly unit?: 'bytes' | 'items';
}

export interface ProgressTask {
  /** `items` units of work done, `amount` toward the total (bytes or items). */
  tick(items: number, amount?: number): void;
  done(summary?: string): void;
  /** The task ended in an error (which its caller reports): not "done". */
  stop(): void;
}

export interface Progress {
  task(label: string, opts?: TaskOptions): ProgressTask;
  /** A one-off log line (warnings, phase changes). */
  log(message: string): void;
}

const noopTask: ProgressTask = { tick() {}, done() {}, stop() {} };
export const silentProgress: Progress = { task: () => noopTask, log() {} };

export type ProgressMode = 'bar' | 'lines' | 'quiet';

export function progressMode(quiet: boolean, stream: NodeJS.WriteStream = process.stderr): ProgressMode {
  if (quiet) return 'quiet';
  return stream.isTTY ? 'bar' : 'lines';
}

export function createProgress(mode: ProgressMode, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (mode === 'quiet') return silentProgress;
  if (mode === 'bar') return new BarProgress(stream);
  const every = Number(process.env.LOGCURATE_PROGRESS_INTERVAL_MS ?? 10_000);
  return new LineProgress(stream, Number.isFinite(every) && every >= 0 ? every : 10_000);
}

/**
 * Ticks of one item (a line, a conversation) look at the clock once in this many: stages tick once per
 * conversation, and the bar formatted its counts on every tick — 600k ticks took 0.7–1.1 s with a bar and
 * 40–120 ms as lines, against 9–23 and 6–10 ms now (a microbenchmark, this machine).
 */
const CHECK_EVERY = 64;
/** The bar's counts are formatted and handed to it at most this often (it draws at 5 frames a second). */
const BAR_UPDATE_MS = 100;

const fmtRate = (n: number, ms: number): string => `${Math.round((n / Math.max(ms, 1)) * 1000).toLocaleString('en-US')}/s`;

class LineProgress implements Progress {
  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly everyMs: number,
  ) {}

  log(message: string): void {
    this.out.write(`logcurate: ${message}\n`);
  }

  task(label: string, opts: TaskOptions = {}): ProgressTask {
    const started = Date.now();
    let last = started;
    let items = 0;
    let amount = 0;
    const line = (): string => {
      const pct = opts.total ? ` ${Math.min(100, Math.floor((amount / opts.total) * 100))}%` : '';
      return `logcurate: ${label}:${pct} ${items.toLocaleString('en-US')} done, ${fmtRate(items, Date.now() - started)}`;
    };
    let unchecked = 0;
    return {
      tick: (n, a = n) => {
        items += n;
        amount += a;
        if (n === 1 && ++unchecked < CHECK_EVERY) return;
        unchecked = 0;
        const now = Date.now();
        if (now - last >= this.everyMs) {
          last = now;
          this.out.write(`${line()}\n`);
        }
      },
      done: (summary) => {
        const secs = ((Date.now() - started) / 1000).toFixed(1);
        this.out.write(`logcurate: ${label}: done in ${secs}s${summary ? ` — ${summary}` : ''}\n`);
      },
      stop: () => {
        this.out.write(`logcurate: ${label}: stopped after ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
      },
    };
  }
}

class BarProgress implements Progress {
  constructor(private readonly out: NodeJS.WriteStream) {}

  log(message: string): void {
    this.out.write(`logcurate: ${message}\n`);
  }

  task(label: string, opts: TaskOptions = {}): ProgressTask {
    const started = Date.now();
    const bar = new cliProgress.SingleBar(
      {
        stream: this.out,
        format: opts.total
          ? `${label.length > 48 ? `…${label.slice(-47)}` : label} [{bar}] {percentage}% | {items} done | {rate}`
          : `${label} {items} done | {rate}`,
        hideCursor: true,
        clearOnComplete: true,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    let items = 0;
    let amount = 0;
    let unchecked = 0;
    let shown = 0;
    bar.start(opts.total ?? 1, 0, { items: '0', rate: '' });
    return {
      tick: (n, a = n) => {
        items += n;
        amount += a;
        if (n === 1 && ++unchecked < CHECK_EVERY) return;
        unchecked = 0;
        const now = Date.now();
        if (now - shown < BAR_UPDATE_MS) return;
        shown = now;
        bar.update(opts.total ? Math.min(amount, opts.total) : 0, {
          items: items.toLocaleString('en-US'),
          rate: fmtRate(items, now - started),
        });
      },
      done: (summary) => {
        bar.stop();
        const secs = ((Date.now() - started) / 1000).toFixed(1);
        this.out.write(`logcurate: ${label}: done in ${secs}s${summary ? ` — ${summary}` : ''}\n`);
      },
      stop: () => {
        bar.stop();
        this.out.write(`logcurate: ${label}: stopped after ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
      },
    };
  }
}
