import type { ProcessIdentity, ProcessInfo, ProcessLookup, ProcessSnapshot, SelfProcess } from './process.js';
import { AGENT_MARKER_ENV, type RegistryEntry } from './registry.js';

/**
 * Identity proofs over the process table, shared by the reaper, the fleet,
 * the liveness verdict and `kill-loop`; pure functions of what they read
 * through a `ProcessLookup`, so they are tested on an in-memory table. A pid alone proves nothing: pids are
 * reused. A process is "the one we recorded" only when its pid, start time and
 * boot id all match, and, for agents, when it still carries the agent's marker.
 *
 * `alive`    the recorded process is running now.
 * `dead`     it is gone: absent, a zombie, or recorded in another boot.
 * `mismatch` the pid is taken by some other process (the recorded one is gone too).
 */
export type IdentityVerdict = 'alive' | 'dead' | 'mismatch';

export interface IdentityCheck {
  readonly verdict: IdentityVerdict;
  readonly reason: string;
}

/** What the registry records about an agent that matters for proving it is still that agent. */
export type AgentIdentity = Pick<RegistryEntry, 'pid' | 'pgid' | 'startTime' | 'bootId' | 'marker'>;

/** What a tree is found by: the marker, in this boot; the process group only labels members. */
export interface MarkedTreeRoot {
  readonly marker: string;
  readonly bootId: string;
  readonly pgid?: number;
}

/** A process we intend to signal, with what we know it must still be at signal time. */
export interface ExpectedProcess {
  readonly pid: number;
  readonly startTime: number;
  /** When set, the process must carry exactly this marker in its environment. */
  readonly marker?: string;
}

export interface AgentTreeMember extends ExpectedProcess {
  readonly marker: string;
  /** `group`: in the agent's process group; `escapee`: left it (setsid, double fork) but kept the marker. */
  readonly via: 'group' | 'escapee';
}

export interface AgentTree {
  /** Processes to signal: every live process carrying the agent's exact marker, minus protected ones. */
  readonly members: readonly AgentTreeMember[];
  /** Marker carriers that are never signalled (pid ≤ 1, this process, its ancestors), with why. */
  readonly withheld: readonly { readonly pid: number; readonly reason: string }[];
  /** Live members of the agent's process group without the marker: never signalled, reported for the record. */
  readonly unmarkedGroupMembers: readonly number[];
}

/** A zombie (or a task being torn down) has exited; it can hold no memory, port or file, so it counts as dead. */
export function hasExited(info: ProcessInfo): boolean {
  return info.state === 'Z' || info.state === 'X' || info.state === 'x';
}

/**
 * The pids that must never be signalled whatever the files say: this process
 * and every ancestor (the shell, cron, systemd user manager…). The walk goes
 * through `lookup` so it works on a snapshot or on single /proc reads; it stops
 * at pid 1, at a cycle, or where the chain leaves the table.
 */
export function collectSelfAndAncestors(self: SelfProcess, lookup: (pid: number) => ProcessInfo | undefined): ReadonlySet<number> {
  const chain = new Set<number>([self.pid, self.ppid]);
  const visited = new Set<number>();
  for (let pid = self.pid; pid > 1 && !visited.has(pid);) {
    visited.add(pid);
    const info = lookup(pid);
    if (!info) break;
    chain.add(info.ppid);
    pid = info.ppid;
  }
  return chain;
}

/** Why a pid must never be signalled by us (pid ≤ 1, this process, an ancestor), or undefined when it may be. */
export function explainProtectedPid(pid: number, protectedPids: ReadonlySet<number>, self: SelfProcess): string | undefined {
  if (pid <= 1) return `pid ${pid} is init or not a single process`;
  if (pid === self.pid) return 'it is the reaper itself';
  if (protectedPids.has(pid)) return "it is one of the reaper's ancestors";
  return undefined;
}

function compareIdentity(expected: ProcessIdentity, info: ProcessInfo | undefined, currentBootId: string): IdentityCheck {
  if (expected.bootId !== currentBootId) {
    return { verdict: 'dead', reason: `recorded in another boot (${expected.bootId}); every process of that boot is gone` };
  }
  if (!info) return { verdict: 'dead', reason: `pid ${expected.pid} is not running` };
  if (hasExited(info)) return { verdict: 'dead', reason: `pid ${expected.pid} is a zombie (state ${info.state})` };
  if (info.startTime !== expected.startTime) {
    return {
      verdict: 'mismatch',
      reason: `pid ${expected.pid} now belongs to another process (start time ${info.startTime}, recorded ${expected.startTime})`,
    };
  }
  return { verdict: 'alive', reason: `pid ${expected.pid} is running with the recorded start time and boot id` };
}

/**
 * Whether the process named by a heartbeat, a registry owner or a lock file is
 * still that process. With a snapshot the lookup is free; without one it costs
 * a single /proc read.
 */
export function verifyProcessIdentity(expected: ProcessIdentity, table: ProcessLookup, snapshot?: ProcessSnapshot): IdentityCheck {
  const info = snapshot ? snapshot.processes.get(expected.pid) : table.inspect(expected.pid);
  return compareIdentity(expected, info, snapshot?.bootId ?? table.bootId());
}

/** The daemon has no marker: its identity is the heartbeat's pid, start time and boot id. */
export const verifyDaemonIdentity = verifyProcessIdentity;

/** Per-snapshot lookups, built once on first use so a pass over N agents reads each environment once. */
interface SnapshotIndex {
  readonly markerByPid: ReadonlyMap<number, string>;
  readonly pidsByMarker: ReadonlyMap<string, readonly number[]>;
  readonly pidsByGroup: ReadonlyMap<number, readonly number[]>;
  readonly selfAndAncestors: ReadonlySet<number>;
}

const snapshotIndexes = new WeakMap<ProcessSnapshot, SnapshotIndex>();

function indexSnapshot(snapshot: ProcessSnapshot, table: ProcessLookup): SnapshotIndex {
  const cached = snapshotIndexes.get(snapshot);
  if (cached) return cached;
  const markerByPid = new Map<number, string>();
  const pidsByMarker = new Map<string, number[]>();
  const pidsByGroup = new Map<number, number[]>();
  for (const info of snapshot.processes.values()) {
    if (hasExited(info)) continue; // a zombie's environment is gone and it cannot be signalled to any effect
    const group = pidsByGroup.get(info.pgid);
    if (group) group.push(info.pid);
    else pidsByGroup.set(info.pgid, [info.pid]);
    const marker = table.readEnvironmentVariable(info.pid, AGENT_MARKER_ENV);
    if (marker === undefined) continue;
    markerByPid.set(info.pid, marker);
    const carriers = pidsByMarker.get(marker);
    if (carriers) carriers.push(info.pid);
    else pidsByMarker.set(marker, [info.pid]);
  }
  const index: SnapshotIndex = {
    markerByPid,
    pidsByMarker,
    pidsByGroup,
    selfAndAncestors: collectSelfAndAncestors(table.self(), (pid) => snapshot.processes.get(pid)),
  };
  snapshotIndexes.set(snapshot, index);
  return index;
}

/**
 * Whether a registry entry's leader process is still that agent: same pid,
 * start time and boot id, not a zombie, and carrying the entry's exact marker.
 * A leader that is dead does not mean its tree is: see `collectAgentTree`.
 */
export function verifyAgentIdentity(entry: AgentIdentity, snapshot: ProcessSnapshot, table: ProcessLookup): IdentityCheck {
  const base = compareIdentity(entry, snapshot.processes.get(entry.pid), snapshot.bootId);
  if (base.verdict !== 'alive') return base;
  const marker = indexSnapshot(snapshot, table).markerByPid.get(entry.pid);
  if (marker !== entry.marker) {
    return {
      verdict: 'mismatch',
      reason: marker === undefined ? `pid ${entry.pid} matches the recorded start time but carries no readable ${AGENT_MARKER_ENV}` : `pid ${entry.pid} carries a different marker (${marker})`,
    };
  }
  return { verdict: 'alive', reason: `pid ${entry.pid} is the recorded agent (start time, boot id and marker match)` };
}

/**
 * The processes to signal to remove one agent's whole tree. The marker is the
 * proof: it is unique per agent and inherited by every descendant, so it finds
 * members still in the agent's process group and escapees alike (setsid,
 * double fork, reparented to init). Group membership alone proves nothing
 * (a pgid is reused like a pid), so unmarked group members are only reported.
 * Entries of another boot have no tree in this one.
 */
export function collectAgentTree(entry: MarkedTreeRoot, snapshot: ProcessSnapshot, table: ProcessLookup): AgentTree {
  if (entry.bootId !== snapshot.bootId) return { members: [], withheld: [], unmarkedGroupMembers: [] };
  const index = indexSnapshot(snapshot, table);
  const members: AgentTreeMember[] = [];
  const withheld: { pid: number; reason: string }[] = [];
  for (const pid of index.pidsByMarker.get(entry.marker) ?? []) {
    const info = snapshot.processes.get(pid);
    if (!info) continue;
    const protectedBecause = explainProtectedPid(pid, index.selfAndAncestors, table.self());
    if (protectedBecause) {
      withheld.push({ pid, reason: `carries the marker but ${protectedBecause}; never signalled` });
      continue;
    }
    members.push({ pid, startTime: info.startTime, marker: entry.marker, via: info.pgid === entry.pgid ? 'group' : 'escapee' });
  }
  const groupPids = entry.pgid === undefined ? [] : (index.pidsByGroup.get(entry.pgid) ?? []);
  const unmarkedGroupMembers = groupPids.filter((pid) => index.markerByPid.get(pid) !== entry.marker);
  return { members, withheld, unmarkedGroupMembers };
}

/** An instance's marker prefix, `factory:<instance>:`; anything shorter would match other factories' agents. */
const INSTANCE_MARKER_PREFIX = /^factory:[^:]+:$/;

/**
 * Every distinct marker starting with `prefix` carried by a live process in the
 * snapshot. A restarted daemon uses its instance prefix to find agents of its
 * predecessor that never reached the registry (a crash between spawn and write).
 */
export function listMarkersWithPrefix(prefix: string, snapshot: ProcessSnapshot, table: ProcessLookup): string[] {
  if (!INSTANCE_MARKER_PREFIX.test(prefix)) throw new RangeError(`marker prefix must look like "factory:<instance>:", got ${JSON.stringify(prefix)}`);
  return [...indexSnapshot(snapshot, table).pidsByMarker.keys()].filter((marker) => marker.startsWith(prefix));
}

/**
 * Whether `expected` is still running as the same process (same start time, not
 * a zombie). One /proc read: cheap enough to poll a grace period with.
 */
export function isStillRunning(table: ProcessLookup, expected: ExpectedProcess): boolean {
  const info = table.inspect(expected.pid);
  return info !== undefined && !hasExited(info) && info.startTime === expected.startTime;
}

/** This process and its ancestors, walked with single /proc reads (for callers without a snapshot). */
export function readSelfAndAncestors(table: ProcessLookup): ReadonlySet<number> {
  return collectSelfAndAncestors(table.self(), (pid) => table.inspect(pid));
}
