import type { ProcessLookup, ProcessSnapshot, SentSignal } from './process.js';
import { collectAgentTree, listMarkersWithPrefix, verifyAgentIdentity, type AgentTree, type AgentTreeMember, type ExpectedProcess, type IdentityCheck } from './process-identity.js';
import { LOCAL_NODE, type RegistryEntry } from './registry.js';

/**
 * The reaper's plan, as pure data from one process-table snapshot: which
 * registry entries belong to other nodes (kept, never signalled), which to
 * another boot (dropped without a signal), and which trees to end, plus the
 * trees carrying this instance's marker prefix that no entry lists. The
 * report types describe what became of each.
 */

export type ReapOutcome =
  /** Every process of the tree exited after SIGTERM. */
  | 'terminated'
  /** At least one process needed SIGKILL after the grace period. */
  | 'killed'
  /** No process carries the marker any more; the entry is just removed. */
  | 'already-gone'
  /** Recorded in another boot: removed without any signal. */
  | 'other-boot'
  /** Dry run: these pids would be signalled. */
  | 'would-reap';

export interface AgentRef {
  readonly issueKey: string;
  readonly runId: string;
  readonly agentName: string;
}

export interface ReapedTree {
  readonly marker: string;
  readonly outcome: ReapOutcome;
  /** Every process of the tree found by the marker (signalled, or to be signalled in a dry run). */
  readonly pids: readonly number[];
  /** The subset of `pids` that had left the agent's process group. */
  readonly escapees: readonly number[];
  readonly signals: readonly SentSignal[];
}

export interface ReapedAgent extends AgentRef, ReapedTree {
  readonly role: string;
  /** What became of the recorded leader process. */
  readonly leader: IdentityCheck;
  readonly worktree: string;
  readonly logPath: string;
}

export interface SkippedItem extends Partial<AgentRef> {
  readonly pid?: number;
  readonly reason: string;
}

/** A process still running after the reap. Agent fields are absent for a tree no registry listed. */
export interface SurvivorItem extends Partial<AgentRef> {
  readonly marker: string;
  readonly pid: number;
  readonly reason: string;
}

/** One tree to reap: a registry entry's, or an unlisted one found by the marker prefix. */
export interface ReapPlan {
  readonly entry: RegistryEntry | null;
  readonly marker: string;
  readonly leader: IdentityCheck | null;
  readonly tree: AgentTree;
}

export interface ReapPlans {
  readonly plans: readonly ReapPlan[];
  readonly otherBoot: readonly RegistryEntry[];
  readonly otherNode: readonly RegistryEntry[];
}

/** Sorts entries into other nodes' (kept), other boots' (dropped unsignalled) and trees to reap, plus unlisted trees. */
export function planReaps(entries: readonly RegistryEntry[], snapshot: ProcessSnapshot, lookup: ProcessLookup, sweepMarkerPrefix: string | undefined): ReapPlans {
  const plans: ReapPlan[] = [];
  const otherBoot: RegistryEntry[] = [];
  const otherNode: RegistryEntry[] = [];
  for (const entry of entries) {
    if (entry.node !== LOCAL_NODE) otherNode.push(entry);
    else if (entry.bootId !== snapshot.bootId) otherBoot.push(entry);
    else plans.push({ entry, marker: entry.marker, leader: verifyAgentIdentity(entry, snapshot, lookup), tree: collectAgentTree(entry, snapshot, lookup) });
  }
  if (sweepMarkerPrefix !== undefined) {
    const listed = new Set(entries.map((entry) => entry.marker));
    for (const marker of listMarkersWithPrefix(sweepMarkerPrefix, snapshot, lookup)) {
      if (listed.has(marker)) continue;
      plans.push({ entry: null, marker, leader: null, tree: collectAgentTree({ marker, bootId: snapshot.bootId }, snapshot, lookup) });
    }
  }
  return { plans, otherBoot, otherNode };
}

export function refOf(entry: RegistryEntry | null): Partial<AgentRef> {
  return entry ? { issueKey: entry.issueKey, runId: entry.runId, agentName: entry.agentName } : {};
}

export function processKey(target: ExpectedProcess): string {
  return `${target.pid}/${target.startTime}`;
}

/** Each process once, even when hostile duplicate entries share a marker. */
export function uniqueTargets(memberLists: readonly (readonly AgentTreeMember[])[], exclude: ReadonlySet<string> = new Set()): ExpectedProcess[] {
  const byKey = new Map<string, ExpectedProcess>();
  for (const members of memberLists) {
    for (const member of members) if (!exclude.has(processKey(member))) byKey.set(processKey(member), member);
  }
  return [...byKey.values()];
}

export function dedupeByPid<T extends { pid: number }>(items: readonly T[]): T[] {
  return [...new Map(items.map((item) => [item.pid, item])).values()];
}

export function reapedTree(marker: string, outcome: ReapOutcome, members: readonly AgentTreeMember[], signals: readonly SentSignal[]): ReapedTree {
  return {
    marker,
    outcome,
    pids: members.map((member) => member.pid),
    escapees: members.filter((member) => member.via === 'escapee').map((member) => member.pid),
    signals,
  };
}

export function reapedAgent(entry: RegistryEntry, leader: IdentityCheck, tree: ReapedTree): ReapedAgent {
  return {
    issueKey: entry.issueKey,
    runId: entry.runId,
    agentName: entry.agentName,
    role: entry.role,
    leader,
    ...tree,
    worktree: entry.worktree,
    logPath: entry.logPath,
  };
}
