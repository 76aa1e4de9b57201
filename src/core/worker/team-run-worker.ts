import type { ParkedRun } from '../../domain/budgets.js';
import type { RunOutcome, StopReason } from '../../domain/run.js';
import type { Clock, TimerHandle } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';
import type { TeamExecution, TeamExecutor, TeamPlan } from '../../ports/team-executor.js';
import type { CancelRequest, ClaimedTeamRun, EpochFloor, HandledRun, RunTaking, WorkerRunEvent } from '../../ports/team-run-queue.js';

export interface TeamRunWorkerDeps {
  /** Runs the team on this machine (the local executor: worktree + process groups + this worker's registry). */
  readonly executor: TeamExecutor;
  readonly epochs: EpochFloor;
  readonly clock: Clock;
  /** A clock that never jumps (performance.now()): lock deadlines are judged on it, so a wall-clock step cannot stretch them. */
  readonly monotonicNow: () => number;
  /** This worker's node name, reported with every run it picks. */
  readonly node: string;
  /** The queue's lock duration: a lock not renewed for this long may be taken over. */
  readonly lockDurationMs: number;
  readonly log: Logger;
  /**
   * Pushes a succeeded run's branch to the repo's remote. Called only while
   * the run's lock is provably this worker's (just renewed, deadline ahead);
   * a worker that lost the lock pushes nothing. Absent: nothing is pushed.
   */
  readonly pushBranch?: (plan: TeamPlan, outcome: RunOutcome) => Promise<void>;
  /**
   * Shares a run's parked work: pushes its park ref to the repo's remote, so
   * the resume may run on any worker. A failure keeps the work in this
   * worker's clone (recorded on the park, logged). Absent: parks stay local.
   */
  readonly pushPark?: (plan: TeamPlan, park: ParkedRun) => Promise<void>;
  /** Removes a park ref from the repo's remote once the run resumed from it has ended and no claim can resume from it again. */
  readonly deleteRemotePark?: (plan: TeamPlan, park: ParkedRun) => Promise<void>;
}

/** Counters for the worker's status and metrics. */
export interface TeamRunWorkerCounters {
  lockRenewals: number;
  lockRenewalFailures: number;
  selfFences: number;
  staleRefusals: number;
  completed: number;
  handedBack: number;
  branchesPushed: number;
  parksPushed: number;
  parkPushFailures: number;
}

/**
 * The worker runtime: takes a claimed run (checking its epoch against the
 * current leader epoch in the same step), runs the team
 * with the local executor, streams its events back and reports its outcome,
 * all only while it provably holds the run's lock.
 *
 * The lock is renewed every quarter of its duration; each renewal that
 * succeeds moves the deadline to (time the renewal was sent + duration). When
 * the deadline comes within a quarter duration (Redis unreachable), or a
 * renewal is refused (another worker may have the run), or the process wakes
 * up past it (it was frozen), the worker fences itself: it kills the agents
 * and publishes nothing more, and whatever it still tries to publish is
 * refused by the lock check in Redis anyway.
 */
export class TeamRunWorker {
  readonly #deps: TeamRunWorkerDeps;
  readonly #active = new Map<string, ActiveRun>();
  readonly counters: TeamRunWorkerCounters = {
    lockRenewals: 0,
    lockRenewalFailures: 0,
    selfFences: 0,
    staleRefusals: 0,
    completed: 0,
    handedBack: 0,
    branchesPushed: 0,
    parksPushed: 0,
    parkPushFailures: 0,
  };
  #draining = false;

  constructor(deps: TeamRunWorkerDeps) {
    this.#deps = deps;
  }

  get runningCount(): number {
    return this.#active.size;
  }

  runningRunIds(): string[] {
    return [...this.#active.keys()];
  }

  /** The runs held now, with their issues (what the worker announces). */
  runningRuns(): { runId: string; issueKey: string }[] {
    return [...this.#active.values()].map((run) => ({ runId: run.plan.runId, issueKey: run.plan.issue.key }));
  }

  /**
   * A run of the issue is held here, from the moment it was handed over (before
   * its worktree is prepared) until it is reported, handed back or fenced: the
   * worktree retention pass keeps that issue's worktree.
   */
  runsIssue(issueKey: string): boolean {
    return [...this.#active.values()].some((run) => run.plan.issue.key === issueKey);
  }

  async handle(claimed: ClaimedTeamRun): Promise<HandledRun> {
    const run = new ActiveRun(claimed, this.#deps, this.counters);
    this.#active.set(claimed.plan.runId, run);
    try {
      return await run.execute(() => this.#draining);
    } finally {
      this.#active.delete(claimed.plan.runId);
    }
  }

  /** A cancel announced on the channel: honoured when it is not older than the newest epoch seen. */
  async cancel(request: CancelRequest): Promise<void> {
    const run = this.#active.get(request.runId);
    if (!run) return;
    if (request.epoch < (await this.#deps.epochs.highest())) {
      this.#deps.log.warn({ run: request.runId, epoch: request.epoch }, 'ignored a cancel from a control plane with an older epoch');
      return;
    }
    run.stop(request.reason);
  }

  /**
   * Shutdown: the caller has stopped fetching. Runs that finish within
   * `graceMs` report as usual; the rest are stopped and handed back to the
   * queue for another worker.
   */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    const runs = [...this.#active.values()];
    const finished = Promise.all(runs.map((run) => run.done));
    let timer: TimerHandle | undefined;
    const graceOver = new Promise<'grace-over'>((resolve) => (timer = this.#deps.clock.setTimeout(() => resolve('grace-over'), graceMs)));
    const first = await Promise.race([finished.then(() => 'finished' as const), graceOver]);
    this.#deps.clock.clearTimeout(timer);
    if (first === 'finished') return;
    for (const run of this.#active.values()) run.handBack();
    await Promise.all([...this.#active.values()].map((run) => run.done));
  }
}

class ActiveRun {
  readonly #claimed: ClaimedTeamRun;
  readonly #deps: TeamRunWorkerDeps;
  readonly #counters: TeamRunWorkerCounters;
  #team: TeamExecution | undefined;
  #fencedBecause: string | undefined;
  #handingBack = false;
  /** Monotonic time until which the lock is known to be ours. */
  #deadline = 0;
  #timers: TimerHandle[] = [];
  #publishing: Promise<unknown> = Promise.resolve();
  #pendingStop: StopReason | undefined;
  #resolveDone!: () => void;
  readonly done = new Promise<void>((resolve) => (this.#resolveDone = resolve));

  constructor(claimed: ClaimedTeamRun, deps: TeamRunWorkerDeps, counters: TeamRunWorkerCounters) {
    this.#claimed = claimed;
    this.#deps = deps;
    this.#counters = counters;
  }

  get plan(): ClaimedTeamRun['plan'] {
    return this.#claimed.plan;
  }

  get #runId(): string {
    return this.#claimed.plan.runId;
  }

  async execute(draining: () => boolean): Promise<HandledRun> {
    try {
      return await this.#execute(draining);
    } finally {
      for (const timer of this.#timers) this.#deps.clock.clearTimeout(timer);
      this.#resolveDone();
    }
  }

  async #execute(draining: () => boolean): Promise<HandledRun> {
    const { plan } = this.#claimed;
    const { log, node } = this.#deps;
    // A fresh renewal gives a deadline measured from a moment we know, not from when the queue handed the run over.
    if (!(await this.#renew())) return this.#fenced('the lock was gone before the run started');
    // The epoch check against the CURRENT leader epoch and the taking are one step in Redis: a run queued by a
    // leader that had already lost the lease (frozen inside its add) is refused here, before any agent exists.
    let taking: RunTaking;
    try {
      taking = await this.#claimed.take();
    } catch (error) {
      return this.#fenced(`could not check the run's epoch against the leader's: ${(error as Error).message}`);
    }
    if (taking.kind === 'lock-lost') return this.#fenced('the lock was gone before the run started');
    const runEpoch = taking.runEpoch;
    const highest = await this.#deps.epochs.highest();
    const staleBecause =
      taking.kind === 'stale'
        ? `the run carries epoch ${runEpoch}, older than the current leader epoch ${taking.currentEpoch}: it was queued by a control plane that had lost the lease`
        : runEpoch < highest
          ? `the run carries epoch ${runEpoch}, older than epoch ${highest} this worker has seen: its control plane has lost the lease`
          : undefined;
    if (staleBecause !== undefined) {
      this.#counters.staleRefusals += 1;
      log.warn({ run: plan.runId, epoch: runEpoch, currentEpoch: taking.currentEpoch, highest, reason: staleBecause }, 'refused a run from an older epoch');
      await this.#publish({ kind: 'refused', runId: plan.runId, node, reason: staleBecause, atMs: this.#deps.clock.now() });
      return { kind: 'refused', reason: staleBecause };
    }
    await this.#deps.epochs.raise(runEpoch);
    this.#armLockGuard();
    const cancelled = await this.#claimed.cancelRequest().catch(() => null);
    if (cancelled && cancelled.epoch >= runEpoch) {
      return this.#report(this.#outcomeWithoutAgents(cancelled.reason, `stopped before it started: ${cancelled.reason}`));
    }
    if (draining()) {
      this.#handingBack = true;
      return this.#finishHandBack();
    }
    if (!(await this.#publish({ kind: 'picked', runId: plan.runId, node, enqueuedAtMs: this.#claimed.enqueuedAtMs, atMs: this.#deps.clock.now() }))) {
      return this.#fenced('the lock was lost before the run started');
    }
    log.info({ run: plan.runId, issue: plan.issue.key, epoch: runEpoch }, 'run picked');
    const team = this.#deps.executor.start(this.#withSessionsOfThisMachine(plan));
    this.#team = team;
    if (this.#pendingStop) void team.cancel(this.#pendingStop);
    if (this.#fencedBecause || this.#handingBack) void team.cancel('released');
    team.subscribe((event) => {
      // The outcome is reported below, once, after the lock is checked again.
      if (event.kind !== 'outcome') void this.#publish(event);
    });
    const outcome = await team.outcome;
    await this.#publishing;
    if (this.#fencedBecause) return { kind: 'fenced', reason: this.#fencedBecause };
    if (this.#handingBack) return this.#finishHandBack();
    return this.#report(outcome);
  }

  /**
   * A park made on another worker: its agents' sessions live on that machine
   * (Claude Code and Codex keep them in the home folder there, Claude Code by
   * worktree path too), so asking this machine's CLI to resume one would fail
   * the run. The agents start new sessions on the parked work instead.
   */
  #withSessionsOfThisMachine(plan: TeamPlan): TeamPlan {
    const park = plan.resume;
    if (park?.placement === undefined || park.placement.node === this.#deps.node || Object.keys(park.sessions).length === 0) return plan;
    this.#deps.log.info(
      { run: plan.runId, parkedRun: park.runId, parkedOn: park.placement.node },
      "the run was parked on another worker: its agents start new sessions on the parked work (the sessions stay on that worker's machine)",
    );
    return { ...plan, startNewSessions: true };
  }

  /** Asks the team to stop; the outcome carries `reason` and is reported as usual. */
  stop(reason: StopReason): void {
    this.#pendingStop ??= reason;
    if (this.#team) void this.#team.cancel(reason);
  }

  /** Shutdown past the grace: stop the agents and give the run back to the queue. */
  handBack(): void {
    this.#handingBack = true;
    if (this.#team) void this.#team.cancel('released');
  }

  async #finishHandBack(): Promise<HandledRun> {
    const { plan } = this.#claimed;
    await this.#publish({ kind: 'requeued', runId: plan.runId, node: this.#deps.node, reason: 'the worker is shutting down', atMs: this.#deps.clock.now() });
    if (this.#fencedBecause || !(await this.#claimed.handBack().catch(() => false))) return { kind: 'fenced', reason: this.#fencedBecause ?? 'the lock was lost while handing the run back' };
    this.#counters.handedBack += 1;
    this.#deps.log.info({ run: plan.runId }, 'run handed back to the queue');
    return { kind: 'handed-back' };
  }

  async #report(finished: RunOutcome): Promise<HandledRun> {
    if (this.#lockExpiredLocally()) this.#fence('the lock deadline passed before the outcome could be reported');
    if (this.#fencedBecause) return { kind: 'fenced', reason: this.#fencedBecause };
    const outcome = await this.#shareParkIfParked(await this.#pushIfSucceeded(finished));
    if (this.#lockExpiredLocally()) this.#fence('the lock deadline passed before the outcome could be reported');
    if (this.#fencedBecause) return { kind: 'fenced', reason: this.#fencedBecause };
    if (!(await this.#publish({ kind: 'outcome', runId: outcome.runId, outcome, atMs: outcome.endedAtMs }))) {
      return this.#fenced('the lock was lost before the outcome could be reported');
    }
    this.#counters.completed += 1;
    this.#deps.log.info({ run: outcome.runId, reason: outcome.reason }, 'run outcome reported');
    await this.#deleteResumedPark(outcome);
    return { kind: 'completed', outcome };
  }

  /**
   * A run this worker parked: its park ref goes to the remote, so the resume
   * can run on another worker. The park says where the work is either way; a
   * failed push keeps the work in this worker's clone, where a resume here
   * still finds it (elsewhere it ends FACTORY_PARK_UNAVAILABLE, parked again).
   */
  async #shareParkIfParked(outcome: RunOutcome): Promise<RunOutcome> {
    const park = outcome.park;
    const push = this.#deps.pushPark;
    // Only a park made by this run (a resume that found no work hands the old park back) and with a park commit to push.
    if (!push || outcome.reason !== 'parked' || park === undefined || park.runId !== outcome.runId || park.commit === null) return outcome;
    if (this.#fencedBecause || this.#lockExpiredLocally()) return outcome;
    const { node, log } = this.#deps;
    try {
      await push(this.#claimed.plan, park);
      this.#counters.parksPushed += 1;
      log.info({ run: outcome.runId, ref: park.ref }, 'park ref pushed to the remote');
      return { ...outcome, park: { ...park, placement: { node, pushed: true } } };
    } catch (error) {
      const message = (error as Error).message.split('\n')[0] ?? '';
      this.#counters.parkPushFailures += 1;
      log.warn({ run: outcome.runId, ref: park.ref, err: message }, "could not push the park ref; the parked work stays in this worker's clone, and only a resume on this worker can continue it");
      return { ...outcome, park: { ...park, placement: { node, pushed: false, pushError: message } } };
    }
  }

  /**
   * The run resumed a park that was pushed, and its outcome is recorded: once
   * the claim no longer holds that park (any outcome but a release, or the
   * same park handed back), nothing resumes from the remote ref again.
   */
  async #deleteResumedPark(outcome: RunOutcome): Promise<void> {
    const resumed = this.#claimed.plan.resume;
    const remove = this.#deps.deleteRemotePark;
    if (!remove || resumed?.placement?.pushed !== true || outcome.reason === 'released' || outcome.park?.ref === resumed.ref) return;
    try {
      await remove(this.#claimed.plan, resumed);
      this.#deps.log.info({ run: outcome.runId, ref: resumed.ref }, 'removed the resumed park ref from the remote');
    } catch (error) {
      const message = (error as Error).message.split('\n')[0] ?? '';
      this.#deps.log.warn({ run: outcome.runId, ref: resumed.ref, err: message }, `could not remove the resumed park ref from the remote; remove it with \`git push origin :${resumed.ref}\``);
    }
  }

  /**
   * The branch of a succeeded run goes to the remote only under a lock just
   * renewed: a push never starts after the lock could have moved on. A push
   * that fails turns the run into a failure the control plane can retry.
   */
  async #pushIfSucceeded(outcome: RunOutcome): Promise<RunOutcome> {
    const push = this.#deps.pushBranch;
    if (!push || outcome.reason !== 'succeeded') return outcome;
    if (!(await this.#renew())) {
      this.#fence('the queue refused to renew the lock before the push: another worker may have the run');
      return outcome;
    }
    if (this.#fencedBecause || this.#lockExpiredLocally()) return outcome;
    try {
      await push(this.#claimed.plan, outcome);
      this.#counters.branchesPushed += 1;
      this.#deps.log.info({ run: outcome.runId, branch: outcome.branch }, 'branch pushed to the remote');
      return outcome;
    } catch (error) {
      const message = (error as Error).message.split('\n')[0] ?? '';
      this.#deps.log.warn({ run: outcome.runId, branch: outcome.branch, err: message }, 'could not push the branch');
      return { ...outcome, reason: 'failed', detail: `the team succeeded but its branch ${outcome.branch} could not be pushed: ${message}` };
    }
  }

  #fenced(reason: string): HandledRun {
    this.#fence(reason);
    return { kind: 'fenced', reason };
  }

  /** Publishes in order, and only while the lock is ours; a refused publish fences the run. */
  #publish(event: WorkerRunEvent): Promise<boolean> {
    const next = this.#publishing.then(async () => {
      if (this.#fencedBecause || this.#lockExpiredLocally()) return false;
      try {
        const accepted = await this.#claimed.publish(event);
        if (!accepted) this.#fence(`the queue refused a ${event.kind} event: the lock is no longer ours`);
        return accepted;
      } catch (error) {
        // Redis unreachable: the event is lost, the lock guard decides whether the run is.
        this.#deps.log.warn({ run: this.#runId, kind: event.kind, err: (error as Error).message }, 'could not publish a run event');
        return false;
      }
    });
    this.#publishing = next;
    return next;
  }

  #lockExpiredLocally(): boolean {
    return this.#deps.monotonicNow() >= this.#deadline;
  }

  /** Sends one renewal; on success the deadline moves to (send time + lock duration). */
  async #renew(): Promise<boolean> {
    const sentAt = this.#deps.monotonicNow();
    let kept: boolean;
    try {
      kept = await this.#claimed.renewLock();
    } catch (error) {
      this.#counters.lockRenewalFailures += 1;
      this.#deps.log.warn({ run: this.#runId, err: (error as Error).message }, 'could not renew the run lock; retrying');
      return true;
    }
    if (!kept) {
      this.#counters.lockRenewalFailures += 1;
      return false;
    }
    this.#counters.lockRenewals += 1;
    this.#deadline = Math.max(this.#deadline, sentAt + this.#deps.lockDurationMs);
    return true;
  }

  #armLockGuard(): void {
    const { clock, lockDurationMs, monotonicNow } = this.#deps;
    const renewEveryMs = Math.max(50, Math.floor(lockDurationMs / 4));
    // A quarter duration of margin: we stop before the lock can lapse, not after.
    const marginMs = Math.floor(lockDurationMs / 4);
    const guardEveryMs = Math.max(20, Math.min(250, Math.floor(lockDurationMs / 16)));
    let lastActivity = -1;
    const renewLoop = (): void => {
      this.#timers.push(
        clock.setTimeout(() => {
          if (this.#fencedBecause) return;
          void (async () => {
            if (monotonicNow() >= this.#deadline) return this.#fence('woke up past the lock deadline');
            if (!(await this.#renew())) return this.#fence('the queue refused to renew the lock: another worker may have the run');
            const request = await this.#claimed.cancelRequest().catch(() => null);
            if (request && request.epoch >= (await this.#deps.epochs.highest())) this.stop(request.reason);
            if (this.#team) {
              const atMs = await this.#team.sampleActivity().catch(() => lastActivity);
              if (atMs !== lastActivity) {
                lastActivity = atMs;
                void this.#publish({ kind: 'activity', runId: this.#runId, atMs });
              }
            }
          })().finally(renewLoop);
        }, renewEveryMs),
      );
    };
    const guardLoop = (): void => {
      this.#timers.push(
        clock.setTimeout(() => {
          if (this.#fencedBecause) return;
          if (monotonicNow() >= this.#deadline - marginMs) this.#fence('the lock could not be renewed in time (Redis unreachable or this worker was frozen)');
          else guardLoop();
        }, guardEveryMs),
      );
    };
    renewLoop();
    guardLoop();
  }

  /** Kills the agents and silences the run: from here on nothing is published for it. */
  #fence(reason: string): void {
    if (this.#fencedBecause) return;
    this.#fencedBecause = reason;
    this.#counters.selfFences += 1;
    this.#deps.log.warn({ run: this.#runId, reason }, 'self-fenced: killing the agents, reporting nothing');
    if (this.#team) void this.#team.cancel('released');
  }

  #outcomeWithoutAgents(reason: StopReason, detail: string): RunOutcome {
    const { plan } = this.#claimed;
    const nowMs = this.#deps.clock.now();
    return {
      runId: plan.runId,
      issueKey: plan.issue.key,
      revision: plan.issue.revision,
      attempt: plan.attempt,
      reason,
      detail,
      branch: plan.branch,
      worktree: '',
      agents: [],
      startedAtMs: nowMs,
      endedAtMs: nowMs,
    };
  }
}
