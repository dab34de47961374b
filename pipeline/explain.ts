/** `logcurate explain <id>`: which stage dropped a conversation and why, or which split and line it landed in. */
import type { Store } from './store.js';
import { UsageError } from './errors.js';
import { DecisionSet, type Decision } from './decisions.js';
import { runAlive } from './owner.js';

export interface Explanation {
  id: string;
  run_id: string | null;
  status: 'train' | 'test' | 'dropped' | 'unknown';
  stage: string | null;
  reason: string | null;
  line: number | null;
  /** Where the conversation came from, when it is in the store. */
  source: { file: string; line: number } | null;
  tokens: number | null;
  run_name: string | null;
  run_status: string | null;
  out_dir: string | null;
  /**
   * A later run that wrote its files to the same folder, replacing this run's: `line` is of this run's file,
   * which is no longer there (null when none has).
   */
  files_replaced_by: string | null;
}

export function explain(store: Store, id: string, runId?: string): Explanation {
  const db = store.sqlite;
  // By default the latest run that decided everything: a failed run stopped part-way (its survivors never reached
  // any file, and the previous run's files are still in place), and a running one has not decided yet.
  const run = (
    runId === undefined
      ? db
          .prepare(`SELECT id, name, status, out_dir, error, pid, host, started_at FROM runs WHERE status IN ('succeeded', 'dry_run') ORDER BY started_at DESC, rowid DESC LIMIT 1`)
          .get()
      : db.prepare(`SELECT id, name, status, out_dir, error, pid, host, started_at FROM runs WHERE id = ?`).get(runId)
  ) as
    | { id: string; name: string; status: string; out_dir: string | null; error: string | null; pid: number | null; host: string | null; started_at: string }
    | undefined;
  if (runId !== undefined && !run) throw new UsageError(`--run ${runId}: no such run in ${store.path}`);
  const conv = db.prepare(`SELECT pk, source_file, source_line FROM conversations WHERE id = ?`).get(id) as
    | { pk: number; source_file: string; source_line: number }
    | undefined;
  const base: Explanation = {
    id,
    run_id: run?.id ?? null,
    status: 'unknown',
    stage: null,
    reason: null,
    line: null,
    source: conv ? { file: conv.source_file, line: conv.source_line } : null,
    tokens: null,
    run_name: run?.name ?? null,
    run_status: run?.status ?? null,
    out_dir: run?.out_dir ?? null,
    files_replaced_by: null,
  };
  if (!conv) {
    const q = db.prepare(`SELECT file, line, reason FROM quarantine WHERE raw LIKE ? LIMIT 1`).get(`%${id.replace(/[%_]/g, '')}%`) as
      | { file: string; line: number; reason: string }
      | undefined;
    return { ...base, reason: q ? `not in the store; a quarantined line mentions it (${q.file}:${q.line}: ${q.reason})` : 'not in the store' };
  }
  if (!run) {
    const any = db.prepare(`SELECT id, status FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1`).get() as { id: string; status: string } | undefined;
    return { ...base, reason: any ? `no run on this store has finished yet (latest: ${any.id}, ${any.status})` : 'no run has been made on this store yet' };
  }
  if (run.status === 'running') {
    // explain only reads: the next run marks such a run failed (runner.ts markInterruptedRuns).
    if (!runAlive(run)) return { ...base, reason: `the run was interrupted: its process (pid ${run.pid} on ${run.host}) ended before the run finished` };
    return { ...base, reason: 'the run is still in progress' };
  }
  const d = decisionOf(store, run.id, conv.pk);
  if (!d && run.status === 'failed' && !hasDecisions(store, run.id)) {
    return { ...base, reason: `the run failed before recording any decision${run.error ? ` (${run.error})` : ''}` };
  }
  if (!d) return { ...base, reason: 'ingested after this run: the run did not consider it' };
  if (run.status === 'failed' && d.status !== 'dropped') {
    // Still alive when the run failed: it reached no file.
    return { ...base, reason: `the run failed before writing its files${run.error ? ` (${run.error})` : ''}` };
  }
  // `--run` with an older run: its folder may hold a later run's files now.
  const later =
    d.status !== 'dropped' && run.status === 'succeeded' && run.out_dir !== null
      ? (db
          .prepare(`SELECT id FROM runs WHERE out_dir = ? AND status = 'succeeded' AND id <> ? AND (started_at, rowid) > (?, (SELECT rowid FROM runs WHERE id = ?)) ORDER BY started_at DESC, rowid DESC LIMIT 1`)
          .pluck()
          .get(run.out_dir, run.id, run.started_at, run.id) as string | undefined)
      : undefined;
  return { ...base, status: d.status, stage: d.stage, reason: d.reason, line: d.line, tokens: d.tokens, files_replaced_by: later ?? null };
}

export function formatExplanation(e: Explanation): string {
  const rows: [string, string][] = [
    ['id', e.id],
    ['run', e.run_id ? `${e.run_id} (${e.run_status})` : '–'],
    ['status', e.status],
  ];
  if (e.status === 'dropped') rows.push(['stage', e.stage ?? '–'], ['reason', e.reason ?? '–']);
  if (e.status === 'train' || e.status === 'test') {
    rows.push(['file', `${e.out_dir ? `${e.out_dir}/` : ''}${e.status}.jsonl`], ['line', String(e.line ?? '–')], ['tokens', String(e.tokens ?? '–')]);
    if (e.files_replaced_by) rows.push(['note', `the folder now holds run ${e.files_replaced_by}'s files: this line is of this run's ${e.status}.jsonl, since replaced`]);
  }
  if (e.status === 'unknown' && e.reason) rows.push(['why', e.reason]);
  if (e.source) rows.push(['source', `${e.source.file}:${e.source.line}`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

type StoredDecision = Pick<Decision, 'status' | 'stage' | 'reason' | 'line' | 'tokens'>;

/** The last decoded chunk by store: explaining many ids of one run decodes each chunk once in a row. */
const decoded = new WeakMap<Store, { runId: string; firstPk: number; lastPk: number; set: DecisionSet }>();

function hasDecisions(store: Store, runId: string): boolean {
  const q = `SELECT EXISTS (SELECT 1 FROM run_decision_sets WHERE run_id = ?) OR EXISTS (SELECT 1 FROM run_decision_rows WHERE run_id = ?)`;
  return store.sqlite.prepare(q).pluck().get(runId, runId) === 1;
}

function decisionOf(store: Store, runId: string, pk: number): StoredDecision | undefined {
  const last = decoded.get(store);
  if (last && last.runId === runId && last.firstPk <= pk && pk <= last.lastPk) return last.set.get(pk);
  const chunk = store.sqlite
    .prepare(`SELECT first_pk, last_pk, stages, decisions FROM run_decision_sets WHERE run_id = ? AND first_pk <= ? AND last_pk >= ?`)
    .get(runId, pk, pk) as { first_pk: number; last_pk: number; stages: string; decisions: string } | undefined;
  if (chunk) {
    const set = DecisionSet.decode(chunk.stages, chunk.decisions);
    decoded.set(store, { runId, firstPk: chunk.first_pk, lastPk: chunk.last_pk, set });
    return set.get(pk);
  }
  // Not in any chunk: a run with a decision set did not consider it (ingested later); a run recorded before
  // decision sets (store v5 and older) has a row per conversation.
  if (store.sqlite.prepare(`SELECT 1 FROM run_decision_sets WHERE run_id = ? LIMIT 1`).get(runId)) return undefined;
  return store.sqlite.prepare(`SELECT status, stage, reason, line, tokens FROM run_decision_rows WHERE run_id = ? AND conv_pk = ?`).get(runId, pk) as
    | StoredDecision
    | undefined;
}
