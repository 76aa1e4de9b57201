/** An isolated checkout for one run: a git worktree on a branch named after the issue. */
export interface PreparedWorkspace {
  readonly path: string;
  readonly branch: string;
  readonly repo: string;
  /** Commit the branch started from. */
  readonly baseCommit: string;
}

export interface Workspace {
  /**
   * Creates (or reuses, for a retry or the reviewer) the worktree for an issue
   * in `repo`, on `branch`. Safe to call again for the same issue.
   */
  prepare(request: { repo: string; issueKey: string; branch: string }): Promise<PreparedWorkspace>;
  /** Commits on the branch since the base commit (for the report). */
  commitsSince(workspace: PreparedWorkspace): Promise<number>;
  /** The commit the branch points at now (for the review round history). */
  branchHead(workspace: PreparedWorkspace): Promise<string>;
}
