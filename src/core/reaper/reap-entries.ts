import type { RegistryEntry } from '../../domain/registry.js';
import type { ExpectedProcess, AgentTree } from '../../domain/process-identity.js';
import type { SentSignal } from '../../domain/process.js';
import {
  dedupeByPid,
  planReaps,
  processKey,
  reapedAgent,
  reapedTree,
  refOf,
  uniqueTargets,
  type ReapOutcome,
  type ReapPlan,
  type ReapedAgent,
  type ReapedTree,
  type SkippedItem,
  type SurvivorItem,
} from '../../domain/reap-plan.js';
import { collectAgentTree } from '../../domain/process-identity.js';
import type { Logger } from '../../ports/logger.js';
import type { ProcessTable } from '../../ports/process-table.js';
import type { ProcessTerminator, TerminationResult } from '../../ports/process-terminator.js';

/**
 * Ending the agent trees of registry entries whose daemon is gone: the
 * reaper's core, and the daemon's startup path. Every signal goes through the
 * shared terminator, which re-proves each target just before it.
 */

const silentLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => silentLogger };

export interface TerminationOptions {
  readonly processTable: ProcessTable;
  readonly terminator: ProcessTerminator;
  readonly graceMs: number;
  readonly log?: Logger;
}

export interface ReapEntriesOptions extends TerminationOptions {
  readonly dryRun: boolean;
  /**
   * This factory instance's marker prefix (`factory:<instance>:`). When set,
   * live trees carrying a marker with this prefix that no entry lists are
   * reaped too: agents spawned just before a crash, before the registry write.
   * Only safe when no daemon of this instance is alive.
   */
  readonly sweepMarkerPrefix?: string;
}

export interface ReapEntriesResult {
  readonly reaped: readonly ReapedAgent[];
  /** Trees found by `sweepMarkerPrefix` that no registry entry listed. */
  readonly unlisted: readonly ReapedTree[];
  readonly skipped: readonly SkippedItem[];
  readonly survivors: readonly SurvivorItem[];
  /** Entries the registry must keep: other nodes', and those with a surviving process. */
  readonly remaining: readonly RegistryEntry[];
  readonly snapshots: number;
  readonly graceWaitedMs: number;
}

/**
 * Reaps the trees of the given registry entries. The caller has established
 * that their daemon is dead (the reaper) or that it is their successor (the
 * daemon at startup, before it dispatches anything). Pass one takes a snapshot,
 * proves and signals every tree; pass two takes one more snapshot to catch
 * marked processes forked while pass one was signalling, and terminates those.
 */
export async function reapRegistryEntries(entries: readonly RegistryEntry[], options: ReapEntriesOptions): Promise<ReapEntriesResult> {
  const table = options.processTable;
  const log = options.log ?? silentLogger;
  const snapshot = table.snapshot();
  let snapshots = 1;
  const { plans, otherBoot, otherNode } = planReaps(entries, snapshot, table, options.sweepMarkerPrefix);
  // Progress for a person watching a large reap (stderr; stdout stays the JSON report).
  if (entries.length > 0 || plans.length > 0) {
    log.info(
      { entries: entries.length, trees: plans.length, otherBoot: otherBoot.length, otherNode: otherNode.length },
      options.dryRun
        ? `dry run: ${plans.length} agent tree(s) listed to check, ${otherBoot.length} entr${otherBoot.length === 1 ? 'y' : 'ies'} from another boot; nothing is signalled or removed`
        : `reaping: ${plans.length} agent tree(s) to end, ${otherBoot.length} entr${otherBoot.length === 1 ? 'y' : 'ies'} from another boot to drop`,
    );
  }

  const skipped: SkippedItem[] = otherNode.map((entry) => ({
    ...refOf(entry),
    pid: entry.pid,
    reason: `runs on node "${entry.node}"; only that node's fleet may signal it`,
  }));
  for (const plan of plans) {
    for (const pid of plan.tree.unmarkedGroupMembers) {
      skipped.push({ ...refOf(plan.entry), pid, reason: `in the agent's process group but without its marker; not ours, not signalled` });
    }
  }
  const reaped: ReapedAgent[] = otherBoot.map((entry) =>
    reapedAgent(entry, { verdict: 'dead', reason: `recorded in another boot (${entry.bootId}); removed without a signal` }, reapedTree(entry.marker, 'other-boot', [], [])),
  );
  const unlisted: ReapedTree[] = [];
  const survivors: SurvivorItem[] = [];
  const remaining: RegistryEntry[] = [...otherNode];

  // Signals, per pid, from every termination round; survivors likewise.
  const signalsByPid = new Map<number, SentSignal[]>();
  const survivorReasons = new Map<number, string>();
  const lateMembers = new Map<ReapPlan, AgentTree['members']>();
  let graceWaitedMs = 0;
  const terminate = (processes: readonly ExpectedProcess[]): Promise<TerminationResult> => options.terminator.terminate({ processes, graceMs: options.graceMs, log });
  const absorb = (result: TerminationResult): void => {
    for (const sent of result.signals) signalsByPid.set(sent.pid, [...(signalsByPid.get(sent.pid) ?? []), sent]);
    for (const [pid, reason] of result.survivors) if (!survivorReasons.has(pid)) survivorReasons.set(pid, reason);
    graceWaitedMs += result.graceWaitedMs;
  };

  if (!options.dryRun) {
    const firstTargets = uniqueTargets(plans.map((plan) => plan.tree.members));
    absorb(await terminate(firstTargets));
    if (firstTargets.length > 0) {
      const verification = table.snapshot();
      snapshots += 1;
      const seen = new Set(firstTargets.map(processKey));
      for (const plan of plans) {
        if (plan.tree.members.length === 0) continue; // nothing marked was alive, so nothing marked could fork
        const late = collectAgentTree({ marker: plan.marker, bootId: verification.bootId }, verification, table).members.filter((m) => !seen.has(processKey(m)));
        if (late.length > 0) lateMembers.set(plan, late);
      }
      const lateTargets = uniqueTargets([...lateMembers.values()]);
      if (lateTargets.length > 0) {
        log.warn({ pids: lateTargets.map((target) => target.pid) }, 'marked processes appeared while reaping; terminating them too');
        absorb(await terminate(lateTargets));
      }
    }
  }

  for (const plan of plans) {
    const members = dedupeByPid([...plan.tree.members, ...(lateMembers.get(plan) ?? [])]);
    const treeSurvivors: SurvivorItem[] = plan.tree.withheld.map((item) => ({ ...refOf(plan.entry), marker: plan.marker, ...item }));
    for (const member of members) {
      const reason = survivorReasons.get(member.pid);
      if (reason !== undefined) treeSurvivors.push({ ...refOf(plan.entry), marker: plan.marker, pid: member.pid, reason });
    }
    const signals = members.flatMap((member) => signalsByPid.get(member.pid) ?? []);
    const outcome: ReapOutcome = members.length === 0 ? 'already-gone' : options.dryRun ? 'would-reap' : signals.some((sent) => sent.signal === 'SIGKILL') ? 'killed' : 'terminated';
    const fields = { issue: plan.entry?.issueKey, run: plan.entry?.runId, agent: plan.entry?.agentName, marker: plan.marker };
    survivors.push(...treeSurvivors);
    if (treeSurvivors.length > 0) {
      log.warn({ ...fields, survivors: treeSurvivors.map((item) => item.pid) }, 'agent tree not fully reaped');
    } else if (!options.dryRun) {
      log.info({ ...fields, outcome, pids: members.map((member) => member.pid) }, 'agent tree reaped');
    }
    // A dry run and a tree with survivors both leave the entry in place.
    if (plan.entry && (options.dryRun || treeSurvivors.length > 0)) remaining.push(plan.entry);
    if (treeSurvivors.length > 0 && !options.dryRun) continue;
    const tree = reapedTree(plan.marker, outcome, members, signals);
    if (plan.entry && plan.leader) reaped.push(reapedAgent(plan.entry, plan.leader, tree));
    else if (members.length > 0) unlisted.push(tree);
  }
  return { reaped, unlisted, skipped, survivors, remaining, snapshots, graceWaitedMs };
}

/** What a restarted daemon needs to know before it may dispatch. */
export interface PredecessorReapResult {
  /** Registry entries removed plus unlisted trees reaped. */
  readonly reaped: number;
  /** Entries that could not be resolved (a process survived, or it runs on another node): dispatch must not start over them. */
  readonly survivors: readonly RegistryEntry[];
  readonly details: ReapEntriesResult;
}

/**
 * The daemon's startup path: reap every agent its predecessor left (listed in
 * the registry, or carrying this instance's marker prefix without being
 * listed) before it dispatches anything. The caller holds the daemon lock, so
 * no other daemon of this instance is alive to own those agents.
 */
export async function reapPredecessorAgents(entries: readonly RegistryEntry[], options: TerminationOptions & { readonly markerPrefix?: string }): Promise<PredecessorReapResult> {
  const details = await reapRegistryEntries(entries, {
    processTable: options.processTable,
    terminator: options.terminator,
    graceMs: options.graceMs,
    dryRun: false,
    ...(options.log ? { log: options.log } : {}),
    ...(options.markerPrefix !== undefined ? { sweepMarkerPrefix: options.markerPrefix } : {}),
  });
  return { reaped: details.reaped.length + details.unlisted.length, survivors: details.remaining, details };
}
