/**
 * Usage budgets (`budgets.run`, `budgets.daily`) and when parked work comes
 * back, as pure rules. A run over a budget, or stopped by the agent's usage or
 * rate limit, is parked rather than failed (nothing paid for is thrown away):
 * these decide whether to park and until when.
 */

export interface RunBudget {
  readonly maxTokens?: number | undefined;
  readonly maxCostUsd?: number | undefined;
  readonly maxTurns?: number | undefined;
}

export interface DailyBudget {
  readonly maxCostUsd?: number | undefined;
}

/** A run's usage so far, all its agents together; each resume of a parked run starts from zero (a fresh run budget). */
export interface RunUsageSoFar {
  readonly tokens: number;
  /** Undefined while no agent reported a cost (Codex never does). */
  readonly costUsd: number | undefined;
  readonly turns: number;
}

export type ParkTriggerKind = 'run-budget' | 'daily-budget' | 'usage-limit' | 'memory-pressure';

export type ParkTrigger =
  | { readonly kind: 'run-budget'; readonly reason: string }
  | { readonly kind: 'daily-budget'; readonly reason: string }
  | { readonly kind: 'usage-limit'; readonly reason: string; readonly resetAtMs: number | undefined }
  /** The machine's memory pressure stayed high (`resources.onPressure: "park"`): the newest team makes room. */
  | { readonly kind: 'memory-pressure'; readonly reason: string };

/** The first run budget `usage` is at or over, as a park trigger; undefined while within all of them. */
export function overRunBudget(usage: RunUsageSoFar, budget: RunBudget): ParkTrigger | undefined {
  if (budget.maxTokens !== undefined && usage.tokens >= budget.maxTokens) {
    return { kind: 'run-budget', reason: `used ${usage.tokens} tokens of budgets.run.maxTokens ${budget.maxTokens}` };
  }
  if (budget.maxTurns !== undefined && usage.turns >= budget.maxTurns) {
    return { kind: 'run-budget', reason: `took ${usage.turns} turns of budgets.run.maxTurns ${budget.maxTurns}` };
  }
  if (budget.maxCostUsd !== undefined && usage.costUsd !== undefined && usage.costUsd >= budget.maxCostUsd) {
    return { kind: 'run-budget', reason: `cost $${usage.costUsd.toFixed(4)} of budgets.run.maxCostUsd $${budget.maxCostUsd}` };
  }
  return undefined;
}

/** Whether today's spending (every run, UTC day) is at or over the daily budget. */
export function overDailyBudget(spentTodayUsd: number, budget: DailyBudget): ParkTrigger | undefined {
  if (budget.maxCostUsd === undefined || spentTodayUsd < budget.maxCostUsd) return undefined;
  return { kind: 'daily-budget', reason: `today's runs cost $${spentTodayUsd.toFixed(4)} of budgets.daily.maxCostUsd $${budget.maxCostUsd}` };
}

/** The start of the next UTC day after `nowMs`: when a daily budget is fresh again. */
export function nextUtcDayStartMs(nowMs: number): number {
  const day = 24 * 60 * 60 * 1000;
  return Math.floor(nowMs / day) * day + day;
}

/**
 * When parked work resumes by itself: at the agent's limit reset, or the next
 * UTC day for the daily budget; null for a run budget (the same budget would
 * run out again, so a person resumes it with `factory resume`), for a limit
 * whose reset the agent did not say, and for memory pressure (no clock time:
 * it resumes once pressure has stayed low, see resumesWhenPressureIsLow). A
 * reset already past resumes now.
 */
export function automaticResumeAtMs(trigger: ParkTrigger, nowMs: number): number | null {
  switch (trigger.kind) {
    case 'run-budget':
      return null;
    case 'daily-budget':
      return nextUtcDayStartMs(nowMs);
    case 'usage-limit':
      return trigger.resetAtMs === undefined ? null : Math.max(nowMs, trigger.resetAtMs);
    case 'memory-pressure':
      return null;
  }
}

/** Whether parked work comes back by itself once the machine's memory pressure has stayed low (rather than at a time or by hand). */
export function resumesWhenPressureIsLow(park: Pick<ParkedRun, 'trigger'>): boolean {
  return park.trigger === 'memory-pressure';
}

/** Where a run's parked work is kept: one ref per run, never a branch. */
export function parkRefFor(runId: string): string {
  return `refs/factory/park/${runId}`;
}

/**
 * A parked run, as its outcome and its issue's claim keep it (durably, in the
 * state store) until it is resumed: where the work is, why it stopped, when it
 * comes back by itself, and which agent sessions to continue.
 */
export interface ParkedRun {
  /** The run that was parked. */
  readonly runId: string;
  /** `refs/factory/park/<run>`. */
  readonly ref: string;
  /** The park commit; null when committing the work failed (the worktree still holds it). */
  readonly commit: string | null;
  readonly trigger: ParkTriggerKind;
  readonly reason: string;
  /** When it resumes by itself (a limit's reset, the next UTC day); null: only by hand (`factory resume`). */
  readonly resumeAtMs: number | null;
  /** The team stage it was in: a resume starts there. */
  readonly stage: number;
  /** Session (Claude Code) or thread (Codex) id per agent slot of that stage: a resume continues them. */
  readonly sessions: Readonly<Record<string, string>>;
  /**
   * Where the team's review rounds stood: a resume counts on from here, so
   * `review.maxRounds` holds across parks. Absent for a team without a review
   * stage (and in parks recorded before rounds were kept: those start at 1).
   */
  readonly review?: ParkedReview;
  /**
   * The branch head when the run started (its first part, for a run parked
   * more than once): a resumed run is the same piece of work, so it counts its
   * commits from here and what was committed before the park is its own.
   * Absent in parks recorded before it was kept: those count from the resume.
   */
  readonly startCommit?: string;
  /**
   * Set by a fleet worker: the worker whose repo clone holds the park ref, and
   * whether the ref reached the repo's remote (only then can another worker
   * resume the run). Absent for a run parked on the control plane's machine.
   */
  readonly placement?: ParkPlacement;
}

/** The review rounds of a parked run (see domain/review.ts). */
export interface ParkedReview {
  /** The round the team was in when it parked (1 = before any request for changes). */
  readonly round: number;
  /** Review passes that requested changes so far, by review stage index (as a string key, for JSON). */
  readonly changesRequested: Readonly<Record<string, number>>;
  /** The comments the work stages were sent back with in this round; absent in round 1. */
  readonly comments?: string;
}

export interface ParkPlacement {
  /** The worker (node name) that parked the run. */
  readonly node: string;
  /** Whether `refs/factory/park/<run>` was pushed to the repo's remote. */
  readonly pushed: boolean;
  /** Why the push failed (git's answer, credentials redacted), when it did. */
  readonly pushError?: string;
}

/** What `status` says about a parked claim: why, and how it comes back. */
export function describePark(park: ParkedRun, issueKey: string): string {
  const back = resumesWhenPressureIsLow(park)
    ? `resumes by itself once memory pressure has stayed low (or \`factory resume ${issueKey}\` now)`
    : park.resumeAtMs === null
      ? `resume it with \`factory resume ${issueKey}\``
      : `resumes by itself at ${new Date(park.resumeAtMs).toISOString()} (or \`factory resume ${issueKey}\` now)`;
  const where =
    park.placement && !park.placement.pushed ? `; the work is only on worker ${park.placement.node} (its park ref could not be pushed: ${park.placement.pushError ?? 'unknown error'})` : '';
  return `parked (${park.trigger}): ${park.reason}${where}; ${back}`;
}
