/** The roles and message keys of an `openai_chat` training example (schemas/training-example.ts re-exports them). */
export const ROLES = ['system', 'user', 'assistant', 'tool', 'function'] as const;
export const MESSAGE_KEYS = ['role', 'content', 'name', 'weight', 'tool_calls', 'tool_call_id', 'function_call'] as const;
