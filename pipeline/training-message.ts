/**
 * A stored message as a training example carries it, and system_prompt's rewrite. Their own module, free of zod
 * and the stages, because emit's token worker runs them too (pipeline/precount.ts): a count made there must be of
 * the very messages emit writes.
 */
import { MESSAGE_KEYS } from '../schemas/message-keys.js';
import { contentText } from './tokens.js';
import { argumentsText } from './messages.js';
import type { Message } from './stage.js';

/** A stored message → the keys OpenAI's format accepts. Content parts become their joined text. */
export function toTrainingMessage(m: Message): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of MESSAGE_KEYS) {
    const v = m[k];
    // SDK dumps write absent fields as null (tool_calls: null, name: null); only content may be null.
    if (v === undefined || (v === null && k !== 'content')) continue;
    if (k === 'content') out.content = v === null ? null : contentText(v as never);
    else if (k === 'tool_calls') {
      // SDKs log "no calls" as []; OpenAI rejects an empty list, and it means the same as none.
      const calls = v as NonNullable<Message['tool_calls']>;
      if (calls.length === 0) continue;
      out.tool_calls = calls.map((tc) => ({
        ...(tc.id !== undefined ? { id: tc.id } : {}),
        type: tc.type ?? 'function',
        function: { name: tc.function.name, arguments: argumentsText(tc.function.arguments) },
      }));
    } else if (k === 'function_call') {
      const fc = v as NonNullable<Message['function_call']>;
      out.function_call = { name: fc.name, arguments: argumentsText(fc.arguments) };
    } else out[k] = v;
  }
  // A message with a call may have no content key at all in the logs; OpenAI wants the key (null is fine).
  if (!('content' in out) && (out.tool_calls !== undefined || out.function_call !== undefined)) out.content = null;
  // OpenAI's structured refusal (`content: null, refusal: "…"`) trains as the refusal text.
  if ((out.content === null || out.content === undefined) && out.tool_calls === undefined && out.function_call === undefined && typeof m.refusal === 'string') {
    out.content = m.refusal;
  }
  return out;
}

export type SystemPromptMode = 'replace' | 'prepend' | 'if_missing' | 'remove';

/** system_prompt's pure rewrite (SPEC §3): `replace`, `prepend`, `if_missing` or `remove` the system message. */
export function applySystemPrompt(messages: readonly Message[], mode: SystemPromptMode, text: string | undefined): readonly Message[] {
  const system: Message = { role: 'system', content: text ?? '' };
  const hasSystem = messages.some((m) => m.role === 'system');
  switch (mode) {
    case 'replace':
      return [system, ...messages.filter((m) => m.role !== 'system')];
    case 'prepend':
      return [system, ...messages];
    case 'if_missing':
      return hasSystem ? messages : [system, ...messages];
    case 'remove':
      return hasSystem ? messages.filter((m) => m.role !== 'system') : messages;
  }
}
