import { hostname } from 'node:os';
import type { FactoryConfig } from '../config/load.js';
import { notListening, type DaemonMode, type DaemonStatus, type Heartbeat } from '../domain/heartbeat.js';
import type { RegistryEntry, RegistryFile, RegistryOwner } from '../domain/registry.js';
import type { RunOutcome } from '../domain/run.js';
import { FactoryError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { Fleet } from '../ports/fleet.js';
import type { IssueSource } from '../ports/issue-source.js';
import type { ProcessIdentity } from '../ports/process-table.js';
import type { StateStore } from '../ports/state-store.js';
import type { Workspace } from '../ports/workspace.js';
import { Dispatcher } from './dispatcher.js';
import { HeartbeatKeeper } from './heartbeat-keeper.js';
import { LiveIntake, type IntakePass } from './live-intake.js';
import type { Logger } from '../ports/logger.js';
import { RegistryKeeper } from './registry-keeper.js';
import { readRegistryFile } from './state-files.js';

/** What the previous daemon left behind, and what became of it. */
export interface PredecessorReport {
  readonly found: number;
  readonly reaped: number;
  /** Agents that could not be proven dead or reaped: dispatch must not start over them. */
  readonly survivors: readonly RegistryEntry[];
  readonly requeued: readonly string[];
}

export interface FactorySessionDeps {
  readonly config: FactoryConfig;
  readonly source: IssueSource;
  readonly store: StateStore;
  readonly fleet: Fleet;
  readonly workspace: Workspace;
  readonly clock: Clock;
  readonly log: Logger;
  readonly identity: ProcessIdentity;
  readonly writeHeartbeat: (path: string, heartbeat: Heartbeat) => Promise<void>;
  readonly writeRegistry: (path: string, registry: RegistryFile) => Promise<void>;
  /**
   * Deals with a dead predecessor's agents before anything is dispatched:
   * reaps every listed entry (identity-checked) and any process carrying this
   * factory's marker prefix that no registry lists (a crash between spawn and
   * registry write). Returns the entries that survived.
   */
  readonly reapPredecessor: (entries: readonly RegistryEntry[]) => Promise<{ reaped: number; survivors: readonly RegistryEntry[] }>;
  readonly onOutcome?: (outcome: RunOutcome) => void;
  readonly onIntakePass?: (pass: IntakePass) => void;
}

/**
 * One daemon run: an epoch, a heartbeat, a registry, a dispatcher and (in live
 * mode) a live intake. `open()` does the restart-safe part (take the epoch,
 * deal with the predecessor) before anything can dispatch; `close()` is the
 * ordered stop. Live, loop and once modes share it.
 */
export class FactorySession {
  readonly deps: FactorySessionDeps;
  readonly mode: DaemonMode;
  #epoch = 0;
  #heartbeat: HeartbeatKeeper | undefined;
  #registry: RegistryKeeper | undefined;
  #dispatcher: Dispatcher | undefined;
  #intake: LiveIntake | undefined;
  #superviseTimer: ReturnType<Clock['setTimeout']> | undefined;
  #iteration = 0;
  #closing: Promise<void> | undefined;
  #predecessor: PredecessorReport | undefined;
  /** Where unrecoverable errors go: set by startLive; bounded runs surface them as thrown errors instead. */
  #onFatal: (error: FactoryError) => void = (error) => this.deps.log.error({ code: error.code }, error.message);

  constructor(deps: FactorySessionDeps, mode: DaemonMode, readonly maxIterations = 0) {
    this.deps = deps;
    this.mode = mode;
  }

  get epoch(): number {
    return this.#epoch;
  }
  get dispatcher(): Dispatcher {
    if (!this.#dispatcher) throw new Error('session not open');
    return this.#dispatcher;
  }
  get heartbeat(): HeartbeatKeeper {
    if (!this.#heartbeat) throw new Error('session not open');
    return this.#heartbeat;
  }
  get registry(): RegistryKeeper {
    if (!this.#registry) throw new Error('session not open');
    return this.#registry;
  }
  get intake(): LiveIntake | undefined {
    return this.#intake;
  }
  get predecessor(): PredecessorReport | undefined {
    return this.#predecessor;
  }
  set iteration(value: number) {
    this.#iteration = value;
  }

  owner(): RegistryOwner {
    return { pid: this.deps.identity.pid, startTime: this.deps.identity.startTime, bootId: this.deps.identity.bootId, hostname: hostname(), epoch: this.#epoch };
  }

  /**
   * Takes a new epoch, writes `running`, resolves the predecessor's agents and
   * claims, and only then writes our own (empty) registry.
   */
  async open(): Promise<void> {
    const { config, store, clock, log } = this.deps;
    this.#epoch = store.beginEpoch({ pid: this.deps.identity.pid, startTime: this.deps.identity.startTime, bootId: this.deps.identity.bootId, hostname: hostname() }, clock.now());
    this.#heartbeat = new HeartbeatKeeper({
      path: config.loop.heartbeatPath,
      registryPath: config.loop.registryPath,
      statePath: config.paths.stateDb,
      configPath: config.configPath,
      mode: this.mode,
      maxIterations: this.maxIterations,
      identity: this.deps.identity,
      epoch: this.#epoch,
      intervalMs: config.loop.heartbeatIntervalMs,
      staleMs: config.loop.heartbeatStaleMs,
      clock,
      log,
      write: this.deps.writeHeartbeat,
      gauges: {
        inFlightTeams: () => this.#dispatcher?.runningTeamCount ?? 0,
        queuedIssues: () => this.#dispatcher?.queuedCount ?? 0,
        iteration: () => this.#iteration,
        subscription: () => this.#intake?.health() ?? notListening(),
      },
    });
    // `running` goes out before the subscription exists, so a slow subscribe never reads as a dead daemon.
    await this.#heartbeat.write('running');
    // Bounded runs refresh too: one iteration can run a team for longer than
    // heartbeatStaleMs, and a busy loop must not read as wedged. Live mode
    // starts its refresh in startLive().
    if (this.mode !== 'live') this.#heartbeat.startRefreshing();
    this.#predecessor = await this.#resolvePredecessor();
    if (this.#predecessor.survivors.length > 0) {
      throw new FactoryError(
        'FACTORY_PREDECESSOR_UNRESOLVED',
        `${this.#predecessor.survivors.length} agent(s) of the previous daemon are still alive and could not be reaped (${this.#predecessor.survivors.map((e) => `${e.agentName} pid ${e.pid}`).join(', ')})`,
      );
    }
    this.#registry = new RegistryKeeper({ path: config.loop.registryPath, owner: this.owner(), clock, write: this.deps.writeRegistry });
    await this.#registry.flush();
    this.#dispatcher = new Dispatcher({
      policy: { ...config.dispatch, maxRuntimeMs: config.runs.maxRuntimeMs, stallLimitMs: config.runs.stallLimitMs },
      triage: { requireLabel: config.safety.requireLabel, titlePrefix: config.safety.titlePrefix, repos: config.repos },
      agents: config.agents,
      source: this.deps.source,
      store,
      epoch: this.#epoch,
      clock,
      log,
      team: {
        fleet: this.deps.fleet,
        workspace: this.deps.workspace,
        registry: this.#registry,
        clock,
        log,
        logsDir: config.paths.logsDir,
        killGraceMs: config.runs.killGraceMs,
      },
      ...(this.deps.onOutcome ? { onOutcome: this.deps.onOutcome } : {}),
      onStateLost: (error) => this.#onFatal(error),
    });
    const rewritten = await this.#dispatcher.retryPendingWritebacks();
    if (rewritten > 0) log.info({ count: rewritten }, 'wrote back outcomes the previous daemon recorded but did not write back');
    this.#armSupervisor();
    log.info({ epoch: this.#epoch, mode: this.mode, predecessor: { found: this.#predecessor.found, reaped: this.#predecessor.reaped, requeued: this.#predecessor.requeued.length } }, 'factory session open');
  }

  async #resolvePredecessor(): Promise<PredecessorReport> {
    const { config, store, clock, log } = this.deps;
    const previous = await readRegistryFile(config.loop.registryPath);
    if (previous.kind === 'unreadable') log.warn({ path: config.loop.registryPath }, `predecessor registry unreadable (${previous.reason}); sweeping by marker only`);
    const entries = previous.kind === 'ok' ? previous.value.file.agents : [];
    const { reaped, survivors } = await this.deps.reapPredecessor(entries);
    // Claims a previous epoch left `running` were interrupted: their agents are gone now, so they go back in the queue.
    const requeued: string[] = [];
    for (const claim of store.listClaims()) {
      if (claim.status !== 'running' || claim.epoch >= this.#epoch) continue;
      const interruptions = (claim.interruptions ?? 0) + 1;
      if (interruptions >= config.dispatch.maxCrashInterruptions) {
        // The crash is not counted as the issue's attempt, but a run that dies with
        // its daemon every time may be what kills it: stop feeding it to the fleet.
        const lastReason = `interrupted by ${interruptions} daemon crashes in a row while it ran; it may be what brings the daemon down (check its agent logs), then run it again with \`factory dispatch ${claim.issueKey} --force\``;
        store.saveClaim({ ...claim, status: 'gave-up', runId: null, interruptions, lastReason, updatedAtMs: clock.now(), epoch: this.#epoch });
        log.warn({ issue: claim.issueKey }, lastReason);
        continue;
      }
      store.saveClaim({ ...claim, status: 'queued', attempt: Math.max(0, claim.attempt - 1), runId: null, interruptions, lastReason: 'interrupted by a daemon restart', updatedAtMs: clock.now(), epoch: this.#epoch });
      requeued.push(claim.issueKey);
    }
    if (entries.length > 0 || requeued.length > 0) log.info({ found: entries.length, reaped, requeued }, 'resolved the previous daemon run');
    return { found: entries.length, reaped, survivors, requeued };
  }

  #armSupervisor(): void {
    const { clock, config } = this.deps;
    this.#superviseTimer = clock.setTimeout(() => {
      this.#dispatcher?.supervise();
      if (!this.#closing) this.#armSupervisor();
    }, config.runs.superviseIntervalMs);
  }

  /**
   * Live mode: subscribe, reconcile, refresh the heartbeat until close().
   * `onFatal` is called when intake cannot recover (the caller stops the
   * daemon with a non-zero exit so its supervisor restarts it).
   */
  async startLive(onFatal: (error: FactoryError) => void = () => undefined): Promise<IntakePass> {
    this.#onFatal = onFatal;
    const { config, source, clock, log } = this.deps;
    this.#intake = new LiveIntake({
      source,
      dispatcher: this.dispatcher,
      clock,
      log,
      transport: config.intake.transport,
      reconcileIntervalMs: config.intake.reconcileIntervalMs,
      debounceMs: config.intake.debounceMs,
      probeIntervalMs: config.intake.probeIntervalMs,
      probeTimeoutMs: config.intake.probeTimeoutMs,
      unhealthyLimitMs: config.intake.unhealthyLimitMs,
      onFatal: (error) => this.#onFatal(error),
      ...(this.deps.onIntakePass ? { onPass: this.deps.onIntakePass } : {}),
    });
    this.heartbeat.startRefreshing();
    return this.#intake.start();
  }

  /** Writes one heartbeat with `status` (bounded loops call it per iteration). */
  writeHeartbeat(status: DaemonStatus): Promise<void> {
    return this.heartbeat.write(status);
  }

  /**
   * The ordered stop: cancel the refresh timer, wait for a write in flight,
   * write `stopping`, release the agents, then write the registry and the
   * final heartbeat. Idempotent: a second call waits for the first.
   */
  close(finalStatus: DaemonStatus = 'stopped'): Promise<void> {
    this.#closing ??= this.#closeInOrder(finalStatus);
    return this.#closing;
  }

  async #closeInOrder(finalStatus: DaemonStatus): Promise<void> {
    const { clock, log, store } = this.deps;
    const step = async (name: string, work: () => Promise<void> | void): Promise<void> => {
      // Each step is guarded so one failure does not skip the rest of the stop.
      try {
        await work();
      } catch (error) {
        log.error({ step: name, err: (error as Error).message }, 'stop step failed; continuing');
      }
    };
    clock.clearTimeout(this.#superviseTimer);
    if (this.#heartbeat) {
      await step('cancel heartbeat refresh', () => this.#heartbeat!.stopRefreshing());
      await step('write stopping heartbeat', () => this.#heartbeat!.write('stopping'));
    }
    await step('close intake', () => this.#intake?.close());
    await step('release agents', () => this.#dispatcher?.releaseAll());
    await step('write registry', () => this.#registry?.flush());
    if (this.#heartbeat) await step('write final heartbeat', () => this.#heartbeat!.write(finalStatus));
    await step('close state store', () => store.close());
    log.info({ status: finalStatus }, 'factory session closed');
  }
}
