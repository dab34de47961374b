/**
 * Token counts reused across runs (the `token_cache` table). The key is the SHA-256 of the encoding and the
 * example's exact messages JSON, so an entry can never go stale: any change to the text, the system prompt, a
 * redaction or the model's encoding is a different key. A nightly run over mostly old logs then counts only
 * what is new.
 */
import { hash } from 'node:crypto';
import type { Store } from './store.js';
import type { EncodingName } from './models.js';
import { countExampleTokens, type ChatMessageLike, type Tokenizer } from './tokens.js';

/** total and assistant packed in one number: both stay far below 2^26 tokens per example. */
const SHIFT = 2 ** 26;

export class TokenCache {
  private readonly known = new Map<string, number>();
  private readonly fresh: [string, number, number][] = [];
  hits = 0;
  misses = 0;

  constructor(
    private readonly store: Store,
    private readonly encoding: EncodingName,
    private readonly tok: Tokenizer,
  ) {
    const rows = store.sqlite.prepare(`SELECT example_sha256, total, assistant FROM token_cache WHERE encoding = ?`).raw();
    for (const [key, total, assistant] of rows.iterate(encoding) as Iterable<[string, number, number]>) {
      this.known.set(key, total * SHIFT + assistant);
    }
  }

  /** The cache key of an example: its encoding and its exact messages JSON (`JSON.stringify(messages)`). */
  keyOf(messagesJson: string): string {
    return hash('sha256', `${this.encoding}\u0000${messagesJson}`, 'base64');
  }

  /** The cached count for a key, or null (counted as a miss: the caller counts and `put`s it). */
  get(key: string): { total: number; assistant: number } | null {
    const packed = this.known.get(key);
    if (packed !== undefined && packed < SHIFT * SHIFT) {
      this.hits++;
      return { total: Math.floor(packed / SHIFT), assistant: packed % SHIFT };
    }
    this.misses++;
    return null;
  }

  put(key: string, counted: { total: number; assistant: number }): void {
    if (counted.total < SHIFT && counted.assistant < SHIFT && !this.known.has(key)) {
      this.known.set(key, counted.total * SHIFT + counted.assistant);
      this.fresh.push([key, counted.total, counted.assistant]);
    }
  }

  /** SPEC §5's count of these messages, from the cache when this exact example was counted before. */
  count(messages: readonly ChatMessageLike[]): { total: number; assistant: number } {
    const key = this.keyOf(JSON.stringify(messages));
    const cached = this.get(key);
    if (cached) return cached;
    const counted = countExampleTokens(messages, this.tok);
    this.put(key, counted);
    return counted;
  }

  /** Saves the counts made in this run. */
  save(): void {
    if (this.fresh.length === 0) return;
    const insert = this.store.sqlite.prepare(
      `INSERT INTO token_cache (encoding, example_sha256, total, assistant) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    );
    const tx = this.store.sqlite.transaction((rows: [string, number, number][]) => {
      for (const [key, total, assistant] of rows) insert.run(this.encoding, key, total, assistant);
    });
    // IMMEDIATE, as every write here: a concurrent run's commit must not leave this one with a stale snapshot.
    for (let i = 0; i < this.fresh.length; i += 20_000) tx.immediate(this.fresh.slice(i, i + 20_000));
    this.fresh.length = 0;
  }
}
