import type { ParseResult } from './heartbeat.js';

/**
 * Processes as data: who a process is (strongly enough to survive pid reuse),
 * what one look at the process table shows, and the one parser of a recorded
 * identity that the heartbeat, the registry and the lock files share.
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
  /** Resident set size in bytes when the table reads it (/proc/<pid>/stat `rss` × page size; 0 for kernel threads and zombies). */
  readonly rssBytes?: number;
}

export interface ProcessSnapshot {
  readonly takenAtMs: number;
  readonly bootId: string;
  readonly processes: ReadonlyMap<number, ProcessInfo>;
}

export type TerminationSignal = 'SIGTERM' | 'SIGKILL';

export interface SentSignal {
  readonly pid: number;
  readonly signal: TerminationSignal;
}

/** The process doing the work and its parent: never signalled, whatever a file says. */
export interface SelfProcess {
  readonly pid: number;
  readonly ppid: number;
}

/**
 * The read-only lookups identity rules need beyond a snapshot. The process
 * table port provides them; the rules stay pure functions of what they read.
 */
export interface ProcessLookup {
  bootId(): string;
  inspect(pid: number): ProcessInfo | undefined;
  readEnvironmentVariable(pid: number, name: string): string | undefined;
  self(): SelfProcess;
}

/** Linux's largest possible pid (PID_MAX_LIMIT on 64-bit): anything above is no process at all. */
export const PID_MAX_LIMIT = 2 ** 22;

function isPositiveSafeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

/**
 * The identity fields of a record read from a file (heartbeat, registry owner,
 * lock owner). Each must be well formed: a malformed identity can never
 * justify a signal.
 */
export function parseProcessIdentity(record: Readonly<Record<string, unknown>>, options: { readonly maxPid?: number } = {}): ParseResult<ProcessIdentity> {
  const { pid, startTime, bootId } = record;
  if (!isPositiveSafeInteger(pid) || pid > (options.maxPid ?? Number.MAX_SAFE_INTEGER)) return { ok: false, reason: `pid: expected a positive integer, got ${JSON.stringify(pid)}` };
  if (typeof startTime !== 'number' || !Number.isSafeInteger(startTime) || startTime < 0) {
    return { ok: false, reason: `startTime: expected a non-negative integer, got ${JSON.stringify(startTime)}` };
  }
  if (typeof bootId !== 'string' || bootId.length === 0) return { ok: false, reason: 'bootId: expected a non-empty string' };
  return { ok: true, value: { pid, startTime, bootId } };
}
