/**
 * "latest" feedback per conversation (filter's default aggregate, dedupe's best_feedback, rebalance's order): the
 * event with the newest created_at; undated events count as older than dated ones, and ingest order (pk) breaks
 * ties — a later event wins a tie. Computed in JS as a fold over the events in pk order (a SQL window function
 * sorts every event: 320-350 -> 170-190 ms at 200k; test/filter.test.ts holds the two equal).
 *
 * The fold is kept between runs (`feedback_latest`, one row per feedback name): its state after the events up to
 * feedback pk F, joined to the conversations up to pk C — each conversation's value and newest time — plus the
 * events up to F whose conversation was not among those (orphans: feedback logged before its conversation, or for
 * one never stored). A run whose view is (F', C') with F ≤ F' and C ≤ C' folds on from there: the orphans whose
 * conversation it now sees, then the events after F. Events and conversations are never rewritten and pks only
 * grow, so the result is the fold over everything, exactly; at 200k this replaces reading 236k joined events
 * (~0.2 s of every run) with reading the night's new ones. The row is stamped with this module's source hash; a
 * cache ahead of the run's view (another process ran later), or of other code, is not used.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { cacheWrite, rowsByPk, type Store } from './store.js';
import { indexOfPk, type WorkingSet } from './working-set.js';

const STAMP = createHash('sha256')
  .update(readFileSync(fileURLToPath(import.meta.url)))
  .digest('hex')
  .slice(0, 16);

/** An event not folded: its conversation was not in the view. */
type Orphan = [pk: number, logId: string, value: number, at: number | null];

interface Fold {
  /** The view it covers: feedback pk ≤ f, conversation pk ≤ c. */
  readonly f: number;
  readonly c: number;
  /** Conversations with at least one folded event, ascending pk, with their value and newest time. */
  readonly pks: Int32Array;
  readonly values: Float64Array;
  readonly newest: Float64Array;
  readonly orphans: Orphan[];
}

/** The latest value of `name` per working-set conversation (NaN: none), over feedback with pk ≤ maxPk. */
export function latestFeedback(store: Store, ws: WorkingSet, name: string, maxPk: number): Float64Array {
  const c = ws.size ? ws.pks[ws.size - 1]! : 0;
  const cached = readFold(store, name);
  const fold = cached && cached.f <= maxPk && cached.c <= c ? advance(store, name, cached, maxPk, c) : foldAll(store, ws, name, maxPk, c);
  if (!cached || cached.f !== fold.f || cached.c !== fold.c) saveFold(store, name, fold);
  const out = new Float64Array(ws.size).fill(NaN);
  let i = 0;
  for (let k = 0; k < fold.pks.length; k++) {
    const pk = fold.pks[k]!;
    while (i < ws.size && ws.pks[i]! < pk) i++;
    if (i < ws.size && ws.pks[i] === pk) out[i] = fold.values[k]!;
  }
  return out;
}

/** Events of `name` with their conversation's pk where it is in the view (≤ c), else their log id. */
function events(store: Store, name: string, after: number, maxPk: number, c: number): Generator<[number, number | null, number, number | null, string | null]> {
  return rowsByPk(
    store.sqlite,
    `SELECT f.pk AS pk, CASE WHEN c.pk <= ${c} THEN c.pk END, f.value, f.created_at_ms, CASE WHEN c.pk IS NULL OR c.pk > ${c} THEN f.log_id END
     FROM feedback f LEFT JOIN conversations c ON c.id = f.log_id WHERE f.name = ? AND f.pk <= ? AND f.pk > ?`,
    [name, maxPk],
    8192,
    after,
  );
}

/** Folds one event into per-index state (the first event always passes: t ≥ -Infinity). */
function apply(values: Float64Array, newest: Float64Array, i: number, value: number, at: number | null): void {
  const t = at === null ? -Infinity : at;
  if (t >= newest[i]!) {
    values[i] = value;
    newest[i] = t;
  }
}

function foldAll(store: Store, ws: WorkingSet, name: string, maxPk: number, c: number): Fold {
  const n = ws.size;
  const values = new Float64Array(n).fill(NaN);
  const newest = new Float64Array(n).fill(NaN);
  const orphans: Orphan[] = [];
  for (const [pk, convPk, value, at, logId] of events(store, name, -Infinity, maxPk, c)) {
    const i = convPk === null ? -1 : indexOfPk(ws.pks, convPk);
    if (i === -1) {
      if (logId !== null) orphans.push([pk, logId, value, at]);
      continue;
    }
    if (Number.isNaN(newest[i]!)) newest[i] = -Infinity;
    apply(values, newest, i, value, at);
  }
  return compact(ws.pks, values, newest, maxPk, c, orphans);
}

/** The cached fold carried on to the view (maxPk, c): orphans now in view, then the newer events, in pk order. */
function advance(store: Store, name: string, from: Fold, maxPk: number, c: number): Fold {
  // The cached conversations' state, updated in place on copies; those with a first event now (new ones, or old
  // ones given late feedback) apart, by pk.
  const values = from.values.slice();
  const newest = from.newest.slice();
  const added = new Map<number, { value: number; newest: number }>();
  const fold = (convPk: number, value: number, at: number | null): void => {
    const k = convPk <= from.c ? indexOfPk(from.pks, convPk) : -1;
    if (k !== -1) return apply(values, newest, k, value, at);
    const t = at === null ? -Infinity : at;
    const a = added.get(convPk);
    if (a === undefined) added.set(convPk, { value, newest: t });
    else if (t >= a.newest) {
      a.value = value;
      a.newest = t;
    }
  };
  const orphans: Orphan[] = [];
  const find = store.sqlite.prepare(`SELECT pk FROM conversations WHERE id = ?`).pluck();
  for (const o of from.orphans) {
    const convPk = find.get(o[1]) as number | undefined;
    if (convPk !== undefined && convPk <= c) fold(convPk, o[2], o[3]);
    else orphans.push(o);
  }
  for (const [pk, convPk, value, t, logId] of events(store, name, from.f, maxPk, c)) {
    if (convPk === null) {
      if (logId !== null) orphans.push([pk, logId, value, t]);
    } else fold(convPk, value, t);
  }
  if (added.size === 0) return { f: maxPk, c, pks: from.pks, values, newest, orphans };
  // Merged into pk order.
  const addedPks = [...added.keys()].sort((a, b) => a - b);
  const n = from.pks.length + addedPks.length;
  const outPks = new Int32Array(n);
  const outValues = new Float64Array(n);
  const outNewest = new Float64Array(n);
  for (let k = 0, j = 0, o = 0; o < n; o++) {
    if (j === addedPks.length || (k < from.pks.length && from.pks[k]! < addedPks[j]!)) {
      outPks[o] = from.pks[k]!;
      outValues[o] = values[k]!;
      outNewest[o] = newest[k++]!;
    } else {
      const pk = addedPks[j++]!;
      const a = added.get(pk)!;
      outPks[o] = pk;
      outValues[o] = a.value;
      outNewest[o] = a.newest;
    }
  }
  return { f: maxPk, c, pks: outPks, values: outValues, newest: outNewest, orphans };
}

/** Per-index state → the conversations that have events. */
function compact(wsPks: Int32Array, values: Float64Array, newest: Float64Array, f: number, c: number, orphans: Orphan[]): Fold {
  let m = 0;
  for (let i = 0; i < newest.length; i++) if (!Number.isNaN(newest[i]!)) m++;
  const pks = new Int32Array(m);
  const v = new Float64Array(m);
  const t = new Float64Array(m);
  for (let i = 0, k = 0; i < newest.length; i++) {
    if (Number.isNaN(newest[i]!)) continue;
    pks[k] = wsPks[i]!;
    v[k] = values[i]!;
    t[k++] = newest[i]!;
  }
  return { f, c, pks, values: v, newest: t, orphans };
}

function readFold(store: Store, name: string): Fold | null {
  const row = store.sqlite.prepare(`SELECT max_feedback_pk, max_conversation_pk, n, data, orphans FROM feedback_latest WHERE name = ? AND stamp = ?`).get(name, STAMP) as
    | { max_feedback_pk: number; max_conversation_pk: number; n: number; data: Buffer; orphans: string }
    | undefined;
  if (!row || row.data.length !== row.n * 20) return null;
  const buf = new Uint8Array(row.data).buffer;
  const n = row.n;
  return {
    f: row.max_feedback_pk,
    c: row.max_conversation_pk,
    values: new Float64Array(buf, 0, n),
    newest: new Float64Array(buf, 8 * n, n),
    pks: new Int32Array(buf, 16 * n, n),
    orphans: JSON.parse(row.orphans) as Orphan[],
  };
}

/** A cache write: skipped, never waited on, when another process holds the write lock. */
function saveFold(store: Store, name: string, fold: Fold): void {
  const n = fold.pks.length;
  const data = Buffer.alloc(20 * n);
  new Float64Array(data.buffer, data.byteOffset, n).set(fold.values);
  new Float64Array(data.buffer, data.byteOffset + 8 * n, n).set(fold.newest);
  new Int32Array(data.buffer, data.byteOffset + 16 * n, n).set(fold.pks);
  const save = store.sqlite.prepare(
    `INSERT OR REPLACE INTO feedback_latest (name, stamp, max_feedback_pk, max_conversation_pk, n, data, orphans) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  cacheWrite(() => save.run(name, STAMP, fold.f, fold.c, n, data, JSON.stringify(fold.orphans)));
}
