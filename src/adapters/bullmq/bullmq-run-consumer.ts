import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from '../../ports/logger.js';
import type { CancelRequest, ClaimedTeamRun, HandledRun } from '../../ports/team-run-queue.js';
import { withFencedCommands, type FencedCommands } from './fenced-scripts.js';
import type { TeamRunKeys } from './team-run-keys.js';
import type { FleetQueueSettings } from './queue-settings.js';
import { encodeRunEvent, parseCancelRequest, parseTeamRunJob, teamPlanFromJob, type AgentsByRole } from './team-run-job.js';

export interface BullmqRunConsumerOptions {
  readonly url: string;
  readonly keys: TeamRunKeys;
  /** Named in CLIENT LIST and stored on each job it processes (`processedBy`). */
  readonly node: string;
  readonly slots: number;
  readonly settings: FleetQueueSettings;
  /** This worker's `agents` config: a job names roles only, each role runs as configured here (command, env, envPassthrough, driver). */
  readonly agents: AgentsByRole;
  /** The worker runtime: runs one claimed team run to its end. */
  readonly handle: (claimed: ClaimedTeamRun) => Promise<HandledRun>;
  /** A cancel announced on the channel (the runtime checks its epoch). */
  readonly onCancel: (request: CancelRequest) => void;
  readonly log: Logger;
}

/**
 * The worker's end of the BullMQ queue: fetches up to `slots` team runs at a
 * time and hands each to the runtime as a ClaimedTeamRun whose publishes are
 * fenced by the job's lock token (fenced-scripts.ts).
 *
 * BullMQ's own lock renewal is off: the runtime renews each lock itself and
 * knows, on the monotonic clock, until when the lock is provably its own.
 * `attempts: 1` on the job and `maxStalledCount: 0` here: a stalled run is
 * failed, never silently restarted; retrying it is the control plane's call.
 */
export class BullmqRunConsumer {
  readonly #options: BullmqRunConsumerOptions;
  readonly #commands: Redis & FencedCommands;
  readonly #subscriber: Redis;
  readonly #worker: Worker;
  readonly #bullConnection: Redis;
  #closing: Promise<void> | undefined;

  private constructor(options: BullmqRunConsumerOptions, commands: Redis & FencedCommands, subscriber: Redis, worker: Worker, bullConnection: Redis) {
    this.#options = options;
    this.#bullConnection = bullConnection;
    this.#commands = commands;
    this.#subscriber = subscriber;
    this.#worker = worker;
  }

  static async open(options: BullmqRunConsumerOptions): Promise<BullmqRunConsumer> {
    const { keys, settings, log } = options;
    const commands = withFencedCommands(new Redis(options.url, { connectionName: `factory-worker-cmd:${options.node}`, maxRetriesPerRequest: 1, commandTimeout: settings.commandTimeoutMs }));
    commands.on('error', () => undefined);
    const subscriber = new Redis(options.url, { connectionName: `factory-worker-sub:${options.node}`, maxRetriesPerRequest: null });
    subscriber.on('error', () => undefined);
    // BullMQ needs maxRetriesPerRequest: null on the connection it blocks on; it duplicates this one for that.
    const bullConnection = new Redis(options.url, { connectionName: `factory-worker:${options.node}`, maxRetriesPerRequest: null });
    bullConnection.on('error', () => undefined);
    const holder: { consumer?: BullmqRunConsumer } = {};
    const worker = new Worker(keys.queueName, (job: Job, token?: string) => holder.consumer!.#process(job, token), {
      connection: bullConnection,
      prefix: keys.prefix,
      name: options.node,
      concurrency: options.slots,
      lockDuration: settings.lockDurationMs,
      skipLockRenewal: true,
      maxStalledCount: 0,
      stalledInterval: settings.stalledIntervalMs,
      autorun: false,
    });
    worker.on('error', (error) => log.warn({ err: error.message }, 'queue worker error'));
    const consumer = new BullmqRunConsumer(options, commands, subscriber, worker, bullConnection);
    holder.consumer = consumer;
    subscriber.on('message', (_channel: string, message: string) => {
      const request = parseCancelRequest(message);
      if (request) options.onCancel(request);
      else log.warn({}, 'ignored a malformed cancel announcement');
    });
    await subscriber.subscribe(keys.cancelChannel);
    await worker.waitUntilReady();
    void worker.run().catch((error: Error) => log.error({ err: error.message }, 'queue worker stopped'));
    return consumer;
  }

  async #process(job: Job, token: string | undefined): Promise<{ reason: string }> {
    const { keys, settings, log } = this.#options;
    const jobId = job.id;
    if (jobId === undefined || token === undefined) throw new UnrecoverableError('a team run job without an id or lock token');
    const parsed = parseTeamRunJob(job.data);
    if (!parsed.ok) {
      log.warn({ job: jobId, reason: parsed.reason }, 'refused a malformed team run job');
      throw new UnrecoverableError(`malformed team run job: ${parsed.reason}`);
    }
    const { epoch, enqueuedAtMs } = parsed.job;
    const commands = this.#commands;
    const node = this.#options.node;
    const runnable = teamPlanFromJob(parsed.job.plan, this.#options.agents);
    if (!runnable.ok) {
      // Said in the run's stream (under our lock) so the control plane ends the run with the reason instead of as lost.
      log.warn({ job: jobId, reason: runnable.reason }, 'refused a team run this worker cannot run');
      const [kind, json] = encodeRunEvent({ kind: 'refused', runId: parsed.job.plan.runId, node, reason: runnable.reason, atMs: Date.now() });
      await commands.fencedPublish(keys.jobLock(jobId), keys.runEvents(parsed.job.plan.runId), token, settings.eventsMaxLen, settings.eventsTtlMs, kind, json).catch(() => undefined);
      throw new UnrecoverableError(`refused: ${runnable.reason}`);
    }
    const plan = runnable.plan;
    const claimed: ClaimedTeamRun = {
      plan,
      epoch,
      enqueuedAtMs,
      async take() {
        const [status, currentEpoch, runEpoch] = await commands.takeRun(keys.leaseEpoch, keys.jobLock(jobId), keys.runFence(plan.runId), token, epoch, node, settings.eventsTtlMs);
        if (status === 1) return { kind: 'taken', currentEpoch, runEpoch };
        if (status === -1) return { kind: 'stale', currentEpoch, runEpoch };
        return { kind: 'lock-lost' };
      },
      async publish(event) {
        const [kind, json] = encodeRunEvent(event);
        return (await commands.fencedPublish(keys.jobLock(jobId), keys.runEvents(plan.runId), token, settings.eventsMaxLen, settings.eventsTtlMs, kind, json)) === 1;
      },
      async renewLock() {
        return (await job.extendLock(token, settings.lockDurationMs)) === 1;
      },
      async cancelRequest() {
        return parseCancelRequest(await commands.get(keys.cancelRecord(plan.runId)));
      },
      async handBack() {
        try {
          await job.moveToWait(token);
          return true;
        } catch {
          return false;
        }
      },
    };
    const result = await this.#options.handle(claimed);
    switch (result.kind) {
      case 'completed':
        return { reason: result.outcome.reason };
      case 'refused':
        throw new UnrecoverableError(`refused: ${result.reason}`);
      case 'handed-back':
        // Tells BullMQ the job was moved back to wait by us: do not complete or fail it.
        throw new WaitingError();
      case 'fenced':
        // Finishing the job needs the lock too, so this is refused in Redis when the lock moved on.
        throw new UnrecoverableError(`self-fenced: ${result.reason}`);
    }
  }

  /**
   * Stops fetching new runs at once; the returned promise settles when the
   * runs already taken have finished (the runtime drains them).
   */
  stopFetching(): Promise<void> {
    this.#closing ??= this.#worker.close();
    return this.#closing;
  }

  async close(): Promise<void> {
    await this.stopFetching();
    await this.#subscriber.quit().catch(() => this.#subscriber.disconnect());
    await this.#commands.quit().catch(() => this.#commands.disconnect());
    // BullMQ leaves a connection it was given open.
    await this.#bullConnection.quit().catch(() => this.#bullConnection.disconnect());
  }
}
