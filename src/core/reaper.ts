import { access, stat } from 'node:fs/promises';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { ProcessIdentity, ProcessSnapshot, ProcessTable } from '../ports/process-table.js';
import { heartbeatAgeMs, isHeartbeatStale, type DaemonStatus, type Heartbeat } from '../domain/heartbeat.js';
import { LOCAL_NODE, type RegistryEntry, type RegistryParse } from '../domain/registry.js';
import { ERROR_CATALOG } from '../errors.js';
import { readHeartbeatFile, readRegistryFile, writeRegistryFile, type FileRead } from './state-files.js';
import { withReaperLock } from './reaper-lock.js';
import {
  collectAgentTree,
  explainProtectedPid,
  isStillRunning,
  listMarkersWithPrefix,
  readSelfAndAncestors,
  signalVerifiedProcess,
  verifyAgentIdentity,
  verifyDaemonIdentity,
  type AgentTree,
  type AgentTreeMember,
  type ExpectedProcess,
  type IdentityCheck,
  type IdentityVerdict,
} from './process-identity.js';

/**
 * The reaper: removes the agent trees of a dead daemon and provably nothing
 * else. The rules (issue 3):
 *
 * - The daemon is dead only when its heartbeat is stale (or missing or
 *   unreadable) AND its recorded identity is gone. A live process behind a
 *   stale heartbeat is a wedged daemon: reported, non-zero exit, nothing
 *   touched, unless the caller explicitly asks to terminate it by identity.
 * - Every signal targets a process proven, just before the signal, to carry
 *   the agent's unique marker with the start time seen in this pass's snapshot;
 *   pid ≤ 1, the reaper and its ancestors are never signalled.
 * - One process-table snapshot per pass; the grace period is polled with
 *   single /proc reads of the survivors only.
 *
 * Adoption instead of reaping (a restarted daemon taking over live agents) is
 * not done yet. It would need, per agent: the identity proof above; a way to
 * learn the exit status of a process that is not our child (the kernel reports
 * it only to the parent, so the agent would have to be launched through a
 * small wrapper that writes its exit status to a file next to its log); output
 * already going to an append-only log file the new daemon can tail; the run's
 * attempt and issue revision in the durable state store; and stall detection
 * fed by CPU ticks from snapshots rather than child-process events. Until all
 * of that exists, a restarted daemon reaps its predecessor's agents with
 * `reapRegistryEntries` and dispatches the issues again.
 */

const silentLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => silentLogger };

/** How often survivors are re-read during a grace period. */
const SURVIVOR_POLL_MS = 20;
/** SIGKILL cannot be ignored, but its effect is asynchronous (and waits out uninterruptible I/O). */
const KILL_SETTLE_MS = 2_000;

export type TerminationSignal = 'SIGTERM' | 'SIGKILL';

export interface SentSignal {
  readonly pid: number;
  readonly signal: TerminationSignal;
}

export interface TerminationResult {
  readonly signals: readonly SentSignal[];
  /** Targets still running at the end, or never signalled because the signal was refused or failed. */
  readonly survivors: ReadonlyMap<number, string>;
  /** Time spent waiting inside the grace period (excluded from benchmark figures). */
  readonly graceWaitedMs: number;
}

export interface TerminationOptions {
  readonly processTable: ProcessTable;
  readonly clock: Clock;
  readonly graceMs: number;
  readonly log?: Logger;
}

/** Polls until every target has exited (zombies count) or `budgetMs` passes; returns those still running. */
async function waitForExit(targets: readonly ExpectedProcess[], budgetMs: number, table: ProcessTable, clock: Clock): Promise<ExpectedProcess[]> {
  const deadline = clock.now() + budgetMs;
  let running = targets.filter((target) => isStillRunning(table, target));
  while (running.length > 0 && clock.now() < deadline) {
    await clock.sleep(Math.min(SURVIVOR_POLL_MS, deadline - clock.now()));
    running = running.filter((target) => isStillRunning(table, target));
  }
  return running;
}

/**
 * SIGTERM every target, wait up to `graceMs` for them to exit, SIGKILL the
 * rest. Each signal re-proves the target's identity first, so a target that
 * exited and whose pid was reused is skipped, not hit.
 */
export async function terminateProcesses(targets: readonly ExpectedProcess[], options: TerminationOptions): Promise<TerminationResult> {
  const { processTable: table, clock } = options;
  const log = options.log ?? silentLogger;
  const signals: SentSignal[] = [];
  const survivors = new Map<number, string>();
  const send = (target: ExpectedProcess, signal: TerminationSignal): boolean => {
    const outcome = signalVerifiedProcess(table, target, signal);
    if (outcome.kind === 'sent') {
      signals.push({ pid: target.pid, signal });
      log.info({ pid: target.pid, signal }, 'signal sent');
      return true;
    }
    if (outcome.kind !== 'gone') {
      survivors.set(target.pid, outcome.reason);
      log.warn({ pid: target.pid, signal, reason: outcome.reason }, 'signal not sent');
    }
    return false;
  };
  const terminated = targets.filter((target) => send(target, 'SIGTERM'));
  const graceStartedMs = clock.now();
  const ignoredTerm = await waitForExit(terminated, options.graceMs, table, clock);
  const graceWaitedMs = clock.now() - graceStartedMs;
  const killed = ignoredTerm.filter((target) => send(target, 'SIGKILL'));
  for (const target of await waitForExit(killed, KILL_SETTLE_MS, table, clock)) {
    survivors.set(target.pid, `still running ${KILL_SETTLE_MS} ms after SIGKILL (uninterruptible sleep?)`);
  }
  return { signals, survivors, graceWaitedMs };
}

// ---------------------------------------------------------------------------
// Reaping registry entries (also the daemon's startup path)
// ---------------------------------------------------------------------------

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

/** One tree to reap: a registry entry's, or an unlisted one found by the marker prefix. */
interface ReapPlan {
  readonly entry: RegistryEntry | null;
  readonly marker: string;
  readonly leader: IdentityCheck | null;
  readonly tree: AgentTree;
}

function refOf(entry: RegistryEntry | null): Partial<AgentRef> {
  return entry ? { issueKey: entry.issueKey, runId: entry.runId, agentName: entry.agentName } : {};
}

function processKey(target: ExpectedProcess): string {
  return `${target.pid}/${target.startTime}`;
}

/** Each process once, even when hostile duplicate entries share a marker. */
function uniqueTargets(memberLists: readonly (readonly AgentTreeMember[])[], exclude: ReadonlySet<string> = new Set()): ExpectedProcess[] {
  const byKey = new Map<string, ExpectedProcess>();
  for (const members of memberLists) {
    for (const member of members) if (!exclude.has(processKey(member))) byKey.set(processKey(member), member);
  }
  return [...byKey.values()];
}

/** Sorts entries into other nodes' (kept), other boots' (dropped unsignalled) and trees to reap, plus unlisted trees. */
function planReaps(
  entries: readonly RegistryEntry[],
  snapshot: ProcessSnapshot,
  options: ReapEntriesOptions,
): { plans: ReapPlan[]; otherBoot: RegistryEntry[]; otherNode: RegistryEntry[] } {
  const table = options.processTable;
  const plans: ReapPlan[] = [];
  const otherBoot: RegistryEntry[] = [];
  const otherNode: RegistryEntry[] = [];
  for (const entry of entries) {
    if (entry.node !== LOCAL_NODE) otherNode.push(entry);
    else if (entry.bootId !== snapshot.bootId) otherBoot.push(entry);
    else plans.push({ entry, marker: entry.marker, leader: verifyAgentIdentity(entry, snapshot, table), tree: collectAgentTree(entry, snapshot, table) });
  }
  if (options.sweepMarkerPrefix !== undefined) {
    const listed = new Set(entries.map((entry) => entry.marker));
    for (const marker of listMarkersWithPrefix(options.sweepMarkerPrefix, snapshot, table)) {
      if (listed.has(marker)) continue;
      plans.push({ entry: null, marker, leader: null, tree: collectAgentTree({ marker, bootId: snapshot.bootId }, snapshot, table) });
    }
  }
  return { plans, otherBoot, otherNode };
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
  const { plans, otherBoot, otherNode } = planReaps(entries, snapshot, options);
  // Progress for a person watching a large reap (stderr; stdout stays the JSON report).
  if (entries.length > 0 || plans.length > 0) {
    log.info({ entries: entries.length, trees: plans.length, otherBoot: otherBoot.length, otherNode: otherNode.length }, `reaping: ${plans.length} agent tree(s) to end, ${otherBoot.length} entr${otherBoot.length === 1 ? 'y' : 'ies'} from another boot to drop`);
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
  const absorb = (result: TerminationResult): void => {
    for (const sent of result.signals) signalsByPid.set(sent.pid, [...(signalsByPid.get(sent.pid) ?? []), sent]);
    for (const [pid, reason] of result.survivors) if (!survivorReasons.has(pid)) survivorReasons.set(pid, reason);
    graceWaitedMs += result.graceWaitedMs;
  };

  if (!options.dryRun) {
    const firstTargets = uniqueTargets(plans.map((plan) => plan.tree.members));
    absorb(await terminateProcesses(firstTargets, options));
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
        absorb(await terminateProcesses(lateTargets, options));
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
    const outcome: ReapOutcome =
      members.length === 0 ? 'already-gone'
      : options.dryRun ? 'would-reap'
      : signals.some((sent) => sent.signal === 'SIGKILL') ? 'killed'
      : 'terminated';
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

function dedupeByPid<T extends { pid: number }>(items: readonly T[]): T[] {
  return [...new Map(items.map((item) => [item.pid, item])).values()];
}

function reapedTree(marker: string, outcome: ReapOutcome, members: readonly AgentTreeMember[], signals: readonly SentSignal[]): ReapedTree {
  return {
    marker,
    outcome,
    pids: members.map((member) => member.pid),
    escapees: members.filter((member) => member.via === 'escapee').map((member) => member.pid),
    signals,
  };
}

function reapedAgent(entry: RegistryEntry, leader: IdentityCheck, tree: ReapedTree): ReapedAgent {
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
export async function reapPredecessorAgents(
  entries: readonly RegistryEntry[],
  options: TerminationOptions & { readonly markerPrefix?: string },
): Promise<PredecessorReapResult> {
  const details = await reapRegistryEntries(entries, {
    processTable: options.processTable,
    clock: options.clock,
    graceMs: options.graceMs,
    dryRun: false,
    ...(options.log ? { log: options.log } : {}),
    ...(options.markerPrefix !== undefined ? { sweepMarkerPrefix: options.markerPrefix } : {}),
  });
  return { reaped: details.reaped.length + details.unlisted.length, survivors: details.remaining, details };
}

// ---------------------------------------------------------------------------
// reap-orphans: the whole decision, for the CLI verb and cron
// ---------------------------------------------------------------------------

export interface ReapOrphansOptions {
  readonly heartbeatPath: string;
  readonly registryPath: string;
  readonly staleMs: number;
  readonly graceMs: number;
  readonly dryRun: boolean;
  /** Explicit opt-in: stop a wedged daemon (by identity, SIGTERM then SIGKILL) and then reap its agents. */
  readonly terminateWedgedDaemon?: boolean;
  /**
   * The daemon lock, which a daemon holds open for its whole life. With it, a
   * wedged daemon is signalled only if its pid holds this file open: a forged
   * heartbeat naming some other process (even with its exact start time) is
   * refused. Without it, identity alone decides.
   */
  readonly daemonLockPath?: string;
  readonly processTable: ProcessTable;
  readonly clock: Clock;
  readonly lockPath: string;
  /** This instance's marker prefix: also reap live trees carrying it that the registry never listed. */
  readonly markerPrefix?: string;
  readonly log?: Logger;
}

/**
 * `heartbeat-fresh`: the heartbeat is within the stale window, nothing is done.
 * `wedged`: the heartbeat is stale but the daemon's process is alive.
 * `dead`: the heartbeat is stale and no recorded daemon identity is alive.
 * `terminated`: a wedged daemon stopped by us on the caller's explicit request.
 */
export type DaemonState = 'heartbeat-fresh' | 'wedged' | 'dead' | 'terminated';

export interface DaemonIdentityReport extends ProcessIdentity {
  readonly source: 'heartbeat' | 'registry-owner';
  readonly verdict: IdentityVerdict;
  readonly reason: string;
}

export interface DaemonReport {
  readonly state: DaemonState;
  /** `alive` when any recorded identity is alive, else `mismatch` if a pid was reused, else `dead`. */
  readonly verdict: IdentityVerdict;
  readonly reason: string;
  readonly identities: readonly DaemonIdentityReport[];
  readonly signals: readonly SentSignal[];
}

export interface HeartbeatReport {
  readonly file: FileRead<unknown>['kind'];
  readonly status: DaemonStatus | null;
  /** Null when missing, unreadable, or dated in the future (treated as infinitely old). */
  readonly ageMs: number | null;
  readonly reason: string;
}

export interface RegistryReport {
  readonly file: FileRead<unknown>['kind'];
  readonly entries: number;
  readonly rejectedEntries: number;
  readonly written: boolean;
  readonly reason: string;
}

export interface ReapReport {
  readonly stale: boolean;
  readonly reason: string;
  readonly dryRun: boolean;
  readonly heartbeat: HeartbeatReport;
  readonly daemon: DaemonReport;
  readonly registry: RegistryReport;
  readonly reaped: readonly ReapedAgent[];
  /** Trees carrying this instance's marker prefix that no registry entry listed. */
  readonly unlisted: readonly ReapedTree[];
  readonly skipped: readonly SkippedItem[];
  readonly survivors: readonly SurvivorItem[];
  /** Worktrees and log files of removed agents that still exist on disk, for the user to inspect or delete. */
  readonly leftBehind: { readonly worktrees: readonly string[]; readonly logs: readonly string[] };
  readonly snapshots: number;
  readonly graceWaitedMs: number;
  readonly exitCode: number;
}

/**
 * Decides whether the daemon is dead and, if so, reaps its agents and rewrites
 * the registry without them. Serialised by the reaper lock (a dry run takes no
 * lock: it changes nothing). Throws FACTORY_REAPER_LOCKED when another live
 * reaper holds the lock; every other outcome is a report with an exit code.
 */
export function reapOrphans(options: ReapOrphansOptions): Promise<ReapReport> {
  if (options.dryRun) return runReaper(options);
  return withReaperLock(options.lockPath, options, () => runReaper(options));
}

function assessHeartbeat(read: FileRead<Heartbeat>, nowMs: number, staleMs: number): HeartbeatReport & { stale: boolean } {
  if (read.kind === 'missing') return { file: 'missing', status: null, ageMs: null, stale: true, reason: 'the heartbeat file is missing' };
  if (read.kind === 'unreadable') return { file: 'unreadable', status: null, ageMs: null, stale: true, reason: `the heartbeat is unreadable: ${read.reason}` };
  const age = heartbeatAgeMs(read.value, nowMs);
  const ageMs = Number.isFinite(age) ? age : null;
  const stale = isHeartbeatStale(read.value, nowMs, staleMs);
  const ageText = ageMs === null ? 'dated in the future' : `${ageMs} ms old`;
  return {
    file: 'ok',
    status: read.value.status,
    ageMs,
    stale,
    reason: `the heartbeat (status ${read.value.status}) is ${ageText}; stale after ${staleMs} ms`,
  };
}

/** The daemon identities on record: the heartbeat's writer and the registry's owner (when different). */
function recordedDaemonIdentities(heartbeat: FileRead<Heartbeat>, registry: FileRead<RegistryParse>, table: ProcessTable): DaemonIdentityReport[] {
  const recorded: { source: DaemonIdentityReport['source']; identity: ProcessIdentity }[] = [];
  if (heartbeat.kind === 'ok') recorded.push({ source: 'heartbeat', identity: heartbeat.value });
  const owner = registry.kind === 'ok' ? registry.value.file.owner : null;
  if (owner && !recorded.some((r) => r.identity.pid === owner.pid && r.identity.startTime === owner.startTime && r.identity.bootId === owner.bootId)) {
    recorded.push({ source: 'registry-owner', identity: owner });
  }
  return recorded.map(({ source, identity }) => {
    const check = verifyDaemonIdentity(identity, table);
    return { source, pid: identity.pid, startTime: identity.startTime, bootId: identity.bootId, verdict: check.verdict, reason: check.reason };
  });
}

function aggregateVerdict(identities: readonly DaemonIdentityReport[]): IdentityVerdict {
  if (identities.some((identity) => identity.verdict === 'alive')) return 'alive';
  if (identities.some((identity) => identity.verdict === 'mismatch')) return 'mismatch';
  return 'dead';
}

/** A cheap "has this file been replaced?" token: atomic writes rename a new inode into place. */
async function fileVersion(path: string): Promise<string> {
  try {
    const info = await stat(path);
    return `${info.ino}:${info.size}:${info.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

async function existingPaths(paths: readonly string[]): Promise<string[]> {
  const unique = [...new Set(paths.filter((path) => path !== ''))];
  const exists = await Promise.all(unique.map((path) => access(path).then(() => true, () => false)));
  return unique.filter((_, index) => exists[index]);
}

async function runReaper(options: ReapOrphansOptions): Promise<ReapReport> {
  const { processTable: table, clock } = options;
  const log = options.log ?? silentLogger;
  const heartbeatRead = await readHeartbeatFile(options.heartbeatPath);
  let registryVersion = await fileVersion(options.registryPath);
  let registryRead = await readRegistryFile(options.registryPath);
  const heartbeat = assessHeartbeat(heartbeatRead, clock.now(), options.staleMs);
  const identities = recordedDaemonIdentities(heartbeatRead, registryRead, table);
  const verdict = aggregateVerdict(identities);
  const { stale, ...heartbeatReport } = heartbeat;

  const report = (parts: {
    reason: string;
    daemon: Omit<DaemonReport, 'identities' | 'verdict'>;
    registry?: RegistryReport;
    reap?: ReapEntriesResult;
    leftBehind?: ReapReport['leftBehind'];
    exitCode: number;
  }): ReapReport => {
    const result: ReapReport = {
      stale,
      reason: parts.reason,
      dryRun: options.dryRun,
      heartbeat: heartbeatReport,
      daemon: { ...parts.daemon, verdict, identities },
      registry: parts.registry ?? describeRegistry(registryRead, false, 'not touched'),
      reaped: parts.reap?.reaped ?? [],
      unlisted: parts.reap?.unlisted ?? [],
      skipped: parts.reap?.skipped ?? [],
      survivors: parts.reap?.survivors ?? [],
      leftBehind: parts.leftBehind ?? { worktrees: [], logs: [] },
      snapshots: parts.reap?.snapshots ?? 0,
      graceWaitedMs: parts.reap?.graceWaitedMs ?? 0,
      exitCode: parts.exitCode,
    };
    log.info({ stale, daemon: result.daemon.state, reaped: result.reaped.length, survivors: result.survivors.length, exitCode: result.exitCode }, result.reason);
    return result;
  };

  if (!stale) {
    return report({
      reason: `nothing to do: ${heartbeat.reason}`,
      daemon: { state: 'heartbeat-fresh', reason: heartbeat.reason, signals: [] },
      exitCode: 0,
    });
  }

  let daemonSignals: readonly SentSignal[] = [];
  let daemonState: DaemonState = 'dead';
  let daemonReason = identities.length === 0 ? 'no heartbeat or registry owner names a daemon' : 'no recorded daemon identity is alive';
  const aliveDaemons = identities.filter((identity) => identity.verdict === 'alive');
  if (aliveDaemons.length > 0) {
    const who = aliveDaemons.map((identity) => `pid ${identity.pid} (${identity.source})`).join(', ');
    const wedgedReason = `the daemon is wedged: ${heartbeat.reason}, but ${who} is still running`;
    if (!options.terminateWedgedDaemon) {
      const untouched = registryRead.kind === 'ok' ? registryRead.value.file.agents : [];
      return report({
        reason: `${wedgedReason}; no agent was touched`,
        daemon: { state: 'wedged', reason: wedgedReason, signals: [] },
        reap: {
          reaped: [],
          unlisted: [],
          skipped: untouched.map((entry) => ({ ...refOf(entry), pid: entry.pid, reason: 'owned by a live (wedged) daemon' })),
          survivors: [],
          remaining: untouched,
          snapshots: 0,
          graceWaitedMs: 0,
        },
        exitCode: ERROR_CATALOG.FACTORY_DAEMON_WEDGED.exitCode,
      });
    }
    const stopped = await stopWedgedDaemon(aliveDaemons, options);
    daemonSignals = stopped.signals;
    if (!stopped.stopped) {
      return report({
        reason: `${wedgedReason}; stopping it failed: ${stopped.reason}`,
        daemon: { state: 'wedged', reason: stopped.reason, signals: daemonSignals },
        exitCode: ERROR_CATALOG.FACTORY_DAEMON_WEDGED.exitCode,
      });
    }
    daemonState = options.dryRun ? 'wedged' : 'terminated';
    daemonReason = stopped.reason;
    // A daemon stopped with SIGTERM may have released agents and rewritten the registry on its way out.
    registryVersion = await fileVersion(options.registryPath);
    registryRead = await readRegistryFile(options.registryPath);
  }
  const daemon = { state: daemonState, reason: daemonReason, signals: daemonSignals };

  // Without a registry the marker prefix is the only way to find agents; without a prefix either, there is nothing provable.
  if (registryRead.kind !== 'ok' && options.markerPrefix === undefined) {
    return registryRead.kind === 'missing'
      ? report({ reason: `the daemon is ${daemonState} (${heartbeat.reason}) and there is no registry: nothing to reap`, daemon, exitCode: 0 })
      : report({
          reason: `the daemon is ${daemonState} but the registry is unreadable, so no agent can be proven: ${registryRead.reason}`,
          daemon,
          exitCode: ERROR_CATALOG.FACTORY_REGISTRY_UNREADABLE.exitCode,
        });
  }
  const file = registryRead.kind === 'ok' ? registryRead.value.file : null;
  const rejected = registryRead.kind === 'ok' ? registryRead.value.rejected : [];
  const listed = file?.agents ?? [];
  const reap = await reapRegistryEntries(listed, {
    ...options,
    ...(options.markerPrefix !== undefined ? { sweepMarkerPrefix: options.markerPrefix } : {}),
  });
  const droppedEntries: SkippedItem[] = rejected.map((item) => ({ reason: `registry entry #${item.index} dropped: ${item.reason}` }));
  let registry = describeRegistry(registryRead, false, options.dryRun ? 'dry run: not written' : 'unchanged');
  if (file && !options.dryRun && (reap.remaining.length !== listed.length || rejected.length > 0)) {
    if ((await fileVersion(options.registryPath)) !== registryVersion) {
      registry = describeRegistry(registryRead, false, 'the registry changed while reaping (did a daemon start?); left as it is for the next run');
    } else {
      await writeRegistryFile(options.registryPath, { version: 1, owner: file.owner, updatedAtMs: clock.now(), agents: reap.remaining });
      registry = describeRegistry(registryRead, true, `rewritten with ${reap.remaining.length} of ${listed.length} entries`);
    }
  }
  const removed = reap.reaped;
  const leftBehind = {
    worktrees: await existingPaths(removed.map((agent) => agent.worktree)),
    logs: await existingPaths(removed.map((agent) => agent.logPath)),
  };
  const survived = reap.survivors.length > 0;
  const wouldReap = [...removed, ...reap.unlisted].filter((tree) => tree.outcome === 'would-reap').length;
  const unlistedText = reap.unlisted.length > 0 ? ` and ${reap.unlisted.length} unlisted tree(s)` : '';
  const summary = survived
    ? `${reap.survivors.length} orphaned process(es) survived; their registry entries were kept`
    : options.dryRun
      ? `dry run: would reap ${wouldReap} tree(s) and remove ${removed.length} registry entries`
      : `removed ${removed.length} registry entries${unlistedText}`;
  const unreadable = registryRead.kind === 'unreadable' ? `; the registry is unreadable (${registryRead.reason}), swept by marker only` : '';
  return report({
    reason: `the daemon is ${daemonState} (${heartbeat.reason}); ${summary}${unreadable}`,
    daemon,
    registry,
    reap: { ...reap, skipped: [...droppedEntries, ...reap.skipped] },
    leftBehind,
    exitCode: survived
      ? ERROR_CATALOG.FACTORY_REAPER_SURVIVORS.exitCode
      : registryRead.kind === 'unreadable'
        ? ERROR_CATALOG.FACTORY_REGISTRY_UNREADABLE.exitCode
        : 0,
  });
}

function describeRegistry(read: FileRead<RegistryParse>, written: boolean, reason: string): RegistryReport {
  if (read.kind !== 'ok') return { file: read.kind, entries: 0, rejectedEntries: 0, written: false, reason: read.kind === 'unreadable' ? read.reason : reason };
  return { file: 'ok', entries: read.value.file.agents.length, rejectedEntries: read.value.rejected.length, written, reason };
}

/**
 * Stops a wedged daemon on explicit request: only processes whose identity
 * was just proven, never pid ≤ 1, the reaper or its ancestors. A dry run only
 * says what it would do.
 */
async function stopWedgedDaemon(
  alive: readonly DaemonIdentityReport[],
  options: ReapOrphansOptions,
): Promise<{ stopped: boolean; reason: string; signals: readonly SentSignal[] }> {
  const protectedPids = readSelfAndAncestors(options.processTable);
  for (const identity of alive) {
    const why = explainProtectedPid(identity.pid, protectedPids);
    if (why) return { stopped: false, reason: `refusing to signal the recorded daemon pid ${identity.pid}: ${why}`, signals: [] };
  }
  if (options.daemonLockPath !== undefined) {
    for (const identity of alive) {
      if (!options.processTable.holdsOpen(identity.pid, options.daemonLockPath)) {
        return {
          stopped: false,
          reason: `refusing to signal pid ${identity.pid}: it matches the recorded identity but does not hold the daemon lock ${options.daemonLockPath} open, so it is not proven to be the daemon`,
          signals: [],
        };
      }
    }
  }
  const pids = alive.map((identity) => identity.pid).join(', ');
  if (options.dryRun) return { stopped: true, reason: `dry run: would stop the wedged daemon (pid ${pids}) with SIGTERM, then SIGKILL`, signals: [] };
  const result = await terminateProcesses(alive, options);
  if (result.survivors.size > 0) {
    return { stopped: false, reason: [...result.survivors].map(([pid, why]) => `pid ${pid}: ${why}`).join('; '), signals: result.signals };
  }
  return { stopped: true, reason: `the wedged daemon (pid ${pids}) was stopped by identity`, signals: result.signals };
}
