import { fleetKeys } from '../redis/keys.js';

/**
 * Every Redis name the fleet's team-run queue uses, in one place. Keys of one
 * pool share the hash tag `{<pool>}` so they live in one Redis Cluster slot
 * (the Lua scripts touch several at once); BullMQ's own keys sit under the same
 * prefix: `<keyPrefix>:{<pool>}:team-runs:<jobId>`.
 */
export interface TeamRunKeys {
  /** BullMQ's `prefix` option. */
  readonly prefix: string;
  readonly queueName: string;
  /** The run's event stream (worker → control plane). */
  runEvents(runId: string): string;
  /** The durable cancel record of a run. */
  cancelRecord(runId: string): string;
  /** Where cancels are announced (the record is the truth; this is the nudge). */
  readonly cancelChannel: string;
  /** BullMQ's lock key of a job: holds the lock token of the worker that has it. */
  jobLock(jobId: string): string;
  /** Workers announce themselves here (hash: node → JSON), for status. */
  readonly workers: string;
  /** The leader lease's epoch counter (the same key the lease INCRs): a worker checks a run's epoch against it when it takes the run. */
  readonly leaseEpoch: string;
  /**
   * Hash of a run's fencing facts: `adoptedEpoch` (a later leader attached to
   * the run and vouches for it) and `takenBy` / `takenEpoch` / `takenToken`
   * (the worker that took it, and for which epoch).
   */
  runFence(runId: string): string;
}

export const TEAM_RUN_QUEUE = 'team-runs';

export function teamRunKeys(options: { keyPrefix: string; pool: string }): TeamRunKeys {
  const prefix = `${options.keyPrefix}:{${options.pool}}`;
  return {
    prefix,
    queueName: TEAM_RUN_QUEUE,
    runEvents: (runId) => `${prefix}:run-events:${runId}`,
    cancelRecord: (runId) => `${prefix}:cancel:${runId}`,
    cancelChannel: `${prefix}:cancels`,
    jobLock: (jobId) => `${prefix}:${TEAM_RUN_QUEUE}:${jobId}:lock`,
    workers: `${prefix}:workers`,
    leaseEpoch: fleetKeys(options.keyPrefix, options.pool).leaseEpoch,
    runFence: (runId) => `${prefix}:run-fence:${runId}`,
  };
}

/**
 * One job per run attempt: the run id already names the issue, the epoch and
 * the attempt (`FAC-1-e3-a2-9f1c2b`), so adding the same run twice is a no-op.
 * BullMQ refuses ids with ":" and plain integers; run ids have neither.
 */
export function jobIdForRun(runId: string): string {
  if (runId.includes(':') || /^\d+$/.test(runId)) throw new Error(`run id ${JSON.stringify(runId)} cannot be a job id`);
  return runId;
}
