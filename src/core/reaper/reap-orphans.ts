import type { RegistryParse } from '../../domain/registry.js';
import type { SentSignal } from '../../domain/process.js';
import { explainProtectedPid, readSelfAndAncestors } from '../../domain/process-identity.js';
import { refOf, type ReapedAgent, type ReapedTree, type SkippedItem, type SurvivorItem } from '../../domain/reap-plan.js';
import type { StoredRead } from '../../domain/stored-read.js';
import { ERROR_CATALOG, FactoryError, isFactoryError } from '../../errors.js';
import type { Clock } from '../../ports/clock.js';
import type { HeldLease, Lease } from '../../ports/lease.js';
import type { Logger } from '../../ports/logger.js';
import type { HeartbeatStore, RegistryStore } from '../../ports/node-state-store.js';
import type { ProcessTable } from '../../ports/process-table.js';
import type { ProcessTerminator } from '../../ports/process-terminator.js';
import { reapRegistryEntries, type ReapEntriesResult } from './reap-entries.js';
import type { TeamResourceGroups } from '../../ports/team-resources.js';
import { reapLeftoverGroups, type ReapedGroup } from './reap-groups.js';
import {
  aggregateVerdict,
  assessHeartbeat,
  explainDeadBeforeStale,
  explainUnprovenDaemon,
  recordedDaemonIdentities,
  type DaemonIdentityReport,
  type DaemonReport,
  type DaemonState,
  type HeartbeatReport,
} from './verdict.js';

/**
 * `factory reap-orphans`: the whole decision, for the CLI verb and cron.
 * Removes the agent trees of a dead daemon and provably nothing else:
 *
 * - The daemon is dead only when its heartbeat is stale (or missing or
 *   unreadable) AND its recorded identity is gone (verdict.ts), or, before
 *   the heartbeat is stale, when its identity is gone AND no live process
 *   holds the daemon lock (`explainDeadBeforeStale`). A live process
 *   behind a stale heartbeat is a wedged daemon: reported, non-zero exit,
 *   nothing touched, unless the caller explicitly asks to terminate it by
 *   identity.
 * - Every signal targets a process proven, just before the signal, to carry
 *   the agent's unique marker with the start time seen in this pass's snapshot;
 *   pid ≤ 1, the reaper and its ancestors are never signalled (reap-entries.ts
 *   and the shared terminator).
 * - One process-table snapshot per pass; the grace period is polled with
 *   single /proc reads of the survivors only.
 *
 * Adoption instead of reaping (a restarted daemon taking over live local
 * agents) is not done: it would need the exit status of a process that is
 * not our child (a wrapper writing it next to the log), output already going
 * to a log the new daemon can tail, and stall detection fed by snapshots.
 * Until then a restarted daemon reaps its predecessor's local agents
 * (`reapPredecessorAgents`) and dispatches the issues again.
 */

const silentLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => silentLogger };

export interface ReapOrphansRequest {
  readonly heartbeats: Pick<HeartbeatStore, 'read'>;
  /** Read, and rewritten without the reaped entries unless it changed meanwhile. */
  readonly registry: RegistryStore;
  /** The reaper lock: one reaper at a time per registry (a dry run takes none). */
  readonly lease: Lease;
  /** Which of the given paths (a removed agent's worktree and log) still exist, for the report. */
  readonly existingPaths: (paths: readonly string[]) => Promise<string[]>;
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
  /**
   * The daemon lock as a lease, read only. With it, a daemon whose recorded
   * identity is gone while nobody holds its lock is dead at once, without
   * waiting for its fresh heartbeat to go stale. Without it, only staleness decides.
   */
  readonly daemonLock?: Pick<Lease, 'inspect'>;
  readonly processTable: ProcessTable;
  readonly terminator: ProcessTerminator;
  readonly clock: Clock;
  /** This instance's marker prefix: also reap live trees carrying it that the registry never listed. */
  readonly markerPrefix?: string;
  /** This instance's team groups (cgroups): a dead daemon's groups are killed and removed before the registry reap. */
  readonly resourceGroups?: TeamResourceGroups;
  readonly log?: Logger;
}

export interface RegistryReport {
  readonly file: StoredRead<unknown>['kind'];
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
  /** Team groups (cgroups) of the dead daemon, killed and removed before the registry reap. */
  readonly groups: readonly ReapedGroup[];
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
export async function reapOrphanedAgents(options: ReapOrphansRequest): Promise<ReapReport> {
  if (options.dryRun) return runReaper(options);
  let held: HeldLease;
  try {
    held = await options.lease.acquire();
  } catch (error) {
    if (!isFactoryError(error, 'FACTORY_LEASE_HELD')) throw error;
    const owner = error.details.owner as { pid?: number } | undefined;
    throw new FactoryError(
      'FACTORY_REAPER_LOCKED',
      owner
        ? `the reaper lock ${options.lease.name} is held by a running reaper (pid ${owner.pid ?? '?'})`
        : `the reaper lock ${options.lease.name} kept changing hands; another reaper is contending for it`,
      {
        details: error.details,
      },
    );
  }
  try {
    return await runReaper(options);
  } finally {
    await held.release();
  }
}

async function existingPaths(options: ReapOrphansRequest, paths: readonly string[]): Promise<string[]> {
  return options.existingPaths([...new Set(paths.filter((path) => path !== ''))]);
}

async function runReaper(options: ReapOrphansRequest): Promise<ReapReport> {
  const { processTable: table, clock } = options;
  const log = options.log ?? silentLogger;
  const heartbeatRead = await options.heartbeats.read();
  let registryVersion = await options.registry.version();
  let registryRead = await options.registry.read();
  const heartbeat = assessHeartbeat(heartbeatRead, clock.now(), options.staleMs);
  const identities = recordedDaemonIdentities(heartbeatRead, registryRead, table);
  const verdict = aggregateVerdict(identities);
  const { stale, ...heartbeatReport } = heartbeat;
  // Only read when it can matter: a fresh heartbeat whose recorded daemon is gone. An unreadable lock
  // counts as nobody's, as the lease itself judges it (a live holder's lock file is always whole).
  const deadBeforeStale = !stale && verdict !== 'alive' && options.daemonLock ? explainDeadBeforeStale(identities, await options.daemonLock.inspect(), table) : undefined;
  // What the decision rests on, for the report's sentence.
  const evidence = deadBeforeStale === undefined ? heartbeat.reason : `${heartbeat.reason}, but ${deadBeforeStale}`;

  const report = (parts: {
    reason: string;
    daemon: Omit<DaemonReport, 'identities' | 'verdict'>;
    registry?: RegistryReport;
    reap?: ReapEntriesResult;
    groups?: readonly ReapedGroup[];
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
      groups: parts.groups ?? [],
      leftBehind: parts.leftBehind ?? { worktrees: [], logs: [] },
      snapshots: parts.reap?.snapshots ?? 0,
      graceWaitedMs: parts.reap?.graceWaitedMs ?? 0,
      exitCode: parts.exitCode,
    };
    log.info({ stale, daemon: result.daemon.state, reaped: result.reaped.length, survivors: result.survivors.length, exitCode: result.exitCode }, result.reason);
    return result;
  };

  if (!stale && deadBeforeStale === undefined) {
    return report({
      reason: `nothing to do: ${heartbeat.reason}`,
      daemon: { state: 'heartbeat-fresh', reason: heartbeat.reason, signals: [] },
      exitCode: 0,
    });
  }

  let daemonSignals: readonly SentSignal[] = [];
  let daemonState: DaemonState = 'dead';
  let daemonReason =
    deadBeforeStale !== undefined
      ? `dead before its heartbeat went stale: ${deadBeforeStale}`
      : identities.length === 0
        ? 'no heartbeat or registry owner names a daemon'
        : 'no recorded daemon identity is alive';
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
    registryVersion = await options.registry.version();
    registryRead = await options.registry.read();
  }
  const daemon = { state: daemonState, reason: daemonReason, signals: daemonSignals };

  // Without a registry the marker prefix is the only way to find agents; without a prefix either, there is nothing provable.
  if (registryRead.kind !== 'ok' && options.markerPrefix === undefined) {
    return registryRead.kind === 'missing'
      ? report({ reason: `the daemon is ${daemonState} (${evidence}) and there is no registry: nothing to reap`, daemon, exitCode: 0 })
      : report({
          reason: `the daemon is ${daemonState} but the registry is unreadable, so no agent can be proven: ${registryRead.reason}`,
          daemon,
          exitCode: ERROR_CATALOG.FACTORY_REGISTRY_UNREADABLE.exitCode,
        });
  }
  const file = registryRead.kind === 'ok' ? registryRead.value.file : null;
  const rejected = registryRead.kind === 'ok' ? registryRead.value.rejected : [];
  const listed = file?.agents ?? [];
  // The groups first: one kill per group reaches every process in it, escapees and unmarked ones included.
  const groups = await reapLeftoverGroups(options.resourceGroups, { dryRun: options.dryRun, log });
  const reap = await reapRegistryEntries(listed, {
    ...options,
    ...(options.markerPrefix !== undefined ? { sweepMarkerPrefix: options.markerPrefix } : {}),
  });
  const droppedEntries: SkippedItem[] = rejected.map((item) => ({ reason: `registry entry #${item.index} dropped: ${item.reason}` }));
  let registry = describeRegistry(registryRead, false, options.dryRun ? 'dry run: not written' : 'unchanged');
  if (file && !options.dryRun && (reap.remaining.length !== listed.length || rejected.length > 0)) {
    if ((await options.registry.version()) !== registryVersion) {
      registry = describeRegistry(registryRead, false, 'the registry changed while reaping (did a daemon start?); left as it is for the next run');
    } else {
      await options.registry.write({ version: 1, owner: file.owner, updatedAtMs: clock.now(), agents: reap.remaining });
      registry = describeRegistry(registryRead, true, `rewritten with ${reap.remaining.length} of ${listed.length} entries`);
    }
  }
  const removed = reap.reaped;
  const leftBehind = {
    worktrees: await existingPaths(
      options,
      removed.map((agent) => agent.worktree),
    ),
    logs: await existingPaths(
      options,
      removed.map((agent) => agent.logPath),
    ),
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
    reason: `the daemon is ${daemonState} (${evidence}); ${summary}${unreadable}`,
    daemon,
    registry,
    reap: { ...reap, skipped: [...droppedEntries, ...reap.skipped] },
    groups,
    leftBehind,
    exitCode: survived ? ERROR_CATALOG.FACTORY_REAPER_SURVIVORS.exitCode : registryRead.kind === 'unreadable' ? ERROR_CATALOG.FACTORY_REGISTRY_UNREADABLE.exitCode : 0,
  });
}

function describeRegistry(read: StoredRead<RegistryParse>, written: boolean, reason: string): RegistryReport {
  if (read.kind !== 'ok') return { file: read.kind, entries: 0, rejectedEntries: 0, written: false, reason: read.kind === 'unreadable' ? read.reason : reason };
  return { file: 'ok', entries: read.value.file.agents.length, rejectedEntries: read.value.rejected.length, written, reason };
}

/**
 * Stops a wedged daemon on explicit request: only processes whose identity
 * was just proven, never pid ≤ 1, the reaper or its ancestors. A dry run only
 * says what it would do.
 */
async function stopWedgedDaemon(alive: readonly DaemonIdentityReport[], options: ReapOrphansRequest): Promise<{ stopped: boolean; reason: string; signals: readonly SentSignal[] }> {
  const protectedPids = readSelfAndAncestors(options.processTable);
  for (const identity of alive) {
    const why = explainProtectedPid(identity.pid, protectedPids, options.processTable.self());
    if (why) return { stopped: false, reason: `refusing to signal the recorded daemon pid ${identity.pid}: ${why}`, signals: [] };
  }
  if (options.daemonLockPath !== undefined) {
    for (const identity of alive) {
      const unproven = explainUnprovenDaemon(options.processTable, identity.pid, options.daemonLockPath);
      if (unproven) return { stopped: false, reason: `refusing to signal: ${unproven}`, signals: [] };
    }
  }
  const pids = alive.map((identity) => identity.pid).join(', ');
  if (options.dryRun) return { stopped: true, reason: `dry run: would stop the wedged daemon (pid ${pids}) with SIGTERM, then SIGKILL`, signals: [] };
  const result = await options.terminator.terminate({ processes: alive, graceMs: options.graceMs, ...(options.log ? { log: options.log } : {}) });
  if (result.survivors.size > 0) {
    return { stopped: false, reason: [...result.survivors].map(([pid, why]) => `pid ${pid}: ${why}`).join('; '), signals: result.signals };
  }
  return { stopped: true, reason: `the wedged daemon (pid ${pids}) was stopped by identity`, signals: result.signals };
}
