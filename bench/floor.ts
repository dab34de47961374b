/**
 * The floor the benchmark compares against (issue 6): the least work that produces the same training file,
 * on one thread — stream the same log files with JSON.parse, keep the same feedback condition (latest score
 * ≥ 4), count the same tokens with the fastest exact tokenizer we have, write the JSONL. No store, no checks.
 *
 *   node dist/bench/floor.js <logs-dir> <out-file>
 * Prints one JSON line: { conversations, kept, tokens, bytes_in, ms, max_rss_mb }.
 */
import { createWriteStream, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseCsv } from 'csv-parse';
import { readLines, openDecompressed } from '../pipeline/lines.js';
import { countExampleTokens, getTokenizer } from '../pipeline/tokens.js';

type Obj = Record<string, unknown>;

async function* records(dir: string): AsyncGenerator<Obj> {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (/\.csv$/.test(name)) {
      for await (const row of openDecompressed(path).pipe(parseCsv({ columns: true, bom: true })) as AsyncIterable<Obj>) {
        yield { id: row.id, messages: [{ role: 'user', content: row.question }, { role: 'assistant', content: row.answer }], feedback: Number(row.score), created_at: row.created_at };
      }
    } else if (/\.jsonl(\.gz)?$/.test(name)) {
      for await (const l of readLines(path)) {
        const text = l.bytes.toString('utf8');
        if (text.trim() === '') continue;
        try {
          yield JSON.parse(text) as Obj;
        } catch {
          /* the floor skips what it cannot parse */
        }
      }
    }
  }
}

function messagesOf(r: Obj): Obj[] | null {
  if (Array.isArray(r.messages)) return r.messages as Obj[];
  if (r.request && typeof r.request === 'object') {
    const choice = ((r.response as Obj | null)?.choices as Obj[] | undefined)?.[0]?.message as Obj | undefined;
    return choice ? [...((r.request as Obj).messages as Obj[]), choice] : null;
  }
  if (typeof r.prompt === 'string') return [{ role: 'user', content: r.prompt }, { role: 'assistant', content: r.completion }];
  return null;
}

const ts = (v: unknown): number => (typeof v === 'number' ? (v < 1e11 ? v * 1000 : v) : typeof v === 'string' ? Date.parse(v) || 0 : 0);

async function main(): Promise<void> {
  const [dir, out] = process.argv.slice(2);
  if (!dir || !out) throw new Error('usage: floor <logs-dir> <out-file>');
  const t0 = performance.now();
  // Pass 1: the latest score per conversation (feedback may come before or after it, in any file).
  const latest = new Map<string, { v: number; t: number }>();
  const note = (id: string, v: number, t: number): void => {
    const cur = latest.get(id);
    if (!cur || t >= cur.t) latest.set(id, { v, t });
  };
  for await (const r of records(dir)) {
    if ('log_id' in r && 'value' in r) {
      if ((r.name ?? 'score') === 'score' && typeof r.value === 'number') note(String(r.log_id), r.value, ts(r.created_at));
    } else if (r.id !== undefined && typeof r.feedback === 'number') note(String(r.id), r.feedback, -1);
    else if (r.id !== undefined && r.feedback && typeof r.feedback === 'object' && !Array.isArray(r.feedback) && typeof (r.feedback as Obj).score === 'number') {
      note(String(r.id), (r.feedback as Obj).score as number, -1);
    }
  }
  // Pass 2: keep, count, write.
  const tok = getTokenizer('o200k_base');
  const sink = createWriteStream(out);
  let conversations = 0;
  let kept = 0;
  let tokens = 0;
  for await (const r of records(dir)) {
    const messages = messagesOf(r);
    if (!messages) continue;
    conversations++;
    if (r.id === undefined || (latest.get(String(r.id))?.v ?? 0) < 4) continue;
    kept++;
    tokens += countExampleTokens(messages as never, tok).total;
    if (!sink.write(`${JSON.stringify({ messages })}\n`)) await new Promise<void>((res) => sink.once('drain', () => res()));
  }
  await new Promise<void>((res) => sink.end(() => res()));
  const ms = performance.now() - t0;
  process.stdout.write(`${JSON.stringify({ conversations, kept, tokens, ms, max_rss_mb: process.resourceUsage().maxRSS / 1024 })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
