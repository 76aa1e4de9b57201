/**
 * A read-only view of the operating system's process table plus the one
 * dangerous operation, signalling. The reaper, kill-loop and the fleet go
 * through this port so identity checks are testable and centralised.
 */

/** Who a process is, strongly enough to survive pid reuse. */
export interface ProcessIdentity {
  readonly pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22). */
  readonly startTime: number;
  /** /proc/sys/kernel/random/boot_id of the boot the process belongs to. */
  readonly bootId: string;
}

export interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly pgid: number;
  readonly sid: number;
  /** Single-letter state from /proc/<pid>/stat: R, S, D, Z, T, X … */
  readonly state: string;
  readonly startTime: number;
  /** utime + stime of the process itself, in clock ticks. */
  readonly cpuTicks: number;
  readonly comm: string;
}

export interface ProcessSnapshot {
  readonly takenAtMs: number;
  readonly bootId: string;
  readonly processes: ReadonlyMap<number, ProcessInfo>;
}

export interface ProcessTable {
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
  /**
   * Sends a signal. `target` > 1 is a pid; a negative target is a process group.
   * Returns false when the target no longer exists (ESRCH).
   */
  signal(target: number, signal: NodeJS.Signals): boolean;
}
