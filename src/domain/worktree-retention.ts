import { isActiveClaimStatus, type IssueClaim } from './claim.js';

/**
 * When a worktree Factory made may go (docs/operations.md, "Worktree
 * retention"). One rule for the daemon's hourly pass and for `factory prune`,
 * dry run included. Removal never loses work (the adapter saves what is
 * uncommitted first), but a worktree is still only taken from an issue that
 * is done with it: its claim finished (or it has none), no team of it runs,
 * and neither Factory nor git touched it for the retention period.
 *
 * A fleet worker keeps no claims (they live with the control plane), so there
 * `claim` is always undefined and the rule comes down to "no run of the issue
 * on this worker, untouched for the period". That is safe because nothing a
 * worker's run leaves in its worktree is only there: a succeeded branch and a
 * park ref are pushed, the branch and park refs stay in the worker's clone,
 * and what is uncommitted goes to the leftover ref before the removal.
 */

/** Why a worktree stays. */
export type WorktreeKeepReason =
  /** Automatic removal is off (`workspace.keepFinishedForMs` 0 or "never") and no --older-than was given. */
  | 'retention-off'
  /** Its folder name is not an issue key, so no claim can vouch for it. */
  | 'issue-unknown'
  /** Its issue's claim is still in play (queued, running, retry-wait, parked, shepherding). */
  | 'claim-active'
  | 'team-running'
  /** Touched (or its claim finished) within the retention period. */
  | 'recent';

export type WorktreeRetentionDecision = { readonly remove: true } | { readonly remove: false; readonly reason: WorktreeKeepReason };

export interface WorktreeRetentionFacts {
  readonly issueKey: string | undefined;
  /** The issue's claim, when it has one; always undefined on a fleet worker, which keeps no claims. */
  readonly claim: Pick<IssueClaim, 'status' | 'updatedAtMs'> | undefined;
  /** A team of the issue is running or starting (on a fleet worker: a run of it on this worker). */
  readonly teamRunning: boolean;
  readonly lastModifiedMs: number;
  readonly nowMs: number;
  /** How long a finished issue's worktree is kept; null: kept for good. */
  readonly keepFinishedForMs: number | null;
}

export function decideWorktreeRetention(facts: WorktreeRetentionFacts): WorktreeRetentionDecision {
  if (facts.keepFinishedForMs === null) return { remove: false, reason: 'retention-off' };
  if (facts.issueKey === undefined) return { remove: false, reason: 'issue-unknown' };
  if (facts.teamRunning) return { remove: false, reason: 'team-running' };
  if (facts.claim && isActiveClaimStatus(facts.claim.status)) return { remove: false, reason: 'claim-active' };
  // The claim's last change counts as a touch: a pull request merged yesterday keeps its worktree for the full period.
  const lastTouchedMs = Math.max(facts.lastModifiedMs, facts.claim?.updatedAtMs ?? 0);
  if (facts.nowMs - lastTouchedMs <= facts.keepFinishedForMs) return { remove: false, reason: 'recent' };
  return { remove: true };
}

/**
 * Where a removed worktree's uncommitted work is kept:
 * `refs/factory/leftover/<issue>-<UTC time>`, e.g.
 * `refs/factory/leftover/FAC-12-20250301T120000Z`. Issue keys are valid ref
 * components (domain/issue.ts), and so is the time in this form.
 */
export function leftoverRefFor(issueKey: string, nowMs: number): string {
  const time = new Date(nowMs)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `refs/factory/leftover/${issueKey}-${time}`;
}
