/**
 * A read-only view of the operating system's process table plus the one
 * dangerous operation, signalling. The reaper, kill-loop and the fleet go
 * through this port so identity checks are testable and centralised.
 */

import type { ProcessInfo, ProcessLookup, ProcessSnapshot, SelfProcess } from '../domain/process.js';

export type { ProcessIdentity, ProcessInfo, ProcessSnapshot, SelfProcess } from '../domain/process.js';

export interface ProcessTable extends ProcessLookup {
  /** The current boot id. */
  bootId(): string;
  /** One pass over the whole table. Callers take one per decision round. */
  snapshot(): ProcessSnapshot;
  /** A single process, or undefined when it does not exist. Cheap: one /proc read. */
  inspect(pid: number): ProcessInfo | undefined;
  /**
   * Whether the process has `path` open (a file descriptor pointing at it).
   * The daemon keeps its lock file open for its whole life, so this proves a
   * pid is the daemon beyond what a (possibly forged) heartbeat says.
   */
  holdsOpen(pid: number, path: string): boolean;
  /** The value of one environment variable of a live process, if readable. */
  readEnvironmentVariable(pid: number, name: string): string | undefined;
  /** The process using this table (the daemon, the reaper, a CLI verb) and its parent: never signalled. */
  self(): SelfProcess;
  /**
   * Sends a signal. `target` > 1 is a pid; a negative target is a process group.
   * Returns false when the target no longer exists (ESRCH).
   */
  signal(target: number, signal: NodeJS.Signals): boolean;
}
