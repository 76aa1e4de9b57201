/** The queue's timing and bounds, shared by control planes and workers of one pool (they must agree). */
export interface FleetQueueSettings {
  /** A worker that has not renewed a run's lock for this long loses it. */
  readonly lockDurationMs: number;
  /** How often workers and the control plane look for runs whose lock lapsed. */
  readonly stalledIntervalMs: number;
  /** Each run's event stream keeps about this many entries (XADD MAXLEN ~). */
  readonly eventsMaxLen: number;
  /** A run's event stream expires this long after its last event. */
  readonly eventsTtlMs: number;
  /** A finished run's job and event stream are kept this long after its outcome is recorded, then dropped. */
  readonly finishedRetentionMs: number;
  /** Completed jobs kept at most (the newest), whatever their age. */
  readonly finishedJobsKept: number;
  /** A failed job (refused or lost by a worker) is kept this long for inspection. */
  readonly failedRetentionMs: number;
  /** Failed jobs kept at most (the newest), whatever their age. */
  readonly failedJobsKept: number;
  /** A Redis command without a reply in this time fails instead of hanging on a frozen server. */
  readonly commandTimeoutMs: number;
}

export const DEFAULT_FLEET_QUEUE_SETTINGS: FleetQueueSettings = {
  lockDurationMs: 120_000,
  stalledIntervalMs: 30_000,
  eventsMaxLen: 1_000,
  eventsTtlMs: 24 * 3_600_000,
  finishedRetentionMs: 3_600_000,
  finishedJobsKept: 1_000,
  failedRetentionMs: 24 * 3_600_000,
  failedJobsKept: 1_000,
  commandTimeoutMs: 5_000,
};
