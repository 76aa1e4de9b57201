import { randomBytes } from 'node:crypto';
import {
  claimAfterCancel,
  claimAfterIntake,
  claimAfterOutcome,
  claimAfterPublish,
  claimAfterPullClosed,
  claimAfterReorder,
  claimAfterRequeue,
  claimAfterResume,
  claimForFixRound,
  claimOnStart,
  isReordered,
  isWaiting,
  type RetryPolicy,
  type Stamp,
} from '../../domain/claim-lifecycle.js';
import { isActiveClaimStatus, type FixRound, type IssueClaim } from '../../domain/claim.js';
import type { Issue } from '../../domain/issue.js';
import { isFailedOutcome, type RunOutcome } from '../../domain/run.js';
import { usageRecordsOf, type AgentUsageRecord } from '../../domain/agent-events/usage-records.js';
import type { TeamStages } from '../../domain/team.js';
import { branchNameFor, type TriageRules } from '../../domain/triage.js';
import { isFactoryError, type FactoryError } from '../../errors.js';
import type { Clock, TimerHandle } from '../../ports/clock.js';
import type { IssueSource } from '../../ports/issue-source.js';
import type { IssueProgress } from '../../ports/publisher.js';
import type { Logger } from '../../ports/logger.js';
import type { StateStore } from '../../ports/state-store.js';
import type { TeamExecution, TeamExecutor } from '../../ports/team-executor.js';
import { maybeCrash } from '../fault-injection.js';
import { decideIntake } from '../intake-decision.js';
import { admit, earliestRetryAtMs } from './admission.js';
import type { AdmissionGate } from './memory-admission.js';
import { ClaimBook, type ClaimBatch } from './claim-book.js';
import { superviseTeams, type SupervisionPolicy } from './supervision.js';
import { Writeback } from './writeback.js';
import { ResumeTimers } from './resume-timers.js';
import type { DailySpend } from './daily-budget.js';

export interface DispatchPolicy extends RetryPolicy, SupervisionPolicy {
  readonly batchSize: number;
  readonly branchPrefix: string;
}

export interface DispatcherOptions {
  readonly policy: DispatchPolicy;
  readonly triage: TriageRules;
  /** The team every run gets (config expansion: see config/team.ts). */
  readonly stages: TeamStages;
  readonly source: IssueSource;
  readonly store: StateStore;
  readonly epoch: number;
  readonly executor: TeamExecutor;
  readonly clock: Clock;
  readonly log: Logger;
  /** A newer daemon took the state over (FACTORY_STATE_STALE_EPOCH): this one must stop. */
  readonly onStateLost?: (error: FactoryError) => void;
  /** Called after each team outcome is recorded (metrics, tests, the bounded loop). */
  readonly onOutcome?: (outcome: RunOutcome) => void;
  /** Memory admission (`resources`): claims with a free slot it holds stay queued, with its reason. Absent: slots alone decide. */
  readonly admissionGate?: AdmissionGate;
  /** Today's spending for `budgets.daily`, refreshed after each run's usage is recorded. */
  readonly dailySpend?: DailySpend;
  /** Parked issues resume by themselves at their time (the live daemon); bounded runs (`dispatch`, `resume`) never start one on a timer. */
  readonly autoResume?: boolean;
  /** Shows `queued` and `working` on the issue itself (GitHub labels); absent for the local mount. */
  readonly progress?: IssueProgress;
  /** Publishes a succeeded run (push, pull request) before its outcome is written back; absent for the local mount. */
  readonly publish?: (issue: Issue, outcome: RunOutcome) => Promise<void>;
  /** Finishes a fix round's outcome (push, the round in the shepherd's record) instead of the source's writeback; absent for the local mount. */
  readonly finishFixRound?: (issue: Issue, outcome: RunOutcome) => Promise<void>;
}

/** What one intake pass decided, issue by issue, for reports. */
export interface IntakeDecision {
  readonly issueKey: string;
  readonly action: 'queued' | 'already-active' | 'already-handled' | 'skipped' | 'cancelled' | 'deferred';
  readonly reason: string;
  readonly repo?: string;
}

/**
 * Intake, admission, team lifecycles and writeback, composed. Every claim
 * change goes through the claim lifecycle (domain/claim-lifecycle.ts) and the
 * claim book; a `running` claim is durable before its team starts (claim
 * before spawn), so a crash at any point leaves a claim a restarted daemon can
 * resolve. One issue never has two teams: the team map and the slots being
 * started are checked before every start, and the claim says `running` while
 * a team exists.
 */
export class Dispatcher {
  readonly #options: DispatcherOptions;
  readonly #book: ClaimBook;
  readonly #writeback: Writeback;
  readonly #teams = new Map<string, TeamExecution>();
  /** Issues whose `running` claim is being written: their slot is taken, their team not yet started. */
  readonly #starting = new Set<string>();
  readonly #issues = new Map<string, Issue>();
  #retryTimer: TimerHandle | undefined;
  #accepting = true;
  #idleWaiters: (() => void)[] = [];
  readonly #startListeners = new Set<(team: TeamExecution) => void>();
  /** Claims that had a slot but were held by the admission gate at the last pump, with why. */
  #held = new Map<string, string>();
  /** Parked claims that resume by themselves (a limit's reset, the next UTC day), one timer each on the clock. */
  readonly #resumeTimers: ResumeTimers;

  private constructor(options: DispatcherOptions, book: ClaimBook) {
    this.#options = options;
    this.#book = book;
    this.#resumeTimers = new ResumeTimers(options.clock, (issueKey) => void this.resume(issueKey, 'resumed by itself at its reset time'));
    // Timers live in memory: a restarted daemon re-arms them from the durable parked claims.
    for (const claim of book.active()) this.#armResume(claim);
    this.#writeback = new Writeback({
      source: options.source,
      store: options.store,
      log: options.log,
      ...(options.publish ? { publish: options.publish } : {}),
      ...(options.finishFixRound ? { finishFixRound: options.finishFixRound } : {}),
    });
  }

  /** Loads every claim and skip from the store. */
  static async open(options: DispatcherOptions): Promise<Dispatcher> {
    return new Dispatcher(options, await ClaimBook.load(options.store, options.epoch));
  }

  /** O(1): teams running or being started (read by the heartbeat refresh). */
  get runningTeamCount(): number {
    return this.#teams.size + this.#starting.size;
  }

  /** O(1): claims queued or waiting for a retry (read by the heartbeat refresh). */
  get queuedCount(): number {
    return this.#book.waitingCount;
  }

  teams(): TeamExecution[] {
    return [...this.#teams.values()];
  }

  /** Calls `listener` for every team started (or attached) from now on; returns the unsubscribe. */
  observeStarts(listener: (team: TeamExecution) => void): () => void {
    this.#startListeners.add(listener);
    return () => this.#startListeners.delete(listener);
  }

  /** Why each claim the admission gate held at the last pump is still waiting (e.g. `waiting for memory: need 4.0 GB, 2.1 GB free`). */
  heldReasons(): ReadonlyMap<string, string> {
    return this.#held;
  }

  claim(issueKey: string): IssueClaim | undefined {
    return this.#book.get(issueKey);
  }

  /** The issues whose pull requests the shepherd should be following (claims `shepherding`). */
  shepherdingIssues(): string[] {
    return [...this.#book.active()].filter((claim) => claim.status === 'shepherding').map((claim) => claim.issueKey);
  }

  #stamp(): Stamp {
    return { epoch: this.#options.epoch, nowMs: this.#options.clock.now() };
  }

  /**
   * Runs issues through triage and updates claims, in one store write. With
   * `complete`, the list is the whole source, so an active claim whose issue
   * is absent is cancelled.
   */
  async intake(issues: readonly Issue[], options: { complete: boolean }): Promise<IntakeDecision[]> {
    const batch = this.#book.batch();
    const decisions: IntakeDecision[] = [];
    const seen = new Set<string>();
    for (const issue of issues) {
      seen.add(issue.key);
      decisions.push(this.#intakeOne(issue, batch));
    }
    if (options.complete) {
      // A copy: cancelling takes the claim out of the active index while the loop runs.
      for (const claim of [...this.#book.active()]) {
        if (!seen.has(claim.issueKey)) decisions.push(this.#cancel(claim, 'the issue was removed from the source', batch));
      }
    }
    await batch.commit();
    this.#markQueued(issues, decisions);
    return decisions;
  }

  /** `queued` on each newly queued issue, in the background: intake never waits for the source's labels. */
  #markQueued(issues: readonly Issue[], decisions: readonly IntakeDecision[]): void {
    const progress = this.#options.progress;
    if (!progress) return;
    const queued = new Set(decisions.filter((decision) => decision.action === 'queued').map((decision) => decision.issueKey));
    for (const issue of issues) {
      if (!queued.has(issue.key)) continue;
      progress.markStage(issue, 'queued').catch((error: Error) => this.#options.log.warn({ issue: issue.key, err: error.message }, 'could not show the queued stage on the issue'));
    }
  }

  /** Marks an issue removed (its file was deleted). */
  async removeIssue(issueKey: string): Promise<IntakeDecision | undefined> {
    const claim = this.#book.get(issueKey);
    this.#issues.delete(issueKey);
    if (!claim || !isActiveClaimStatus(claim.status)) return undefined;
    const batch = this.#book.batch();
    const decision = this.#cancel(claim, 'the issue was removed from the source', batch);
    await batch.commit();
    return decision;
  }

  #intakeOne(issue: Issue, batch: ClaimBatch): IntakeDecision {
    const existing = this.#book.get(issue.key);
    const verdict = decideIntake(issue, existing, this.#options.triage);
    if (verdict.kind === 'skip') {
      // Only in-scope issues are kept in memory: a mount of 10,000 parked issues costs a reason each, no more.
      this.#issues.delete(issue.key);
      batch.recordSkip({ issueKey: issue.key, reason: verdict.reason, atMs: this.#options.clock.now() });
      if (verdict.leftScope) return this.#cancel(existing!, `left scope: ${verdict.reason}`, batch);
      return { issueKey: issue.key, action: 'skipped', reason: verdict.reason };
    }
    this.#issues.set(issue.key, issue);
    batch.clearSkip(issue.key);
    if (verdict.kind === 'already-active') {
      // The claim orders the queue (admission and `status` sort claims), so it follows a priority edit.
      if (existing && isWaiting(existing.status) && isReordered(existing, issue)) {
        batch.saveClaim(claimAfterReorder(existing, { priority: issue.priority ?? null, createdAtMs: issue.createdAtMs }, this.#stamp()));
      }
      return { issueKey: issue.key, action: verdict.kind, reason: verdict.reason, repo: verdict.repo };
    }
    if (verdict.kind !== 'queue') return { issueKey: issue.key, action: verdict.kind, reason: verdict.reason };
    batch.saveClaim(claimAfterIntake(issue, verdict, this.#stamp()));
    return { issueKey: issue.key, action: 'queued', reason: `routed by ${verdict.routedBy}`, repo: verdict.repo };
  }

  #cancel(claim: IssueClaim, reason: string, batch: ClaimBatch): IntakeDecision {
    const team = this.#teams.get(claim.issueKey);
    if (team) {
      // The outcome handler records the cancellation once the team is gone.
      void team.cancel('cancelled');
      this.#options.log.info({ issue: claim.issueKey, run: team.plan.runId }, `stopping team: ${reason}`);
    } else if (!this.#starting.has(claim.issueKey)) {
      batch.saveClaim(claimAfterCancel(claim, reason, this.#stamp()));
    }
    return { issueKey: claim.issueKey, action: 'cancelled', reason };
  }

  /**
   * Puts one issue's current revision back in the queue even if it already
   * ended (the `dispatch --force` debugging path). Refused while a team runs.
   */
  async requeue(issueKey: string): Promise<boolean> {
    const claim = this.#book.get(issueKey);
    if (!claim || this.#isBusy(issueKey) || claim.status === 'running') return false;
    const batch = this.#book.batch();
    batch.saveClaim(claimAfterRequeue(claim, this.#stamp()));
    await batch.commit();
    return true;
  }

  /**
   * Continues a parked issue: its claim goes back in the queue with its park,
   * so the next start restores the work and resumes the same sessions (with a
   * fresh run budget). Returns the claim's status when it is not parked.
   */
  async resume(issueKey: string, why: string): Promise<{ resumed: true } | { resumed: false; status: string }> {
    const claim = this.#book.get(issueKey);
    if (!claim || claim.status !== 'parked' || this.#isBusy(issueKey)) return { resumed: false, status: claim?.status ?? 'unknown' };
    this.#resumeTimers.disarm(issueKey);
    const batch = this.#book.batch();
    batch.saveClaim(claimAfterResume(claim, why, this.#stamp()));
    try {
      await batch.commit();
    } catch (error) {
      this.#reportWriteFailure(error, 'could not resume the parked issue', { issue: issueKey });
      this.#armResume(claim);
      return { resumed: false, status: claim.status };
    }
    this.#options.log.info({ issue: issueKey, parkedRun: claim.park?.runId }, why);
    if (this.#accepting) await this.pump();
    return { resumed: true };
  }

  /**
   * A succeeded run's pull request is open: the claim stays in play as
   * `shepherding`. Returns false when the claim is no longer the succeeded one
   * (a new revision was queued meanwhile).
   */
  async markShepherding(issueKey: string, pullUrl: string): Promise<boolean> {
    const claim = this.#book.get(issueKey);
    if (!claim || (claim.status !== 'succeeded' && claim.status !== 'shepherding') || this.#isBusy(issueKey)) return false;
    if (claim.status === 'shepherding' && claim.lastReason === `pull request open: ${pullUrl}`) return true;
    return this.#commitOne(claimAfterPublish(claim, pullUrl, this.#stamp()), 'could not record the open pull request');
  }

  /**
   * The shepherd sends the team back to the pull request: the claim is queued
   * with the round, which then starts like any run (a slot, dispatch order,
   * supervision, one team per issue). Refused unless the claim is shepherding
   * and its issue in scope.
   */
  async queueFixRound(issueKey: string, fix: FixRound): Promise<{ queued: true } | { queued: false; status: string }> {
    const claim = this.#book.get(issueKey);
    if (!claim || claim.status !== 'shepherding' || this.#isBusy(issueKey) || !this.#issues.has(issueKey) || !this.#accepting) {
      return { queued: false, status: claim === undefined ? 'unknown' : this.#issues.has(issueKey) ? claim.status : `${claim.status}, out of scope` };
    }
    if (!(await this.#commitOne(claimForFixRound(claim, fix, this.#stamp()), 'could not queue the fix round'))) return { queued: false, status: claim.status };
    this.#options.log.info({ issue: issueKey, round: fix.round, trigger: fix.trigger }, 'fix round queued');
    await this.pump();
    return { queued: true };
  }

  /** The pull request was merged or closed: a shepherding claim ends (merged: succeeded). */
  async pullClosed(issueKey: string, merged: boolean, pullUrl: string): Promise<void> {
    const claim = this.#book.get(issueKey);
    const next = claim && !this.#isBusy(issueKey) ? claimAfterPullClosed(claim, merged, pullUrl, this.#stamp()) : undefined;
    if (next) await this.#commitOne(next, 'could not record the closed pull request');
  }

  async #commitOne(claim: IssueClaim, failure: string): Promise<boolean> {
    const batch = this.#book.batch();
    batch.saveClaim(claim);
    try {
      await batch.commit();
      return true;
    } catch (error) {
      this.#reportWriteFailure(error, failure, { issue: claim.issueKey });
      return false;
    }
  }

  /** When each parked issue resumes by itself, for status. */
  resumeTimes(): ReadonlyMap<string, number> {
    return this.#resumeTimers.armed();
  }

  #armResume(claim: IssueClaim): void {
    const atMs = claim.park?.resumeAtMs;
    if (this.#options.autoResume && claim.status === 'parked' && atMs !== undefined && atMs !== null) this.#resumeTimers.arm(claim.issueKey, atMs);
  }

  #isBusy(issueKey: string): boolean {
    return this.#teams.has(issueKey) || this.#starting.has(issueKey);
  }

  /**
   * Starts teams for due claims while slots are free; returns the teams
   * started. Their `running` claims are written first, in one batch, and no
   * team starts unless that write succeeded. Never throws: a refused write is
   * logged (and a stale epoch reported through onStateLost).
   */
  async pump(only?: string): Promise<TeamExecution[]> {
    if (!this.#accepting) return [];
    const { policy, clock, epoch, executor } = this.#options;
    const withSlot = admit({
      claims: this.#book.waiting(),
      issues: this.#issues,
      busy: (key) => this.#isBusy(key),
      freeSlots: policy.batchSize - this.runningTeamCount,
      nowMs: clock.now(),
      only,
    });
    const gate = this.#options.admissionGate?.select(withSlot, this.#issues);
    const admitted = gate?.start ?? withSlot;
    if (only === undefined) this.#held = gate?.held ?? new Map();
    else if (gate?.held.has(only)) this.#held.set(only, gate.held.get(only)!);
    else this.#held.delete(only);
    const starts = admitted.map((claim) => {
      const issue = this.#issues.get(claim.issueKey)!;
      const attempt = claim.attempt + 1;
      // A fix round's run id names its round, so logs and the registry tell it from the issue's own attempts.
      const runId = `${issue.key}-e${epoch}-${claim.fix ? `f${claim.fix.round}` : `a${attempt}`}-${randomBytes(3).toString('hex')}`;
      return { issue, running: claimOnStart(claim, { runId, node: executor.node }, this.#stamp()) };
    });
    const started: TeamExecution[] = [];
    if (starts.length > 0) {
      const batch = this.#book.batch();
      for (const { issue, running } of starts) {
        this.#starting.add(issue.key);
        batch.saveClaim(running);
      }
      try {
        // Claim before spawn: a crash after this write leaves `running` claims that
        // the next daemon resolves (reap their agents, then requeue), never a lost issue.
        await batch.commit();
      } catch (error) {
        for (const { issue } of starts) this.#starting.delete(issue.key);
        this.#reportWriteFailure(error, 'could not claim issues for dispatch; nothing was started');
        return [];
      }
      maybeCrash('after-claim');
      // `working` shows on the issue before its team starts (a failure to show it is logged, not a reason to hold the work).
      const progress = this.#options.progress;
      if (progress)
        await Promise.all(
          starts.map(({ issue }) =>
            progress.markStage(issue, 'working').catch((error: Error) => this.#options.log.warn({ issue: issue.key, err: error.message }, 'could not show the working stage on the issue')),
          ),
        );
      for (const { issue, running } of starts) {
        this.#starting.delete(issue.key);
        const fix = running.fix;
        // A fix round works on the pull request's branch with what failed appended to the issue text.
        const plannedIssue = fix ? { ...issue, body: `${issue.body}\n\n${fix.feedback}` } : issue;
        const branch = fix ? fix.branch : branchNameFor(issue.key, policy.branchPrefix);
        const team = executor.start({
          issue: plannedIssue,
          runId: running.runId!,
          attempt: running.attempt,
          repo: running.repo,
          branch,
          stages: this.#options.stages,
          ...(running.park ? { resume: running.park } : {}),
        });
        this.#options.log.info(
          { issue: issue.key, run: running.runId, attempt: running.attempt, node: team.placement.node, ...(fix ? { fixRound: fix.round } : {}) },
          fix ? 'fix round dispatched' : 'team dispatched',
        );
        this.#adopt(team);
        started.push(team);
        // The daemon began stopping while the claim was written: release the team at once (its attempt is given back).
        if (!this.#accepting) void team.cancel('released');
      }
    }
    this.#scheduleRetryWake();
    return started;
  }

  /**
   * Takes over a run a previous control plane started on another node and that
   * is still going there: it counts as a running team, and its outcome is
   * recorded and written back here.
   */
  attach(team: TeamExecution): void {
    this.#options.log.info({ issue: team.plan.issue.key, run: team.plan.runId, node: team.placement.node }, 'attached to a run still going on another node');
    this.#adopt(team);
  }

  #adopt(team: TeamExecution): void {
    this.#teams.set(team.plan.issue.key, team);
    void team.outcome.then((outcome) => this.#onTeamFinished(team, outcome));
    for (const listener of this.#startListeners) listener(team);
  }

  async #onTeamFinished(team: TeamExecution, finished: RunOutcome): Promise<void> {
    const { policy, log } = this.#options;
    const claim = this.#book.get(finished.issueKey)!;
    // The outcome says it was a fix round, durably: a writeback retried after a crash still goes to the shepherd.
    const outcome: RunOutcome = claim.fix ? { ...finished, fix: claim.fix } : finished;
    const next = claimAfterOutcome(claim, outcome, policy, this.#stamp());
    let recorded = false;
    const usage = usageRecordsOf(outcome);
    if (usage.length > 0) await this.#recordUsage(outcome, usage);
    try {
      await this.#book.recordOutcome(outcome, next);
      recorded = true;
    } catch (error) {
      this.#reportWriteFailure(error, 'could not record the outcome', { issue: outcome.issueKey, run: outcome.runId });
    }
    this.#teams.delete(outcome.issueKey);
    if (recorded) this.#armResume(next);
    log[isFailedOutcome(outcome.reason) ? 'warn' : 'info']({ issue: outcome.issueKey, run: outcome.runId, reason: outcome.reason, next: next.status }, `team finished: ${outcome.detail}`);
    // Writeback follows the record: an outcome this daemon could not record (a newer
    // epoch owns the state) is not this daemon's to write back.
    if (recorded && outcome.reason !== 'released') {
      maybeCrash('during-writeback');
      await this.#writeback.writeBack(this.#issues.get(outcome.issueKey) ?? team.plan.issue, outcome);
    }
    this.#options.onOutcome?.(outcome);
    if (this.#accepting) {
      // The issue may have changed or left scope while the team worked.
      await this.#refreshIssue(team.plan.issue);
      await this.pump();
    }
    if (this.runningTeamCount === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /** The run's usage goes into the ledger first: it was spent, whatever becomes of the outcome's write. */
  async #recordUsage(outcome: RunOutcome, records: readonly AgentUsageRecord[]): Promise<void> {
    try {
      await this.#options.store.recordUsage(records);
      await this.#options.dailySpend?.refresh();
    } catch (error) {
      this.#options.log.warn({ issue: outcome.issueKey, run: outcome.runId, err: (error as Error).message }, 'could not record the run in the usage ledger');
    }
  }

  #reportWriteFailure(error: unknown, message: string, fields: Record<string, unknown> = {}): void {
    this.#options.log.error({ ...fields, err: (error as Error).message }, message);
    if (isFactoryError(error, 'FACTORY_STATE_STALE_EPOCH')) this.#options.onStateLost?.(error);
  }

  /** Writes back outcomes a previous daemon recorded but did not write back before it died. */
  retryPendingWritebacks(): Promise<number> {
    return this.#writeback.retryPending();
  }

  async #refreshIssue(previous: Issue): Promise<void> {
    let current: Issue;
    try {
      current = await this.#options.source.read(previous.location);
    } catch {
      await this.removeIssue(previous.key).catch((error: unknown) => this.#reportWriteFailure(error, 'could not cancel the claim of a removed issue'));
      return;
    }
    await this.intake([current], { complete: false }).catch((error: unknown) => this.#reportWriteFailure(error, 'could not re-read the issue after its run'));
  }

  /** Stops teams that ran too long or show no sign of work. Runs on the supervisor's timer. */
  supervise(): Promise<void> {
    return superviseTeams(this.teams(), this.#options.policy, this.#options.clock, this.#options.log);
  }

  /** Stops accepting work and releases every team; resolves when their outcomes are recorded. */
  async releaseAll(): Promise<void> {
    this.#accepting = false;
    this.#options.clock.clearTimeout(this.#retryTimer);
    this.#resumeTimers.disarmAll();
    await Promise.all(this.teams().map((team) => team.cancel('released')));
    await this.whenIdle();
  }

  /** Resolves when no team is running. */
  whenIdle(): Promise<void> {
    if (this.runningTeamCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Earliest retry deadline still ahead, for the bounded loop's sleeps and status. */
  nextRetryAtMs(): number | null {
    return earliestRetryAtMs(this.#book.waiting());
  }

  #scheduleRetryWake(): void {
    const { clock } = this.#options;
    clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const next = this.nextRetryAtMs();
    if (next === null || !this.#accepting) return;
    this.#retryTimer = clock.setTimeout(() => void this.pump(), Math.max(0, next - clock.now()));
  }
}
