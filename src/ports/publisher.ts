import type { Issue } from '../domain/issue.js';
import type { RunOutcome } from '../domain/run.js';
import type { PullObservation, ShepherdRecord } from '../domain/shepherd.js';

/**
 * Where a finished team's work goes and how its issue shows progress, for
 * sources that have a code host (GitHub). The local mount has neither: the
 * daemon runs without them and nothing changes for it.
 */

export const ISSUE_STAGES = ['queued', 'working', 'done', 'failed', 'parked', 'pr-open', 'needs-human'] as const;
export type IssueStage = (typeof ISSUE_STAGES)[number];

/** How the dispatcher shows an issue's stage on the issue itself (GitHub: one lifecycle label). */
export interface IssueProgress {
  /**
   * Shows `stage`. Calls for one issue take effect in the order they were
   * made; resolves once the stage is visible (read back), throws when it cannot be.
   */
  markStage(issue: Issue, stage: IssueStage): Promise<void>;
}

/** A pull request Factory opened for an issue's branch. */
export interface PublishedChange {
  readonly issueKey: string;
  readonly number: number;
  readonly url: string;
  readonly branch: string;
  /** The commit the branch pointed at when it was pushed. */
  readonly headSha: string;
  readonly draft: boolean;
}

/** A pull request Factory is following, as found again after a restart. */
export interface WatchedChange {
  readonly change: PublishedChange;
  /** Where the issue lives in its source, for `IssueSource.read`. */
  readonly issueLocation: string;
}

export interface CodeHost {
  /**
   * Pushes the run's branch with a credential for this command only, then
   * opens a draft pull request for it, or updates the one already open for
   * that branch (found first: a retry or a restart never opens a second).
   * Marks it ready for review when the run's reviewer approved.
   */
  publish(issue: Issue, outcome: RunOutcome, shepherd?: ShepherdRecord): Promise<PublishedChange>;
  /** Every open pull request Factory opened, on every repository it watches. */
  listWatched(): Promise<WatchedChange[]>;
  /** The pull request as it is now: head, checks and statuses on the head, reviews. */
  observe(change: PublishedChange): Promise<PullObservation>;
  merge(change: PublishedChange, method: 'squash' | 'merge' | 'rebase', headSha: string): Promise<void>;
  /** The shepherd's record, kept with the issue (GitHub: in the status comment), so it survives a restart. */
  loadRecord(issue: Issue): Promise<ShepherdRecord | undefined>;
  saveRecord(issue: Issue, record: ShepherdRecord): Promise<void>;
  /** Asks a person to take over: `needs-human` stage and a comment saying what was tried (once per record). */
  escalate(issue: Issue, change: PublishedChange, text: string): Promise<void>;
}
