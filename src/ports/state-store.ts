import type { IssueClaim } from '../domain/claim.js';
import type { RunOutcome } from '../domain/run.js';
import type { AgentUsageRecord, UsageSummary } from '../domain/agent-events/usage-records.js';

export type { AgentUsageRecord, UsageSummary } from '../domain/agent-events/usage-records.js';

export type { ClaimStatus, IssueClaim } from '../domain/claim.js';

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
 * Everything one decision writes, applied atomically: all of it or none. An
 * intake pass over 10,000 issues is one batch (one commit, one fsync), and a
 * finished run's outcome goes in with its issue's next claim, so a crash can
 * never leave one without the other.
 */
export interface StateBatch {
  /** The writer's epoch: a batch from an epoch older than the store's is refused (FACTORY_STATE_STALE_EPOCH). */
  readonly epoch: number;
  readonly claims?: readonly IssueClaim[];
  readonly skips?: readonly SkipRecord[];
  /** Issue keys whose skip record is cleared (the issue came back into scope). */
  readonly clearedSkips?: readonly string[];
  /** A finished run; it starts as not yet written back to the source. `nextClaim` is saved with it. */
  readonly outcome?: { readonly outcome: RunOutcome; readonly nextClaim: IssueClaim };
}

/**
 * Durable claims, attempts, backoff deadlines and run history, so a restart
 * resumes retries on schedule. Each daemon run takes a new epoch; writes from
 * an older epoch are refused with FACTORY_STATE_STALE_EPOCH.
 *
 * Asynchronous, so a networked store (Redis, Postgres) can implement it. The
 * caller keeps its own in-memory view and awaits each write before acting on
 * it (claim before spawn).
 */
export interface StateStore {
  /** Bumps and returns the epoch, recording its owner. */
  beginEpoch(owner: DaemonOwner, nowMs: number): Promise<number>;
  currentEpoch(): Promise<number>;
  getClaim(issueKey: string): Promise<IssueClaim | undefined>;
  listClaims(): Promise<IssueClaim[]>;
  /** Claims still in play (queued, running, retry-wait): what status readers need, without the whole history. */
  listActiveClaims(): Promise<IssueClaim[]>;
  /** Applies a batch atomically, after checking its epoch. */
  apply(batch: StateBatch): Promise<void>;
  /** The outcome reached the source (the `<KEY>.outcome.md` file). */
  markWrittenBack(runId: string): Promise<void>;
  /** Outcomes recorded but not yet written back (a crash hit in between), oldest first; retried at startup. */
  pendingWritebacks(): Promise<RunOutcome[]>;
  /** The latest `limit` outcomes, newest first. */
  recentOutcomes(limit: number): Promise<RunOutcome[]>;
  outcomeCount(): Promise<number>;
  listSkips(): Promise<SkipRecord[]>;
  /**
   * Adds agent runs to the usage ledger. A record of a run and agent already
   * there is replaced, never counted twice. Not fenced by the epoch: tokens
   * spent are a fact, whichever control plane records them.
   */
  recordUsage(records: readonly AgentUsageRecord[]): Promise<void>;
  /** The ledger summed per role and driver over the runs that ended at or after `sinceMs` (0: all of it). */
  usageSummary(sinceMs: number): Promise<UsageSummary>;
  close(): Promise<void>;
}

/** A state store opened for reading only (status readers, dry runs): never takes an epoch, never writes. */
export type ReadOnlyStateStore = Pick<
  StateStore,
  'currentEpoch' | 'getClaim' | 'listClaims' | 'listActiveClaims' | 'pendingWritebacks' | 'recentOutcomes' | 'outcomeCount' | 'listSkips' | 'usageSummary' | 'close'
>;
