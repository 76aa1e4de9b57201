import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { AgentResult, RunOutcome, RunOutcomeReason, StopReason } from '../../domain/run.js';
import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';
import type { Placement, RunEvent, RunningAgent, RunningTeamRef, TeamExecution, TeamExecutor, TeamPlan } from '../../ports/team-executor.js';
import type { CancelRequest, FleetStatus, WorkerRunEvent } from '../../ports/team-run-queue.js';
import { readFleetStatus } from '../bullmq/worker-directory.js';
import { withFencedCommands, type FencedCommands } from '../bullmq/fenced-scripts.js';
import type { FleetKeys } from '../redis/keys.js';
import { jobIdForRun, type TeamRunKeys } from '../bullmq/team-run-keys.js';
import type { FleetQueueSettings } from '../bullmq/queue-settings.js';
import { decodeRunEvent, jobPlanOf, parseTeamRunJob, TEAM_RUN_JOB_VERSION, teamPlanFromJob, type AgentsByRole, type TeamRunJob } from '../bullmq/team-run-job.js';

export interface BullmqTeamExecutorOptions {
  readonly url: string;
  readonly keys: TeamRunKeys;
  readonly settings: FleetQueueSettings;
  /** The control plane's `agents` config: a job carries roles only, so a run attached to after a restart gets its agents from here. */
  readonly agents: AgentsByRole;
  /** The control plane's lease epoch now: every job and cancel carries it. */
  readonly currentEpoch: () => number;
  readonly clock: Clock;
  readonly log: Logger;
  /** How long one XREAD waits for new events (the event lag when idle is at most this). */
  readonly readBlockMs?: number;
  /**
   * The leader lease this control plane acts under. With it, no run is queued
   * once the lease is no longer provably held, and cancel records are written
   * by a Lua step that checks the lease first. Without it (tests), unfenced.
   */
  readonly lease?: LeaseFence;
}

/** The leader lease as the executor needs it: its keys, and the grant while it may still act. */
export interface LeaseFence {
  readonly keys: Pick<FleetKeys, 'leaseEpoch' | 'leaseOwner'>;
  /** The epoch and exact owner-key value while the lease is provably held; undefined once it is not. */
  grant(): { readonly epoch: number; readonly value: string } | undefined;
}

/** Counters for status and metrics. */
export interface BullmqExecutorCounters {
  enqueued: number;
  lost: number;
  cancelsSent: number;
  /** Control-plane writes (cancels, queued runs) refused because the leader lease was no longer held. */
  staleRejections: number;
  outcomes: number;
  /** The latest pickups (at most PICKUP_WINDOW), oldest first. */
  pickupLatenciesMs: number[];
  /** Every pickup seen. */
  pickups: number;
}

/** Pickup latencies kept for percentiles. */
const PICKUP_WINDOW = 1_000;

/** The fleet as the control plane sees it: Redis's view plus this control plane's own counters. */
export interface ControlPlaneFleetStatus extends FleetStatus {
  readonly controlPlane: {
    readonly enqueued: number;
    readonly lost: number;
    readonly staleRejections: number;
    readonly cancelsSent: number;
    readonly outcomes: number;
    readonly pickups: number;
    readonly pickupP50Ms: number | null;
    readonly pickupP90Ms: number | null;
  };
}

function percentile(sorted: readonly number[], p: number): number | null {
  return sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/**
 * Runs teams on BullMQ workers: one job per run attempt (job id = run id, so
 * a re-add is a no-op), `attempts: 1`. The control plane learns what happens
 * from the run's event stream (`<prefix>:run-events:<runId>`, written by the
 * worker only while it holds the job's lock) and turns it into the same
 * TeamExecution the local executor gives.
 *
 * A run whose worker lost the lock (died, froze, cut off) ends with reason
 * `stalled` once its lock key has been gone for a full stalled interval while
 * the job is active (or BullMQ's stalled check failed it): the dispatcher's
 * retry policy decides what happens next, as for any stalled run.
 */
export class BullmqTeamExecutor implements TeamExecutor {
  readonly node: string;
  readonly counters: BullmqExecutorCounters = { enqueued: 0, lost: 0, cancelsSent: 0, staleRejections: 0, outcomes: 0, pickupLatenciesMs: [], pickups: 0 };
  readonly #options: BullmqTeamExecutorOptions;
  readonly #queue: Queue;
  readonly #commands: Redis & FencedCommands;
  readonly #reader: Redis;
  readonly #bullConnection: Redis;
  readonly #runs = new Map<string, BullmqTeamRun>();
  #closed = false;
  #pumping: Promise<void> = Promise.resolve();
  #watchTimer: ReturnType<Clock['setTimeout']> | undefined;

  private constructor(options: BullmqTeamExecutorOptions, queue: Queue, commands: Redis & FencedCommands, reader: Redis, bullConnection: Redis) {
    this.#options = options;
    this.node = `queue:${options.keys.queueName}`;
    this.#queue = queue;
    this.#commands = commands;
    this.#reader = reader;
    this.#bullConnection = bullConnection;
  }

  static async open(options: BullmqTeamExecutorOptions): Promise<BullmqTeamExecutor> {
    const named = (role: string): Redis => {
      const redis = new Redis(options.url, {
        connectionName: `factory-control-${role}`,
        maxRetriesPerRequest: role === 'queue' ? null : 1,
        commandTimeout: role === 'events' ? undefined : options.settings.commandTimeoutMs,
      });
      redis.on('error', () => undefined);
      return redis;
    };
    const bullConnection = named('queue');
    const queue = new Queue(options.keys.queueName, { connection: bullConnection, prefix: options.keys.prefix, streams: { events: { maxLen: 1_000 } } });
    queue.on('error', (error: Error) => options.log.warn({ err: error.message }, 'queue error'));
    await queue.waitUntilReady();
    const executor = new BullmqTeamExecutor(options, queue, withFencedCommands(named('commands')), named('events'), bullConnection);
    executor.#pumping = executor.#pump();
    executor.#armWatch();
    return executor;
  }

  get keys(): TeamRunKeys {
    return this.#options.keys;
  }

  start(plan: TeamPlan): TeamExecution {
    const run = this.#track(plan, this.#options.currentEpoch());
    if (this.#options.lease && this.#options.lease.grant() === undefined) {
      // The claim was written under the lease, but the lease lapsed since: queue nothing, the next leader decides.
      this.counters.staleRejections += 1;
      setImmediate(() => run.end('spawn-failed', 'this control plane no longer holds the leader lease; the run was not queued'));
      return run;
    }
    // The add is not one Lua step with the lease check: BullMQ adds through its own internal scripts, whose
    // names, keys and packed arguments change between its versions, so wrapping them would break silently on an
    // upgrade. A leader frozen between this check and the add can still land a job with its old epoch; that is
    // closed where the run starts instead: a worker takes a run in one Lua step that refuses an epoch older than
    // the current lease epoch (fenced-scripts.ts `takeRun`), and epochs only grow, so such a job never starts an agent.
    // The job carries roles, never the agents' commands and env (API keys): Redis and its AOF keep it for hours.
    const job: TeamRunJob = { version: TEAM_RUN_JOB_VERSION, epoch: run.epoch, enqueuedAtMs: this.#options.clock.now(), plan: jobPlanOf(plan) };
    this.#queue
      .add('team-run', job, {
        jobId: jobIdForRun(plan.runId),
        attempts: 1,
        // Finished jobs are kept a while for inspection, then dropped: the outcome lives in the run's stream and the state store.
        removeOnComplete: { age: Math.ceil(this.#options.settings.finishedRetentionMs / 1_000), count: this.#options.settings.finishedJobsKept },
        removeOnFail: { age: Math.ceil(this.#options.settings.failedRetentionMs / 1_000), count: this.#options.settings.failedJobsKept },
      })
      .then(
        () => {
          this.counters.enqueued += 1;
        },
        (error: Error) => run.end('spawn-failed', `could not queue the run: ${error.message}`),
      );
    return run;
  }

  async attach(runId: string): Promise<TeamExecution | undefined> {
    const existing = this.#runs.get(runId);
    if (existing) return existing;
    const job = await this.#queue.getJob(jobIdForRun(runId));
    const history = await this.#readAll(runId);
    const outcomeEvent = history.find((event) => event.kind === 'outcome');
    const data = job ? parseTeamRunJob(job.data) : undefined;
    if (data === undefined || !data.ok) {
      // No job to read the plan from: only a recorded outcome can still be handed over.
      if (!outcomeEvent || outcomeEvent.kind !== 'outcome') return undefined;
      this.#options.log.warn({ run: runId }, 'the run finished while no control plane watched; its job is gone but its outcome was kept');
      return undefined;
    }
    const plan = teamPlanFromJob(data.job.plan, this.#options.agents);
    if (!plan.ok) {
      this.#options.log.warn({ run: runId, reason: plan.reason }, 'cannot attach to the run: this control plane no longer configures its roles');
      return undefined;
    }
    const run = this.#track(plan.plan, await this.#adopt(runId, data.job.epoch));
    for (const event of history) run.ingest(event, '0-0');
    if (!run.ended) run.lastId = (await this.#lastStreamId(runId)) ?? '0-0';
    this.#options.log.info({ run: runId, node: run.placement.node }, 'attached to a run on a worker');
    return run;
  }

  /**
   * A run a previous leader queued, attached to by this one: vouch for it
   * under this leader's epoch (a Lua step that checks the lease), so a worker
   * that takes it later does not refuse it as stale, and this leader's
   * cancels reach it. Returns the epoch the run is now watched under.
   * Without a lease (tests, benches), or with the lease already gone, the job's own epoch stays.
   */
  async #adopt(runId: string, jobEpoch: number): Promise<number> {
    const lease = this.#options.lease;
    const grant = lease?.grant();
    if (!lease || !grant || grant.epoch <= jobEpoch) return jobEpoch;
    const adopted = await this.#commands.leaseFencedAdopt(
      lease.keys.leaseEpoch,
      lease.keys.leaseOwner,
      this.keys.runFence(runId),
      String(grant.epoch),
      grant.value,
      this.#options.settings.eventsTtlMs,
    );
    if (adopted !== 1) {
      this.counters.staleRejections += 1;
      return jobEpoch;
    }
    return grant.epoch;
  }

  async listRunning(): Promise<RunningTeamRef[]> {
    return [...this.#runs.values()].filter((run) => !run.ended).map((run) => ({ runId: run.plan.runId, issueKey: run.plan.issue.key, placement: run.placement }));
  }

  /** Writes the durable cancel record, then announces it. */
  async requestCancel(runId: string, reason: StopReason, epoch: number): Promise<void> {
    const request: CancelRequest = { runId, reason, epoch };
    const text = JSON.stringify(request);
    const lease = this.#options.lease;
    if (lease) {
      const grant = lease.grant();
      const written =
        grant !== undefined &&
        (await this.#commands.leaseFencedCancel(
          lease.keys.leaseEpoch,
          lease.keys.leaseOwner,
          this.keys.cancelRecord(runId),
          String(grant.epoch),
          grant.value,
          this.#options.settings.eventsTtlMs,
          text,
          this.keys.cancelChannel,
        )) === 1;
      if (!written) {
        this.counters.staleRejections += 1;
        throw new Error(`the cancel of ${runId} was refused: this control plane no longer holds the leader lease`);
      }
    } else {
      await this.#commands.multi().set(this.keys.cancelRecord(runId), text, 'PX', this.#options.settings.eventsTtlMs).publish(this.keys.cancelChannel, text).exec();
    }
    this.counters.cancelsSent += 1;
  }

  /** Removes a job that no worker has taken; false when a worker has it (or it is gone). */
  async removeIfWaiting(runId: string): Promise<boolean> {
    const job = await this.#queue.getJob(jobIdForRun(runId));
    if (!job) return false;
    const state = await job.getState();
    if (state !== 'waiting' && state !== 'prioritized' && state !== 'delayed') return false;
    try {
      await job.remove();
      return true;
    } catch {
      return false;
    }
  }

  /** Workers, placements, the queue and Redis's memory as Redis says now, with this control plane's counters. */
  async fleetStatus(options: { readonly refreshIntervalMs: number }): Promise<ControlPlaneFleetStatus> {
    const leaseKeys = this.#options.lease?.keys ?? { leaseEpoch: `${this.keys.prefix}:lease:epoch`, leaseOwner: `${this.keys.prefix}:lease:owner` };
    const status = await readFleetStatus(this.#commands, { queue: this.keys, lease: leaseKeys }, { nowMs: this.#options.clock.now(), refreshIntervalMs: options.refreshIntervalMs });
    const sorted = [...this.counters.pickupLatenciesMs].sort((a, b) => a - b);
    const { enqueued, lost, staleRejections, cancelsSent, outcomes, pickups } = this.counters;
    return { ...status, controlPlane: { enqueued, lost, staleRejections, cancelsSent, outcomes, pickups, pickupP50Ms: percentile(sorted, 0.5), pickupP90Ms: percentile(sorted, 0.9) } };
  }

  async queueDepth(): Promise<number> {
    return this.#queue.getWaitingCount();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#options.clock.clearTimeout(this.#watchTimer);
    this.#reader.disconnect();
    await this.#pumping.catch(() => undefined);
    await this.#queue.close();
    await this.#commands.quit().catch(() => this.#commands.disconnect());
    await this.#bullConnection.quit().catch(() => this.#bullConnection.disconnect());
  }

  #track(plan: TeamPlan, epoch: number): BullmqTeamRun {
    const run = new BullmqTeamRun(plan, epoch, this, this.#options.clock);
    this.#runs.set(plan.runId, run);
    void run.outcome.then(() => {
      this.counters.outcomes += 1;
      this.#runs.delete(plan.runId);
      // Once recorded by the control plane, the stream is only needed briefly (a restart racing the record).
      const { finishedRetentionMs } = this.#options.settings;
      void this.#commands.pexpire(this.keys.runEvents(plan.runId), finishedRetentionMs).catch(() => undefined);
      void this.#commands.pexpire(this.keys.runFence(plan.runId), finishedRetentionMs).catch(() => undefined);
    });
    return run;
  }

  /** One blocking XREAD over every watched run's stream at a time. */
  async #pump(): Promise<void> {
    const blockMs = this.#options.readBlockMs ?? 250;
    while (!this.#closed) {
      const runs = [...this.#runs.values()].filter((run) => !run.ended);
      if (runs.length === 0) {
        await this.#options.clock.sleep(blockMs);
        continue;
      }
      try {
        const reply = (await this.#reader.xread('COUNT', 200, 'BLOCK', blockMs, 'STREAMS', ...runs.map((run) => this.keys.runEvents(run.plan.runId)), ...runs.map((run) => run.lastId))) as
          [string, [string, string[]][]][] | null;
        for (const [key, entries] of reply ?? []) {
          const run = runs.find((r) => this.keys.runEvents(r.plan.runId) === key);
          for (const [id, fields] of entries) {
            const event = decodeRunEvent(fields);
            if (run && event) run.ingest(event, id);
            else if (run) run.lastId = id;
          }
        }
      } catch (error) {
        if (this.#closed) return;
        this.#options.log.warn({ err: (error as Error).message }, 'could not read run events; retrying');
        await this.#options.clock.sleep(500);
      }
    }
  }

  async #readAll(runId: string): Promise<WorkerRunEvent[]> {
    const entries = (await this.#commands.xrange(this.keys.runEvents(runId), '-', '+')) as [string, string[]][];
    return entries.map(([, fields]) => decodeRunEvent(fields)).filter((event): event is WorkerRunEvent => event !== undefined);
  }

  async #lastStreamId(runId: string): Promise<string | undefined> {
    const last = (await this.#commands.xrevrange(this.keys.runEvents(runId), '+', '-', 'COUNT', 1)) as [string, string[]][];
    return last[0]?.[0];
  }

  #armWatch(): void {
    this.#watchTimer = this.#options.clock.setTimeout(() => {
      void this.#watch()
        .catch((error: Error) => this.#options.log.warn({ err: error.message }, 'could not check runs for lost workers; retrying'))
        .finally(() => {
          if (!this.#closed) this.#armWatch();
        });
    }, this.#options.settings.stalledIntervalMs);
  }

  /**
   * Finds runs whose worker is gone. A run is lost when its job is active but
   * its lock key has been missing for a whole stalled interval, when BullMQ
   * failed or dropped it without an outcome in its stream, or when it sits in
   * wait marked by BullMQ's stalled check.
   */
  async #watch(): Promise<void> {
    for (const run of [...this.#runs.values()]) {
      if (run.ended || !run.queued) continue;
      const job = (await this.#queue.getJob(jobIdForRun(run.plan.runId))) as Job | undefined;
      const state = job ? await job.getState() : 'unknown';
      if (state === 'active') {
        const locked = (await this.#commands.exists(this.keys.jobLock(run.plan.runId))) === 1;
        const now = this.#options.clock.now();
        if (locked) run.lockMissingSinceMs = undefined;
        else if (run.lockMissingSinceMs === undefined) run.lockMissingSinceMs = now;
        else if (now - run.lockMissingSinceMs >= this.#options.settings.stalledIntervalMs) await this.#lose(run, job, 'its worker stopped renewing the lock (died, froze or lost Redis)');
        continue;
      }
      if (state === 'waiting' || state === 'prioritized' || state === 'delayed') {
        if (job?.deferredFailure) await this.#lose(run, job, 'its worker stopped renewing the lock (died, froze or lost Redis)');
        continue;
      }
      // Finished or gone: the outcome may still be on its way through the stream.
      for (const event of await this.#readAll(run.plan.runId)) run.ingest(event, run.lastId);
      if (run.ended) continue;
      if (run.refusal) run.end('failed', `a worker refused the run: ${run.refusal}`);
      else await this.#lose(run, job, state === 'unknown' ? 'its job disappeared without an outcome' : `its job ended as ${state} without an outcome${describeFailedReason(job?.failedReason)}`);
    }
  }

  async #lose(run: BullmqTeamRun, job: Job | undefined, why: string): Promise<void> {
    this.counters.lost += 1;
    await job?.remove().catch(() => undefined);
    this.#options.log.warn({ run: run.plan.runId, node: run.placement.node }, `run lost: ${why}`);
    run.end('stalled', `the run was lost on ${run.placement.node}: ${why}; anything it still reports is refused`);
  }
}

/** A run on a worker, as the control plane sees it through its event stream. */
export class BullmqTeamRun implements TeamExecution {
  readonly plan: TeamPlan;
  readonly epoch: number;
  readonly startedAtMs: number;
  readonly outcome: Promise<RunOutcome>;
  /** Last stream entry read. */
  lastId = '0-0';
  lockMissingSinceMs: number | undefined;
  refusal: string | undefined;
  readonly #executor: BullmqTeamExecutor;
  readonly #clock: Clock;
  readonly #events: RunEvent[] = [];
  readonly #listeners = new Set<(event: RunEvent) => void>();
  readonly #agents = new Map<string, RunningAgent>();
  readonly #results: AgentResult[] = [];
  #resolve!: (outcome: RunOutcome) => void;
  #ended = false;
  #node: string;
  #stopReason: StopReason | undefined;
  #lastActivityAtMs: number;
  #queued = false;

  constructor(plan: TeamPlan, epoch: number, executor: BullmqTeamExecutor, clock: Clock) {
    this.plan = plan;
    this.epoch = epoch;
    this.#executor = executor;
    this.#clock = clock;
    this.#node = executor.node;
    this.startedAtMs = clock.now();
    this.#lastActivityAtMs = this.startedAtMs;
    this.outcome = new Promise((resolve) => (this.#resolve = resolve));
    // The watchdog only judges runs once the add has had a chance to land.
    setImmediate(() => (this.#queued = true));
  }

  get queued(): boolean {
    return this.#queued;
  }
  get ended(): boolean {
    return this.#ended;
  }
  get placement(): Placement {
    return { node: this.#node };
  }
  get stopReason(): StopReason | undefined {
    return this.#stopReason;
  }
  get lastActivityAtMs(): number {
    return this.#lastActivityAtMs;
  }

  subscribe(listener: (event: RunEvent) => void): () => void {
    for (const event of this.#events) listener(event);
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  runningAgents(): RunningAgent[] {
    return [...this.#agents.values()];
  }

  async sampleActivity(): Promise<number> {
    return this.#lastActivityAtMs;
  }

  /**
   * Writes the cancel record and announces it; a run no worker has taken yet
   * is removed from the queue and ends here. Resolves when the run has ended.
   */
  async cancel(reason: StopReason): Promise<void> {
    const first = this.#stopReason === undefined;
    this.#stopReason ??= reason;
    if (first && !this.#ended) {
      try {
        await this.#executor.requestCancel(this.plan.runId, this.#stopReason, this.epoch);
        if (await this.#executor.removeIfWaiting(this.plan.runId)) this.end(this.#stopReason, `stopped before a worker took it: ${this.#stopReason}`);
      } catch (error) {
        // The record could not be written: the watchdog still ends a run whose worker is gone, with this reason.
        void error;
      }
    }
    await this.outcome;
  }

  /** Applies one event from the run's stream. */
  ingest(event: WorkerRunEvent, id: string): void {
    this.lastId = id === '0-0' ? this.lastId : id;
    if (this.#ended) return;
    const now = this.#clock.now();
    switch (event.kind) {
      case 'picked':
        this.#node = event.node;
        this.#lastActivityAtMs = now;
        this.#executor.counters.pickups += 1;
        this.#executor.counters.pickupLatenciesMs.push(Math.max(0, event.atMs - event.enqueuedAtMs));
        if (this.#executor.counters.pickupLatenciesMs.length > PICKUP_WINDOW) this.#executor.counters.pickupLatenciesMs.shift();
        return;
      case 'activity':
        this.#lastActivityAtMs = now;
        return;
      case 'requeued':
        this.#node = this.#executor.node;
        this.#agents.clear();
        return;
      case 'refused':
        this.refusal = event.reason;
        return;
      case 'agent-started': {
        const agent = { ...event.agent, placement: { ...event.agent.placement, node: this.#node } };
        this.#agents.set(agent.agentName, agent);
        this.#lastActivityAtMs = now;
        this.#emit({ ...event, agent });
        return;
      }
      case 'agent-activity': {
        // What the worker's CLI-driver agent is doing (turns, tokens, cost, last tool call), as a local run shows it.
        const agent = this.#agents.get(event.agentName);
        if (agent) this.#agents.set(event.agentName, { ...agent, activity: event.activity });
        this.#lastActivityAtMs = now;
        this.#emit(event);
        return;
      }
      case 'agent-exited':
        this.#agents.delete(event.result.agentName);
        this.#results.push(event.result);
        this.#lastActivityAtMs = now;
        this.#emit(event);
        return;
      case 'stage-started':
        this.#lastActivityAtMs = now;
        this.#emit(event);
        return;
      case 'outcome':
        this.#finish(event.outcome);
        return;
    }
  }

  /** Ends the run from the control plane's side (queue failure, lost worker, cancelled before pickup). */
  end(reason: RunOutcomeReason, detail: string): void {
    if (this.#ended) return;
    const endedAtMs = this.#clock.now();
    this.#finish({
      runId: this.plan.runId,
      issueKey: this.plan.issue.key,
      revision: this.plan.issue.revision,
      attempt: this.plan.attempt,
      reason: this.#stopReason ?? reason,
      detail: this.#stopReason ? `stopped: ${this.#stopReason}; ${detail}` : detail,
      branch: this.plan.branch,
      worktree: '',
      agents: [...this.#results],
      startedAtMs: this.startedAtMs,
      endedAtMs,
    });
  }

  #finish(outcome: RunOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#agents.clear();
    this.#emit({ kind: 'outcome', runId: this.plan.runId, outcome, atMs: outcome.endedAtMs });
    this.#resolve(outcome);
  }

  #emit(event: RunEvent): void {
    this.#events.push(event);
    for (const listener of this.#listeners) listener(event);
  }
}

/**
 * BullMQ's own words for why a job failed, said the way Factory says it: its
 * stall message names a BullMQ setting a user never set (Factory allows no
 * stalls), so it becomes what happened to the worker.
 */
function describeFailedReason(reason: string | undefined): string {
  if (!reason) return '';
  if (/stalled more than allowable limit/i.test(reason)) return ' (its worker stopped renewing the lock: died, froze or lost Redis)';
  return ` (${reason})`;
}
