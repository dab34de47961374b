/**
 * Per-conversation signals (pipeline/signals.ts): what ingest stores must be exactly what the stages would
 * compute from the text, a blob from other code must never be trusted, and a store without them (ingested
 * before they existed) must give the same curation and be filled in on the way.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ingest } from '../pipeline/ingest.js';
import { openStore } from '../pipeline/store.js';
import { encodeSignals, signalsFromMessages, signalsFromStored, SIGNALS_CHARS, type Signals } from '../pipeline/signals.js';
import { finalAssistantText, keyText, messageText } from '../pipeline/messages.js';
import { hashText, key53, normalizeText } from '../pipeline/normalize.js';
import { createRefusalDetector } from '../pipeline/refusal.js';
import type { Message } from '../pipeline/stage.js';
import { tempDir } from './support/tmp.js';
import { chat, curate } from './support/pipeline.js';
import { REPO } from './support/tmp.js';

const dir = tempDir('logcurate-signals-');
const KEYS = ['conversation', 'prompt', 'last_user'] as const;

function view(s: Signals): unknown {
  return {
    keys: KEYS.map((k) => [s.keyLength(k), s.keyLength(k) > 0 ? s.keyHash(k) : null]),
    prompt: s.promptHashHex(),
    links: s.linkHashes(),
    refusal: s.defaultRefusal(),
  };
}

/** The definitions the stages used before signals existed, written out again independently. */
function reference(messages: readonly Message[]): unknown {
  const detect = createRefusalDetector();
  const users = messages.filter((m) => m.role === 'user');
  const prompt = normalizeText(keyText(messages, 'prompt'));
  const links = new Set<string>();
  if (prompt !== '') links.add(prompt);
  if (users.length > 1) {
    for (const m of [users[0]!, users[users.length - 1]!]) {
      const t = normalizeText(messageText(m));
      if (t !== '') links.add(t);
    }
  }
  return {
    keys: KEYS.map((k) => {
      const t = normalizeText(keyText(messages, k));
      return [t.length, t.length > 0 ? key53(t) : null];
    }),
    prompt: hashText(prompt),
    links: [...links].map(key53),
    refusal: detect(finalAssistantText(messages)),
  };
}

const HOSTILE: Message[][] = [
  [],
  [{ role: 'system', content: 'only a system message' }],
  [{ role: 'assistant', content: "I'm sorry, but I can't help with that." }],
  [
    { role: 'user', content: '  Ｈｅｌｌｏ\u200b  WORLD\t\n' },
    { role: 'assistant', content: 'ﬁne, STRASSE ß ς' },
  ],
  [
    { role: 'user', content: [{ type: 'text', text: 'part one' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'part two' }] },
    { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: { b: 1, a: [2] } } }] },
    { role: 'tool', content: '{"ok":true}', tool_call_id: 'c1' },
    { role: 'assistant', content: '', refusal: 'I cannot do that.' },
  ],
  [
    { role: 'user', content: 'first turn' },
    { role: 'assistant', content: 'ok' },
    { role: 'user', content: '' },
    { role: 'assistant', content: 'ok' },
    { role: 'user', content: 'last <|endoftext|> turn \ud800 lone surrogate' },
    { role: 'assistant', content: 'done' },
  ],
  [
    { role: 'user', content: 'same' },
    { role: 'assistant', content: 'a' },
    { role: 'user', content: 'SAME' },
    { role: 'assistant', content: 'b' },
  ],
  [{ role: 'user', content: 'x'.repeat(300_000) }, { role: 'assistant', content: 'y '.repeat(100_000) }],
  [{ role: 'user', content: 'proto', ['__proto__' as string]: { role: 'assistant' } } as Message, { role: 'assistant', content: 'fine' }],
];

describe('signals', () => {
  it('computed signals equal the stages’ original definitions, hostile text included', () => {
    for (const m of HOSTILE) expect(view(signalsFromMessages(m))).toEqual(reference(m));
  });

  it('the stored text round-trips every signal, and one from other code or of another length is refused', () => {
    for (const m of HOSTILE) {
      const stored = encodeSignals(m);
      expect(stored).toHaveLength(SIGNALS_CHARS);
      expect(view(signalsFromStored(stored)!)).toEqual(view(signalsFromMessages(m)));
      const otherStamp = (stored.startsWith('0') ? '1' : '0') + stored.slice(1);
      expect(signalsFromStored(otherStamp)).toBeNull();
      expect(signalsFromStored(stored.slice(0, -1))).toBeNull();
      expect(signalsFromStored(null)).toBeNull();
      expect(signalsFromStored(Buffer.from(stored))).toBeNull();
    }
  });

  it('ingest stores, for every conversation of the bundled sample, exactly what the text gives', async () => {
    const store = openStore(join(dir, 'sample.db'));
    const sample = join(REPO, 'data', 'sample');
    await ingest(store, readdirSync(sample).filter((f) => /\.(jsonl|csv)(\.gz)?$/.test(f)).map((f) => join(sample, f)));
    const rows = store.sqlite.prepare(`SELECT id, messages, signals FROM conversations`).all() as { id: string; messages: string; signals: string | null }[];
    await store.close();
    expect(rows.length).toBeGreaterThan(1000);
    for (const r of rows) {
      const stored = signalsFromStored(r.signals);
      expect(stored, r.id).not.toBeNull();
      const messages = JSON.parse(r.messages) as Message[];
      expect(view(stored!), r.id).toEqual(reference(messages));
    }
  });

  it('a store whose signals are missing or from other code curates the same, and is filled in on the way', async () => {
    const logs = [] as Record<string, unknown>[];
    for (let i = 0; i < 60; i++) {
      logs.push(chat(`c${i}`, `Question number ${i % 25}?`, i % 7 === 0 ? "I'm sorry, but I can't help with that." : `Answer ${i}.`, { feedback: 5 }));
    }
    const stages = [
      { filter: { feedback: { min: 4 } } },
      { dedupe: { method: 'exact', key: 'prompt' } },
      { rebalance_refusals: { target_rate: 0.05 } },
      { system_prompt: { text: 'Be brief.' } },
      { split: { test_fraction: 0.2, stratify_by: 'refusal', method: 'exact' } },
    ];
    const db = join(dir, 'stale.db');
    const first = await curate(dir, { logs, stages, db });
    expect(Object.values(first.dropped).filter((r) => r.startsWith('duplicate_of:')).length).toBe(35);
    expect(Object.values(first.dropped)).toContain('refusal_rebalance');

    const sqlite = new Database(db);
    const valid = (): number =>
      (sqlite.prepare(`SELECT signals FROM conversations`).all() as { signals: string | null }[]).filter((r) => signalsFromStored(r.signals) !== null).length;
    expect(valid()).toBe(60);
    // As a store from before signals existed: none. Then as one written by other code: a wrong stamp; a blob.
    for (const spoil of [`UPDATE conversations SET signals = NULL`, `UPDATE conversations SET signals = CASE substr(signals, 1, 1) WHEN 'f' THEN 'e' ELSE 'f' END || substr(signals, 2)`, `UPDATE conversations SET signals = zeroblob(${SIGNALS_CHARS})`]) {
      sqlite.exec(spoil);
      expect(valid()).toBe(0);
      const again = await curate(dir, { logs, stages, db });
      expect(again.lineage).toEqual(first.lineage);
      expect(again.train).toEqual(first.train);
      expect(again.test).toEqual(first.test);
      // Every conversation a signals stage read has them again (the filter drops none here).
      expect(valid()).toBe(60);
    }
    sqlite.close();
  });

  it('after redact_pii, signals come from the redacted text: conversations that differ only in an email are duplicates', async () => {
    const c = await curate(dir, {
      logs: [
        chat('a', 'Write to alice@example.com about the invoice', 'Done.'),
        chat('b', 'Write to bob@example.org about the invoice', 'Done.'),
        chat('c', 'Something else entirely', 'Done.'),
      ],
      stages: [{ redact_pii: { kinds: ['email'] } }, { dedupe: { key: 'prompt' } }],
    });
    expect(c.dropped).toEqual({ b: 'duplicate_of:a' });
  });
});
