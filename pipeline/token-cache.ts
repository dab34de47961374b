/**
 * Token counts reused across runs (the `token_cache` table). The key is the SHA-256 of the encoding and the
 * example's exact messages JSON, so an entry can never go stale: any change to the text, the system prompt, a
 * redaction or the model's encoding is a different key. A nightly run over mostly old logs then counts only
 * what is new.
 */
import { hash } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import { inListStatements, retryWhileBusy, type Store } from './store.js';
import type { EncodingName } from './models.js';

export class TokenCache {
  private readonly lookups: (size: number) => Statement;
  private readonly insert: Statement;
  hits = 0;
  misses = 0;

  constructor(
    private readonly store: Store,
    private readonly encoding: EncodingName,
  ) {
    this.lookups = inListStatements(store.sqlite, (list) => `SELECT example_sha256, total, assistant FROM token_cache WHERE encoding = ? AND example_sha256 IN (${list})`);
    this.insert = store.sqlite.prepare(`INSERT INTO token_cache (encoding, example_sha256, total, assistant) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`);
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
    for (let i = 0; i < keys.length; i += LOOKUP_BATCH) {
      const part = keys.slice(i, i + LOOKUP_BATCH);
      for (const [key, total, assistant] of this.lookups(part.length).all(this.encoding, ...part) as [string, number, number][]) found.set(key, { total, assistant });
    }
    return keys.map((k) => {
      const hit = found.get(k) ?? null;
      if (hit) this.hits++;
      else this.misses++;
      return hit;
    });
  }

  /** Saves counts made now (IMMEDIATE, as every write here: a concurrent run's commit must not leave a stale snapshot). */
  putMany(entries: readonly { key: string; total: number; assistant: number }[]): void {
    if (entries.length === 0) return;
    const tx = this.store.sqlite.transaction(() => {
      for (const e of entries) this.insert.run(this.encoding, e.key, e.total, e.assistant);
    });
    retryWhileBusy(() => tx.immediate(), 30_000);
  }
}

const LOOKUP_BATCH = 2048;
