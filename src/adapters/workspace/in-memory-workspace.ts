import type { PreparedWorkspace, Workspace } from '../../ports/workspace.js';

/** A Workspace that only records requests, for unit tests that need no git. */
export class InMemoryWorkspace implements Workspace {
  readonly prepared: PreparedWorkspace[] = [];
  /** When set, prepare() rejects with this error. */
  failWith: Error | undefined;

  async prepare(request: { repo: string; issueKey: string; branch: string }): Promise<PreparedWorkspace> {
    if (this.failWith) throw this.failWith;
    const workspace = { path: `/worktrees/${request.issueKey}`, branch: request.branch, repo: request.repo, baseCommit: 'base' };
    this.prepared.push(workspace);
    return workspace;
  }

  async commitsSince(): Promise<number> {
    return 1;
  }
}
