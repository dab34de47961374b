/** Small, shared views of a conversation's messages. */
import type { Message } from './stage.js';

/** A message's text (content parts joined); the one definition lives with the token formula. */
export { contentText } from './tokens.js';
import { contentText } from './tokens.js';

/** A message's text, or its structured refusal (`content: null, refusal: "…"`) when it has no content. */
export function messageText(m: Message): string {
  const t = contentText(m.content as never);
  return t === '' && typeof m.refusal === 'string' ? m.refusal : t;
}

/** The final assistant message's text ('' when the conversation has none). */
export function finalAssistantText(messages: readonly Message[]): string {
  for (let k = messages.length - 1; k >= 0; k--) if (messages[k]!.role === 'assistant') return messageText(messages[k]!);
  return '';
}

/** What dedupe's `key` and split's prompt grouping compare (SPEC §3: conversation | prompt | last_user). */
export function keyText(messages: readonly Message[], key: 'conversation' | 'prompt' | 'last_user'): string {
  if (key === 'last_user') {
    for (let k = messages.length - 1; k >= 0; k--) if (messages[k]!.role === 'user') return messageText(messages[k]!);
    return '';
  }
  const parts: string[] = [];
  for (const m of messages) {
    if (m.role === 'system') continue;
    if (key === 'prompt' && m.role !== 'user') continue;
    // Role-tagged so that the same words said by different roles are different conversations.
    parts.push(key === 'conversation' ? `${m.role}: ${messageText(m)}${toolCallText(m)}` : messageText(m));
  }
  return parts.join('\n');
}

function toolCallText(m: Message): string {
  return calls(m)
    .map((f) => ` ${f.name}(${argumentsText(f.arguments)})`)
    .join('');
}

/** A message's function calls: each tool call's, and the legacy `function_call`. */
export function calls(m: Message): { name: string; arguments: string | Record<string, unknown> }[] {
  const out = (m.tool_calls ?? []).map((t) => t.function);
  if (m.function_call) out.push(m.function_call);
  return out;
}

/** A call's arguments as text: as given, or as JSON when a log gave an object. */
export function argumentsText(args: string | Record<string, unknown>): string {
  return typeof args === 'string' ? args : JSON.stringify(args);
}

/** `gpt-4o*` → /^gpt-4o.*$/ ; only `*` and `?` are special. */
export function globToRegExp(glob: string): RegExp {
  const src = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${src}$`);
}
