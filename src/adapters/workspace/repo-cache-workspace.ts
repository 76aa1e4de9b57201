import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import type { ParkedWork, PrepareRequest, PreparedWorkspace, Workspace, WorktreeRecord, WorktreeRemoval } from '../../ports/workspace.js';
import type { ParkedRun } from '../../domain/budgets.js';
import { FactoryError } from '../../errors.js';
import { askpassHelperPath, credentialedGitCommand, runGit, type RemoteCredential } from '../github/git-push.js';
import { runBounded, type BoundedRunError } from '../../util/run-bounded.js';

const run = promisify(execFile);

/**
 * A worker's view of the routed repos: each repo (a path or a remote URL, as
 * the control plane routed it) is cloned once into this worker's cache folder
 * and fetched before every run; worktrees are then made from that clone, so
 * two workers never share a checkout and a branch checked out on one worker
 * never blocks another.
 *
 * With a credential (a GitHub source: the token or App of this worker's own
 * config), every git command that reaches a repo on its host (clone, fetch,
 * push) gets it for that one command, as the daemon pushes (git-push.ts):
 * never in argv, the clone's remote URL, `.git/config`, a credential store or
 * an error. Other remotes are reached with what the clone's `origin` carries
 * (a deploy key, an SSH agent). No git command here ever waits on a prompt.
 */
export class RepoCacheWorkspace implements Workspace {
  readonly #cacheDir: string;
  readonly #inner: Workspace;
  readonly #credential: RemoteCredential | undefined;
  readonly #remoteTimeoutMs: number;
  /** One clone, fetch or worktree removal per clone at a time, keyed by the clone's folder name. */
  readonly #busy = new Map<string, Promise<unknown>>();

  constructor(options: {
    cacheDir: string;
    inner: Workspace;
    credential?: RemoteCredential;
    /** One git command against the remote may take this long (`fleet.worker.remoteGitTimeoutMs`); 0: no limit. */
    remoteTimeoutMs?: number;
  }) {
    this.#cacheDir = options.cacheDir;
    this.#inner = options.inner;
    this.#credential = options.credential;
    this.#remoteTimeoutMs = options.remoteTimeoutMs ?? 0;
  }

  prepare(request: PrepareRequest): Promise<PreparedWorkspace> {
    // The fetch and the worktree add run one at a time per clone: a fetch walks the refs of every worktree, so it must not see one half made.
    return this.#serially(basename(this.#clonePath(request.repo)), async () => {
      const clone = await this.#refresh(request.repo);
      if (request.park?.commit) await this.#fetchPark(request.repo, clone, request.park);
      return this.#inner.prepare({ ...request, repo: clone });
    });
  }

  commitsSince(workspace: PreparedWorkspace, since?: string): Promise<number> {
    return this.#inner.commitsSince(workspace, since);
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

  listWorktrees(): Promise<WorktreeRecord[]> {
    return this.#inner.listWorktrees();
  }

  /**
   * Waits for the clone's fetch, like a prepare(): a fetch walks the HEAD of
   * every worktree of the clone, so it must not see one half removed. A run
   * starting meanwhile for the same issue waits here too, and `confirm`
   * (asked under the repository lock) then sees it and keeps the worktree.
   */
  removeWorktree(worktree: WorktreeRecord, options: { leftoverRef: string; message: string; confirm: () => Promise<boolean> }): Promise<WorktreeRemoval> {
    // The record names the clone by its real path; its folder name is the key prepare() uses (the cache folder itself may be reached through a symlink).
    return this.#serially(basename(worktree.repo), () => this.#inner.removeWorktree(worktree, options));
  }

  diskUsage(worktree: WorktreeRecord): Promise<number | undefined> {
    return this.#inner.diskUsage(worktree);
  }

  /**
   * Pushes a run's branch from its worktree to the remote `repo` was cloned
   * from (`origin` of this worker's clone). Forced: the branch belongs to the
   * run, and only the attempt that succeeded while holding its lock pushes.
   */
  async pushBranch(repo: string, worktree: string, branch: string): Promise<void> {
    await this.#remoteGit(repo, worktree, ['push', '--quiet', 'origin', `+refs/heads/${branch}:refs/heads/${branch}`], `push ${branch}`);
  }

  /**
   * Shares a parked run's work: pushes its park ref from this worker's clone
   * of `repo` to the remote, the same way a branch is pushed, so a resume on
   * another worker can fetch it. Forced: the ref is the run's own.
   */
  async pushPark(repo: string, ref: string): Promise<void> {
    await this.#remoteGit(repo, this.#clonePath(repo), ['push', '--quiet', 'origin', `+${ref}:${ref}`], `push ${ref}`);
  }

  /** Removes a park ref from the remote once no claim resumes from it any more (the resumed run ended). */
  async deleteRemotePark(repo: string, ref: string): Promise<void> {
    await this.#remoteGit(repo, this.#clonePath(repo), ['push', '--quiet', 'origin', `:${ref}`], `delete ${ref}`);
  }

  /**
   * A resumed run's parked work into this clone: kept from when this worker
   * parked it, or fetched from the remote (parked on another worker). Neither:
   * FACTORY_PARK_UNAVAILABLE, so the resume does not silently start over.
   */
  async #fetchPark(repo: string, clone: string, park: ParkedRun): Promise<void> {
    if (await hasRefAt(clone, park.ref, park.commit!)) return;
    try {
      await this.#remoteGit(repo, clone, ['fetch', '--quiet', '--no-tags', 'origin', `+${park.ref}:${park.ref}`], `fetch ${park.ref}`);
      return;
    } catch (error) {
      const where = park.placement
        ? park.placement.pushed
          ? `worker ${park.placement.node} pushed it, but the remote no longer has it`
          : `worker ${park.placement.node} parked it and could not push it (${park.placement.pushError ?? 'unknown error'})`
        : 'it was parked before park refs were pushed';
      throw new FactoryError(
        'FACTORY_PARK_UNAVAILABLE',
        `the work run ${park.runId} parked at ${park.ref} is neither on the remote nor in this worker's clone: ${where}; ${(error as Error).message}`,
        {
          hint: `Resume the issue again so it lands on ${park.placement ? `worker ${park.placement.node}` : 'the worker that parked it'}, or push the ref from that worker's clone; \`factory dispatch <KEY> --force\` starts over.`,
        },
      );
    }
  }

  #serially<T>(repo: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#busy.get(repo) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    this.#busy.set(repo, next);
    return next;
  }

  /** This worker's clone of `repo`: one folder per repo (path or URL) in the cache. */
  #clonePath(repo: string): string {
    const name = `${basename(repo)
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .replace(/\.git$/, '')}-${createHash('sha256').update(repo).digest('hex').slice(0, 8)}`;
    return join(this.#cacheDir, name);
  }

  async #refresh(repo: string): Promise<string> {
    const clone = this.#clonePath(repo);
    if (existsSync(join(clone, '.git'))) {
      await this.#remoteGit(repo, clone, ['fetch', '--quiet', '--prune', 'origin'], 'fetch');
      // The default branch moves with the remote; run branches start from it.
      await run('git', ['-C', clone, 'reset', '--quiet', '--hard', '@{upstream}']).catch(() => undefined);
    } else {
      await mkdir(this.#cacheDir, { recursive: true });
      // The URL as routed (config refuses one carrying a credential): the token, if any, comes from this command's environment only.
      await this.#remoteGit(repo, this.#cacheDir, ['clone', '--quiet', repo, clone], 'clone');
    }
    return clone;
  }

  /**
   * A git command in `cwd` that reaches `repo`'s remote. With a credential for
   * that host it runs with the token in its environment alone; without one,
   * with what the clone's `origin` carries. Either way git may not prompt (a
   * worker has no one to answer), and its answer is redacted into one line.
   */
  async #remoteGit(repo: string, cwd: string, args: readonly string[], what: string): Promise<void> {
    const credential = this.#credential?.appliesTo(repo) === true ? this.#credential : undefined;
    const timeoutMs = this.#remoteTimeoutMs;
    try {
      if (credential) await runGit(credentialedGitCommand(cwd, args, await credential.token(), askpassHelperPath()), timeoutMs);
      else await runBounded('git', ['-C', cwd, ...args], { env: withoutPrompts(process.env), timeoutMs });
    } catch (error) {
      const answer = redactGitError(error, credential);
      const advice = (error as Partial<BoundedRunError>).timedOut
        ? '; check the network to the remote, or raise fleet.worker.remoteGitTimeoutMs for a repo that takes longer'
        : credential && /authentication failed|403|401|could not read username|permission .* denied/i.test(answer)
          ? `; check that ${credential.describe} is valid and may read and push to ${repoForMessage(repo)} (Contents: read and write)`
          : '';
      // No `cause`: it would carry the unredacted message.
      // eslint-disable-next-line preserve-caught-error
      throw new Error(`git could not ${what} (${repoForMessage(repo)}): ${answer}${advice}`);
    }
  }
}

/**
 * The worker's environment for git with nobody to answer a question: git may
 * not prompt for a password, and ssh may not ask about an unknown host key or
 * a passphrase (BatchMode), unless the operator chose their own ssh command.
 */
function withoutPrompts(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const ownSsh = env.GIT_SSH_COMMAND !== undefined || env.GIT_SSH !== undefined;
  return { ...env, GIT_TERMINAL_PROMPT: '0', ...(ownSsh ? {} : { GIT_SSH_COMMAND: 'ssh -o BatchMode=yes' }) };
}

/** A URL with any user and password masked, as git quotes it. */
function repoForMessage(repo: string): string {
  return repo.replace(/\/\/[^/@\s]*@/g, '//***@');
}

/** git's answer on one line (a caller may keep only the first): git quotes the remote URL in its errors, so credentials in it are masked, and the credential's own secrets are scrubbed. */
function redactGitError(error: unknown, credential?: RemoteCredential): string {
  // A bounded run's message is git's stderr, or says it timed out (with what git had written by then).
  const answer = repoForMessage((error as Error).message.trim())
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' | ');
  return credential ? credential.redact(answer) : answer;
}

async function hasRefAt(clone: string, ref: string, commit: string): Promise<boolean> {
  try {
    return (await run('git', ['-C', clone, 'rev-parse', '--verify', '--quiet', `${ref}^{commit}`])).stdout.trim() === commit;
  } catch {
    return false;
  }
}
