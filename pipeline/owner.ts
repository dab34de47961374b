/**
 * Who owns an unfinished piece of work (an ingest's file row, a run, a run's staging folder): the process id and
 * host recorded when it started. Work whose owner is gone was interrupted (kill -9, out of memory, power loss)
 * and is recovered by the next process that meets it, never by signal handlers, which a hard kill skips.
 */
import { hostname } from 'node:os';

export interface Owner {
  readonly pid: number;
  readonly host: string;
}

export function currentOwner(): Owner {
  return { pid: process.pid, host: hostname() };
}

/**
 * Whether the recorded owner may still be running. Only checkable on this host: another host's owner is assumed
 * alive. This process's own pid counts as gone (a container restart reuses pids; callers that can own work in
 * this very process check that themselves).
 */
export function ownerAlive(pid: number | null, host: string | null): boolean {
  if (pid === null) return false;
  if (host !== hostname()) return true;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs this process is making (its own pid cannot tell them from those of a dead process that had the same pid). */
export const activeRuns = new Set<string>();

/** Whether a run's process may still be making it. */
export function runAlive(run: { readonly id: string; readonly pid: number | null; readonly host: string | null }): boolean {
  if (activeRuns.has(run.id)) return true;
  // Runs recorded before store v8 have no owner: nothing can tell, so they are left as they are.
  if (run.pid === null) return true;
  return ownerAlive(run.pid, run.host);
}
