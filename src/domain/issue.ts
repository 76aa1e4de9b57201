import { describeBranchNameProblem } from './git-ref-format.js';

/** An issue as Factory sees it, whatever source it came from. */
export interface Issue {
  /** Stable identifier, e.g. `FAC-12`. Used in branch names and file names. */
  readonly key: string;
  readonly title: string;
  readonly body: string;
  readonly labels: readonly string[];
  /** Free-form workflow state; `ready` means ready for an agent. */
  readonly state: string;
  /** Lower runs first. Issues without a priority sort after those with one. */
  readonly priority?: number;
  /** When the issue was created (ms since epoch); age ordering within a priority. */
  readonly createdAtMs: number;
  /**
   * A content hash of everything that affects a run. One revision is
   * dispatched at most once, however many events announce it.
   */
  readonly revision: string;
  /** Where the issue lives in its source (a file path for the local mount). */
  readonly location: string;
}

export const READY_STATE = 'ready';

/** Keys end up in branch names, file names and log fields: keep them tame (and see describeIssueKeyProblem). */
export const ISSUE_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function isValidIssueKey(key: string): boolean {
  return describeIssueKeyProblem(key) === undefined;
}

/**
 * Why `key` cannot be an issue key, or undefined when it can. Says which rule
 * and where, never quoting the key: it comes from untrusted files.
 */
export function describeIssueKeyProblem(key: string): string | undefined {
  if (key === '') return 'it is empty';
  if (key.length > 100) return `it is ${key.length} characters long, more than 100`;
  if (!/^[A-Za-z0-9]/.test(key)) return 'it must start with a letter or digit';
  const bad = [...key].findIndex((char) => !/^[A-Za-z0-9._-]$/.test(char));
  if (bad !== -1) return `character ${bad + 1} is not a letter, digit, ".", "_" or "-"`;
  // Keys become branch names (`factory/FOO-1.` or `X.lock` would fail in git worktree add, retried for nothing).
  const branchProblem = describeBranchNameProblem(key);
  if (branchProblem !== undefined) return `it is not a valid git branch name: ${branchProblem}`;
  return undefined;
}
