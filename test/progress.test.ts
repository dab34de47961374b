import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createProgress } from '../pipeline/progress.js';

/** A stream that keeps what is written; `tty` makes it pass for a terminal (for the bar). */
function sink(tty: boolean): NodeJS.WriteStream & { text: () => string } {
  const chunks: string[] = [];
  const s = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  }) as unknown as NodeJS.WriteStream & { text: () => string };
  Object.assign(s, {
    isTTY: tty,
    columns: 120,
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
    text: () => chunks.join(''),
  });
  return s;
}

describe('progress', () => {
  const saved = process.env.LOGCURATE_PROGRESS_INTERVAL_MS;
  afterEach(() => {
    if (saved === undefined) delete process.env.LOGCURATE_PROGRESS_INTERVAL_MS;
    else process.env.LOGCURATE_PROGRESS_INTERVAL_MS = saved;
  });

  it('prints periodic lines with the running count, though one-item ticks look at the clock only now and then', () => {
    process.env.LOGCURATE_PROGRESS_INTERVAL_MS = '0';
    const out = sink(false);
    const task = createProgress('lines', out).task('scan', { total: 1000, unit: 'items' });
    for (let i = 0; i < 1000; i++) task.tick(1);
    task.done('ok');
    const lines = out.text().trim().split('\n');
    const counts = lines.filter((l) => / done, /.test(l)).map((l) => Number(/ ([\d,]+) done/.exec(l)![1]!.replace(/,/g, '')));
    // Every 64th tick reads the clock, and with a 0 ms interval each of those prints: 64, 128, … 960.
    expect(counts).toEqual(Array.from({ length: 15 }, (_, k) => 64 * (k + 1)));
    expect(lines.at(-1)).toMatch(/^logcurate: scan: done in [\d.]+s — ok$/);
  });

  it('a tick of many items looks at the clock at once', () => {
    process.env.LOGCURATE_PROGRESS_INTERVAL_MS = '0';
    const out = sink(false);
    const task = createProgress('lines', out).task('ingest', {});
    task.tick(500);
    task.tick(500);
    expect(out.text()).toContain('logcurate: ingest: 500 done');
    expect(out.text()).toContain('logcurate: ingest: 1,000 done');
  });

  it('the bar shows the running count, updated at most every 100 ms', async () => {
    const out = sink(true);
    const task = createProgress('bar', out).task('scan', { total: 10_000, unit: 'items' });
    await sleep(120);
    for (let i = 0; i < 64; i++) task.tick(1);
    // Within 100 ms of that update: counted, not handed to the bar.
    for (let i = 0; i < 64; i++) task.tick(1);
    await sleep(250); // the bar draws at 5 frames a second
    expect(out.text()).toContain('64 done');
    expect(out.text()).not.toContain('128 done');
    for (let i = 0; i < 64; i++) task.tick(1);
    await sleep(250);
    expect(out.text()).toContain('192 done');
    task.done();
  });
});
