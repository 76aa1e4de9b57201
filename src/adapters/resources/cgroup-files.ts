import { mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import type { ProcessTable } from '../../ports/process-table.js';
import { FactoryError } from '../../errors.js';

/**
 * The file protocol both cgroup versions share: a group is a folder per
 * hierarchy, joined by writing a pid into its `cgroup.procs`, listed by
 * reading it, removed by rmdir once empty. Version-specific files (limits,
 * usage, kill) live in cgroup-v1.ts and cgroup-v2.ts.
 */

/** The folder-removal primitive: rmdir on cgroupfs; a fake tree on a plain filesystem passes a recursive remove. */
export type RemoveDirectory = (path: string) => void;

export interface CgroupIo {
  readonly processTable: Pick<ProcessTable, 'signal' | 'inspect'>;
  readonly removeDirectory: RemoveDirectory;
  readonly sleep: (ms: number) => Promise<void>;
  /** Bound on waiting for a killed group to empty and for rmdir to succeed. */
  readonly settleMs: number;
  /** Never signalled, even if listed: the daemon itself (a mistaken adopt must not kill it). */
  readonly selfPid: number;
}

export const DEFAULT_SETTLE_MS = 5_000;
const POLL_MS = 10;

export function defaultCgroupIo(processTable: Pick<ProcessTable, 'signal' | 'inspect'>, overrides: Partial<CgroupIo> = {}): CgroupIo {
  return {
    processTable,
    removeDirectory: (path) => rmdirSync(path),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    settleMs: DEFAULT_SETTLE_MS,
    selfPid: process.pid,
    ...overrides,
  };
}

/**
 * A group folder name from a team id: cgroupfs forbids "/" and newlines, and
 * "." or ".." would name another folder, so anything outside [A-Za-z0-9._-]
 * becomes "_"; 200 characters keeps well inside NAME_MAX.
 */
export function groupNameFor(prefix: string, teamId: string): string {
  return `${prefix}${teamId}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200);
}

/**
 * The shell program that joins the groups and then execs the agent: it writes
 * its own pid ($$) into each `cgroup.procs` given, and exec keeps that pid, so
 * the agent and everything it ever starts begin life inside. If any write
 * fails it exits 125 before running the agent: fail closed, never outside.
 * Paths and argv travel as arguments, never inside the program text.
 */
const JOIN_PROGRAM = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';
/** Exit code of the join wrapper when a group could not be joined. */
export const JOIN_FAILED_EXIT_CODE = 125;

export function joinCommandFor(procsFiles: readonly string[], command: readonly string[]): string[] {
  if (procsFiles.length === 0) return [...command];
  return ['/bin/sh', '-c', JOIN_PROGRAM, 'factory-cgroup-join', String(procsFiles.length), ...procsFiles, ...command];
}

export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function readNumber(path: string): number | undefined {
  const text = readText(path)?.trim();
  if (text === undefined || text === '' || text === 'max') return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/** `key value` lines (memory.events, memory.oom_control, memory.stat) as a map. */
export function readKeyedNumbers(path: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (readText(path) ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && Number.isFinite(Number(value))) out.set(key, Number(value));
  }
  return out;
}

export function readPids(procsFile: string): number[] {
  return (readText(procsFile) ?? '')
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => Number.isSafeInteger(pid) && pid > 0);
}

/** Writes one control file; a refusal becomes a coded error naming the file and the value. */
export function writeControl(path: string, value: string, teamId: string): void {
  try {
    writeFileSync(path, value);
  } catch (error) {
    throw groupFailed(teamId, `could not write ${JSON.stringify(value)} to ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, error);
  }
}

/** Writes a control file the kernel may not have (older kernels, swap accounting off); returns whether it took. */
export function writeOptionalControl(path: string, value: string): boolean {
  try {
    writeFileSync(path, value);
    return true;
  } catch {
    return false;
  }
}

export function makeGroupDirectory(path: string, teamId: string): void {
  try {
    mkdirSync(path);
  } catch (error) {
    throw groupFailed(teamId, `could not create ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, error);
  }
}

export function listChildGroups(parent: string, prefix: string): string[] {
  try {
    return readdirSync(parent, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && entry.name.startsWith(prefix))
      .map((entry) => entry.name);
  } catch {
    return [];
  }
}

export function unionPids(procsFiles: readonly string[]): number[] {
  return [...new Set(procsFiles.flatMap(readPids))].sort((a, b) => a - b);
}

/** The group's pids that may be signalled: never the daemon itself. */
export function signallablePids(io: CgroupIo, procsFiles: readonly string[]): number[] {
  return unionPids(procsFiles).filter((pid) => pid !== io.selfPid && isAlive(io, pid));
}

/**
 * Whether a pid listed by the group still runs. On cgroupfs a process leaves
 * `cgroup.procs` when it exits; on a fake tree the file keeps it, so the
 * process table decides (a zombie has finished running).
 */
function isAlive(io: CgroupIo, pid: number): boolean {
  const info = io.processTable.inspect(pid);
  return info !== undefined && info.state !== 'Z' && info.state !== 'X';
}

/** Waits (bounded by settleMs) until no pid listed in the files still runs; returns the ones that do. */
export async function waitUntilEmpty(io: CgroupIo, procsFiles: readonly string[]): Promise<number[]> {
  const deadline = Date.now() + io.settleMs;
  for (;;) {
    const alive = unionPids(procsFiles).filter((pid) => isAlive(io, pid));
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    await io.sleep(POLL_MS);
  }
}

/**
 * SIGKILLs every pid listed, again and again until none is left: for groups
 * without a freezer and without cgroup.kill, where a process can still fork
 * between a read and a kill. Returns how many distinct pids were signalled,
 * counting those in `signalled` (a first pass the caller already made).
 */
export async function killListedUntilEmpty(io: CgroupIo, procsFiles: readonly string[], signalled = new Set<number>()): Promise<{ killed: number; survivors: number[] }> {
  const deadline = Date.now() + io.settleMs;
  for (;;) {
    const alive = signallablePids(io, procsFiles);
    if (alive.length === 0) return { killed: signalled.size, survivors: [] };
    for (const pid of alive) {
      io.processTable.signal(pid, 'SIGKILL');
      signalled.add(pid);
    }
    if (Date.now() >= deadline) return { killed: signalled.size, survivors: alive };
    await io.sleep(POLL_MS);
  }
}

/** rmdir each folder, retried while the kernel still holds it (EBUSY: members not yet gone); a missing folder is fine. */
export async function removeGroupDirectories(io: CgroupIo, directories: readonly string[], teamId: string): Promise<void> {
  const deadline = Date.now() + io.settleMs;
  for (const directory of directories) {
    for (;;) {
      try {
        io.removeDirectory(directory);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || Date.now() >= deadline) throw groupFailed(teamId, `could not remove ${directory} (${code ?? (error as Error).message})`, error);
        await io.sleep(POLL_MS);
      }
    }
  }
}

export function groupFailed(teamId: string, what: string, cause?: unknown): FactoryError {
  return new FactoryError('FACTORY_RESOURCES_GROUP_FAILED', `the resource group of team ${teamId}: ${what}`, { cause, details: { teamId } });
}
