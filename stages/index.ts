/**
 * The stage registry: a config's `{ <stage>: <params> }` is looked up here by name. Adding a stage means
 * adding its file to this folder and one line below.
 */
import type { StageDefinition } from '../pipeline/stage.js';
import filter from './filter.js';
import redactPii from './redact-pii.js';
import dedupe from './dedupe.js';
import rebalanceRefusals from './rebalance-refusals.js';
import systemPrompt from './system-prompt.js';
import split from './split.js';
import emit from './emit.js';

export const STAGES: Readonly<Record<string, StageDefinition>> = Object.freeze({
  filter,
  redact_pii: redactPii,
  dedupe,
  rebalance_refusals: rebalanceRefusals,
  system_prompt: systemPrompt,
  split,
  emit,
} as Record<string, StageDefinition>);
