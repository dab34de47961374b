/**
 * Per-conversation signals: the few numbers the text-reading stages decide by, computed once from a
 * conversation's messages and kept in the store (`conversations.signals`), so nightly runs need not parse and
 * normalise every conversation's text again in dedupe, rebalance_refusals and split (issue 6).
 *
 * What is kept: a fixed-width text of 113 characters (text, not a blob: a scan reads it as a cheap string
 * where a blob would cost a Buffer per row; fields are parsed only when read):
 *     0  8  stamp: which code computed this (see SIGNALS_STAMP)
 *     8  1  1 = the default refusal detector judges the final assistant message a refusal, else 0
 *     9 22  dedupe key `conversation`: key53 of the normalised text (14) and its length in UTF-16 units (8)
 *    31 22  dedupe key `prompt` (all user turns), the same way
 *    53 22  dedupe key `last_user`, the same way
 *    75 14  key53 of the normalised first user message, or 14 dashes when there is none or it is empty
 *    89  8  number of user messages
 *    97 16  FNV-1a 64 of the normalised prompt (split's stable key, hashText)
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
import { hash53, hashText, key53, normalizeText, type SeededUnits } from './normalize.js';
import { createRefusalDetector } from './refusal.js';

export type SignalKey = 'conversation' | 'prompt' | 'last_user';

export const SIGNALS_CHARS = 113;

/** The hash of the compiled code signals depend on; a stored text with another stamp is ignored. */
export const SIGNALS_STAMP: number = (() => {
  const self = fileURLToPath(import.meta.url);
  // .js when compiled, .ts when run from source (tests): the stamp is of whatever code is running.
  const sources = ['signals', 'normalize', 'messages', 'refusal'].map((m) => readFileSync(join(dirname(self), `${m}${extname(self)}`), 'utf8'));
  return hash53(`logcurate-signals\u0000${SIGNALS_CHARS}\u0000${sources.join('\u0000')}`) % 4294967296;
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
  /** split: `units.of(promptHashHex())`, computed without the hex text where the hash is held as numbers. */
  promptUnit(units: SeededUnits): number;
  /** split: key53s of the distinct non-empty texts that link conversations (prompt, and first/last turn when several). */
  linkHashes(): number[];
  /** The default refusal detector's verdict on the final assistant message. */
  defaultRefusal(): boolean;
}

const KEY_AT = [9, 31, 53];
const HEX = (s: string, from: number, len: number): number => Number.parseInt(s.slice(from, from + len), 16);

class StoredSignals implements Signals {
  constructor(private readonly t: string) {}
  keyHash(key: SignalKey): number {
    return HEX(this.t, KEY_AT[KEY_SLOT[key]]!, 14);
  }
  keyLength(key: SignalKey): number {
    return HEX(this.t, KEY_AT[KEY_SLOT[key]]! + 14, 8);
  }
  promptHashHex(): string {
    return this.t.slice(97, 113);
  }
  promptUnit(units: SeededUnits): number {
    return units.of(this.promptHashHex());
  }
  linkHashes(): number[] {
    const out: number[] = [];
    if (this.keyLength('prompt') > 0) out.push(this.keyHash('prompt'));
    if (HEX(this.t, 89, 8) > 1) {
      if (this.t.charCodeAt(75) !== 0x2d) out.push(HEX(this.t, 75, 14));
      if (this.keyLength('last_user') > 0) out.push(this.keyHash('last_user'));
    }
    return distinct(out);
  }
  defaultRefusal(): boolean {
    return this.t.charCodeAt(8) === 0x31;
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
  promptUnit(units: SeededUnits): number {
    return units.of(this.promptHashHex());
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

/** Signals computed from messages (after any transforms), each on first use. */
export function signalsFromMessages(messages: readonly Message[]): Signals {
  return new ComputedSignals(messages);
}

/** Signals as numbers, a row of columns (pipeline/columns.ts keeps them so for the store's conversations). */
export interface SignalColumns {
  readonly refusal: Uint8Array;
  /** key53 and length of the dedupe keys conversation, prompt, last_user: three per conversation. */
  readonly keyHash: Float64Array;
  readonly keyLength: Int32Array;
  /** key53 of the first user message; NaN when there is none or it is empty. */
  readonly firstUser: Float64Array;
  readonly users: Int32Array;
  /** The prompt's 64-bit hashText, as its high and low 32 bits. */
  readonly promptHi: Uint32Array;
  readonly promptLo: Uint32Array;
}

/** Lowercase hex digits at t[from, from + len) (at most 14: below 2^53, exact). No slice, no parseInt. */
function hexAt(t: string, from: number, len: number): number {
  let v = 0;
  for (let i = from; i < from + len; i++) {
    const ch = t.charCodeAt(i);
    const d = ch >= 0x30 && ch <= 0x39 ? ch - 0x30 : ch >= 0x61 && ch <= 0x66 ? ch - 0x57 : -1;
    if (d < 0) return NaN;
    v = v * 16 + d;
  }
  return v;
}

/** Stored signals text (valid: signalsFromStored accepted it) into row `k` of the columns. */
export function decodeSignalsInto(t: string, c: SignalColumns, k: number): void {
  c.refusal[k] = t.charCodeAt(8) === 0x31 ? 1 : 0;
  for (let j = 0; j < 3; j++) {
    c.keyHash[3 * k + j] = hexAt(t, KEY_AT[j]!, 14);
    c.keyLength[3 * k + j] = hexAt(t, KEY_AT[j]! + 14, 8);
  }
  c.firstUser[k] = t.charCodeAt(75) === 0x2d ? NaN : hexAt(t, 75, 14);
  c.users[k] = hexAt(t, 89, 8);
  c.promptHi[k] = hexAt(t, 97, 8);
  c.promptLo[k] = hexAt(t, 105, 8);
}

/** Row `k` of the columns as Signals: the same answers as the stored text they were decoded from. */
export class ColumnSignals implements Signals {
  constructor(
    private readonly c: SignalColumns,
    private readonly k: number,
  ) {}
  keyHash(key: SignalKey): number {
    return this.c.keyHash[3 * this.k + KEY_SLOT[key]]!;
  }
  keyLength(key: SignalKey): number {
    return this.c.keyLength[3 * this.k + KEY_SLOT[key]]!;
  }
  promptHashHex(): string {
    return hex(this.c.promptHi[this.k]!, 8) + hex(this.c.promptLo[this.k]!, 8);
  }
  promptUnit(units: SeededUnits): number {
    return units.hex(this.c.promptHi[this.k]!, this.c.promptLo[this.k]!);
  }
  linkHashes(): number[] {
    const out: number[] = [];
    if (this.keyLength('prompt') > 0) out.push(this.keyHash('prompt'));
    if (this.c.users[this.k]! > 1) {
      const first = this.c.firstUser[this.k]!;
      if (!Number.isNaN(first)) out.push(first);
      if (this.keyLength('last_user') > 0) out.push(this.keyHash('last_user'));
    }
    return distinct(out);
  }
  defaultRefusal(): boolean {
    return this.c.refusal[this.k] === 1;
  }
}

const NIBBLE = '0123456789abcdef';
const STAMP_HEX = hex(SIGNALS_STAMP, 8);

/** Stored signals, or null when absent, malformed or from other code (then compute them). */
export function signalsFromStored(stored: unknown): Signals | null {
  if (typeof stored !== 'string' || stored.length !== SIGNALS_CHARS || !stored.startsWith(STAMP_HEX)) return null;
  return new StoredSignals(stored);
}

/** All signals of the messages as stored, as the text kept in `conversations.signals`. */
export function encodeSignals(messages: readonly Message[]): string {
  const s = new ComputedSignals(messages);
  let out = STAMP_HEX + (s.defaultRefusal() ? '1' : '0');
  for (const key of ['conversation', 'prompt', 'last_user'] as const) out += hex(s.keyHash(key), 14) + hex(s.keyLength(key), 8);
  const first = s.firstUserHash();
  out += Number.isNaN(first) ? '-'.repeat(14) : hex(first, 14);
  out += hex(s.users().length, 8);
  out += s.promptHashHex();
  return out;
}

/** `x` (an integer below 2^53) as `width` lowercase hex digits; Number#toString(16) is slow on non-small integers. */
function hex(x: number, width: number): string {
  let lo = x % 4294967296;
  let hi = (x - lo) / 4294967296;
  let out = '';
  for (let i = 0; i < width; i++) {
    if (i < 8) {
      out = NIBBLE[lo & 15]! + out;
      lo >>>= 4;
    } else {
      out = NIBBLE[hi & 15]! + out;
      hi >>>= 4;
    }
  }
  return out;
}
