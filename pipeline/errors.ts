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

/** What a zod issue (zod 4) carries that its plain wording needs. */
interface ZodIssueLike {
  readonly code: string;
  readonly message: string;
  readonly origin?: string;
  readonly minimum?: number | bigint;
  readonly maximum?: number | bigint;
  readonly inclusive?: boolean;
}

/**
 * A zod issue in the words of this tool's own messages ("expected a non-empty string, got …"), not the library's
 * ("Too small: expected string to have >=1 characters"). Custom messages (the schemas' own) pass unchanged.
 */
export function plainIssueMessage(issue: ZodIssueLike): string {
  const m = issue.message;
  if (issue.code === 'invalid_type') {
    const t = /^Invalid input: expected (\w+), received (\w+)$/.exec(m);
    if (t) {
      const expected = t[1] === 'int' ? 'a whole number' : /^[aeiou]/.test(t[1]!) ? `an ${t[1]}` : `a ${t[1]}`;
      if (t[2] === 'undefined') return `missing (expected ${expected})`;
      return `expected ${expected}, got ${t[2] === 'null' ? 'null' : `${/^[aeiou]/.test(t[2]!) ? 'an' : 'a'} ${t[2]}`}`;
    }
  }
  if ((issue.code === 'too_small' || issue.code === 'too_big') && /^Too (small|big): /.test(m)) {
    const n = Number(issue.code === 'too_small' ? issue.minimum : issue.maximum);
    const bound = issue.code === 'too_small' ? (issue.inclusive === false ? 'more than' : 'at least') : issue.inclusive === false ? 'less than' : 'at most';
    if (issue.origin === 'string') return issue.code === 'too_small' && n === 1 ? 'expected a non-empty string' : `expected a string of ${bound} ${n} characters`;
    if (issue.origin === 'array') return issue.code === 'too_small' && n === 1 ? 'expected a non-empty array' : `expected an array of ${bound} ${n} items`;
    return `expected a number ${bound} ${n}`;
  }
  return m.replace(/^Invalid (input|option): /, '');
}
