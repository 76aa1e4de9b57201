import type { ParkedRun } from './budgets.js';

/**
 * Where an issue stands in the factory. One claim per issue key; a new
 * revision of a finished issue starts a new claim. The value list is the one
 * source of the union, so code that lists statuses (SQL filters, validation)
 * never drifts from the type.
 */
export const CLAIM_STATUSES = [
  'queued', // waiting for a free team slot
  'running', // a team is at work
  'retry-wait', // failed, waiting for its backoff deadline
  'succeeded',
  'gave-up', // failed maxAttempts times, ended without a commit (no-changes), was cut short by too many daemon crashes, or its pull request was closed without merging
  'cancelled', // left scope or was closed while queued or running
  'parked', // stopped over a usage budget or limit, its work kept: resumes by hand or at its reset time
  'shepherding', // its pull request is open and followed through CI and review; no team runs (a fix round queues it again)
] as const;

export type ClaimStatus = (typeof CLAIM_STATUSES)[number];

/** Statuses of a claim still in play. */
export const ACTIVE_CLAIM_STATUSES = ['queued', 'running', 'retry-wait', 'parked', 'shepherding'] as const satisfies readonly ClaimStatus[];

export function isActiveClaimStatus(status: ClaimStatus): boolean {
  return (ACTIVE_CLAIM_STATUSES as readonly ClaimStatus[]).includes(status);
}

/**
 * A fix round of an issue's pull request: the team goes back to the pull
 * request's branch with what failed (checks with log excerpts, or the review's
 * comments). It is a run of the issue like any other: it waits for a slot, is
 * supervised, and one issue never has two.
 */
export interface FixRound {
  /** 1-based, as the shepherd's record numbers its rounds. */
  readonly round: number;
  /** `ci-failed` or `changes-requested`. */
  readonly trigger: string;
  /** The head commit whose failure or review the round answers. */
  readonly onSha: string;
  /** One line per failed check or change request, for people. */
  readonly failures: readonly string[];
  /** What failed, normalized: the same fingerprint after a fix attempt escalates to a person. */
  readonly fingerprints: readonly string[];
  /** The pull request's branch, which the round works on and pushes. */
  readonly branch: string;
  /** What the implementer is told, appended to the issue text. */
  readonly feedback: string;
}

export interface IssueClaim {
  readonly issueKey: string;
  readonly revision: string;
  readonly status: ClaimStatus;
  /** Attempts started so far for this revision. */
  readonly attempt: number;
  readonly nextAttemptAtMs: number | null;
  readonly runId: string | null;
  readonly repo: string;
  readonly priority: number | null;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
  readonly lastReason: string | null;
  /** The daemon epoch that last wrote this claim. */
  readonly epoch: number;
  /** Runs of this claim cut short by a daemon crash in a row (0 when absent); see `dispatch.maxCrashInterruptions`. */
  readonly interruptions?: number;
  /**
   * Where the claim's run is placed while it is `running` (`local` for this
   * machine). A restarted daemon reaps and requeues local runs and attaches to
   * runs placed on another node. Absent on claims written before placements.
   */
  readonly node?: string | null;
  /**
   * The parked run this claim continues: set when a run parks, kept while the
   * claim waits and runs again (a crash mid-resume resumes again), cleared by
   * any other outcome and by `dispatch --force`. Absent or null: a fresh start.
   */
  readonly park?: ParkedRun | null;
  /**
   * The fix round this claim's queued or running run is: set when the shepherd
   * queues a round, kept through a start, a crash or a park, cleared once the
   * round ends (back to `shepherding`). Absent or null: a run of the issue itself.
   */
  readonly fix?: FixRound | null;
}
