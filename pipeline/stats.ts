/** `logcurate stats`: a summary of the store. */
import { sql, type Kysely } from 'kysely';
import type { Store, StoreSchema } from './store.js';
import { table } from './format.js';

export interface StoreStats {
  conversations: number;
  feedback_events: number;
  quarantined: number;
  runs: number;
  by_status: Record<string, number>;
  by_format: Record<string, number>;
  feedback_names: Record<string, number>;
  orphan_feedback_events: number;
  files: { ingested: number; interrupted: number };
  quarantine_reasons: { reason: string; count: number }[];
  last_run: { id: string; name: string; status: string; started_at: string } | null;
}

/**
 * Feedback events whose conversation is not in the store: NOT IN over the ids, not a correlated NOT EXISTS. While a
 * bulk load has the index on conversations.id dropped (bulk-load.ts; after a load killed midway, until the next
 * ingest builds it), SQLite builds the list of ids once for NOT IN, where NOT EXISTS scanned every conversation for
 * every event: `stats` on a 200k store during its first ingest ran past 60 s. With the index, both take ~0.2 s.
 * Ids and log ids are NOT NULL, so NOT IN means what it says.
 */
export function orphanFeedbackQuery(db: Kysely<StoreSchema>) {
  return db
    .selectFrom('feedback')
    .select(sql<number>`count(*)`.as('n'))
    .where('feedback.log_id', 'not in', db.selectFrom('conversations').select('conversations.id'));
}

export async function storeStats(store: Store): Promise<StoreStats> {
  const db = await store.kysely();
  const count = async (t: 'conversations' | 'feedback' | 'quarantine' | 'runs'): Promise<number> =>
    Number((await db.selectFrom(t).select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow()).n);
  const group = async (col: 'status' | 'format'): Promise<Record<string, number>> => {
    const rows = await db.selectFrom('conversations').select([col, sql<number>`count(*)`.as('n')]).groupBy(col).orderBy(col).execute();
    return Object.fromEntries(rows.map((r) => [String(r[col]), Number(r.n)]));
  };
  const names = await db.selectFrom('feedback').select(['name', sql<number>`count(*)`.as('n')]).groupBy('name').orderBy('name').execute();
  const orphans = await orphanFeedbackQuery(db).executeTakeFirstOrThrow();
  // A file interrupted whose path was later ingested whole (the complete file after a truncated copy, say) is
  // no longer outstanding: only the others count as interrupted.
  const files = await db
    .selectFrom('ingest_files as f')
    .select(['f.status', sql<number>`count(*)`.as('n')])
    .where((eb) =>
      eb.or([
        eb('f.status', '=', 'complete'),
        eb.not(
          eb.exists(
            eb
              .selectFrom('ingest_files as later')
              .select(sql`1`.as('one'))
              .whereRef('later.path', '=', 'f.path')
              .where('later.status', '=', 'complete')
              .whereRef('later.id', '>', 'f.id'),
          ),
        ),
      ]),
    )
    .groupBy('f.status')
    .execute();
  const reasons = await db
    .selectFrom('quarantine')
    .select([sql<string>`CASE WHEN instr(reason, ':') > 0 THEN substr(reason, 1, instr(reason, ':') - 1) ELSE reason END`.as('r'), sql<number>`count(*)`.as('n')])
    .groupBy('r')
    .orderBy('n', 'desc')
    .limit(10)
    .execute();
  const last = await db.selectFrom('runs').select(['id', 'name', 'status', 'started_at']).orderBy('started_at', 'desc').limit(1).executeTakeFirst();
  return {
    conversations: await count('conversations'),
    feedback_events: await count('feedback'),
    quarantined: await count('quarantine'),
    runs: await count('runs'),
    by_status: await group('status'),
    by_format: await group('format'),
    feedback_names: Object.fromEntries(names.map((r) => [r.name, Number(r.n)])),
    orphan_feedback_events: Number(orphans.n),
    files: {
      ingested: Number(files.find((f) => f.status === 'complete')?.n ?? 0),
      interrupted: Number(files.find((f) => f.status === 'running')?.n ?? 0),
    },
    quarantine_reasons: reasons.map((r) => ({ reason: r.r, count: Number(r.n) })),
    last_run: last ?? null,
  };
}

export function formatStats(s: StoreStats, path: string): string {
  const lines = [`store ${path}`, ''];
  lines.push(
    table(
      ['', 'count'],
      [
        ['conversations', s.conversations],
        ...Object.entries(s.by_status).map(([k, v]) => [`  status ${k}`, v] as [string, number]),
        ...Object.entries(s.by_format).map(([k, v]) => [`  format ${k}`, v] as [string, number]),
        ['feedback events', s.feedback_events],
        ...Object.entries(s.feedback_names).map(([k, v]) => [`  name ${k}`, v] as [string, number]),
        ['  for unknown conversations', s.orphan_feedback_events],
        ['quarantined lines', s.quarantined],
        ['files ingested', s.files.ingested],
        ['files interrupted', s.files.interrupted],
        ['runs', s.runs],
      ],
    ),
  );
  if (s.quarantine_reasons.length > 0) {
    lines.push('', 'top quarantine reasons:', table(['reason', 'lines'], s.quarantine_reasons.map((r) => [r.reason, r.count])));
  }
  if (s.last_run) lines.push('', `last run: ${s.last_run.name} ${s.last_run.id} (${s.last_run.status}, ${s.last_run.started_at})`);
  return lines.join('\n');
}
