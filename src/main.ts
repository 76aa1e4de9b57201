import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { hostname } from 'node:os';
import { LocalMountIssueSource } from './adapters/issue-source/local-mount-issue-source.js';
import { LocalProcessFleet } from './adapters/fleet/local-process-fleet.js';
import { LinuxProcessTable } from './adapters/process-table/linux-process-table.js';
import { SqliteStateStore } from './adapters/state-store/sqlite-state-store.js';
import { SystemClock } from './adapters/clock/system-clock.js';
import { GitWorktreeWorkspace } from './adapters/workspace/git-worktree-workspace.js';
import type { FactoryConfig } from './config/load.js';
import type { DaemonMode } from './domain/heartbeat.js';
import { FactoryError, isFactoryError } from './errors.js';
import type { Clock } from './ports/clock.js';
import type { ProcessIdentity, ProcessTable } from './ports/process-table.js';
import { FactorySession, type FactorySessionDeps } from './core/factory-session.js';
import type { Logger } from './ports/logger.js';
import { acquireReaperLock, withReaperLock, type HeldReaperLock } from './core/reaper-lock.js';
import { reapPredecessorAgents } from './core/reaper.js';
import { writeHeartbeatFile, writeRegistryFile } from './core/state-files.js';

/**
 * The one place that wires adapters into the core. Everything below `core/`
 * sees ports only; this file picks the local mount, the local process fleet,
 * git worktrees, SQLite and /proc.
 */

/**
 * Stable per machine and config file, and part of every agent marker, so a
 * restarted daemon recognises its predecessor's agents (even ones that never
 * reached the registry) and two factories on one machine never touch each
 * other's agents.
 */
export function instanceIdFor(config: Pick<FactoryConfig, 'configPath'>): string {
  return createHash('sha256').update(`${hostname()}\0${config.configPath}`).digest('hex').slice(0, 12);
}

export function markerPrefixFor(config: Pick<FactoryConfig, 'configPath'>): string {
  return `factory:${instanceIdFor(config)}:`;
}

export function selfIdentity(table: ProcessTable): ProcessIdentity {
  const self = table.inspect(process.pid);
  if (!self) throw new Error(`cannot read this process (pid ${process.pid}) from /proc`);
  return { pid: process.pid, startTime: self.startTime, bootId: table.bootId() };
}

export interface Runtime {
  readonly config: FactoryConfig;
  readonly clock: Clock;
  readonly processTable: ProcessTable;
  readonly log: Logger;
}

export function createRuntime(config: FactoryConfig, log: Logger): Runtime {
  return { config, clock: new SystemClock(), processTable: new LinuxProcessTable(), log };
}

export function createIssueSource(runtime: Runtime): LocalMountIssueSource {
  return new LocalMountIssueSource({ root: runtime.config.mount.root, clock: runtime.clock });
}

/** An open session plus the daemon lock that keeps a second daemon off this config. */
export interface OpenedSession {
  readonly session: FactorySession;
  /** Closes the session in order, then releases the lock. */
  close(finalStatus?: Parameters<FactorySession['close']>[0]): Promise<void>;
}

export async function openSession(
  runtime: Runtime,
  mode: DaemonMode,
  options: { maxIterations?: number; hooks?: Pick<FactorySessionDeps, 'onOutcome' | 'onIntakePass'> } = {},
): Promise<OpenedSession> {
  const { config, clock, processTable, log } = runtime;
  const lock = await acquireDaemonLock(runtime);
  let store: SqliteStateStore | undefined;
  try {
    store = new SqliteStateStore(config.paths.stateDb);
    const graceMs = config.reaper.graceMs;
    const session = new FactorySession(
      {
        config,
        source: createIssueSource(runtime),
        store,
        fleet: new LocalProcessFleet({ instanceId: instanceIdFor(config), processTable, clock, logger: log }),
        workspace: new GitWorktreeWorkspace({ worktreesRoot: config.paths.worktreesDir }),
        clock,
        log,
        identity: selfIdentity(processTable),
        writeHeartbeat: writeHeartbeatFile,
        writeRegistry: writeRegistryFile,
        reapPredecessor: (entries) =>
          underStartupReaperLock(runtime, () => reapPredecessorAgents(entries, { processTable, clock, graceMs, markerPrefix: markerPrefixFor(config), log })),
        ...options.hooks,
      },
      mode,
      options.maxIterations ?? 0,
    );
    await session.open();
    return {
      session,
      async close(finalStatus) {
        try {
          await session.close(finalStatus);
        } finally {
          await lock.release();
        }
      },
    };
  } catch (error) {
    store?.close();
    await lock.release();
    throw error;
  }
}

/** How long a starting daemon waits for a cron reaper that holds the reaper lock. */
const STARTUP_REAPER_LOCK_WAIT_MS = 60_000;

/**
 * The startup reap takes the same lock as `factory reap-orphans`, so a cron
 * reaper and a restarting daemon never work on one registry at once. A held
 * lock is waited for (a reap takes seconds), not fought over.
 */
async function underStartupReaperLock<T>(runtime: Runtime, work: () => Promise<T>): Promise<T> {
  const deadline = runtime.clock.now() + STARTUP_REAPER_LOCK_WAIT_MS;
  for (;;) {
    try {
      return await withReaperLock(runtime.config.paths.reaperLock, { processTable: runtime.processTable, clock: runtime.clock }, work);
    } catch (error) {
      if (!isFactoryError(error, 'FACTORY_REAPER_LOCKED') || runtime.clock.now() > deadline) throw error;
      runtime.log.info({}, 'a reaper is running on this config; waiting for it before resolving the previous daemon');
      await runtime.clock.sleep(500);
    }
  }
}

/**
 * One daemon per config: the lock names its owner, and a dead owner's lock is
 * reclaimed. The daemon also keeps the lock file open while it lives, which
 * `reap-orphans --terminate-wedged-daemon` checks in /proc/<pid>/fd before it
 * signals a wedged daemon.
 */
async function acquireDaemonLock(runtime: Runtime): Promise<HeldReaperLock> {
  try {
    const lock = await acquireReaperLock(runtime.config.paths.daemonLock, { processTable: runtime.processTable, clock: runtime.clock });
    const held = await open(lock.path, 'r');
    return {
      ...lock,
      async release() {
        await held.close().catch(() => undefined);
        await lock.release();
      },
    };
  } catch (error) {
    if (isFactoryError(error, 'FACTORY_REAPER_LOCKED')) {
      const owner = error.details.owner as { pid?: number; acquiredAtMs?: number } | undefined;
      const since = owner?.acquiredAtMs ? new Date(owner.acquiredAtMs).toISOString() : 'an unknown time';
      throw new FactoryError('FACTORY_DAEMON_ALREADY_RUNNING', `another factory daemon (pid ${owner?.pid ?? '?'}, running since ${since}) already uses ${runtime.config.configPath}`, {
        details: { owner },
      });
    }
    throw error;
  }
}
