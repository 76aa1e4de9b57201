import type { Issue } from '../domain/issue.js';
import type { RunOutcome } from '../domain/run.js';

/** One file (or remote record) that could not be read as an issue, and why. */
export interface SkippedIssueFile {
  readonly path: string;
  readonly reason: string;
  /** This version of the file (changes whenever the file does), so a skip is reported once per version, not on every pass. */
  readonly revision?: string;
}

export interface IssueScan {
  readonly issues: readonly Issue[];
  readonly skipped: readonly SkippedIssueFile[];
}

/**
 * Something in the source changed. `path` is a hint; consumers re-read the
 * source rather than trusting event payloads, so a coalesced or duplicated
 * event is harmless.
 */
export interface IssueSourceEvent {
  /** `probe`: a probe written by `probe()` came back through the subscription. */
  readonly kind: 'changed' | 'removed' | 'overflow' | 'probe';
  readonly path?: string;
  /** For `probe` events: the token passed to `probe()`. */
  readonly token?: string;
  readonly atMs: number;
}

export interface IssueSubscription {
  close(): Promise<void>;
}

export interface IssueSubscriptionHandlers {
  onEvent(event: IssueSourceEvent): void;
  /** The subscription broke (watcher error, folder removed). */
  onError(error: Error): void;
}

/**
 * Where issues come from. The local mount (a folder of issue files) is the
 * embedded default; GitHub, Linear or Relayfile sources plug in here later.
 */
export interface IssueSource {
  /** A human label for logs and reports, e.g. the mount folder. */
  readonly description: string;
  /** Every issue currently in the source; unreadable entries are reported, never thrown. */
  scan(): Promise<IssueScan>;
  /** Reads one issue by key or by path; throws a FactoryError when it cannot. */
  read(keyOrPath: string): Promise<Issue>;
  subscribe(handlers: IssueSubscriptionHandlers): Promise<IssueSubscription>;
  /**
   * Optional end-to-end check that events flow: makes a harmless change in the
   * source that the subscription must report back as a `probe` event carrying
   * `token`. A source without it is checked by reconcile passes only.
   */
  probe?(token: string): Promise<void>;
  /** Records a team's outcome next to the issue, without retriggering intake. */
  writeBack(issue: Issue, outcome: RunOutcome): Promise<void>;
}
