/** redact_pii — replace PII with placeholders, or drop conversations that contain it (SPEC §3). */
import { z } from 'zod';
import { ROLES } from '../schemas/log-record.js';
import { defineStage, type Message } from '../pipeline/stage.js';
import { findPii, PII_KINDS, redactPii, type PiiKind } from '../pipeline/pii.js';
import { argumentsText, calls } from '../pipeline/messages.js';

export const redactPiiParams = z.strictObject({
  kinds: z.array(z.enum(PII_KINDS)).min(1, { error: 'expected at least one kind' }).default([...PII_KINDS]),
  action: z.enum(['redact', 'drop']).default('redact'),
  roles: z.array(z.enum(ROLES)).min(1, { error: 'expected at least one role' }).optional(),
});

type Counts = Partial<Record<PiiKind, number>>;

/**
 * Redacts every text a message carries: string content, content parts' text, tool-call arguments.
 * Returns the same array when nothing matched, so callers can tell cheaply.
 */
export function redactMessages(messages: readonly Message[], kinds: readonly PiiKind[], roles: ReadonlySet<string> | null, counts?: Counts): readonly Message[] {
  let out: Message[] | null = null;
  const add = (c: Counts): void => {
    if (!counts) return;
    for (const [k, v] of Object.entries(c) as [PiiKind, number][]) counts[k] = (counts[k] ?? 0) + v;
  };
  const red = (s: string, json = false): string => {
    const r = redactPii(s, kinds, { json });
    if (r.text !== s) add(r.counts);
    return r.text;
  };
  messages.forEach((m, idx) => {
    if (roles && !roles.has(m.role)) return;
    let next: Message | null = null;
    if (typeof m.content === 'string') {
      const t = red(m.content);
      if (t !== m.content) next = { ...m, content: t };
    } else if (Array.isArray(m.content)) {
      let changed = false;
      const parts = m.content.map((p) => {
        if (typeof p.text !== 'string') return p;
        const t = red(p.text);
        if (t === p.text) return p;
        changed = true;
        return { ...p, text: t };
      });
      if (changed) next = { ...m, content: parts };
    }
    if (m.tool_calls?.length) {
      let changed = false;
      const redacted = m.tool_calls.map((tc) => {
        const text = argumentsText(tc.function.arguments);
        const t = red(text, true);
        if (t === text) return tc;
        changed = true;
        return { ...tc, function: { ...tc.function, arguments: t } };
      });
      if (changed) next = { ...(next ?? m), tool_calls: redacted };
    }
    if (m.function_call) {
      const text = argumentsText(m.function_call.arguments);
      const t = red(text, true);
      if (t !== text) next = { ...(next ?? m), function_call: { ...m.function_call, arguments: t } };
    }
    if (next) (out ??= [...messages])[idx] = next;
  });
  return out ?? messages;
}

/** The first PII kind found in any text of the conversation (by the detector's priority), or null. */
function firstKind(messages: readonly Message[], kinds: readonly PiiKind[], roles: ReadonlySet<string> | null): PiiKind | null {
  for (const m of messages) {
    if (roles && !roles.has(m.role)) continue;
    const texts: string[] = [];
    if (typeof m.content === 'string') texts.push(m.content);
    else if (Array.isArray(m.content)) for (const p of m.content) if (typeof p.text === 'string') texts.push(p.text);
    for (const f of calls(m)) texts.push(argumentsText(f.arguments));
    for (const t of texts) {
      const found = findPii(t, kinds);
      if (found.length > 0) return found[0]!.kind;
    }
  }
  return null;
}

export default defineStage({
  name: 'redact_pii',
  params: redactPiiParams,
  run(ctx, p) {
    const roles = p.roles ? new Set<string>(p.roles) : null;
    const counts: Counts = {};
    if (p.action === 'drop') {
      for (const c of ctx.scan('redact_pii', { fields: [] })) {
        const kind = firstKind(c.messages, p.kinds, roles);
        if (kind) {
          ctx.drop(c.i, `pii:${kind}`);
          counts[kind] = (counts[kind] ?? 0) + 1;
        }
      }
    } else {
      // Remember which conversations changed; later scans re-redact only those (cheap, and nothing is cached).
      const touched = new Uint8Array(ctx.ws.size);
      let n = 0;
      for (const c of ctx.scan('redact_pii', { fields: [] })) {
        if (redactMessages(c.messages, p.kinds, roles, counts) !== c.messages) {
          touched[c.i] = 1;
          n++;
        }
      }
      ctx.addTransform((messages, conv) => (touched[conv.i] ? redactMessages(messages, p.kinds, roles) : messages));
      ctx.stats.conversations_redacted = n;
    }
    ctx.stats.action = p.action;
    ctx.stats.by_kind = counts;
    // The report's "PII redactions by kind": redactions only. A conversation dropped for PII is no redaction
    // (the report counted 76 dropped conversations as 76 email redactions); the funnel shows it as pii:<kind>.
    if (p.action === 'redact') {
      const pii = (ctx.facts.pii ??= {});
      for (const [k, v] of Object.entries(counts)) pii[k] = (pii[k] ?? 0) + v;
    }
  },
});
