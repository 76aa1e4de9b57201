import { FactoryError } from '../../errors.js';
import type { ParkedWork, PrepareRequest, PreparedWorkspace, Workspace } from '../../ports/workspace.js';

/**
 * A Workspace with no git, for unit tests: it records requests and keeps the
 * rules the git adapter keeps (one workspace per issue and repo, reused with
 * its branch and commits on a retry; distinct folders for distinct keys; an
 * unknown repo refused when `repos` is given).
 */
export class InMemoryWorkspace implements Workspace {
  readonly prepared: PreparedWorkspace[] = [];
  /** When set, prepare() rejects with this error. */
  failWith: Error | undefined;
  readonly #repos: readonly string[] | undefined;
  readonly #commits = new Map<string, number>();
  readonly #workspaces = new Map<string, PreparedWorkspace>();

  /** `repos`: the only repos that exist (read at each prepare, so a test may add to it); any repo is accepted when absent. */
  constructor(options: { repos?: readonly string[] } = {}) {
    this.#repos = options.repos;
  }

  async prepare(request: PrepareRequest): Promise<PreparedWorkspace> {
    if (this.failWith) throw this.failWith;
    if (this.#repos && !this.#repos.includes(request.repo)) {
      throw new FactoryError('FACTORY_WORKSPACE_FAILED', `repo ${request.repo} does not exist (for ${request.issueKey})`);
    }
    const id = `${request.repo}\0${request.issueKey}`;
    const existing = this.#workspaces.get(id);
    const workspace =
      existing && existing.branch === request.branch ? existing : { path: `/worktrees/${encodeURIComponent(request.issueKey)}`, branch: request.branch, repo: request.repo, baseCommit: 'base' };
    this.#workspaces.set(id, workspace);
    this.prepared.push(workspace);
    return workspace;
  }

  async commitsSince(workspace: PreparedWorkspace): Promise<number> {
    return this.#commits.get(`${workspace.path}\0${workspace.branch}`) ?? 0;
  }

  async branchHead(workspace: PreparedWorkspace): Promise<string> {
    return `commit-${await this.commitsSince(workspace)}`;
  }

  /** Park refs by name: the branch head they sit on. */
  readonly parked = new Map<string, ParkedWork>();

  async park(workspace: PreparedWorkspace, ref: string): Promise<ParkedWork> {
    const parent = await this.branchHead(workspace);
    const parked = { ref, commit: `park-${this.parked.size + 1}`, parent };
    this.parked.set(ref, parked);
    return parked;
  }

  async restorePark(workspace: PreparedWorkspace, ref: string): Promise<ParkedWork> {
    const parked = this.parked.get(ref);
    if (!parked) throw new FactoryError('FACTORY_WORKSPACE_FAILED', `there is no parked work at ${ref}`);
    if (parked.parent !== (await this.branchHead(workspace))) throw new FactoryError('FACTORY_WORKSPACE_FAILED', `the work parked at ${ref} sits on ${parked.parent}, not on the branch head`);
    return parked;
  }

  /** Pretends an agent committed on the workspace's branch. */
  commit(workspace: Pick<PreparedWorkspace, 'path' | 'branch'>): void {
    const key = `${workspace.path}\0${workspace.branch}`;
    this.#commits.set(key, (this.#commits.get(key) ?? 0) + 1);
  }
}
