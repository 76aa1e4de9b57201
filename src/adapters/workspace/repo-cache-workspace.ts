import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import type { ParkedWork, PreparedWorkspace, Workspace } from '../../ports/workspace.js';

const run = promisify(execFile);

/**
 * A worker's view of the routed repos: each repo (a path or a remote URL, as
 * the control plane routed it) is cloned once into this worker's cache folder
 * and fetched before every run; worktrees are then made from that clone, so
 * two workers never share a checkout and a branch checked out on one worker
 * never blocks another.
 */
export class RepoCacheWorkspace implements Workspace {
  readonly #cacheDir: string;
  readonly #inner: Workspace;
  /** One clone or fetch per repo at a time. */
  readonly #busy = new Map<string, Promise<unknown>>();

  constructor(options: { cacheDir: string; inner: Workspace }) {
    this.#cacheDir = options.cacheDir;
    this.#inner = options.inner;
  }

  prepare(request: { repo: string; issueKey: string; branch: string }): Promise<PreparedWorkspace> {
    // The fetch and the worktree add run one at a time per clone: a fetch walks the refs of every worktree, so it must not see one half made.
    return this.#serially(request.repo, async () => this.#inner.prepare({ ...request, repo: await this.#refresh(request.repo) }));
  }

  commitsSince(workspace: PreparedWorkspace): Promise<number> {
    return this.#inner.commitsSince(workspace);
  }

  branchHead(workspace: PreparedWorkspace): Promise<string> {
    return this.#inner.branchHead(workspace);
  }

  park(workspace: PreparedWorkspace, ref: string, message: string): Promise<ParkedWork> {
    return this.#inner.park(workspace, ref, message);
  }

  restorePark(workspace: PreparedWorkspace, ref: string): Promise<ParkedWork> {
    return this.#inner.restorePark(workspace, ref);
  }

  /**
   * Pushes a run's branch from its worktree to the remote the repo was cloned
   * from (`origin` of this worker's clone). Forced: the branch belongs to the
   * run, and only the attempt that succeeded while holding its lock pushes.
   */
  async pushBranch(worktree: string, branch: string): Promise<void> {
    try {
      await run('git', ['-C', worktree, 'push', '--quiet', '--force', 'origin', `refs/heads/${branch}:refs/heads/${branch}`]);
    } catch (error) {
      // git quotes the remote URL in its errors: never let credentials in it through (so no `cause`, which would carry them).
      // eslint-disable-next-line preserve-caught-error
      throw new Error(((error as { stderr?: string }).stderr || (error as Error).message).trim().replace(/\/\/[^/@\s]*@/g, '//***@'));
    }
  }

  #serially<T>(repo: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#busy.get(repo) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    this.#busy.set(repo, next);
    return next;
  }

  async #refresh(repo: string): Promise<string> {
    const name = `${basename(repo)
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .replace(/\.git$/, '')}-${createHash('sha256').update(repo).digest('hex').slice(0, 8)}`;
    const clone = join(this.#cacheDir, name);
    if (existsSync(join(clone, '.git'))) {
      await run('git', ['-C', clone, 'fetch', '--quiet', '--prune', 'origin']);
      // The default branch moves with the remote; run branches start from it.
      await run('git', ['-C', clone, 'reset', '--quiet', '--hard', '@{upstream}']).catch(() => undefined);
    } else {
      await mkdir(this.#cacheDir, { recursive: true });
      await run('git', ['clone', '--quiet', repo, clone]);
    }
    return clone;
  }
}
