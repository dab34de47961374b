/** Errors that map to SPEC §1's exit codes. Every message names the file, line or key path. */

/** Usage or config error: exit 2, nothing written. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The job failed (I/O, invalid output, too few examples, strict ingest with quarantined lines): exit 1. */
export class JobError extends Error {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = 'JobError';
  }
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError || err instanceof JobError) return err.exitCode;
  return 1;
}
