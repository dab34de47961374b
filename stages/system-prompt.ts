/** system_prompt — inject, replace or remove the system message (SPEC §3). A lazy transform: nothing is copied. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { defineStage } from '../pipeline/stage.js';
import { UsageError } from '../pipeline/errors.js';
import { applySystemPrompt } from '../pipeline/training-message.js';
import { utf8FileText } from '../pipeline/lines.js';

export const systemPromptParams = z
  .strictObject({
    text: z.string().min(1, { error: 'expected a non-empty string' }).optional(),
    file: z.string().min(1).optional(),
    mode: z.enum(['replace', 'prepend', 'if_missing', 'remove']).default('replace'),
  })
  .superRefine((p, ctx) => {
    if (p.text !== undefined && p.file !== undefined) ctx.addIssue({ code: 'custom', path: ['file'], message: 'give text or file, not both' });
    if (p.mode === 'remove' && (p.text !== undefined || p.file !== undefined)) {
      ctx.addIssue({ code: 'custom', path: [p.text !== undefined ? 'text' : 'file'], message: 'mode remove takes no text or file' });
    }
    if (p.mode !== 'remove' && p.text === undefined && p.file === undefined) {
      ctx.addIssue({ code: 'custom', path: ['text'], message: `mode ${p.mode} needs text or file` });
    }
  });

type Params = z.output<typeof systemPromptParams>;

// The pure rewrite lives beside the training message (emit's token worker replays it); exported here too.
export { applySystemPrompt };

export default defineStage({
  name: 'system_prompt',
  params: systemPromptParams,
  prepare(p, env) {
    if (p.file === undefined) return p;
    const abs = resolve(env.configDir, p.file);
    let bytes: Buffer;
    try {
      bytes = readFileSync(abs);
    } catch (err) {
      throw new UsageError(`${env.path}.file: cannot read ${abs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const decoded = utf8FileText(bytes);
    if (typeof decoded === 'number') {
      throw new UsageError(`${env.path}.file: ${abs} is not valid UTF-8 (line ${decoded}); expected the system prompt as UTF-8 text`);
    }
    // A trailing newline in a prompt file is an editor artefact, not part of the prompt.
    const text = decoded.replace(/\r?\n$/, '');
    if (text.trim() === '') throw new UsageError(`${env.path}.file: ${abs} is empty; expected the system prompt text`);
    return { ...p, text, file: abs };
  },
  run(ctx, p) {
    ctx.addTransform((messages) => applySystemPrompt(messages, p.mode, p.text), { systemOnly: true });
    ctx.stats.mode = p.mode;
  },
});
