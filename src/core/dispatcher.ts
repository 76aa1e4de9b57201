import { randomBytes } from 'node:crypto';
import { compareIssuesForDispatch, type Issue } from '../domain/issue.js';
import { computeBackoffMs, isRetryableOutcome, type RunOutcome } from '../domain/run.js';
import { branchNameFor, type TriageRules } from '../domain/triage.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { IssueSource } from '../ports/issue-source.js';
import { ACTIVE_CLAIM_STATUSES, type IssueClaim, type StateStore } from '../ports/state-store.js';
import { isFactoryError, type FactoryError } from '../errors.js';
import { maybeCrash } from './fault-injection.js';
import { decideIntake } from './intake-decision.js';
import type { Logger } from '../ports/logger.js';
import { TeamRun, type AgentCommand, type TeamRunDeps } from './team-run.js';

export interface DispatchPolicy {
  readonly batchSize: number;
  readonly maxAttempts: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly teamMode: 'sequential' | 'parallel';
  readonly branchPrefix: string;
  readonly maxRuntimeMs: number;
  readonly stallLimitMs: number;
}

export interface DispatcherOptions {
  readonly policy: DispatchPolicy;
  readonly triage: TriageRules;
  readonly agents: { readonly implementer: AgentCommand; readonly reviewer?: AgentCommand | undefined };
  readonly source: IssueSource;
  readonly store: StateStore;
  readonly epoch: number;
  readonly team: TeamRunDeps;
  readonly clock: Clock;
  readonly log: Logger;
  /** A newer daemon took the state over (FACTORY_STATE_STALE_EPOCH): this one must stop. */
  readonly onStateLost?: (error: FactoryError) => void;
  /** Called after each team outcome is recorded (metrics, tests, the bounded loop). */
  readonly onOutcome?: (outcome: RunOutcome) => void;
}

/** What one intake pass decided, issue by issue, for reports. */
export interface IntakeDecision {
  readonly issueKey: string;
  readonly action: 'queued' | 'already-active' | 'already-handled' | 'skipped' | 'cancelled' | 'deferred';
  readonly reason: string;
  readonly repo?: string;
}

/**
 * Claims, queue, retries and team lifecycles. Every transition is written to
 * the state store before it takes effect (claim before spawn), so a crash at
 * any point leaves a claim a restarted daemon can resolve, and one issue never
 * has two teams: the in-memory team map is checked before every start and the
 * claim says `running` while a team exists.
 */
export class Dispatcher {
  readonly #options: DispatcherOptions;
  readonly #teams = new Map<string, TeamRun>();
  readonly #claims = new Map<string, IssueClaim>();
  readonly #issues = new Map<string, Issue>();
  readonly #skipReasons = new Map<string, string>();
  #retryTimer: TimerHandle | undefined;
  #queuedCount = 0;
  #accepting = true;
  #idleWaiters: (() => void)[] = [];
  readonly #startListeners = new Set<(team: TeamRun) => void>();

  constructor(options: DispatcherOptions) {
    this.#options = options;
    for (const claim of options.store.listClaims()) this.#claims.set(claim.issueKey, claim);
    for (const skip of options.store.listSkips()) this.#skipReasons.set(skip.issueKey, internReason(skip.reason));
    this.#recount();
  }

  /** O(1): read by the heartbeat refresh. */
  get runningTeamCount(): number {
    return this.#teams.size;
  }

  /** O(1): read by the heartbeat refresh. */
  get queuedCount(): number {
    return this.#queuedCount;
  }

  teams(): TeamRun[] {
    return [...this.#teams.values()];
  }

  /** Calls `listener` for every team started from now on; returns the unsubscribe. */
  observeStarts(listener: (team: TeamRun) => void): () => void {
    this.#startListeners.add(listener);
    return () => this.#startListeners.delete(listener);
  }

  claim(issueKey: string): IssueClaim | undefined {
    return this.#claims.get(issueKey);
  }

  /**
   * Runs issues through triage and updates claims. With `complete`, the list is
   * the whole source, so an active claim whose issue is absent is cancelled.
   */
  intake(issues: readonly Issue[], options: { complete: boolean }): IntakeDecision[] {
    return this.#options.store.inTransaction(() => this.#intakeAll(issues, options));
  }

  #intakeAll(issues: readonly Issue[], options: { complete: boolean }): IntakeDecision[] {
    const decisions: IntakeDecision[] = [];
    const seen = new Set<string>();
    for (const issue of issues) {
      seen.add(issue.key);
      decisions.push(this.#intakeOne(issue));
    }
    if (options.complete) {
      for (const claim of this.#claims.values()) {
        if (!seen.has(claim.issueKey) && ACTIVE_CLAIM_STATUSES.includes(claim.status)) {
          decisions.push(this.#cancel(claim, 'the issue was removed from the source'));
        }
      }
    }
    this.#recount();
    return decisions;
  }

  /** Marks an issue removed (its file was deleted). */
  removeIssue(issueKey: string): IntakeDecision | undefined {
    const claim = this.#claims.get(issueKey);
    this.#issues.delete(issueKey);
    if (!claim || !ACTIVE_CLAIM_STATUSES.includes(claim.status)) return undefined;
    const decision = this.#cancel(claim, 'the issue was removed from the source');
    this.#recount();
    return decision;
  }

  #intakeOne(issue: Issue): IntakeDecision {
    const { store, clock, epoch } = this.#options;
    const existing = this.#claims.get(issue.key);
    const verdict = decideIntake(issue, existing, this.#options.triage);
    if (verdict.kind === 'skip') {
      // Only in-scope issues are kept in memory: a mount of 10,000 parked issues costs a reason each, no more.
      this.#issues.delete(issue.key);
      if (this.#skipReasons.get(issue.key) !== verdict.reason) {
        this.#skipReasons.set(issue.key, internReason(verdict.reason));
        store.recordSkip({ issueKey: issue.key, reason: verdict.reason, atMs: clock.now() }, epoch);
      }
      if (verdict.leftScope) return this.#cancel(existing!, `left scope: ${verdict.reason}`);
      return { issueKey: issue.key, action: 'skipped', reason: verdict.reason };
    }
    this.#issues.set(issue.key, issue);
    if (this.#skipReasons.delete(issue.key)) store.clearSkip(issue.key, epoch);
    if (verdict.kind === 'already-active') return { issueKey: issue.key, action: verdict.kind, reason: verdict.reason, repo: verdict.repo };
    if (verdict.kind !== 'queue') return { issueKey: issue.key, action: verdict.kind, reason: verdict.reason };
    this.#saveClaim({
      issueKey: issue.key,
      revision: issue.revision,
      status: 'queued',
      attempt: 0,
      nextAttemptAtMs: null,
      runId: null,
      repo: verdict.repo,
      priority: issue.priority ?? null,
      createdAtMs: issue.createdAtMs,
      updatedAtMs: clock.now(),
      lastReason: `routed by ${verdict.routedBy}`,
      epoch,
    });
    return { issueKey: issue.key, action: 'queued', reason: `routed by ${verdict.routedBy}`, repo: verdict.repo };
  }

  #cancel(claim: IssueClaim, reason: string): IntakeDecision {
    const team = this.#teams.get(claim.issueKey);
    if (team) {
      // The outcome handler records the cancellation once the group is gone.
      void team.stop('cancelled');
      this.#options.log.info({ issue: claim.issueKey, run: team.plan.runId }, `stopping team: ${reason}`);
    } else {
      this.#saveClaim({ ...claim, status: 'cancelled', nextAttemptAtMs: null, lastReason: reason, updatedAtMs: this.#options.clock.now() });
    }
    return { issueKey: claim.issueKey, action: 'cancelled', reason };
  }

  /**
   * Puts one issue's current revision back in the queue even if it already
   * ended (the `dispatch --force` debugging path). Refused while a team runs.
   */
  requeue(issueKey: string): boolean {
    const claim = this.#claims.get(issueKey);
    if (!claim || this.#teams.has(issueKey) || claim.status === 'running') return false;
    this.#saveClaim({ ...claim, status: 'queued', attempt: 0, nextAttemptAtMs: null, updatedAtMs: this.#options.clock.now(), lastReason: 'requeued by hand', epoch: this.#options.epoch });
    this.#recount();
    return true;
  }

  /** Starts teams for due claims while slots are free. Returns the teams started. */
  pump(only?: string): TeamRun[] {
    if (!this.#accepting) return [];
    const { policy, clock } = this.#options;
    const now = clock.now();
    const due = [...this.#claims.values()]
      .filter((c) => (only === undefined || c.issueKey === only) && (c.status === 'queued' || (c.status === 'retry-wait' && (c.nextAttemptAtMs ?? 0) <= now)) && !this.#teams.has(c.issueKey) && this.#issues.has(c.issueKey))
      .sort((a, b) => compareIssuesForDispatch(this.#issues.get(a.issueKey)!, this.#issues.get(b.issueKey)!));
    const started: TeamRun[] = [];
    for (const claim of due) {
      if (this.#teams.size >= policy.batchSize) break;
      started.push(this.#start(claim, this.#issues.get(claim.issueKey)!));
    }
    this.#scheduleRetryWake();
    this.#recount();
    return started;
  }

  #start(claim: IssueClaim, issue: Issue): TeamRun {
    const { policy, clock, epoch, agents } = this.#options;
    const attempt = claim.attempt + 1;
    const runId = `${issue.key}-e${epoch}-a${attempt}-${randomBytes(3).toString('hex')}`;
    // Claim before spawn: a crash after this line leaves a `running` claim that
    // the next daemon resolves (reap its agents, then requeue), never a lost issue.
    this.#saveClaim({ ...claim, status: 'running', attempt, runId, nextAttemptAtMs: null, updatedAtMs: clock.now(), lastReason: null, epoch });
    maybeCrash('after-claim');
    const team = new TeamRun(
      { issue, runId, attempt, repo: claim.repo, branch: branchNameFor(issue.key, policy.branchPrefix), mode: policy.teamMode, agents },
      this.#options.team,
    );
    this.#teams.set(issue.key, team);
    this.#options.log.info({ issue: issue.key, run: runId, attempt }, 'team dispatched');
    void team.outcome.then((outcome) => this.#onTeamFinished(team, outcome));
    for (const listener of this.#startListeners) listener(team);
    return team;
  }

  async #onTeamFinished(team: TeamRun, outcome: RunOutcome): Promise<void> {
    const { store, clock, epoch, policy, log } = this.#options;
    const claim = this.#claims.get(outcome.issueKey)!;
    const now = clock.now();
    let next: IssueClaim;
    if (outcome.reason === 'succeeded') {
      next = { ...claim, status: 'succeeded', lastReason: outcome.detail, updatedAtMs: now };
    } else if (outcome.reason === 'released') {
      // The daemon is stopping: not the issue's fault, so the attempt is given back.
      next = { ...claim, status: 'queued', attempt: Math.max(0, claim.attempt - 1), lastReason: 'released by daemon stop', updatedAtMs: now };
    } else if (outcome.reason === 'cancelled') {
      next = { ...claim, status: 'cancelled', lastReason: outcome.detail, updatedAtMs: now };
    } else if (isRetryableOutcome(outcome.reason) && claim.attempt < policy.maxAttempts) {
      const dueAt = now + computeBackoffMs(claim.attempt, policy.backoffBaseMs, policy.backoffMaxMs);
      next = { ...claim, status: 'retry-wait', nextAttemptAtMs: dueAt, lastReason: `${outcome.reason}: ${outcome.detail}`, updatedAtMs: now };
    } else {
      next = { ...claim, status: 'gave-up', lastReason: `${outcome.reason} on attempt ${claim.attempt} of ${policy.maxAttempts}: ${outcome.detail}`, updatedAtMs: now };
    }
    // A run that ended on its own (or by our hand) breaks any streak of crash interruptions.
    next = { ...next, interruptions: 0 };
    try {
      store.recordOutcome(outcome, { ...next, epoch });
      this.#claims.set(next.issueKey, { ...next, epoch });
    } catch (error) {
      log.error({ issue: outcome.issueKey, run: outcome.runId, err: (error as Error).message }, 'could not record the outcome');
      if (isFactoryError(error, 'FACTORY_STATE_STALE_EPOCH')) this.#options.onStateLost?.(error);
    }
    this.#teams.delete(outcome.issueKey);
    this.#recount();
    log.info({ issue: outcome.issueKey, run: outcome.runId, reason: outcome.reason, next: next.status }, `team finished: ${outcome.detail}`);
    if (outcome.reason !== 'released') {
      maybeCrash('during-writeback');
      await this.#writeBack(team.plan.issue, outcome);
    }
    this.#options.onOutcome?.(outcome);
    if (this.#accepting) {
      // The issue may have changed or left scope while the team worked.
      await this.#refreshIssue(team.plan.issue);
      this.pump();
    }
    if (this.#teams.size === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /**
   * Writes an outcome back to the source, then marks it done in the store. A
   * crash in between leaves it pending; the next daemon writes it again at
   * startup (`retryPendingWritebacks`), so no outcome is lost.
   */
  async #writeBack(issue: Issue, outcome: RunOutcome): Promise<void> {
    const { source, store, log } = this.#options;
    try {
      await source.writeBack(issue, outcome);
      store.markWrittenBack(outcome.runId);
    } catch (error) {
      log.warn({ issue: outcome.issueKey, err: (error as Error).message }, 'writeback failed; the outcome is kept in the state store and written back at the next start');
    }
  }

  /** Writes back outcomes a previous daemon recorded but did not write back before it died. */
  async retryPendingWritebacks(): Promise<number> {
    const { source, store, log } = this.#options;
    let written = 0;
    for (const outcome of store.pendingWritebacks()) {
      if (outcome.reason === 'released') {
        store.markWrittenBack(outcome.runId);
        continue;
      }
      try {
        const issue = await source.read(outcome.issueKey);
        await this.#writeBack(issue, outcome);
        written++;
      } catch (error) {
        // The issue is gone from the source: nothing to write next to.
        log.warn({ issue: outcome.issueKey, err: (error as Error).message }, 'pending writeback dropped: the issue is no longer in the source');
        store.markWrittenBack(outcome.runId);
      }
    }
    return written;
  }

  async #refreshIssue(previous: Issue): Promise<void> {
    try {
      const current = await this.#options.source.read(previous.location);
      this.intake([current], { complete: false });
    } catch {
      this.removeIssue(previous.key);
    }
  }

  /** Stops teams that ran too long or show no sign of work. Runs on the supervisor's timer. */
  supervise(): void {
    const { policy, clock, log } = this.#options;
    const now = clock.now();
    for (const team of this.#teams.values()) {
      if (team.stopReason) continue;
      if (now - team.startedAtMs > policy.maxRuntimeMs) {
        log.warn({ issue: team.issueKey, run: team.plan.runId }, `run exceeded runs.maxRuntimeMs (${policy.maxRuntimeMs} ms); stopping`);
        void team.stop('timed-out');
        continue;
      }
      const lastActivity = team.sampleActivity();
      if (now - lastActivity > policy.stallLimitMs) {
        log.warn({ issue: team.issueKey, run: team.plan.runId }, `no output and no CPU for ${now - lastActivity} ms (runs.stallLimitMs ${policy.stallLimitMs}); stopping as stalled`);
        void team.stop('stalled');
      }
    }
  }

  /** Stops accepting work and releases every team; resolves when their outcomes are recorded. */
  async releaseAll(): Promise<void> {
    this.#accepting = false;
    this.#options.clock.clearTimeout(this.#retryTimer);
    const teams = [...this.#teams.values()];
    await Promise.all(teams.map((team) => team.stop('released')));
    await this.whenIdle();
  }

  /** Resolves when no team is running. */
  whenIdle(): Promise<void> {
    if (this.#teams.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Earliest retry deadline still ahead, for the bounded loop's sleeps and status. */
  nextRetryAtMs(): number | null {
    let earliest: number | null = null;
    for (const claim of this.#claims.values()) {
      if (claim.status === 'retry-wait' && claim.nextAttemptAtMs !== null && (earliest === null || claim.nextAttemptAtMs < earliest)) earliest = claim.nextAttemptAtMs;
    }
    return earliest;
  }

  #scheduleRetryWake(): void {
    const { clock } = this.#options;
    clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const next = this.nextRetryAtMs();
    if (next === null || !this.#accepting) return;
    this.#retryTimer = clock.setTimeout(() => this.pump(), Math.max(0, next - clock.now()));
  }

  #saveClaim(claim: IssueClaim): void {
    this.#options.store.saveClaim(claim);
    this.#claims.set(claim.issueKey, claim);
  }

  #recount(): void {
    let queued = 0;
    for (const claim of this.#claims.values()) if (claim.status === 'queued' || claim.status === 'retry-wait') queued++;
    this.#queuedCount = queued;
  }
}

/** Skip reasons repeat across thousands of issues; keep one copy of each text. */
const internedReasons = new Map<string, string>();
function internReason(reason: string): string {
  const known = internedReasons.get(reason);
  if (known !== undefined) return known;
  if (internedReasons.size < 10_000) internedReasons.set(reason, reason);
  return reason;
}
