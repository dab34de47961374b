/**
 * Adapters from the public datasets in ../shared/realdata (next to the repo; never copied into it) to OUR input
 * shapes (SPEC §2), written to a temporary folder the caller owns:
 *
 *   hh-rlhf (Anthropic, harmless-base test)  → hh-rlhf.jsonl.gz      chat: one record per chosen and per rejected
 *                                                                     transcript, messages parsed from
 *                                                                     "\n\nHuman: …\n\nAssistant: …" (empty assistant
 *                                                                     turns kept as ""), embedded thumbs feedback
 *   OpenAssistant trees (oasst/*_tree.jsonl) → oasst.jsonl           chat: one record per root-to-leaf path, emoji
 *                                                                     votes and labels as an embedded events array
 *   Arena-Hard model answers                 → arena-answers.jsonl   request/response: the question as the request,
 *                                                                     the model's answer as choices[0].message
 *   Arena-Hard questions (+ gpt-4-0314)      → arena-legacy.jsonl    prompt/completion, where an answer exists
 *   preferences and ranks                    → realdata-feedback.jsonl  feedback events: hh chosen 5 / rejected 2,
 *                                                                     oasst rank 0 → 5, 1 → 4, …
 *
 * Every written line is a valid record of its shape with a unique id, and no line is blank, so ingest must count
 * each one as inserted (feedback events included) on a fresh store.
 */
import { createReadStream, createWriteStream, existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createGunzip, createGzip } from 'node:zlib';

/** Where the real data is expected: ../shared/realdata relative to the repo root. */
export const REALDATA_PATH = fileURLToPath(new URL('../../../shared/realdata', import.meta.url));

export function locateRealdata(): string | null {
  try {
    return existsSync(REALDATA_PATH) && statSync(REALDATA_PATH).isDirectory() ? REALDATA_PATH : null;
  } catch {
    return null;
  }
}

export type RealdataFormat = 'chat' | 'request_response' | 'prompt_completion' | 'feedback';

export interface RealdataFile {
  readonly path: string;
  readonly format: RealdataFormat;
  readonly lines: number;
  readonly blankLines: number;
  /** Records ingest should insert into a fresh store (every non-blank line). */
  readonly expectedRecords: number;
}

interface Msg {
  role: 'user' | 'assistant';
  content: string;
}

/** A JSONL writer with backpressure; gzip when the name ends in .gz. */
class JsonlOut {
  lines = 0;
  private readonly file: ReturnType<typeof createWriteStream>;
  private readonly head: NodeJS.WritableStream;
  constructor(
    readonly path: string,
    readonly format: RealdataFormat,
  ) {
    this.file = createWriteStream(path);
    if (path.endsWith('.gz')) {
      const gz = createGzip();
      gz.pipe(this.file);
      this.head = gz;
    } else {
      this.head = this.file;
    }
  }
  async write(value: unknown): Promise<void> {
    this.lines++;
    if (!this.head.write(`${JSON.stringify(value)}\n`)) await once(this.head, 'drain');
  }
  async close(): Promise<RealdataFile> {
    const closed = once(this.file, 'close');
    this.head.end();
    await closed;
    return { path: this.path, format: this.format, lines: this.lines, blankLines: 0, expectedRecords: this.lines };
  }
}

async function* readJsonl(path: string): AsyncGenerator<unknown> {
  const input = path.endsWith('.gz') ? createReadStream(path).pipe(createGunzip()) : createReadStream(path);
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) if (line.trim() !== '') yield JSON.parse(line) as unknown;
}

/** "\n\nHuman: a\n\nAssistant: b" → messages; the one space after the colon is a separator, the rest is kept. */
export function parseHhTranscript(transcript: string): Msg[] {
  const parts = transcript.split(/\n\n(Human|Assistant):/);
  const out: Msg[] = [];
  // parts[0] is whatever precedes the first marker (empty in the dataset).
  for (let i = 1; i + 1 < parts.length; i += 2) {
    const text = parts[i + 1]!;
    out.push({ role: parts[i] === 'Human' ? 'user' : 'assistant', content: text.startsWith(' ') ? text.slice(1) : text });
  }
  return out;
}

const BASE_MS = Date.UTC(2024, 9, 1);
const iso = (k: number): string => new Date(BASE_MS + k * 60_000).toISOString();

async function writeHh(root: string, dir: string, fb: JsonlOut): Promise<RealdataFile | null> {
  const src = join(root, 'hh-rlhf', 'harmless-base-test.jsonl.gz');
  if (!existsSync(src)) return null;
  const out = new JsonlOut(join(dir, 'hh-rlhf.jsonl.gz'), 'chat');
  let i = 0;
  for await (const row of readJsonl(src)) {
    const r = row as { chosen: string; rejected: string };
    for (const side of ['chosen', 'rejected'] as const) {
      const id = `hh-${i}-${side}`;
      await out.write({
        id,
        created_at: iso(i),
        tags: { source: 'hh-rlhf', side },
        metadata: { dataset: 'anthropic/hh-rlhf harmless-base test', pair_index: i },
        messages: parseHhTranscript(r[side]),
        feedback: side === 'chosen' ? 'up' : 'down',
      });
      await fb.write({ log_id: id, name: 'score', value: side === 'chosen' ? 5 : 2, created_at: iso(i + 1) });
    }
    i++;
  }
  return out.close();
}

interface OasstNode {
  message_id: string;
  text: string;
  role: 'prompter' | 'assistant';
  lang?: string;
  rank?: number | null;
  emojis?: Record<string, number> | null;
  labels?: Record<string, { value: number; count?: number } | number> | null;
  replies?: OasstNode[];
}

function* rootToLeafPaths(node: OasstNode, prefix: OasstNode[] = []): Generator<OasstNode[]> {
  const path = [...prefix, node];
  const replies = node.replies ?? [];
  if (replies.length === 0) yield path;
  for (const r of replies) yield* rootToLeafPaths(r, path);
}

function oasstEvents(node: OasstNode): { name: string; value: number }[] {
  const events: { name: string; value: number }[] = [];
  if (node.emojis?.['+1']) events.push({ name: 'thumbs', value: 1 });
  if (node.emojis?.['-1']) events.push({ name: 'thumbs', value: 0 });
  for (const [name, v] of Object.entries(node.labels ?? {})) {
    const value = typeof v === 'number' ? v : v?.value;
    if (typeof value === 'number' && Number.isFinite(value)) events.push({ name, value });
  }
  return events;
}

async function writeOasst(root: string, dir: string, fb: JsonlOut): Promise<RealdataFile | null> {
  const oasstDir = join(root, 'oasst');
  if (!existsSync(oasstDir)) return null;
  const treeFiles = readdirSync(oasstDir).filter((f) => f.endsWith('_tree.jsonl')).sort();
  if (treeFiles.length === 0) return null;
  const out = new JsonlOut(join(dir, 'oasst.jsonl'), 'chat');
  const seen = new Set<string>();
  let k = 0;
  for (const f of treeFiles) {
    for await (const row of readJsonl(join(oasstDir, f))) {
      const tree = row as { message_tree_id: string; prompt: OasstNode };
      for (const path of rootToLeafPaths(tree.prompt)) {
        const leaf = path[path.length - 1]!;
        const id = `oasst-${leaf.message_id}`;
        if (seen.has(id)) continue;
        seen.add(id);
        const lastAssistant = [...path].reverse().find((m) => m.role === 'assistant');
        const rec: Record<string, unknown> = {
          id,
          created_at: iso(k),
          tags: { source: 'oasst', lang: tree.prompt.lang ?? null },
          metadata: { message_tree_id: tree.message_tree_id, path: path.map((m) => m.message_id) },
          messages: path.map((m) => ({ role: m.role === 'prompter' ? 'user' : 'assistant', content: m.text })),
        };
        const events = lastAssistant ? oasstEvents(lastAssistant) : [];
        if (events.length > 0) rec.feedback = events;
        await out.write(rec);
        if (lastAssistant && typeof lastAssistant.rank === 'number') {
          await fb.write({ log_id: id, name: 'score', value: Math.max(1, 5 - lastAssistant.rank), created_at: iso(k + 1) });
        }
        k++;
      }
    }
  }
  return out.close();
}

interface ArenaQuestion {
  question_id: string;
  category?: string;
  cluster?: string;
  turns: { content: string }[];
}
interface ArenaAnswer {
  question_id: string;
  answer_id: string;
  model_id: string;
  tstamp?: number;
  choices: { index: number; turns: { content: string; token_len?: number }[] }[];
}

async function writeArena(root: string, dir: string): Promise<RealdataFile[]> {
  const arenaDir = join(root, 'arena-hard');
  const qPath = join(arenaDir, 'question.jsonl');
  if (!existsSync(qPath)) return [];
  const questions = new Map<string, ArenaQuestion>();
  for await (const row of readJsonl(qPath)) {
    const q = row as ArenaQuestion;
    questions.set(q.question_id, q);
  }
  const answerFiles = readdirSync(arenaDir).filter((f) => /^answer_.*\.jsonl$/.test(f)).sort();
  const rr = new JsonlOut(join(dir, 'arena-answers.jsonl'), 'request_response');
  const baseline = new Map<string, ArenaAnswer>();
  for (const f of answerFiles) {
    for await (const row of readJsonl(join(arenaDir, f))) {
      const a = row as ArenaAnswer;
      const q = questions.get(a.question_id);
      const answerTurns = a.choices[0]?.turns ?? [];
      if (!q || answerTurns.length === 0) continue;
      if (a.model_id === 'gpt-4-0314' || (!baseline.has(a.question_id) && f === answerFiles[0])) baseline.set(a.question_id, a);
      // Multi-turn questions interleave with the answer's turns; the last answer turn is the response.
      const messages: { role: string; content: string }[] = [];
      for (let t = 0; t < q.turns.length; t++) {
        messages.push({ role: 'user', content: q.turns[t]!.content });
        if (t < q.turns.length - 1 && answerTurns[t]) messages.push({ role: 'assistant', content: answerTurns[t]!.content });
      }
      const last = answerTurns[Math.min(q.turns.length, answerTurns.length) - 1]!;
      const created = typeof a.tstamp === 'number' ? Math.floor(a.tstamp) : undefined;
      await rr.write({
        id: `arena-${a.model_id}-${a.question_id}`,
        ...(a.tstamp !== undefined ? { created_at: a.tstamp } : {}),
        tags: { source: 'arena-hard', category: q.category ?? null, cluster: q.cluster ?? null },
        request: { model: a.model_id, messages },
        response: {
          id: a.answer_id,
          object: 'chat.completion',
          ...(created !== undefined ? { created } : {}),
          model: a.model_id,
          choices: [{ index: 0, message: { role: 'assistant', content: last.content }, finish_reason: 'stop' }],
          ...(typeof last.token_len === 'number' ? { usage: { completion_tokens: last.token_len } } : {}),
        },
        status_code: 200,
      });
    }
  }
  const pc = new JsonlOut(join(dir, 'arena-legacy.jsonl'), 'prompt_completion');
  for (const [qid, q] of questions) {
    const a = baseline.get(qid);
    const answer = a?.choices[0]?.turns[0]?.content;
    if (!a || answer === undefined || q.turns.length !== 1) continue;
    await pc.write({ id: `arena-q-${qid}`, prompt: q.turns[0]!.content, completion: answer, model: a.model_id, tags: { source: 'arena-hard', cluster: q.cluster ?? null } });
  }
  return [await rr.close(), await pc.close()];
}

/** Write every adapter's output into `dir`. Datasets that are missing are left out of the list. */
export async function writeRealdataInputs(dir: string, root: string | null = locateRealdata()): Promise<{ files: RealdataFile[] }> {
  if (!root) throw new Error(`real data not found at ${REALDATA_PATH}`);
  await mkdir(dir, { recursive: true });
  const fb = new JsonlOut(join(dir, 'realdata-feedback.jsonl'), 'feedback');
  const files: RealdataFile[] = [];
  const hh = await writeHh(root, dir, fb);
  if (hh) files.push(hh);
  const oasst = await writeOasst(root, dir, fb);
  if (oasst) files.push(oasst);
  files.push(...(await writeArena(root, dir)));
  files.push(await fb.close());
  return { files };
}
