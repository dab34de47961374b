/**
 * Per-conversation signals: the few numbers the text-reading stages decide by, computed once from a
 * conversation's messages and kept in the store (`conversations.signals`), so nightly runs need not parse and
 * normalise every conversation's text again in dedupe, rebalance_refusals and split (issue 6).
 *
 * What is kept (64 bytes, little-endian):
 *   0  u32  stamp: which code computed this (see SIGNALS_STAMP)
 *   4  u32  flags: bit 0 = the default refusal detector judges the final assistant message a refusal
 *   8  f64  key53 of the normalised dedupe key `conversation`      40 u32 its length in UTF-16 units
 *  16  f64  key53 of the normalised key `prompt` (all user turns)   44 u32 its length
 *  24  f64  key53 of the normalised key `last_user`                 48 u32 its length
 *  32  f64  key53 of the normalised first user turn (NaN if empty)  52 u32 number of user messages
 *  56  u32  FNV-1a 64 of the normalised prompt, high half           60 u32 low half (split's stable key)
 *
 * Never stale: signals are a pure function of the stored messages (which are never rewritten) and of the code
 * that computes them. The stamp is a hash of that code's compiled source (this module, normalisation, message
 * text extraction, the refusal detector), so any change to how a signal is computed makes every stored one
 * unreadable and it is computed afresh. Signals describe the messages as ingested: after a transform that
 * rewrites text (redact_pii), stages compute them from the transformed messages instead (`fromMessages`).
 * System prompts never enter them (the dedupe keys, prompts and final answers skip system messages), so
 * system_prompt does not invalidate them.
 */
import { readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Message } from './stage.js';
import { finalAssistantText, keyText, messageText } from './messages.js';
import { hash53, hashText, key53, normalizeText } from './normalize.js';
import { createRefusalDetector } from './refusal.js';

export type SignalKey = 'conversation' | 'prompt' | 'last_user';

export const SIGNALS_BYTES = 64;

/** The hash of the compiled code signals depend on; a stored blob with another stamp is ignored. */
export const SIGNALS_STAMP: number = (() => {
  const self = fileURLToPath(import.meta.url);
  // .js when compiled, .ts when run from source (tests): the stamp is of whatever code is running.
  const sources = ['signals', 'normalize', 'messages', 'refusal'].map((m) => readFileSync(join(dirname(self), `${m}${extname(self)}`), 'utf8'));
  return hash53(`logcurate-signals\u0000${SIGNALS_BYTES}\u0000${sources.join('\u0000')}`) % 4294967296;
})();

const KEY_SLOT: Record<SignalKey, number> = { conversation: 0, prompt: 1, last_user: 2 };

let defaultDetector: ((text: string) => boolean) | null = null;
const detectDefault = (text: string): boolean => (defaultDetector ??= createRefusalDetector())(text);

/** A conversation's signals: read from the store, or computed (lazily, one signal at a time) from messages. */
export interface Signals {
  /** key53 of the normalised dedupe key; meaningful only when keyLength(key) > 0. */
  keyHash(key: SignalKey): number;
  /** Length of the normalised dedupe key (0 = empty). */
  keyLength(key: SignalKey): number;
  /** split: hashText of the normalised prompt (all user turns), the stable key of a conversation's own group. */
  promptHashHex(): string;
  /** split: key53s of the distinct non-empty texts that link conversations (prompt, and first/last turn when several). */
  linkHashes(): number[];
  /** The default refusal detector's verdict on the final assistant message. */
  defaultRefusal(): boolean;
}

class StoredSignals implements Signals {
  constructor(private readonly v: DataView) {}
  keyHash(key: SignalKey): number {
    return this.v.getFloat64(8 + 8 * KEY_SLOT[key], true);
  }
  keyLength(key: SignalKey): number {
    return this.v.getUint32(40 + 4 * KEY_SLOT[key], true);
  }
  promptHashHex(): string {
    return hex8(this.v.getUint32(56, true)) + hex8(this.v.getUint32(60, true));
  }
  linkHashes(): number[] {
    const out: number[] = [];
    if (this.keyLength('prompt') > 0) out.push(this.keyHash('prompt'));
    if (this.v.getUint32(52, true) > 1) {
      const first = this.v.getFloat64(32, true);
      if (!Number.isNaN(first)) out.push(first);
      if (this.keyLength('last_user') > 0) out.push(this.keyHash('last_user'));
    }
    return distinct(out);
  }
  defaultRefusal(): boolean {
    return (this.v.getUint32(4, true) & 1) === 1;
  }
}

class ComputedSignals implements Signals {
  private readonly keys: ({ hash: number; length: number } | undefined)[] = [undefined, undefined, undefined];
  private prompt: string | undefined;
  private userMessages: readonly Message[] | undefined;
  private refusal: boolean | undefined;
  constructor(private readonly messages: readonly Message[]) {}
  private normalizedPrompt(): string {
    return (this.prompt ??= normalizeText(keyText(this.messages, 'prompt')));
  }
  private key(key: SignalKey): { hash: number; length: number } {
    const slot = KEY_SLOT[key];
    let k = this.keys[slot];
    if (k === undefined) {
      // With one user message the prompt is that message: normalise it once.
      const text = key === 'prompt' || (key === 'last_user' && this.users().length === 1) ? this.normalizedPrompt() : normalizeText(keyText(this.messages, key));
      this.keys[slot] = k = { hash: key53(text), length: text.length };
    }
    return k;
  }
  keyHash(key: SignalKey): number {
    return this.key(key).hash;
  }
  keyLength(key: SignalKey): number {
    return this.key(key).length;
  }
  promptHashHex(): string {
    return hashText(this.normalizedPrompt());
  }
  users(): readonly Message[] {
    return (this.userMessages ??= this.messages.filter((m) => m.role === 'user'));
  }
  /** key53 of the normalised first user message; NaN when there is none or it is empty. */
  firstUserHash(): number {
    const users = this.users();
    if (users.length === 0) return NaN;
    if (users.length === 1) return this.keyLength('prompt') > 0 ? this.keyHash('prompt') : NaN;
    const t = normalizeText(messageText(users[0]!));
    return t === '' ? NaN : key53(t);
  }
  linkHashes(): number[] {
    const out: number[] = [];
    if (this.keyLength('prompt') > 0) out.push(this.keyHash('prompt'));
    if (this.users().length > 1) {
      const first = this.firstUserHash();
      if (!Number.isNaN(first)) out.push(first);
      if (this.keyLength('last_user') > 0) out.push(this.keyHash('last_user'));
    }
    return distinct(out);
  }
  defaultRefusal(): boolean {
    return (this.refusal ??= detectDefault(finalAssistantText(this.messages)));
  }
}

function distinct(xs: number[]): number[] {
  return xs.length < 2 ? xs : [...new Set(xs)];
}

function hex8(x: number): string {
  return x.toString(16).padStart(8, '0');
}

/** Signals computed from messages (after any transforms), each on first use. */
export function signalsFromMessages(messages: readonly Message[]): Signals {
  return new ComputedSignals(messages);
}

/** Stored signals, or null when the blob is absent, malformed or from other code (then compute them). */
export function signalsFromBlob(blob: Uint8Array | null | undefined): Signals | null {
  if (!blob || blob.byteLength !== SIGNALS_BYTES) return null;
  const v = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  return v.getUint32(0, true) === SIGNALS_STAMP ? new StoredSignals(v) : null;
}

/** All signals of the messages as stored, as the blob kept in `conversations.signals`. */
export function encodeSignals(messages: readonly Message[]): Buffer {
  const s = new ComputedSignals(messages);
  const buf = Buffer.alloc(SIGNALS_BYTES);
  const v = new DataView(buf.buffer, buf.byteOffset, SIGNALS_BYTES);
  v.setUint32(0, SIGNALS_STAMP, true);
  v.setUint32(4, s.defaultRefusal() ? 1 : 0, true);
  for (const key of ['conversation', 'prompt', 'last_user'] as const) {
    v.setFloat64(8 + 8 * KEY_SLOT[key], s.keyHash(key), true);
    v.setUint32(40 + 4 * KEY_SLOT[key], s.keyLength(key), true);
  }
  v.setFloat64(32, s.firstUserHash(), true);
  v.setUint32(52, s.users().length, true);
  const hex = s.promptHashHex();
  v.setUint32(56, Number.parseInt(hex.slice(0, 8), 16), true);
  v.setUint32(60, Number.parseInt(hex.slice(8), 16), true);
  return buf;
}
