import type { RunOutcome } from '../domain/run.js';

/**
 * Where an issue stands in the factory. One row per issue key; a new revision
 * of a finished issue starts a new claim.
 */
export type ClaimStatus =
  | 'queued' // waiting for a free team slot
  | 'running' // a team is at work
  | 'retry-wait' // failed, waiting for its backoff deadline
  | 'succeeded'
  | 'gave-up' // failed maxAttempts times
  | 'cancelled'; // left scope or was closed while queued or running

export const ACTIVE_CLAIM_STATUSES: readonly ClaimStatus[] = ['queued', 'running', 'retry-wait'];

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
}

export interface SkipRecord {
  readonly issueKey: string;
  readonly reason: string;
  readonly atMs: number;
}

export interface DaemonOwner {
  readonly pid: number;
  readonly startTime: number;
  readonly bootId: string;
  readonly hostname: string;
}

/**
 * Durable claims, attempts, backoff deadlines and run history, so a restart
 * resumes retries on schedule. Each daemon run takes a new epoch; writes from
 * an older epoch are refused with FACTORY_STATE_STALE_EPOCH.
 * Synchronous by design: the embedded database answers in microseconds and a
 * synchronous write cannot interleave with another claim decision.
 */
export interface StateStore {
  /** Bumps and returns the epoch, recording its owner. */
  beginEpoch(owner: DaemonOwner, nowMs: number): number;
  currentEpoch(): number;
  getClaim(issueKey: string): IssueClaim | undefined;
  listClaims(): IssueClaim[];
  /** Claims still in play (queued, running, retry-wait): what status readers need, without the whole history. */
  listActiveClaims(): IssueClaim[];
  saveClaim(claim: IssueClaim): void;
  /**
   * Records a finished run and its issue's next claim in one transaction, so a
   * crash can never leave the outcome without the claim update or the reverse.
   * The outcome starts as not yet written back to the source.
   */
  recordOutcome(outcome: RunOutcome, nextClaim: IssueClaim): void;
  /** The outcome reached the source (the `<KEY>.outcome.md` file). */
  markWrittenBack(runId: string): void;
  /** Outcomes recorded but not yet written back (a crash hit in between); retried at startup. */
  pendingWritebacks(): RunOutcome[];
  recentOutcomes(limit: number): RunOutcome[];
  outcomeCount(): number;
  recordSkip(skip: SkipRecord, epoch: number): void;
  clearSkip(issueKey: string, epoch: number): void;
  listSkips(): SkipRecord[];
  /**
   * Runs `work` as one transaction: an intake pass over 10,000 issues is one
   * commit (one fsync), not 10,000. Nested calls join the outer transaction.
   */
  inTransaction<T>(work: () => T): T;
  close(): void;
}
