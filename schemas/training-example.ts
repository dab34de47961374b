/**
 * One line of an `openai_chat` training file, as emit writes it and OpenAI's fine-tuning accepts it.
 * pipeline/validate.ts reports OpenAI's error kinds by hand (a zod issue does not map onto them); the
 * constants below are shared with it so the two cannot drift apart.
 */
import { z } from 'zod';
import { ROLES } from './message-keys.js';

// In a module of their own, without zod, so that emit's token worker can load them cheaply.
export { MESSAGE_KEYS, ROLES } from './message-keys.js';

export const FunctionCallSchema = z.object({
  name: z.string().min(1),
  /** JSON text, as the API sends it. */
  arguments: z.string(),
});

export const ToolCallSchema = z.object({
  id: z.string().min(1),
  type: z.literal('function'),
  function: FunctionCallSchema,
});

/** A tool definition; its parameters are a JSON Schema we carry through untouched. */
export const ToolSchema = z.looseObject({
  type: z.literal('function'),
  function: z.looseObject({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  }),
});

const hasCall = (m: { tool_calls?: unknown[] | undefined; function_call?: unknown }): boolean =>
  (m.tool_calls !== undefined && m.tool_calls.length > 0) || m.function_call !== undefined;

export const TrainingMessageSchema = z
  .strictObject({
    role: z.enum(ROLES),
    /** Text; null (or absent) only beside tool_calls or function_call. */
    content: z.string().nullable().optional(),
    name: z.string().min(1).optional(),
    /** 0 excludes an assistant turn from training, 1 (the default) includes it. */
    weight: z.union([z.literal(0), z.literal(1)]).optional(),
    tool_calls: z.array(ToolCallSchema).optional(),
    tool_call_id: z.string().optional(),
    function_call: FunctionCallSchema.optional(),
  })
  .refine((m) => (typeof m.content === 'string' && m.content.length > 0) || hasCall(m), {
    message: 'content must be a non-empty string unless the message carries tool_calls or function_call',
    path: ['content'],
  })
  .refine((m) => m.weight === undefined || m.role === 'assistant', {
    message: 'weight is only allowed on assistant messages',
    path: ['weight'],
  });

export const TrainingExampleSchema = z
  .object({
    messages: z.array(TrainingMessageSchema).min(1),
    tools: z.array(ToolSchema).optional(),
  })
  .refine((e) => e.messages.some((m) => m.role === 'assistant'), {
    message: 'an example needs at least one assistant message',
    path: ['messages'],
  });

export type Role = (typeof ROLES)[number];
export type TrainingExample = z.infer<typeof TrainingExampleSchema>;
export type TrainingMessage = z.infer<typeof TrainingMessageSchema>;
export type ToolCall = z.infer<typeof ToolCallSchema>;
export type Tool = z.infer<typeof ToolSchema>;
