import { sameLabel } from './triage.js';
import type { AgentRunReport } from './agent-events/agent-driver.js';
import type { ReviewRoundEntry } from './review.js';
import type { ParkedRun } from './budgets.js';
import type { FixRound } from './claim.js';

/** A role in a team, as named by the config's `agents` (see domain/team.ts). */
export type AgentRole = string;

/**
 * Why a run ended. Distinct reasons, so retries, metrics and the user can tell
 * a crash from a timeout from a cancellation.
 */
export const RUN_OUTCOME_REASONS = ['succeeded', 'failed', 'timed-out', 'stalled', 'cancelled', 'spawn-failed', 'released', 'oom', 'no-changes', 'changes-requested', 'parked'] as const;
export type RunOutcomeReason = (typeof RUN_OUTCOME_REASONS)[number];

/** Why the factory stopped a team before it finished on its own. */
export type StopReason = Extract<RunOutcomeReason, 'timed-out' | 'stalled' | 'cancelled' | 'released' | 'parked'>;

export interface AgentResult {
  readonly role: AgentRole;
  readonly agentName: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly reason: RunOutcomeReason;
  readonly logPath: string;
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  /** What a CLI driver (claude-code, codex) read from the agent's stream: verdict, session, usage. Absent for command agents. */
  readonly report?: AgentRunReport;
  /**
   * The highest resident memory (RSS) of the agent's process tree that a supervision tick sampled:
   * sampled, not exact (a spike between two ticks is missed; shared pages count once per process).
   * Absent when no tick sampled the agent (it ended within one `runs.superviseIntervalMs`, or its fleet does not sample).
   */
  readonly memoryPeakBytes?: number;
}

/** The peak after one more sample: the higher of the two, unchanged by a sample that is unknown. */
export function raisePeak(peakBytes: number | undefined, sampleBytes: number | null | undefined): number | undefined {
  if (sampleBytes === null || sampleBytes === undefined || !Number.isFinite(sampleBytes) || sampleBytes < 0) return peakBytes;
  return peakBytes === undefined ? sampleBytes : Math.max(peakBytes, sampleBytes);
}

export interface RunOutcome {
  readonly runId: string;
  readonly issueKey: string;
  readonly revision: string;
  readonly attempt: number;
  readonly reason: RunOutcomeReason;
  readonly detail: string;
  readonly branch: string;
  readonly worktree: string;
  readonly agents: readonly AgentResult[];
  /** Who did what in each review round (domain/review.ts); absent for a team without a review stage. */
  readonly reviewRounds?: readonly ReviewRoundEntry[];
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  /** The team's memory, when it ran inside a resource group (a `resources` budget is configured). */
  readonly memory?: RunMemory;
  /** Outcome `parked`: where the work is, why, when it resumes, which sessions continue. */
  readonly park?: ParkedRun;
  /** Set by the dispatcher when the run was a fix round of the issue's pull request: its writeback goes to the shepherd, which records the round. */
  readonly fix?: FixRound;
}

/**
 * A team's memory over its run, from its resource group: the kernel's own peak
 * and OOM-kill count for cgroups, the highest sample and budget stops for the
 * RSS sampler (docs/resources.md).
 */
export interface RunMemory {
  readonly peakBytes: number;
  /** Kernel OOM kills inside the group, or stops by the RSS sampler for the budget. */
  readonly oomKills: number;
  readonly limitBytes: number | null;
  /** `cgroup-v2`, `cgroup-v1` or `rss-sampling`. */
  readonly mechanism: string;
}

/**
 * Outcomes where the team did not deliver: the daemon logs them at warn, so a
 * failed run stands out from the info lines. Success, a park, a release at
 * stop and a cancellation are the factory working as meant.
 */
export function isFailedOutcome(reason: RunOutcomeReason): boolean {
  switch (reason) {
    case 'failed':
    case 'timed-out':
    case 'stalled':
    case 'spawn-failed':
    case 'oom':
    case 'no-changes':
    case 'changes-requested':
      return true;
    case 'succeeded':
    case 'cancelled':
    case 'released':
    case 'parked':
      return false;
  }
}

/** Reasons after which a retry may help. */
export function isRetryableOutcome(reason: RunOutcomeReason): boolean {
  return reason === 'failed' || reason === 'timed-out' || reason === 'stalled' || reason === 'spawn-failed';
}

/**
 * Whether a team whose agents all exited 0 may end without a commit on its
 * branch. Otherwise such a run is `no-changes`: an agent that "succeeds" while
 * doing nothing is not a success, and running it again would most likely do
 * nothing again, so it is not retried.
 */
export interface NoChangesPolicy {
  /** `runs.allowNoChanges`: every issue may end without a commit. */
  readonly allowNoChanges: boolean;
  /** `runs.allowNoChangesLabel`: an issue with this label (any case) may. */
  readonly allowNoChangesLabel?: string | undefined;
}

export function mayEndWithoutChanges(labels: readonly string[], policy: NoChangesPolicy): boolean {
  if (policy.allowNoChanges) return true;
  const label = policy.allowNoChangesLabel;
  return label !== undefined && labels.some((candidate) => sameLabel(candidate, label));
}

/** Exponential backoff with a cap; attempt is the attempt that just failed (1-based). */
export function computeBackoffMs(attempt: number, baseMs: number, maxMs: number): number {
  const exponent = Math.max(0, Math.min(30, attempt - 1));
  return Math.min(maxMs, baseMs * 2 ** exponent);
}
