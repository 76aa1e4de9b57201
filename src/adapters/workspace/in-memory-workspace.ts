import { FactoryError } from '../../errors.js';
import type { ParkedWork, PrepareRequest, PreparedWorkspace, Workspace, WorktreeRecord, WorktreeRemoval } from '../../ports/workspace.js';

/**
 * A Workspace with no git, for unit tests: it records requests and keeps the
 * rules the git adapter keeps (one workspace per issue and repo, reused with
 * its branch and commits on a retry; distinct folders for distinct keys; an
 * unknown repo refused when `repos` is given; a removed workspace's branch
 * and commits kept, its uncommitted changes saved to the leftover ref).
 */
export class InMemoryWorkspace implements Workspace {
  readonly prepared: PreparedWorkspace[] = [];
  /** When set, prepare() rejects with this error. */
  failWith: Error | undefined;
  readonly #repos: readonly string[] | undefined;
  readonly #commits = new Map<string, number>();
  readonly #workspaces = new Map<string, PreparedWorkspace>();
  /** When each workspace (by id) was last prepared: its "last modified". */
  readonly #touchedAtMs = new Map<string, number>();
  /** Paths with uncommitted changes (leaveChanges), and what each path takes on disk (setDiskUsage). */
  readonly #dirty = new Set<string>();
  readonly #bytes = new Map<string, number>();
  readonly #now: () => number;
  /** Leftover refs by name, as removeWorktree saved them. */
  readonly leftovers = new Map<string, ParkedWork>();

  /**
   * `repos`: the only repos that exist (read at each prepare, so a test may add to it); any repo is accepted when absent.
   * `now`: the time a prepare touches a workspace at (a fake clock's), 0 when absent.
   */
  constructor(options: { repos?: readonly string[]; now?: () => number } = {}) {
    this.#repos = options.repos;
    this.#now = options.now ?? (() => 0);
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
    this.#touchedAtMs.set(id, this.#now());
    this.prepared.push(workspace);
    return workspace;
  }

  async commitsSince(workspace: PreparedWorkspace, since: string = workspace.baseCommit): Promise<number> {
    const total = this.#commits.get(`${workspace.path}\0${workspace.branch}`) ?? 0;
    if (since === workspace.baseCommit) return total;
    // Heads are `commit-<n>` (branchHead): the commits since one are those made after it.
    const earlier = /^commit-(\d+)$/.exec(since);
    if (!earlier || Number(earlier[1]) > total) throw new FactoryError('FACTORY_WORKSPACE_FAILED', `${since} is not a commit on branch ${workspace.branch}`);
    return total - Number(earlier[1]);
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

  async listWorktrees(): Promise<WorktreeRecord[]> {
    return [...this.#workspaces].map(([id, workspace]) => ({
      path: workspace.path,
      repo: workspace.repo,
      issueKey: id.slice(id.indexOf('\0') + 1),
      branch: workspace.branch,
      lastModifiedMs: this.#touchedAtMs.get(id) ?? 0,
    }));
  }

  async removeWorktree(worktree: WorktreeRecord, options: { leftoverRef: string; message: string; confirm: () => Promise<boolean> }): Promise<WorktreeRemoval> {
    const id = [...this.#workspaces].find(([, workspace]) => workspace.path === worktree.path)?.[0];
    if (id === undefined) throw new FactoryError('FACTORY_WORKSPACE_FAILED', `${worktree.path} is not a worktree this workspace made; nothing was removed`);
    if (!options.leftoverRef.startsWith('refs/factory/leftover/')) throw new FactoryError('FACTORY_WORKSPACE_FAILED', `${JSON.stringify(options.leftoverRef)} is not a valid leftover ref`);
    if (!(await options.confirm())) return { removed: false, path: worktree.path, reason: 'the issue became active again' };
    const workspace = this.#workspaces.get(id)!;
    let leftover: ParkedWork | undefined;
    if (this.#dirty.delete(workspace.path)) {
      leftover = { ref: options.leftoverRef, commit: `leftover-${this.leftovers.size + 1}`, parent: await this.branchHead(workspace) };
      this.leftovers.set(options.leftoverRef, leftover);
    }
    this.#workspaces.delete(id);
    this.#touchedAtMs.delete(id);
    return { removed: true, path: worktree.path, leftover, bytesFreed: this.#bytes.get(worktree.path) ?? 0 };
  }

  async diskUsage(worktree: WorktreeRecord): Promise<number | undefined> {
    return this.#bytes.get(worktree.path) ?? 0;
  }

  /** Pretends an agent left uncommitted changes in the workspace. */
  leaveChanges(workspace: Pick<PreparedWorkspace, 'path'>): void {
    this.#dirty.add(workspace.path);
  }

  /** What the workspace at `path` takes on disk (0 unless set). */
  setDiskUsage(path: string, bytes: number): void {
    this.#bytes.set(path, bytes);
  }

  /** Pretends an agent committed on the workspace's branch. */
  commit(workspace: Pick<PreparedWorkspace, 'path' | 'branch'>): void {
    const key = `${workspace.path}\0${workspace.branch}`;
    this.#commits.set(key, (this.#commits.get(key) ?? 0) + 1);
  }
}
