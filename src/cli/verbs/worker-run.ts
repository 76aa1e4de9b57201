import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { BullmqRunConsumer } from '../../adapters/bullmq/bullmq-run-consumer.js';
import { FileEpochFloor } from '../../adapters/bullmq/epoch-floor-file.js';
import { DEFAULT_FLEET_QUEUE_SETTINGS, type FleetQueueSettings } from '../../adapters/bullmq/queue-settings.js';
import { teamRunKeys } from '../../adapters/bullmq/team-run-keys.js';
import { announceWorker, removeWorker } from '../../adapters/bullmq/worker-directory.js';
import { connectRedis } from '../../adapters/redis/connection.js';
import { LocalProcessFleet } from '../../adapters/fleet/local-process-fleet.js';
import { CliAgentHost } from '../../adapters/agent-drivers/cli-agent-host.js';
import { FileLease } from '../../adapters/lease/file-lease.js';
import { FileRegistryStore, FileHeartbeatStore } from '../../adapters/node-state/file-node-state.js';
import { connectSuitableRedis } from '../../adapters/redis/connection.js';
import { GitWorktreeWorkspace } from '../../adapters/workspace/git-worktree-workspace.js';
import { RepoCacheWorkspace } from '../../adapters/workspace/repo-cache-workspace.js';
import { LocalTeamExecutor } from '../../core/execution/local-team-executor.js';
import { HeartbeatKeeper } from '../../core/heartbeat-keeper.js';
import { reapPredecessorAgents } from '../../core/reaper/reap-entries.js';
import { RegistryKeeper } from '../../core/registry-keeper.js';
import { TeamRunWorker } from '../../core/worker/team-run-worker.js';
import { notListening } from '../../domain/heartbeat.js';
import { FactoryError, isFactoryError } from '../../errors.js';
import { instanceIdFor, markerPrefixFor, runLogStoreFor, selfIdentity } from '../../main.js';
import { withLease } from '../../ports/lease.js';
import { flagString } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { onStopSignal } from '../signals.js';
import type { ParsedArgs } from '../args.js';
import type { Output } from '../output.js';

/** `factory worker`'s body (see worker.ts for its usage): loaded only when a worker runs. */
export async function runWorker(args: ParsedArgs, output: Output): Promise<number> {
  const runtime = runtimeFromArgs(args);
  const { config, clock, processTable, terminator, log } = runtime;
  const redisConfig = config.fleet.redis;
  if (!redisConfig) throw new FactoryError('FACTORY_USAGE', `factory worker needs fleet.redis.url in ${config.configPath} (the queue it consumes)`);
  const slotsFlag = flagString(args, 'slots');
  const slots = slotsFlag === undefined ? config.fleet.worker.slots : Number(slotsFlag);
  if (!Number.isInteger(slots) || slots < 1 || slots > 256) throw new FactoryError('FACTORY_USAGE', `--slots: expected a whole number from 1 to 256, got "${slotsFlag}"`);
  const node = config.fleet.worker.node ?? hostname();
  const settings: FleetQueueSettings = {
    ...DEFAULT_FLEET_QUEUE_SETTINGS,
    lockDurationMs: config.fleet.queue.lockDurationMs,
    stalledIntervalMs: config.fleet.queue.stalledIntervalMs,
    eventsMaxLen: config.fleet.queue.eventsMaxLen,
    finishedRetentionMs: config.fleet.queue.finishedRetentionMs,
    finishedJobsKept: config.fleet.queue.finishedJobsKept,
  };

  // Refuse a Redis that cannot keep the fleet's promises before touching anything.
  const probe = await connectSuitableRedis({ url: redisConfig.url, connectionName: `factory-worker-check:${node}`, log });
  probe.disconnect();

  // One worker (or daemon) per config: its registry and heartbeat are this process's alone.
  const lock = await acquireWorkerLock(runtime);
  const registryStore = new FileRegistryStore(config.loop.registryPath);
  let heartbeat: HeartbeatKeeper | undefined;
  let consumer: BullmqRunConsumer | undefined;
  let directory: Awaited<ReturnType<typeof connectRedis>> | undefined;
  let announceTimer: ReturnType<typeof clock.setTimeout> | undefined;
  // Cleared before the entry is removed, so a refresh in flight cannot put it back.
  let announcing = true;
  try {
    const previous = await registryStore.read();
    const entries = previous.kind === 'ok' ? previous.value.file.agents : [];
    const reapLease = new FileLease({ path: config.paths.reaperLock, processTable, clock });
    const { survivors } = await withLease(reapLease, () => reapPredecessorAgents(entries, { processTable, terminator, graceMs: config.reaper.graceMs, markerPrefix: markerPrefixFor(config), log }));
    if (survivors.length > 0) throw new FactoryError('FACTORY_PREDECESSOR_UNRESOLVED', `${survivors.length} agent(s) of the previous worker on this config are still alive and could not be reaped`);

    const identity = selfIdentity(processTable);
    const epochs = new FileEpochFloor(join(config.paths.stateDir, 'worker-epoch.json'));
    const registry = new RegistryKeeper({ store: registryStore, owner: { ...identity, hostname: hostname(), epoch: await epochs.highest() }, clock });
    await registry.flush();
    let running = (): number => 0;
    heartbeat = new HeartbeatKeeper({
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
      gauges: { inFlightTeams: () => running(), queuedIssues: () => 0, iteration: () => 0, subscription: () => notListening('bullmq') },
    });
    await heartbeat.write('running');
    heartbeat.startRefreshing();

    const worktrees = new GitWorktreeWorkspace({ worktreesRoot: config.paths.worktreesDir });
    const cacheDir = config.fleet.worker.repoCacheDir;
    const repoCache = cacheDir ? new RepoCacheWorkspace({ cacheDir: resolve(dirname(config.configPath), cacheDir), inner: worktrees }) : undefined;
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
    const worker = new TeamRunWorker({
      executor,
      epochs,
      clock,
      monotonicNow: () => performance.now(),
      node,
      lockDurationMs: settings.lockDurationMs,
      log,
      // With a repo cache the run's worktree belongs to this worker's clone of the remote: a succeeded branch goes back there.
      ...(repoCache ? { pushBranch: (_plan: unknown, outcome: { worktree: string; branch: string }) => repoCache.pushBranch(outcome.worktree, outcome.branch) } : {}),
    });
    running = () => worker.runningCount;

    const stopRequested = new Promise<void>((resolveStop) => {
      const signals = onStopSignal((signal) => {
        log.info({ signal }, 'stop requested: no new runs');
        signals.dispose();
        resolveStop();
      });
    });
    const queueKeys = teamRunKeys({ keyPrefix: redisConfig.keyPrefix, pool: config.fleet.pool });
    // Announce this worker in the pool's `workers` hash every heartbeat interval (status, the dashboard and /metrics read it).
    directory = await connectRedis({ url: redisConfig.url, connectionName: `factory-worker-directory:${node}` });
    const startedAtMs = clock.now();
    let workerStatus: 'running' | 'stopping' = 'running';
    let lastAnnounce: Promise<void> = Promise.resolve();
    const announce = (): Promise<void> =>
      (lastAnnounce = announceWorker(directory!, queueKeys, {
        node,
        hostname: hostname(),
        pid: process.pid,
        slots,
        runs: worker.runningRuns(),
        startedAtMs,
        updatedAtMs: clock.now(),
        status: workerStatus,
        counters: { ...worker.counters },
      }).catch((error: Error) => log.warn({ err: error.message }, 'could not announce this worker in Redis; retrying next interval')));
    const announceLoop = (): void => {
      if (announcing) announceTimer = clock.setTimeout(() => void announce().finally(announceLoop), config.loop.heartbeatIntervalMs);
    };
    await announce();
    announceLoop();
    consumer = await BullmqRunConsumer.open({
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
    output.err(`factory: worker ${node} consuming pool ${config.fleet.pool} with ${slots} slot(s) (pid ${process.pid}); Ctrl-C to stop`);
    await stopRequested;
    await heartbeat.write('stopping');
    // Readers see `stopping` while the runs drain; the entry keeps refreshing until it is removed.
    workerStatus = 'stopping';
    await announce();
    const fetchingStopped = consumer.stopFetching();
    await worker.drain(config.fleet.worker.shutdownGraceMs);
    await fetchingStopped;
    await consumer.close();
    consumer = undefined;
    announcing = false;
    clock.clearTimeout(announceTimer);
    await lastAnnounce;
    await removeWorker(directory!, teamRunKeys({ keyPrefix: redisConfig.keyPrefix, pool: config.fleet.pool }), node).catch(() => undefined);
    await registry.flush();
    await heartbeat.stopRefreshing();
    await heartbeat.write('stopped');
    output.err(`factory: worker ${node} stopped (${worker.counters.completed} run(s) reported, ${worker.counters.handedBack} handed back)`);
    return 0;
  } catch (error) {
    await heartbeat?.write('failed').catch(() => undefined);
    throw error;
  } finally {
    await consumer?.close().catch(() => undefined);
    announcing = false;
    clock.clearTimeout(announceTimer);
    directory?.disconnect();
    await heartbeat?.stopRefreshing();
    await lock.release();
  }
}

async function acquireWorkerLock(runtime: ReturnType<typeof runtimeFromArgs>): ReturnType<FileLease['acquire']> {
  try {
    return await new FileLease({ path: runtime.config.paths.daemonLock, processTable: runtime.processTable, clock: runtime.clock, keepOpenWhileHeld: true }).acquire();
  } catch (error) {
    if (isFactoryError(error, 'FACTORY_LEASE_HELD')) {
      throw new FactoryError('FACTORY_DAEMON_ALREADY_RUNNING', `another worker or daemon already uses ${runtime.config.configPath}`, { details: { owner: error.details.owner } });
    }
    throw error;
  }
}
