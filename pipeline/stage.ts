/**
 * What a stage is: a name, a zod params schema, an optional config-time check, and one function that decides
 * over the run's working set. Stages never hold whole conversations: they stream them with `ctx.scan()` and
 * record decisions by working-set index.
 */
import type { z } from 'zod';
import type { Store } from './store.js';
import type { Progress } from './progress.js';
import type { WorkingSet } from './working-set.js';
import type { Signals } from './signals.js';

/** A chat message as stored (the log's own object; text exactly as it came). */
export interface Message {
  role: string;
  content?: string | null | readonly { type: string; text?: string; [k: string]: unknown }[];
  name?: string;
  tool_calls?: readonly { id?: string; type?: string; function: { name: string; arguments: string | Record<string, unknown> } }[];
  tool_call_id?: string;
  function_call?: { name: string; arguments: string | Record<string, unknown> };
  weight?: number;
  [k: string]: unknown;
}

/** One conversation as a stage sees it: after the transforms of the stages before it. */
export interface ScannedConversation {
  /** Index in the working set. */
  readonly i: number;
  readonly pk: number;
  readonly id: string;
  /** Parsed on first access (and then kept), with earlier stages' transforms applied. */
  readonly messages: readonly Message[];
  /** The last message's role and the number of assistant turns, without parsing when no transform ran yet. */
  readonly lastRole: string | null;
  readonly assistantTurns: number;
  readonly tools: readonly unknown[] | null;
  readonly status: 'ok' | 'error';
  readonly createdAtMs: number | null;
  readonly model: string | null;
  readonly userId: string | null;
  readonly sessionId: string | null;
  readonly tags: Readonly<Record<string, unknown>> | null;
  readonly sourceFile: string;
  readonly sourceLine: number;
  /**
   * The text signals dedupe, rebalance_refusals and split decide by (pipeline/signals.ts): read from the store
   * when no earlier transform rewrote text, else computed from the transformed messages.
   */
  readonly signals: Signals;
}

/** A pure rewrite of a conversation's messages (redaction, system prompts), applied lazily on every later scan. */
export type Transform = (messages: readonly Message[], conv: Omit<ScannedConversation, 'messages' | 'lastRole' | 'assistantTurns' | 'signals'>) => readonly Message[];

export interface TransformOptions {
  /** The transform only adds, removes or rewrites system messages (signals never read them, so they stay valid). */
  readonly systemOnly?: boolean;
}

export interface ScanOptions {
  /**
   * false when the stage will not read message text: the (large) messages column is then not fetched, and a
   * stray access still works, one row at a time. 'signals' when the stage reads only `signals` (and the other
   * columns, not lastRole or assistantTurns): messages are then fetched only where signals must be computed.
   */
  readonly messages?: boolean | 'signals';
  /**
   * The optional columns the stage reads (default: all of them, and with `messages: true` the whole row). Leaving
   * out what it does not read spares materialising a value per conversation; a field read anyway is still right,
   * fetched one row at a time. status, lastRole and assistantTurns are always fetched; signals with a signals
   * scan; messages, tools and signals with a text scan.
   */
  readonly fields?: readonly ScanField[];
  /** Only the live conversations for which this is true are fetched and yielded (default: all of them). */
  readonly where?: (i: number) => boolean;
}

/** The optional columns of a lean scan (ScanOptions.fields). */
export type ScanField = 'id' | 'createdAtMs' | 'model' | 'userId' | 'sessionId' | 'tags';

export type FeedbackAggregate = 'latest' | 'mean' | 'min' | 'max';

/** StageContext.core(): stored columns of every conversation in the working set, by index. */
export interface CoreFacts {
  /** 1 where status is 'error'. */
  readonly error: Uint8Array;
  readonly assistantTurns: Int32Array;
  /** Index into `roles` of the last message's role. */
  readonly lastRole: Uint8Array;
  readonly roles: readonly string[];
}

/** Facts a stage reports for the manifest and the report (refusal rates, PII counts, duplicate clusters). */
export interface RunFacts {
  refusals?: { target_rate: number; before: { count: number; rate: number }; after: { count: number; rate: number } };
  pii?: Record<string, number>;
  /** The detector rebalance_refusals used, so emit can measure the rate in the files with the same one. */
  refusalDetector?: (text: string) => boolean;
  duplicateClusters?: Map<number, number>;
  /** Feedback values of the conversations entering the run (for the report), by name. */
  feedbackName?: string;
  /** Stages' warnings for the manifest (emit adds them to its own). */
  warnings?: string[];
}

export interface StageContext {
  readonly store: Store;
  readonly runId: string;
  readonly runName: string;
  readonly seed: number;
  readonly stageIndex: number;
  readonly stageName: string;
  readonly configDir: string;
  readonly dryRun: boolean;
  readonly startedAt: Date;
  readonly configSha256: string;
  readonly ws: WorkingSet;
  readonly progress: Progress;
  readonly facts: RunFacts;
  /** Stage-specific statistics, saved with the stage's funnel row. */
  readonly stats: Record<string, unknown>;
  /** Streams the conversations still alive, in working-set order, with earlier transforms applied. */
  scan(label?: string, opts?: ScanOptions): Generator<ScannedConversation>;
  /** Drops conversation `i` with a reason (`no_feedback`, `duplicate_of:<id>`, …). */
  drop(i: number, reason: string): void;
  /** Aggregated feedback per working-set index (NaN where the conversation has no such event). */
  feedback(name: string, aggregate: FeedbackAggregate): Float64Array;
  /**
   * Status, last role and assistant turns of every conversation, read with the working set, by working-set
   * index: a stage that needs no more can decide without a scan. Null once a transform has run (roles and turn
   * counts may then differ from the stored ones).
   */
  core(): CoreFacts | null;
  addTransform(t: Transform, opts?: TransformOptions): void;
}

export interface StageDefinition<S extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly params: S;
  /** Config-time checks that need the file system (a prompt file) — throw UsageError naming the key path. */
  prepare?(params: z.output<S>, env: { configDir: string; path: string }): z.output<S> | void;
  run(ctx: StageContext, params: z.output<S>): void | Promise<void>;
  /**
   * Called when the run starts, or, when a stage before this one has `peaksMemory`, as the stage after the last
   * such one starts: start slow, independent set-up (a worker thread and its tables) so it overlaps the stages
   * before this one. Whatever it starts, `run` takes over; `done` releases it when the run ends without taking it.
   * `ahead`, if given, is called after each stage before this one has run, with the working set it left: work
   * that depends on what the stages keep can start there (emit counts tokens ahead, pipeline/precount.ts).
   */
  warm?(params: z.output<S>, run: WarmRun): StageWarmUp | void;
  /**
   * Whether this stage, so configured, is where a run's memory peaks (near dedupe's signatures): what later
   * stages warm up waits until it is done, so as not to add to its peak.
   */
  peaksMemory?(params: z.output<S>): boolean;
}

/** What a stage's warm-up is told of the run. */
export interface WarmRun {
  readonly conversations: number;
  readonly store: Store;
  /** The stages before this one, with their prepared parameters. */
  readonly before: readonly { readonly name: string; readonly params: unknown }[];
}

export interface StageWarmUp {
  done(): Promise<void>;
  ahead?(ws: WorkingSet): void;
}

/** Identity helper that keeps a stage's params type attached to its schema. */
export function defineStage<S extends z.ZodType>(def: StageDefinition<S>): StageDefinition<S> {
  return def;
}
