import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LocalMountIssueSource } from './adapters/issue-source/local-mount-issue-source.js';
import type { GitHubWiring } from './adapters/github/github-wiring.js';
import type { IssueSource } from './ports/issue-source.js';
import { LocalProcessFleet } from './adapters/fleet/local-process-fleet.js';
import { LinuxProcessTable } from './adapters/process-table/linux-process-table.js';
import { VerifiedProcessTerminator } from './adapters/process-table/verified-process-terminator.js';
import { SqliteStateStore } from './adapters/state-store/sqlite-state-store.js';
import { SystemClock } from './adapters/clock/system-clock.js';
import { GitWorktreeWorkspace } from './adapters/workspace/git-worktree-workspace.js';
import type { FactoryConfig } from './config/load.js';
import { teamStagesFor } from './config/team.js';
import type { DaemonMode } from './domain/heartbeat.js';
import { FactoryError, filesystemError, isFactoryError } from './errors.js';
import type { Clock } from './ports/clock.js';
import type { ProcessIdentity, ProcessTable } from './ports/process-table.js';
import type { ProcessTerminator } from './ports/process-terminator.js';
import { FactorySession, type FactorySessionDeps } from './core/factory-session.js';
import { armCrashPoint, parseCrashSetting } from './core/fault-injection.js';
import type { Logger } from './ports/logger.js';
import { FileLease } from './adapters/lease/file-lease.js';
import { FileHeartbeatStore, FileRegistryStore } from './adapters/node-state/file-node-state.js';
import { assertPreflight, findAgentProgramProblems, findPreflightProblems, type PreflightProblem } from './adapters/preflight/local-preflight.js';
import { FileRunLogStore } from './adapters/run-logs/file-run-log-store.js';
import { CliAgentHost } from './adapters/agent-drivers/cli-agent-host.js';
import type { BullmqTeamExecutor } from './adapters/team-executor/bullmq-team-executor.js';
import type { LeaderStateStore } from './adapters/state-store/leader-state-store.js';
import { HeartbeatKeeper } from './core/heartbeat-keeper.js';
import { LocalTeamExecutor } from './core/execution/local-team-executor.js';
import { RegistryKeeper } from './core/registry-keeper.js';
import type { TeamRunWorkerCounters } from './core/worker/team-run-worker.js';
import { WorktreeJanitor } from './core/worktree-janitor.js';
import type { BullmqRunConsumer } from './adapters/bullmq/bullmq-run-consumer.js';
import { FLEET_WORKER_TRANSPORT, notListening } from './domain/heartbeat.js';
import { isStillRunning } from './domain/process-identity.js';
import type { StateStore } from './ports/state-store.js';
import type { Redis } from 'ioredis';
import type { FleetStatus } from './ports/team-run-queue.js';
import type { RunLogStore } from './ports/run-log-store.js';
import { withLease, type HeldLease } from './ports/lease.js';
import { reapPredecessorAgents } from './core/reaper/reap-entries.js';
import type { StatusSources } from './core/status-snapshot.js';
import type { ReadOnlyStateStore } from './ports/state-store.js';
import { reapOrphanedAgents, type ReapOrphansRequest, type ReapReport } from './core/reaper/reap-orphans.js';
import { reapLeftoverGroups } from './core/reaper/reap-groups.js';
import { detectResourceSupport } from './adapters/resources/detect-resources.js';
import { createTeamResourceGroups } from './adapters/resources/team-resource-groups.js';
import { ProcAvailableMemorySource, PsiMemoryPressureSource } from './adapters/resources/memory-sources.js';
import type { ResourceSupportReport, TeamResources } from './ports/team-resources.js';
import { FileResumeRequests, resumeRequestsDirFor } from './adapters/resume-requests/file-resume-requests.js';

/**
 * The one place that wires adapters into the core. Everything below `core/`
 * sees ports only; this file picks the local mount, the local process fleet,
 * git worktrees, SQLite and /proc.
 */

/**
 * The Redis and BullMQ adapters load only in fleet mode (`fleet.backend: "bullmq"`): a local
 * daemon, and every CLI verb on a local config, does not pay their memory (about 35 MB) or start-up time.
 */
async function loadFleetAdapters() {
  const [executor, connection, keys, lease, redisStore, leaderStore, queueSettings, runKeys, directory] = await Promise.all([
    import('./adapters/team-executor/bullmq-team-executor.js'),
    import('./adapters/redis/connection.js'),
    import('./adapters/redis/keys.js'),
    import('./adapters/lease/redis-lease.js'),
    import('./adapters/state-store/redis-state-store.js'),
    import('./adapters/state-store/leader-state-store.js'),
    import('./adapters/bullmq/queue-settings.js'),
    import('./adapters/bullmq/team-run-keys.js'),
    import('./adapters/bullmq/worker-directory.js'),
  ]);
  return {
    BullmqTeamExecutor: executor.BullmqTeamExecutor,
    connectRedis: connection.connectRedis,
    connectSuitableRedis: connection.connectSuitableRedis,
    redactRedisUrl: connection.redactRedisUrl,
    fleetKeys: keys.fleetKeys,
    RedisLease: lease.RedisLease,
    RedisStateStore: redisStore.RedisStateStore,
    LeaderStateStore: leaderStore.LeaderStateStore,
    DEFAULT_FLEET_QUEUE_SETTINGS: queueSettings.DEFAULT_FLEET_QUEUE_SETTINGS,
    teamRunKeys: runKeys.teamRunKeys,
    readFleetStatus: directory.readFleetStatus,
  };
}

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
  const { pid } = table.self();
  const self = table.inspect(pid);
  if (!self) throw new Error(`cannot read this process (pid ${pid}) from /proc`);
  return { pid, startTime: self.startTime, bootId: table.bootId() };
}

export interface Runtime {
  readonly config: FactoryConfig;
  readonly clock: Clock;
  readonly processTable: ProcessTable;
  /** The one way a signal is sent: identity re-proven before each; the fleet and the reaper share it. */
  readonly terminator: ProcessTerminator;
  readonly log: Logger;
}

let crashPointArmed = false;

export function createRuntime(config: FactoryConfig, log: Logger): Runtime {
  // Fault-injection tests only: FACTORY_CRASH_AT makes this daemon die like a kill -9 at a dispatch step.
  if (!crashPointArmed) {
    crashPointArmed = true;
    armCrashPoint(parseCrashSetting(process.env.FACTORY_CRASH_AT), () => process.kill(process.pid, 'SIGKILL'));
  }
  const clock = new SystemClock();
  const processTable = new LinuxProcessTable();
  return { config, clock, processTable, terminator: new VerifiedProcessTerminator({ processTable, clock }), log };
}

export async function createIssueSource(runtime: Runtime): Promise<IssueSource> {
  return (await githubWiringFor(runtime))?.source ?? new LocalMountIssueSource({ root: runtime.config.mount.root, clock: runtime.clock });
}

const githubByRuntime = new WeakMap<Runtime, GitHubWiring>();

/**
 * The GitHub source, its label progress, code host and webhook secret, built
 * once per runtime (one client, one rate budget) when `source.kind` is
 * "github"; undefined for the mount. Credentials come from this process's
 * environment or the files the config names.
 */
export async function githubWiringFor(runtime: Pick<Runtime, 'config' | 'clock' | 'log'>): Promise<GitHubWiring | undefined> {
  const { config } = runtime;
  if (config.source.kind !== 'github' || config.source.github === undefined) return undefined;
  const known = githubByRuntime.get(runtime as Runtime);
  if (known) return known;
  // Octokit loads only for a GitHub source: a mount-only daemon and its CLI verbs do not carry it.
  const { createGitHubWiring } = await import('./adapters/github/github-wiring.js');
  const wiring = createGitHubWiring({
    github: config.source.github,
    publish: config.publish,
    shepherd: config.shepherd,
    branchPrefix: config.dispatch.branchPrefix,
    env: process.env,
    clock: runtime.clock,
    log: runtime.log.child({ component: 'github' }),
  });
  githubByRuntime.set(runtime as Runtime, wiring);
  return wiring;
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
  options: {
    maxIterations?: number;
    hooks?: Pick<FactorySessionDeps, 'onOutcome' | 'onIntakePass'>;
    /** Fleet mode: ends the wait for the leader lease (a stop signal while standing by); open() then rejects with the signal's reason. */
    standbySignal?: AbortSignal;
  } = {},
): Promise<OpenedSession> {
  const { config, clock, processTable, terminator, log } = runtime;
  // The lock first: another daemon on this config, or a state folder it cannot write, is the first thing to say.
  const lock = await acquireDaemonLock(runtime);
  const resources = teamResourcesFor(runtime);
  let store: StateStore | undefined;
  let executor: BullmqTeamExecutor | undefined;
  let fleetRedis: Redis | undefined;
  let opening: FactorySession | undefined;
  try {
    // Teams run here (the local fleet): a repo or agent program that every run would trip over refuses the start
    // before anything is written. With fleet.backend "bullmq" they run on workers, and each worker checks its own.
    if (config.fleet.backend !== 'bullmq') assertPreflight(config, await preflightProblemsFor(config));
    const graceMs = config.reaper.graceMs;
    if (config.fleet.backend === 'bullmq') {
      // fleet.backend "bullmq": the leader lease and the state live in Redis, teams run on queue workers,
      // and every job carries the lease epoch (the session's epoch).
      const plane = await openFleetControlPlane(runtime, mode, {
        currentEpoch: () => opening?.epoch ?? 0,
        onLeaseLost: (error) => opening?.stopActing(error),
        ...(options.standbySignal ? { signal: options.standbySignal } : {}),
      });
      ({ store, executor, redis: fleetRedis } = plane);
    } else {
      store = new SqliteStateStore(config.paths.stateDb);
    }
    const session = new FactorySession(
      {
        config,
        source: await createIssueSource(runtime),
        ...(await githubSessionDeps(runtime)),
        store,
        fleet: new LocalProcessFleet({ instanceId: instanceIdFor(config), processTable, clock, terminator, logger: log }),
        workspace: new GitWorktreeWorkspace({ worktreesRoot: config.paths.worktreesDir }),
        clock,
        log,
        identity: selfIdentity(processTable),
        hostname: hostname(),
        heartbeats: new FileHeartbeatStore(config.loop.heartbeatPath),
        registryStore: new FileRegistryStore(config.loop.registryPath),
        runLogs: runLogStoreFor(config),
        agentCli: new CliAgentHost(),
        resumeRequests: resumeRequestsFor(config),
        ...(executor ? { executor, runsOutliveSession: true } : {}),
        resources,
        reapPredecessor: (entries) =>
          underStartupReaperLock(runtime, async () => {
            // A crashed predecessor's team groups go first: one kill per group, escapees included.
            await reapLeftoverGroups(resources.groups, { dryRun: false, log });
            return reapPredecessorAgents(entries, { processTable, terminator, graceMs, markerPrefix: markerPrefixFor(config), log });
          }),
        ...options.hooks,
      },
      mode,
      options.maxIterations ?? 0,
    );
    opening = session;
    await session.open();
    return {
      session,
      async close(finalStatus) {
        try {
          await session.close(finalStatus);
        } finally {
          await executor?.close();
          await fleetRedis?.quit().catch(() => fleetRedis?.disconnect());
          await lock.release();
        }
      },
    };
  } catch (error) {
    await executor?.close();
    await store?.close();
    fleetRedis?.disconnect();
    await lock.release();
    throw error;
  }
}

/** The fleet control plane's parts: the Redis connection, the state store under the leader lease, the queue executor. */
interface FleetControlPlane {
  readonly redis: Redis;
  readonly store: LeaderStateStore;
  readonly executor: BullmqTeamExecutor;
}

/**
 * Fleet mode: a Redis that passed the startup checks, the leader lease and
 * the Redis state store under it, and the queue executor fenced by the lease.
 * Nothing waits here: the session's open() stands by in `beginEpoch` until
 * the lease is free (the heartbeat says `standby` meanwhile), and the lease's
 * loss sends the session to its fatal stop.
 */
async function openFleetControlPlane(
  runtime: Runtime,
  mode: DaemonMode,
  hooks: { currentEpoch: () => number; onLeaseLost: (error: FactoryError) => void; signal?: AbortSignal },
): Promise<FleetControlPlane> {
  const { config, clock, processTable, log } = runtime;
  const redisConfig = config.fleet.redis;
  if (!redisConfig) throw new FactoryError('FACTORY_CONFIG_INVALID', 'fleet.backend is "bullmq" but fleet.redis.url is missing');
  const { connectSuitableRedis, fleetKeys, RedisLease, LeaderStateStore, RedisStateStore, redactRedisUrl, BullmqTeamExecutor, teamRunKeys, DEFAULT_FLEET_QUEUE_SETTINGS } = await loadFleetAdapters();
  const redis = await connectSuitableRedis({ url: redisConfig.url, connectionName: `factory-control:${hostname()}`, log });
  try {
    const keys = fleetKeys(redisConfig.keyPrefix, config.fleet.pool);
    const identity = selfIdentity(processTable);
    const lease = new RedisLease({
      redis,
      keys,
      owner: { ...identity, hostname: hostname() },
      clock,
      ttlMs: config.fleet.lease.ttlMs,
      renewEveryMs: config.fleet.lease.renewEveryMs,
      safetyMarginMs: config.fleet.lease.safetyMarginMs,
      log,
      onLost: (loss) =>
        hooks.onLeaseLost(
          new FactoryError(
            'FACTORY_LEASE_LOST',
            `the leader lease (epoch ${loss.epoch}) was lost (${loss.reason}, ${Math.round(loss.sinceLastRenewMs)} ms after the last renewal was sent): this control plane stops acting`,
            {
              details: { epoch: loss.epoch, reason: loss.reason },
            },
          ),
        ),
    });
    let standbyHeartbeat: HeartbeatKeeper | undefined;
    const store = new LeaderStateStore({
      inner: new RedisStateStore({ redis, keys, lease }),
      clock,
      // A standby polls at a fraction of the TTL, so it takes over well within it.
      pollMs: Math.max(50, Math.floor(config.fleet.lease.ttlMs / 10)),
      ...(hooks.signal ? { signal: hooks.signal } : {}),
      onStandby: async (holder) => {
        if (standbyHeartbeat) return;
        log.info({ leader: holder }, 'another control plane holds the leader lease: standing by');
        standbyHeartbeat = new HeartbeatKeeper({
          store: new FileHeartbeatStore(config.loop.heartbeatPath),
          hostname: hostname(),
          registryPath: config.loop.registryPath,
          statePath: redactRedisUrl(redisConfig.url),
          configPath: config.configPath,
          mode,
          maxIterations: 0,
          identity,
          epoch: 0,
          intervalMs: config.loop.heartbeatIntervalMs,
          staleMs: config.loop.heartbeatStaleMs,
          clock,
          log,
          gauges: { inFlightTeams: () => 0, queuedIssues: () => 0, iteration: () => 0, subscription: () => notListening('standby') },
        });
        await standbyHeartbeat.write('standby');
        standbyHeartbeat.startRefreshing();
      },
      onLeading: async (epoch) => {
        await standbyHeartbeat?.stopRefreshing();
        log.info({ epoch }, 'leading: this control plane holds the leader lease');
      },
      onStandbyEnded: async () => {
        // Stopped while standing by: readers must see an orderly stop, not a `standby` of a dead pid (verdict stale).
        await standbyHeartbeat?.stopRefreshing();
        await standbyHeartbeat?.write('stopped').catch((error: Error) => log.warn({ err: error.message }, 'could not write the stopped heartbeat'));
      },
    });
    const executor = await BullmqTeamExecutor.open({
      url: redisConfig.url,
      keys: teamRunKeys({ keyPrefix: redisConfig.keyPrefix, pool: config.fleet.pool }),
      // fleet.queue holds exactly the settings a user may change; the rest keep their defaults.
      settings: { ...DEFAULT_FLEET_QUEUE_SETTINGS, ...config.fleet.queue },
      agents: config.agents,
      currentEpoch: hooks.currentEpoch,
      lease: {
        keys,
        grant: () => {
          const held = store.heldLease;
          return held?.stillValid() ? { epoch: held.epoch, value: held.fenceValue } : undefined;
        },
      },
      clock,
      log,
    });
    return { redis, store, executor };
  } catch (error) {
    redis.disconnect();
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
      return await withLease(new FileLease({ path: runtime.config.paths.reaperLock, processTable: runtime.processTable, clock: runtime.clock }), work);
    } catch (error) {
      if (!isFactoryError(error, 'FACTORY_LEASE_HELD') || runtime.clock.now() > deadline) throw error;
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
export async function acquireDaemonLock(runtime: Runtime, holder: 'daemon' | 'worker' = 'daemon'): Promise<HeldLease> {
  try {
    return await refuseForeignWriters(
      runtime,
      await new FileLease({ path: runtime.config.paths.daemonLock, processTable: runtime.processTable, clock: runtime.clock, keepOpenWhileHeld: true }).acquire(),
    );
  } catch (error) {
    if (isFactoryError(error, 'FACTORY_LEASE_HELD')) {
      const owner = error.details.owner as { pid?: number; acquiredAtMs?: number } | undefined;
      const since = owner?.acquiredAtMs ? new Date(owner.acquiredAtMs).toISOString() : 'an unknown time';
      // A worker's config may be held by a daemon or another worker alike: both take this lock.
      const who = holder === 'daemon' ? 'another factory daemon' : 'another worker or daemon';
      throw new FactoryError('FACTORY_DAEMON_ALREADY_RUNNING', `${who} (pid ${owner?.pid ?? '?'}, running since ${since}) already uses ${runtime.config.configPath}`, {
        details: { owner },
      });
    }
    throw error;
  }
}

/**
 * The daemon lock guards `state.dir`, but the heartbeat and registry may be
 * placed elsewhere (`loop.heartbeatPath`, `loop.registryPath`). Two configs
 * whose state folders differ but whose registry is one file would each take
 * their own lock, and the second daemon would reap the first one's live
 * agents as a "crashed predecessor's". So, lock in hand, the heartbeat's and
 * the registry's last writer must be dead (or this process): a live writer on
 * this boot is another daemon, and nothing is touched.
 */
async function refuseForeignWriters(runtime: Runtime, lock: HeldLease): Promise<HeldLease> {
  const { config, processTable } = runtime;
  const self = selfIdentity(processTable);
  const heartbeat = await new FileHeartbeatStore(config.loop.heartbeatPath).read().catch(() => undefined);
  const registry = await new FileRegistryStore(config.loop.registryPath).read().catch(() => undefined);
  const writers = [
    { setting: 'loop.heartbeatPath', path: config.loop.heartbeatPath, owner: heartbeat?.kind === 'ok' ? heartbeat.value : null },
    { setting: 'loop.registryPath', path: config.loop.registryPath, owner: registry?.kind === 'ok' ? registry.value.file.owner : null },
  ];
  for (const { setting, path, owner } of writers) {
    if (owner === null || owner.pid === self.pid || owner.bootId !== self.bootId || !isStillRunning(processTable, owner)) continue;
    await lock.release().catch(() => undefined);
    const other = heartbeat?.kind === 'ok' && heartbeat.value.pid === owner.pid ? ` with config ${heartbeat.value.configPath}` : '';
    throw new FactoryError(
      'FACTORY_DAEMON_ALREADY_RUNNING',
      `another factory process (pid ${owner.pid}${other}) is alive and writes ${path} (${setting}); two daemons must never share a heartbeat or registry. Give each config its own state.dir (the heartbeat and registry live there unless ${setting} moves them)`,
      { details: { owner: { pid: owner.pid }, path, setting } },
    );
  }
  return lock;
}

const teamResourcesByRuntime = new WeakMap<Runtime, TeamResources>();

/**
 * What this machine offers for team budgets, found once per runtime (detection
 * probes the cgroup trees with a mkdir): the groups of the chosen mechanism
 * (cgroup v2, v1, or RSS sampling), available memory (the daemon's own group
 * limit inside a container, else MemAvailable) and PSI where readable.
 */
export function teamResourcesFor(runtime: Pick<Runtime, 'config' | 'processTable'>): TeamResources {
  const known = teamResourcesByRuntime.get(runtime as Runtime);
  if (known) return known;
  const report = detectResourceSupport();
  const resources: TeamResources = {
    report,
    groups: createTeamResourceGroups(report, { instanceId: instanceIdFor(runtime.config), processTable: runtime.processTable }),
    availableMemory: new ProcAvailableMemorySource(ownMemoryGroupOf(report)),
    ...(report.pressure ? { pressure: new PsiMemoryPressureSource() } : {}),
  };
  teamResourcesByRuntime.set(runtime as Runtime, resources);
  return resources;
}

/** The daemon's own memory group (v1 hierarchy or v2 group), whose limit caps what its teams can get. */
function ownMemoryGroupOf(report: ResourceSupportReport): { ownMemoryGroup?: { path: string; version: 1 | 2 } } {
  const v1Memory = report.v1.find((hierarchy) => hierarchy.controller === 'memory');
  if (v1Memory) return { ownMemoryGroup: { path: v1Memory.parentPath, version: 1 } };
  if (report.v2.mountPath !== null && report.v2.ownGroup !== null && report.v2.controllers.includes('memory')) {
    return { ownMemoryGroup: { path: join(report.v2.mountPath, report.v2.ownGroup), version: 2 } };
  }
  return {};
}

/** `reap-orphans` on this host's files: where the reaper finds the daemon's records, its lock and the daemon's. */
export interface ReapOrphansOptions extends Omit<ReapOrphansRequest, 'heartbeats' | 'registry' | 'lease' | 'daemonLock' | 'existingPaths' | 'terminator'> {
  readonly heartbeatPath: string;
  readonly registryPath: string;
  readonly lockPath: string;
  /** Defaults to the verified terminator over `processTable` and `clock`. */
  readonly terminator?: ProcessTerminator;
}

export type { ReapReport } from './core/reaper/reap-orphans.js';

/** The reaper wired to the heartbeat and registry files, the reaper lock file and the local process table. */
export function reapOrphans(options: ReapOrphansOptions): Promise<ReapReport> {
  const { heartbeatPath, registryPath, lockPath, terminator, ...rest } = options;
  return reapOrphanedAgents({
    ...rest,
    heartbeats: new FileHeartbeatStore(heartbeatPath),
    registry: new FileRegistryStore(registryPath),
    lease: new FileLease({ path: lockPath, processTable: options.processTable, clock: options.clock }),
    ...(options.daemonLockPath !== undefined ? { daemonLock: new FileLease({ path: options.daemonLockPath, processTable: options.processTable, clock: options.clock }) } : {}),
    terminator: terminator ?? new VerifiedProcessTerminator({ processTable: options.processTable, clock: options.clock }),
    existingPaths: async (paths) => {
      const exists = await Promise.all(
        paths.map((path) =>
          access(path).then(
            () => true,
            () => false,
          ),
        ),
      );
      return paths.filter((_, index) => exists[index]);
    },
  });
}

/**
 * The state database opened read-only (status readers, dry runs, `logs`): the
 * one place it is opened that way. `whenMissing` when no daemon created it yet.
 */
export async function readStateStore<T>(config: FactoryConfig, read: (store: ReadOnlyStateStore) => Promise<T>, whenMissing: T): Promise<T> {
  const redisConfig = config.fleet.backend === 'bullmq' ? config.fleet.redis : undefined;
  if (redisConfig) {
    // Fleet mode: the state is in Redis, shared by every control plane of the pool; read without a lease.
    const { connectRedis, RedisStateStore, fleetKeys } = await loadFleetAdapters();
    const redis = await connectRedis({ url: redisConfig.url, connectionName: `factory-status:${hostname()}` });
    const store = new RedisStateStore({ redis, keys: fleetKeys(redisConfig.keyPrefix, config.fleet.pool), ownsConnection: true });
    try {
      return await read(store);
    } finally {
      await store.close();
    }
  }
  if (!stateDbExists(config.paths.stateDb)) return whenMissing;
  const store = SqliteStateStore.openReadOnly(config.paths.stateDb);
  try {
    return await read(store);
  } finally {
    await store.close();
  }
}

/** No database yet means no daemon ever ran; a state folder this user cannot read must not look like that. */
function stateDbExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw filesystemError(error, { path, action: 'read the state database', access: 'read', setting: 'state.dir' }) ?? error;
  }
}

/** The daemon's heartbeat and registry as this host keeps them. */
export function nodeStateFor(config: FactoryConfig): { readonly heartbeats: FileHeartbeatStore; readonly registry: FileRegistryStore } {
  return { heartbeats: new FileHeartbeatStore(config.loop.heartbeatPath), registry: new FileRegistryStore(config.loop.registryPath) };
}

/** What `factory status` and the state API read, wired to this host's files and database. */
export function statusSourcesFor(config: FactoryConfig, processTable: ProcessTable): StatusSources {
  return {
    configPath: config.configPath,
    staleMs: config.loop.heartbeatStaleMs,
    dispatch: { batchSize: config.dispatch.batchSize, maxAttempts: config.dispatch.maxAttempts },
    ...nodeStateFor(config),
    processTable,
    readState: (read, whenMissing) => readStateStore(config, read, whenMissing),
    ...(config.fleet.backend === 'bullmq' && config.fleet.redis ? { readFleet: (nowMs: number) => readFleetStatusOnce(config, nowMs) } : {}),
  };
}

/** The fleet as Redis says now, on a connection of its own (status readers have no daemon to ask). */
async function readFleetStatusOnce(config: FactoryConfig, nowMs: number): Promise<FleetStatus> {
  const redisConfig = config.fleet.redis!;
  const { connectRedis, readFleetStatus, teamRunKeys, fleetKeys } = await loadFleetAdapters();
  const redis = await connectRedis({ url: redisConfig.url, connectionName: `factory-status:${hostname()}` });
  try {
    return await readFleetStatus(
      redis,
      { queue: teamRunKeys({ keyPrefix: redisConfig.keyPrefix, pool: config.fleet.pool }), lease: fleetKeys(redisConfig.keyPrefix, config.fleet.pool) },
      { nowMs, refreshIntervalMs: config.loop.heartbeatIntervalMs },
    );
  } finally {
    redis.disconnect();
  }
}

/**
 * What would make every team of this config fail to start on this host: routed repos that are not
 * git checkouts with a commit, agent programs that are not installed. `start`, `run-once`, `loop`,
 * `dispatch` refuse on them; `triage` and the dry runs show them as warnings.
 */
export function preflightProblemsFor(config: FactoryConfig): Promise<PreflightProblem[]> {
  return findPreflightProblems(config, process.env.PATH);
}

/** Agents' logs as this host keeps them: where the fleet writes, what `logs` and the log endpoint read. */
export function runLogStoreFor(config: FactoryConfig): RunLogStore {
  const agentOrder = teamStagesFor(config).flatMap((stage) => stage.agents.map((agent) => agent.slot));
  return new FileRunLogStore(config.paths.logsDir, { agentOrder });
}

/** With a GitHub source: publishing and the shepherd (the code host) and the label lifecycle (progress). */
async function githubSessionDeps(runtime: Runtime): Promise<Pick<FactorySessionDeps, 'codeHost' | 'progress'>> {
  const github = await githubWiringFor(runtime);
  if (github === undefined) return {};
  // Before anything is read back from GitHub: without its own login Factory cannot tell its markers from pasted ones.
  await github.identity.login();
  return { codeHost: github.codeHost, progress: github.progress };
}

/** Where `factory resume` leaves requests for the daemon running on `config` (taken on its supervision pass). */
export function resumeRequestsFor(config: Pick<FactoryConfig, 'paths'>): FileResumeRequests {
  return new FileResumeRequests(resumeRequestsDirFor(config.paths.stateDir));
}

/**
 * What only `factory worker` uses: the queue consumer, the worker directory,
 * the epoch floor, the per-worker clone and the run handler. Loaded when a
 * worker opens, so a daemon and every other verb do not carry Redis or BullMQ.
 */
async function loadWorkerAdapters() {
  const [consumer, epochFloor, queueSettings, runKeys, directory, connection, repoCache, runWorker] = await Promise.all([
    import('./adapters/bullmq/bullmq-run-consumer.js'),
    import('./adapters/bullmq/epoch-floor-file.js'),
    import('./adapters/bullmq/queue-settings.js'),
    import('./adapters/bullmq/team-run-keys.js'),
    import('./adapters/bullmq/worker-directory.js'),
    import('./adapters/redis/connection.js'),
    import('./adapters/workspace/repo-cache-workspace.js'),
    import('./core/worker/team-run-worker.js'),
  ]);
  return {
    BullmqRunConsumer: consumer.BullmqRunConsumer,
    FileEpochFloor: epochFloor.FileEpochFloor,
    DEFAULT_FLEET_QUEUE_SETTINGS: queueSettings.DEFAULT_FLEET_QUEUE_SETTINGS,
    teamRunKeys: runKeys.teamRunKeys,
    announceWorker: directory.announceWorker,
    removeWorker: directory.removeWorker,
    connectRedis: connection.connectRedis,
    connectSuitableRedis: connection.connectSuitableRedis,
    RepoCacheWorkspace: repoCache.RepoCacheWorkspace,
    TeamRunWorker: runWorker.TeamRunWorker,
  };
}

/**
 * With a GitHub source, the credential a worker's clones, fetches and pushes
 * use for the repos on that GitHub: the config's token or App, read from this
 * worker's own environment and files (docs/fleet.md). Undefined otherwise: the
 * clones use what their `origin` carries, as before.
 */
async function workerGitCredential(runtime: Pick<Runtime, 'config' | 'log'>) {
  const { config } = runtime;
  if (config.source.kind !== 'github' || config.source.github === undefined) return undefined;
  const { createGitHubGitCredential } = await import('./adapters/github/github-wiring.js');
  return createGitHubGitCredential({ github: config.source.github, env: process.env, log: runtime.log.child({ component: 'github' }) });
}

/** A fleet worker consuming its pool's queue, opened by {@link openWorker}. */
export interface OpenedWorker {
  /** Runs reported, handed back, self-fenced, ... since the worker opened. */
  readonly counters: Readonly<TeamRunWorkerCounters>;
  /** The ordered stop: no new runs, running ones get fleet.worker.shutdownGraceMs, then the worker leaves the directory and writes `stopped`. */
  drain(): Promise<void>;
  /** Releases what is still held (consumer, directory connection, heartbeat refresh, the config lock); call it after drain() or on failure. */
  close(): Promise<void>;
}

/**
 * `factory worker`: checks Redis, takes this config's lock, reaps the
 * previous worker's agents, writes the heartbeat and registry, announces the
 * worker in the pool's directory and starts consuming. `armStop` is called
 * once the heartbeat is up and before the queue is joined: from then on a
 * stop signal must drain the worker instead of killing the process.
 */
export async function openWorker(runtime: Runtime, options: { slots: number; node: string; armStop: () => void }): Promise<OpenedWorker> {
  const { config, clock, processTable, terminator, log } = runtime;
  const { slots, node } = options;
  const redisConfig = config.fleet.redis;
  if (!redisConfig) throw new FactoryError('FACTORY_CONFIG_INVALID', 'a fleet worker needs fleet.redis.url');
  // The jobs name roles; the programs are this worker's own (agents.<role>.command).
  assertPreflight(config, findAgentProgramProblems(config, process.env.PATH));
  // A token this worker cannot read fails here, before it takes any run, rather than as a git error (or prompt) in each run.
  const repoCredential = config.fleet.worker.repoCacheDir ? await workerGitCredential(runtime) : undefined;
  const adapters = await loadWorkerAdapters();
  const settings = { ...adapters.DEFAULT_FLEET_QUEUE_SETTINGS, ...config.fleet.queue };

  // Refuse a Redis that cannot keep the fleet's promises before touching anything.
  const probe = await adapters.connectSuitableRedis({ url: redisConfig.url, connectionName: `factory-worker-check:${node}`, log });
  probe.disconnect();

  // One worker (or daemon) per config: its registry and heartbeat are this process's alone.
  const lock = await acquireDaemonLock(runtime, 'worker');
  const registryStore = new FileRegistryStore(config.loop.registryPath);
  let heartbeat: HeartbeatKeeper | undefined;
  let consumer: BullmqRunConsumer | undefined;
  let directory: Redis | undefined;
  let retention: WorktreeJanitor | undefined;
  let announceTimer: ReturnType<typeof clock.setTimeout> | undefined;
  // Cleared before the entry is removed, so a refresh in flight cannot put it back.
  let announcing = true;
  const close = async (): Promise<void> => {
    await consumer?.close().catch(() => undefined);
    await retention?.close();
    announcing = false;
    clock.clearTimeout(announceTimer);
    directory?.disconnect();
    await heartbeat?.stopRefreshing();
    await lock.release();
  };
  const failed = async (error: unknown): Promise<never> => {
    await heartbeat?.write('failed').catch(() => undefined);
    throw error;
  };
  try {
    const previous = await registryStore.read();
    const entries = previous.kind === 'ok' ? previous.value.file.agents : [];
    const reapLease = new FileLease({ path: config.paths.reaperLock, processTable, clock });
    const { survivors } = await withLease(reapLease, () => reapPredecessorAgents(entries, { processTable, terminator, graceMs: config.reaper.graceMs, markerPrefix: markerPrefixFor(config), log }));
    if (survivors.length > 0) throw new FactoryError('FACTORY_PREDECESSOR_UNRESOLVED', `${survivors.length} agent(s) of the previous worker on this config are still alive and could not be reaped`);

    const identity = selfIdentity(processTable);
    const epochs = new adapters.FileEpochFloor(join(config.paths.stateDir, 'worker-epoch.json'));
    const registry = new RegistryKeeper({ store: registryStore, owner: { ...identity, hostname: hostname(), epoch: await epochs.highest() }, clock });
    await registry.flush();
    let running = (): number => 0;
    const keeper = new HeartbeatKeeper({
      store: new FileHeartbeatStore(config.loop.heartbeatPath),
      hostname: hostname(),
      registryPath: config.loop.registryPath,
      statePath: join(config.paths.stateDir, 'worker-epoch.json'),
      configPath: config.configPath,
      mode: 'live',
      maxIterations: 0,
      identity,
      epoch: await epochs.highest(),
      intervalMs: config.loop.heartbeatIntervalMs,
      staleMs: config.loop.heartbeatStaleMs,
      clock,
      log,
      gauges: { inFlightTeams: () => running(), queuedIssues: () => 0, iteration: () => 0, subscription: () => notListening(FLEET_WORKER_TRANSPORT) },
    });
    heartbeat = keeper;
    await keeper.write('running');
    keeper.startRefreshing();

    const worktrees = new GitWorktreeWorkspace({ worktreesRoot: config.paths.worktreesDir });
    const cacheDir = config.fleet.worker.repoCacheDir;
    const repoCache = cacheDir
      ? new adapters.RepoCacheWorkspace({
          cacheDir: resolve(dirname(config.configPath), cacheDir),
          inner: worktrees,
          remoteTimeoutMs: config.fleet.worker.remoteGitTimeoutMs,
          ...(repoCredential ? { credential: repoCredential } : {}),
        })
      : undefined;
    const workspace = repoCache ?? worktrees;
    const fleet = new LocalProcessFleet({ instanceId: instanceIdFor(config), processTable, clock, terminator, logger: log });
    const executor = new LocalTeamExecutor({
      fleet,
      workspace,
      registry,
      clock,
      log,
      runLogs: runLogStoreFor(config),
      killGraceMs: config.runs.killGraceMs,
      noChanges: config.runs,
      agentCli: new CliAgentHost(),
    });
    const worker = new adapters.TeamRunWorker({
      executor,
      epochs,
      clock,
      monotonicNow: () => performance.now(),
      node,
      lockDurationMs: settings.lockDurationMs,
      log,
      // With a repo cache the run's worktree belongs to this worker's clone of the remote: a succeeded branch goes back there.
      ...(repoCache
        ? {
            pushBranch: (plan: { repo: string }, outcome: { worktree: string; branch: string }) => repoCache.pushBranch(plan.repo, outcome.worktree, outcome.branch),
            // Parked work goes to the same remote, so a resume can run on any worker; removed there once the resumed run ended.
            pushPark: (plan: { repo: string }, park: { ref: string }) => repoCache.pushPark(plan.repo, park.ref),
            deleteRemotePark: (plan: { repo: string }, park: { ref: string }) => repoCache.deleteRemotePark(plan.repo, park.ref),
          }
        : {}),
    });
    running = () => worker.runningCount;
    // Worktree retention (docs/operations.md): a worker keeps no claims, so an issue with no run on this worker
    // whose worktree nobody touched for the period loses it; its branch, park refs and leftover ref stay in the clone.
    const keepFinishedForMs = config.workspace.keepFinishedForMs;
    if (keepFinishedForMs !== null) {
      retention = new WorktreeJanitor({ workspace, teamRunning: (issueKey) => worker.runsIssue(issueKey), clock, log: log.child({ component: 'worktree-retention' }) });
      retention.start({ intervalMs: config.workspace.pruneIntervalMs, keepFinishedForMs });
    }

    options.armStop();
    const queueKeys = adapters.teamRunKeys({ keyPrefix: redisConfig.keyPrefix, pool: config.fleet.pool });
    // Announce this worker in the pool's `workers` hash every heartbeat interval (status, the dashboard and /metrics read it).
    const directoryRedis = await adapters.connectRedis({ url: redisConfig.url, connectionName: `factory-worker-directory:${node}` });
    directory = directoryRedis;
    const startedAtMs = clock.now();
    let workerStatus: 'running' | 'stopping' = 'running';
    let lastAnnounce: Promise<void> = Promise.resolve();
    const announce = (): Promise<void> =>
      (lastAnnounce = adapters
        .announceWorker(directoryRedis, queueKeys, {
          node,
          hostname: hostname(),
          pid: process.pid,
          slots,
          runs: worker.runningRuns(),
          startedAtMs,
          updatedAtMs: clock.now(),
          status: workerStatus,
          counters: { ...worker.counters },
        })
        .catch((error: Error) => log.warn({ err: error.message }, 'could not announce this worker in Redis; retrying next interval')));
    const announceLoop = (): void => {
      if (announcing) announceTimer = clock.setTimeout(() => void announce().finally(announceLoop), config.loop.heartbeatIntervalMs);
    };
    await announce();
    announceLoop();
    consumer = await adapters.BullmqRunConsumer.open({
      url: redisConfig.url,
      keys: queueKeys,
      node,
      slots,
      settings,
      agents: config.agents,
      handle: (claimed) => worker.handle(claimed),
      onCancel: (request) => void worker.cancel(request),
      log,
    });
    const opened = consumer;

    return {
      counters: worker.counters,
      close,
      async drain() {
        try {
          await keeper.write('stopping');
          // Readers see `stopping` while the runs drain; the entry keeps refreshing until it is removed.
          workerStatus = 'stopping';
          await announce();
          const fetchingStopped = opened.stopFetching();
          await worker.drain(config.fleet.worker.shutdownGraceMs);
          // After the runs: a pass keeps the worktrees of runs still draining, and the stop waits for at most one removal.
          await retention?.close();
          await fetchingStopped;
          await opened.close();
          consumer = undefined;
          announcing = false;
          clock.clearTimeout(announceTimer);
          await lastAnnounce;
          await adapters.removeWorker(directoryRedis, queueKeys, node).catch(() => undefined);
          await registry.flush();
          await keeper.stopRefreshing();
          await keeper.write('stopped');
        } catch (error) {
          return failed(error);
        }
      },
    };
  } catch (error) {
    try {
      return await failed(error);
    } finally {
      await close();
    }
  }
}
