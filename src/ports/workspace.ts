import type { ParkedRun } from '../domain/budgets.js';

/** An isolated checkout for one run: a git worktree on a branch named after the issue. */
export interface PreparedWorkspace {
  readonly path: string;
  readonly branch: string;
  readonly repo: string;
  /** Commit the branch started from. */
  readonly baseCommit: string;
}

/** What a worktree is prepared for: an issue's branch in a repo, and for a resumed run the work it continues. */
export interface PrepareRequest {
  readonly repo: string;
  readonly issueKey: string;
  readonly branch: string;
  /**
   * A resumed run's park (with a park commit): a branch that does not exist
   * yet starts on the commit the work was parked on, and a repo cache fetches
   * the park ref from the remote first (FACTORY_PARK_UNAVAILABLE when neither
   * the remote nor the local clone has it).
   */
  readonly park?: ParkedRun;
}

export interface Workspace {
  /**
   * Creates (or reuses, for a retry or the reviewer) the worktree for an issue
   * in `repo`, on `branch`. Safe to call again for the same issue.
   */
  prepare(request: PrepareRequest): Promise<PreparedWorkspace>;
  /**
   * Commits on the branch since `since`, a commit branchHead() returned
   * earlier (a run's own commits), or since the base commit when absent (the
   * branch's commits over all its runs).
   */
  commitsSince(workspace: PreparedWorkspace, since?: string): Promise<number>;
  /** The commit the branch points at now (for the review round history). */
  branchHead(workspace: PreparedWorkspace): Promise<string>;
  /**
   * Parks a run's work: commits everything in the worktree (committed or not,
   * untracked files too, ignored ones not) to `ref`, e.g.
   * `refs/factory/park/<run>`, on top of the worktree's HEAD. The branch does
   * not move and no index of the user's (nor the worktree's) changes.
   */
  park(workspace: PreparedWorkspace, ref: string, message: string): Promise<ParkedWork>;
  /**
   * Puts parked work back into the worktree as uncommitted changes, as the
   * agent left it. Refused (FACTORY_WORKSPACE_FAILED) when the worktree's HEAD
   * is no longer the commit the work was parked on.
   */
  restorePark(workspace: PreparedWorkspace, ref: string): Promise<ParkedWork>;
  /**
   * Every worktree Factory made, in no particular order: the folders under
   * the worktrees root that are git worktrees (a symlink there is never
   * followed).
   */
  listWorktrees(): Promise<WorktreeRecord[]>;
  /**
   * Removes one worktree, never its branch or its commits. Under the
   * repository's lock (so no prepare() of this process runs in between):
   * `confirm` is asked first and the removal is skipped when it says no;
   * uncommitted or untracked (not ignored) changes, and a detached HEAD no
   * ref reaches, are first saved to `leftoverRef`
   * (`refs/factory/leftover/<issue>-<time>`), as park() saves them. A path
   * outside the worktrees root (a symlink out included) is refused with
   * FACTORY_WORKSPACE_FAILED.
   */
  removeWorktree(worktree: WorktreeRecord, options: { leftoverRef: string; message: string; confirm: () => Promise<boolean> }): Promise<WorktreeRemoval>;
  /** Bytes the worktree takes on disk, or undefined when it cannot be measured. */
  diskUsage(worktree: WorktreeRecord): Promise<number | undefined>;
}

/** A worktree Factory made for an issue. */
export interface WorktreeRecord {
  readonly path: string;
  /** The checkout the worktree belongs to. */
  readonly repo: string;
  /** The issue it was made for, or undefined when its folder name is not an issue key (it is then never removed automatically). */
  readonly issueKey: string | undefined;
  /** The branch checked out there (undefined when detached). */
  readonly branch: string | undefined;
  /** The newest change git or Factory made to it (checkout, index, HEAD): not a walk of every file. */
  readonly lastModifiedMs: number;
}

export type WorktreeRemoval =
  | { readonly removed: true; readonly path: string; readonly leftover: ParkedWork | undefined; readonly bytesFreed: number | undefined }
  | { readonly removed: false; readonly path: string; readonly reason: string };

export interface ParkedWork {
  readonly ref: string;
  /** The park commit. */
  readonly commit: string;
  /** The commit it sits on: the worktree's HEAD when it was parked. */
  readonly parent: string;
}
