import type { RunOutcome, StopReason } from '../domain/run.js';
import type { RunEvent, TeamPlan } from './team-executor.js';

/**
 * The worker's side of a queue of team runs (BullMQ on Redis today). A worker
 * claims a run, holds a lock on it that expires unless renewed, and may only
 * speak for the run while it holds that lock: every publish is checked
 * against the lock where it is stored, so a worker that froze or was cut off
 * cannot report anything once another worker may have the run.
 */

/** What a worker says about a run besides the run's own events, in stream order. */
export type WorkerRunEvent =
  | RunEvent
  /** A worker took the run; `pickedAtMs - enqueuedAtMs` is the pickup latency (worker clock vs control-plane clock). */
  | { readonly kind: 'picked'; readonly runId: string; readonly node: string; readonly enqueuedAtMs: number; readonly atMs: number }
  /** The agents showed a sign of work (output or CPU) since the last report. */
  | { readonly kind: 'activity'; readonly runId: string; readonly atMs: number }
  /** The worker handed the run back to the queue (it is shutting down); another worker takes it from the start. */
  | { readonly kind: 'requeued'; readonly runId: string; readonly node: string; readonly reason: string; readonly atMs: number }
  /** The worker refused the run: it carries an older control-plane epoch than the worker has seen. */
  | { readonly kind: 'refused'; readonly runId: string; readonly node: string; readonly reason: string; readonly atMs: number };

export type WorkerRunEventKind = WorkerRunEvent['kind'];

/** A durable request to stop a run, written by the control plane that holds the lease. */
export interface CancelRequest {
  readonly runId: string;
  readonly reason: StopReason;
  /** The lease epoch of the control plane that asked: a worker ignores requests older than the newest epoch it has seen. */
  readonly epoch: number;
}

/** One run a worker holds the lock of. */
export interface ClaimedTeamRun {
  readonly plan: TeamPlan;
  /** The lease epoch of the control plane that queued the run. */
  readonly epoch: number;
  readonly enqueuedAtMs: number;
  /**
   * Takes the run, in one step where the run is stored: checks that the lock
   * is ours and that the run's epoch (the job's, or a later leader's that
   * attached to it) is not older than the CURRENT leader epoch, and records
   * the run as taken by this worker for that epoch. A stale run is refused
   * here, before anything runs. Throws when the queue cannot be reached.
   */
  take(): Promise<RunTaking>;
  /** Appends to the run's event stream if this worker still holds the run's lock; false (and nothing written) when it does not. */
  publish(event: WorkerRunEvent): Promise<boolean>;
  /** Extends the lock by the queue's lock duration; false when the lock is no longer ours. Throws when the queue cannot be reached. */
  renewLock(): Promise<boolean>;
  /** The durable cancel record of this run, if any. */
  cancelRequest(): Promise<CancelRequest | null>;
  /** Puts the run back in the queue for another worker; false when the lock was already gone. */
  handBack(): Promise<boolean>;
}

/** What the take step said, with the leader epoch current then and the run's epoch (raised by an adopting leader). */
export type RunTaking =
  | { readonly kind: 'taken'; readonly currentEpoch: number; readonly runEpoch: number }
  | { readonly kind: 'stale'; readonly currentEpoch: number; readonly runEpoch: number }
  | { readonly kind: 'lock-lost' };

/** How a worker finished with a claimed run. */
export type HandledRun =
  | { readonly kind: 'completed'; readonly outcome: RunOutcome }
  /** Refused before anything ran (stale epoch). */
  | { readonly kind: 'refused'; readonly reason: string }
  /** The lock was lost: the agents were killed and nothing was reported. */
  | { readonly kind: 'fenced'; readonly reason: string }
  /** Handed back to the queue during shutdown. */
  | { readonly kind: 'handed-back' };

/**
 * The highest control-plane epoch a worker has seen, kept across its restarts
 * (a small file in its state folder): runs and cancels from an older epoch come
 * from a control plane that has lost its lease, and are refused.
 */
export interface EpochFloor {
  highest(): Promise<number>;
  /** Records `epoch` if it is higher than what is stored (durably, before it returns). */
  raise(epoch: number): Promise<void>;
}

/** What a worker says about itself in Redis (the pool's `workers` hash), refreshed every heartbeat interval. */
export interface WorkerAnnouncement {
  readonly node: string;
  readonly hostname: string;
  readonly pid: number;
  readonly slots: number;
  /** Runs it holds now. */
  readonly runs: readonly { readonly runId: string; readonly issueKey: string }[];
  readonly startedAtMs: number;
  /** The worker's clock when it last wrote this. */
  readonly updatedAtMs: number;
  /** `running`, or `stopping` once it fetches no more. */
  readonly status: 'running' | 'stopping';
  /** Since the worker started. */
  readonly counters: {
    readonly lockRenewals: number;
    readonly lockRenewalFailures: number;
    readonly selfFences: number;
    readonly staleRefusals: number;
    readonly completed: number;
    readonly handedBack: number;
    readonly branchesPushed: number;
    /** Park refs pushed to the repo's remote, and pushes that failed (absent from workers older than park pushing). */
    readonly parksPushed?: number;
    readonly parkPushFailures?: number;
  };
}

/** The fleet as read from Redis: the leader, the workers, where runs are, the queue. */
export interface FleetStatus {
  /** The lease holder now, or null when nobody leads. */
  readonly leader: { readonly hostname: string; readonly pid: number; readonly epoch: number; readonly expiresInMs: number | null } | null;
  readonly epoch: number;
  /** Newest first; `heartbeatAgeMs` is the reader's clock minus the worker's last write (clock skew included). */
  readonly workers: readonly (WorkerAnnouncement & { readonly heartbeatAgeMs: number; readonly redis: 'connected' | 'silent' })[];
  /** Each run a worker holds, with the worker it is placed on. */
  readonly placements: readonly { readonly runId: string; readonly issueKey: string; readonly node: string }[];
  readonly queue: { readonly waiting: number; readonly active: number; readonly delayed: number; readonly completed: number; readonly failed: number };
  /** Redis's own figures, for boundedness: memory in use and keys in the database. */
  readonly redis: { readonly usedMemoryBytes: number; readonly keys: number };
}
