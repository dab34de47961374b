/**
 * Token counts reused across runs (the `token_cache` table). The key is the SHA-256 of the encoding and the
 * example's exact messages JSON, so an entry can never go stale: any change to the text, the system prompt, a
 * redaction or the model's encoding is a different key. A nightly run over mostly old logs then counts only
 * what is new.
 */
import { hash } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import { BUSY_MS, inListStatements, retryWhileBusy, type Store } from './store.js';
import type { EncodingName } from './models.js';

export class TokenCache {
  private readonly lookups: (size: number) => Statement;
  private readonly insert: Statement;
  /** Counts made by this run and not yet saved (flush). */
  private readonly pending = new Map<string, { total: number; assistant: number }>();
  /**
   * Whether the table held any count for this encoding when the run began. When it held none (a store's first
   * run), nothing is looked up in it: a count another run saves meanwhile is only made again, never wrong.
   */
  private readonly stored: boolean;
  hits = 0;
  misses = 0;

  constructor(
    private readonly store: Store,
    private readonly encoding: EncodingName,
  ) {
    this.lookups = inListStatements(store.sqlite, (list) => `SELECT example_sha256, total, assistant FROM token_cache WHERE encoding = ? AND example_sha256 IN (${list})`);
    this.insert = store.sqlite.prepare(`INSERT INTO token_cache (encoding, example_sha256, total, assistant) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`);
    this.stored = TokenCache.holds(store, encoding);
  }

  /** Whether the table holds any count for this encoding. */
  static holds(store: Store, encoding: EncodingName): boolean {
    return store.sqlite.prepare(`SELECT EXISTS (SELECT 1 FROM token_cache WHERE encoding = ?)`).pluck().get(encoding) === 1;
  }

  /** The cache key of an example: its encoding and its exact messages JSON (`JSON.stringify(messages)`). */
  keyOf(messagesJson: string): string {
    return hash('sha256', `${this.encoding}\u0000${messagesJson}`, 'base64');
  }

  /**
   * The cached counts of these keys (null where unknown; hits and misses are counted). Looked up a batch at a
   * time, not loaded whole: the table holds every example ever counted, and memory should follow the run.
   */
  getMany(keys: readonly string[]): ({ total: number; assistant: number } | null)[] {
    const found = new Map<string, { total: number; assistant: number }>();
    if (this.stored) {
      for (let i = 0; i < keys.length; i += LOOKUP_BATCH) {
        const part = keys.slice(i, i + LOOKUP_BATCH);
        for (const [key, total, assistant] of this.lookups(part.length).all(this.encoding, ...part) as [string, number, number][]) found.set(key, { total, assistant });
      }
    }
    return keys.map((k) => {
      const hit = found.get(k) ?? this.pending.get(k) ?? null;
      if (hit) this.hits++;
      else this.misses++;
      return hit;
    });
  }

  /**
   * Keeps counts made now, saved FLUSH_ENTRIES at a time. The keys are random, so each save rewrites most of the
   * table's pages however few entries it holds: 70,873 counts took ~260 ms saved 2,048 at a time (one window),
   * ~160 ms 16,384 at a time.
   */
  put(key: string, counts: { total: number; assistant: number }): void {
    this.pending.set(key, counts);
    if (this.pending.size >= FLUSH_ENTRIES) this.flush();
  }

  /**
   * Saves the counts kept so far (IMMEDIATE, as every write here: a concurrent run's commit must not leave a stale
   * snapshot). Emit calls it when it has counted everything; counts still kept when a run fails are not saved,
   * which only means counting them again.
   */
  flush(): void {
    if (this.pending.size === 0) return;
    const tx = this.store.sqlite.transaction(() => {
      for (const [key, e] of this.pending) this.insert.run(this.encoding, key, e.total, e.assistant);
    });
    retryWhileBusy(() => tx.immediate(), BUSY_MS);
    this.pending.clear();
  }
}

const LOOKUP_BATCH = 2048;
/** Counts saved per transaction (TokenCache.put). */
const FLUSH_ENTRIES = 16_384;
