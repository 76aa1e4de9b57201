import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { ParkedWork, PrepareRequest, PreparedWorkspace, Workspace, WorktreeRecord, WorktreeRemoval } from '../../ports/workspace.js';
import type { ParkedRun } from '../../domain/budgets.js';
import { isValidIssueKey } from '../../domain/issue.js';
import { FactoryError } from '../../errors.js';

const execFileAsync = promisify(execFile);

/**
 * One git worktree per issue, under `<worktreesRoot>/<repo-name>-<hash8>/<issue>`,
 * on a branch named by the caller. The hash keeps two checkouts that share a
 * folder name (two clones called `api`) apart.
 *
 * Preparing again for the same issue (a retry, or the reviewer after the
 * implementer) reuses the worktree and the branch with its commits; nothing
 * here ever resets a branch, so an implementer's work is never thrown away.
 */

export interface GitWorktreeWorkspaceOptions {
  /** Folder that holds every worktree Factory creates; created on demand. */
  readonly worktreesRoot: string;
}

/**
 * Options for every git call Factory makes itself (never for the agents' own
 * git): the user's hooks must not run on our plumbing (a post-checkout hook on
 * `worktree add` could take minutes or prompt), and no fsmonitor daemon should
 * be started as a child of the daemon.
 */
const SAFE_GIT_OPTIONS = ['-c', 'core.hooksPath=/dev/null', '-c', 'core.fsmonitor=false', '-c', 'advice.detachedHead=false', '-c', 'color.ui=false'];

/** Variables that would point git at another repository than the `-C` folder. */
const REPOSITORY_OVERRIDE_ENV = ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_COMMON_DIR', 'GIT_OBJECT_DIRECTORY', 'GIT_NAMESPACE'];

/** Checking out a large repository can take a while; a wedged git must still not hang a run forever. */
const GIT_TIMEOUT_MS = 5 * 60_000;
/** Another git process (an agent committing in a sibling worktree, an auto gc) may hold a ref lock briefly. */
const LOCK_RETRY_DELAYS_MS = [100, 300, 1000];

export interface Checkout {
  /** The checkout's top-level folder, as git reports it. */
  readonly topLevel: string;
  /** The shared .git folder: the unit that git's locks protect, so the unit we serialize on. */
  readonly commonDir: string;
  readonly headCommit: string;
}

interface WorktreeEntry {
  readonly path: string;
  /** `refs/heads/<name>`, or undefined when detached or bare. */
  readonly branchRef: string | undefined;
  readonly prunable: boolean;
}

export class GitWorktreeWorkspace implements Workspace {
  readonly #worktreesRoot: string;

  constructor(options: GitWorktreeWorkspaceOptions) {
    this.#worktreesRoot = resolve(options.worktreesRoot);
  }

  async prepare(request: PrepareRequest): Promise<PreparedWorkspace> {
    const checkout = await inspectCheckout(request.repo);
    await assertValidBranchName(request.branch, checkout.topLevel);
    return withRepositoryLock(checkout.commonDir, () => this.#prepareLocked(checkout, request));
  }

  async commitsSince(workspace: PreparedWorkspace, since: string = workspace.baseCommit): Promise<number> {
    try {
      const { stdout } = await runGit(workspace.repo, ['rev-list', '--count', `${since}..refs/heads/${workspace.branch}`]);
      return Number.parseInt(stdout.trim(), 10);
    } catch (error) {
      throw workspaceFailed(
        `could not count the commits on branch ${workspace.branch} in ${workspace.repo} since ${since}: ${describeGitError(error)}`,
        error,
        'The branch or its base commit was deleted or rewritten outside Factory.',
      );
    }
  }

  async branchHead(workspace: PreparedWorkspace): Promise<string> {
    try {
      return (await runGit(workspace.repo, ['rev-parse', '--verify', `refs/heads/${workspace.branch}^{commit}`])).stdout.trim();
    } catch (error) {
      throw workspaceFailed(`could not read the head of branch ${workspace.branch} in ${workspace.repo}: ${describeGitError(error)}`, error);
    }
  }

  async park(workspace: PreparedWorkspace, ref: string, message: string): Promise<ParkedWork> {
    await assertFactoryRef(ref, 'park', workspace.path);
    return saveWorktree(workspace.path, ref, message, 'factory: park');
  }

  async restorePark(workspace: PreparedWorkspace, ref: string): Promise<ParkedWork> {
    await assertFactoryRef(ref, 'park', workspace.path);
    let parked: ParkedWork;
    try {
      const commit = (await runGit(workspace.path, ['rev-parse', '--verify', `${ref}^{commit}`])).stdout.trim();
      const parent = (await runGit(workspace.path, ['rev-parse', '--verify', `${commit}^1`])).stdout.trim();
      parked = { ref, commit, parent };
    } catch (error) {
      throw workspaceFailed(`there is no parked work at ${ref} for ${workspace.path}: ${describeGitError(error)}`, error);
    }
    const head = (await runGit(workspace.path, ['rev-parse', '--verify', 'HEAD^{commit}'])).stdout.trim();
    if (head !== parked.parent) {
      throw workspaceFailed(
        `the work parked at ${ref} sits on ${parked.parent.slice(0, 12)}, but ${workspace.path} is now at ${head.slice(0, 12)}`,
        undefined,
        `Look at the parked work with \`git show ${ref}\` and apply what is still wanted by hand.`,
      );
    }
    try {
      // Files the agent had deleted are deleted again; the rest comes from the park commit's tree.
      const deleted = (await runGit(workspace.path, ['diff', '--name-only', '-z', '--diff-filter=D', parked.parent, parked.commit])).stdout.split('\0').filter(Boolean);
      await runGit(workspace.path, ['checkout', parked.commit, '--', '.']);
      for (const path of deleted) rmSync(join(workspace.path, path), { force: true });
      // Back to uncommitted changes on the branch's own index, as the agent left them.
      await runGit(workspace.path, ['read-tree', 'HEAD']);
      return parked;
    } catch (error) {
      throw workspaceFailed(`could not restore the work parked at ${ref} into ${workspace.path}: ${describeGitError(error)}`, error);
    }
  }

  async listWorktrees(): Promise<WorktreeRecord[]> {
    const root = await realRootOrUndefined(this.#worktreesRoot);
    if (root === undefined) return [];
    const records: WorktreeRecord[] = [];
    // Two levels, <repo-name>-<hash8>/<issue>, as prepare() makes them; Dirent types come from lstat, so a symlink is never entered.
    for (const repoFolder of await readdir(root, { withFileTypes: true })) {
      if (!repoFolder.isDirectory()) continue;
      const repoPath = join(root, repoFolder.name);
      for (const issueFolder of await readdir(repoPath, { withFileTypes: true }).catch(() => [])) {
        if (!issueFolder.isDirectory()) continue;
        const record = await readWorktreeRecord(join(repoPath, issueFolder.name));
        if (record) records.push(record);
      }
    }
    return records;
  }

  async removeWorktree(worktree: WorktreeRecord, options: { leftoverRef: string; message: string; confirm: () => Promise<boolean> }): Promise<WorktreeRemoval> {
    const path = await this.#ownedWorktreePath(worktree.path);
    await assertFactoryRef(options.leftoverRef, 'leftover', path);
    const checkout = await inspectCheckout(worktree.repo);
    // Measured outside the lock: a large tree takes seconds to walk, and prepare() for another issue must not wait for that.
    const bytes = await this.diskUsage(worktree);
    return withRepositoryLock(checkout.commonDir, async () => {
      const entry = (await listWorktrees(checkout.topLevel)).find((candidate) => candidate.path === path);
      if (entry === undefined || path === checkout.topLevel) {
        throw workspaceFailed(
          `${path} is not a linked worktree of ${checkout.topLevel}; nothing was removed`,
          undefined,
          `Look at it with \`git -C ${checkout.topLevel} worktree list\` and remove it by hand if it is no longer wanted.`,
        );
      }
      // Asked under the lock: a prepare() of this process for the same issue either ran before (and the answer is no) or runs after (and makes the worktree again).
      if (!(await options.confirm())) return { removed: false, path, reason: 'the issue became active again' };
      const leftover = await saveLeftovers(path, options.leftoverRef, options.message);
      try {
        // --force once: uncommitted changes were saved above; a worktree locked with `git worktree lock` is still refused.
        await runGit(checkout.topLevel, ['worktree', 'remove', '--force', path]);
        await runGit(checkout.topLevel, ['worktree', 'prune']);
      } catch (error) {
        throw workspaceFailed(`could not remove the worktree ${path} of ${checkout.topLevel}: ${describeGitError(error)}`, error);
      }
      return { removed: true, path, leftover, bytesFreed: bytes };
    });
  }

  async diskUsage(worktree: WorktreeRecord): Promise<number | undefined> {
    const path = await this.#ownedWorktreePath(worktree.path);
    try {
      // -x: a mount inside the tree is not ours to count; du never follows symlinks by default.
      const { stdout } = await execFileAsync('du', ['-s', '-k', '-x', '--', path], { timeout: GIT_TIMEOUT_MS, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
      const kilobytes = Number.parseInt(stdout, 10);
      return Number.isFinite(kilobytes) ? kilobytes * 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The real path of a worktree folder Factory made: exactly two levels under
   * the real worktrees root, reached through no symlink. Anything else is
   * refused, so a forged or moved record can never delete outside the root.
   */
  async #ownedWorktreePath(path: string): Promise<string> {
    const root = await realRootOrUndefined(this.#worktreesRoot);
    let real: string | undefined;
    try {
      real = await realpath(path);
    } catch {
      real = undefined;
    }
    const inside = root !== undefined && real !== undefined && real === resolve(path) && relative(root, real).split(sep).length === 2 && !relative(root, real).startsWith('..');
    if (!inside) {
      throw workspaceFailed(
        `${path} is not a worktree folder under Factory's worktrees root ${this.#worktreesRoot} (or is reached through a symlink); nothing was removed`,
        undefined,
        'Factory removes only the worktrees it made, at <worktrees root>/<repo>-<hash>/<issue>.',
      );
    }
    return real!;
  }

  async #prepareLocked(checkout: Checkout, request: PrepareRequest): Promise<PreparedWorkspace> {
    const { issueKey, branch } = request;
    const path = this.#worktreePathFor(checkout.topLevel, issueKey);
    const branchRef = `refs/heads/${branch}`;
    const worktrees = await listWorktrees(checkout.topLevel);
    const atPath = worktrees.find((entry) => entry.path === path);
    const holdingBranch = worktrees.find((entry) => entry.branchRef === branchRef && entry.path !== path);

    if (holdingBranch !== undefined) {
      // git refuses two worktrees on one branch; most likely the user has it checked out.
      throw workspaceFailed(
        `branch ${branch} for ${issueKey} is already checked out at ${holdingBranch.path}, so it cannot also be checked out in Factory's worktree ${path}`,
        undefined,
        `Switch ${holdingBranch.path} to another branch, or remove that worktree with \`git worktree remove ${holdingBranch.path}\`.`,
      );
    }

    try {
      // Never `-B`: an existing branch holds an earlier attempt's commits.
      const branchAlreadyExists = await branchExists(checkout.topLevel, branchRef);
      // A new branch starts from HEAD, or, for a resumed run, where its work was parked (another machine's branch, say).
      const startPoint = branchAlreadyExists ? checkout.headCommit : ((await parkedOnCommit(checkout.topLevel, request.park)) ?? checkout.headCommit);
      if (atPath !== undefined && !atPath.prunable && existsSync(path)) {
        // A retry or the reviewer: keep the worktree and whatever the last agent left in it.
        if (atPath.branchRef !== branchRef) {
          // An agent switched branches inside its worktree; put the issue's branch back.
          await runGit(path, branchAlreadyExists ? ['checkout', branch, '--'] : ['checkout', '-b', branch, startPoint, '--']);
        }
      } else {
        assertFreeFolder(path, checkout.topLevel);
        mkdirSync(dirname(path), { recursive: true });
        // --force only overrides "registered but missing" for our own path: the
        // branch was proved above not to be checked out anywhere else.
        const force = atPath !== undefined ? ['--force'] : [];
        const target = branchAlreadyExists ? [path, branch] : ['-b', branch, path, startPoint];
        await runGit(checkout.topLevel, ['worktree', 'add', ...force, ...target]);
      }
    } catch (error) {
      if (error instanceof FactoryError) throw error;
      throw workspaceFailed(`could not create the worktree ${path} on branch ${branch} for ${issueKey} in ${checkout.topLevel}: ${describeGitError(error)}`, error);
    }

    return {
      path,
      branch,
      repo: checkout.topLevel,
      baseCommit: await baseCommitOf(checkout, branchRef),
    };
  }

  #worktreePathFor(topLevel: string, issueKey: string): string {
    // Real path of the root, so it compares equal to the paths git records.
    mkdirSync(this.#worktreesRoot, { recursive: true });
    const root = realpathSync(this.#worktreesRoot);
    return join(root, `${basename(topLevel)}-${shortHash(topLevel, 8)}`, folderNameForIssue(issueKey));
  }
}

/**
 * An issue key as one safe path segment. Keys come from issue files, which
 * may be hostile: `../x` must not leave the root. When the key had to be
 * changed, a hash of the original keeps `a/b` and `a_b` in separate folders.
 */
export function folderNameForIssue(issueKey: string): string {
  const safe = issueKey.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return safe === issueKey && safe !== '' ? safe : `${safe}-${shortHash(issueKey, 6)}`;
}

/** The repo's checkout as a team's worktree needs it; throws FACTORY_WORKSPACE_FAILED saying what is wrong and how to fix it. */
export async function inspectCheckout(repo: string): Promise<Checkout> {
  const repoPath = resolve(repo);
  if (!existsSync(repoPath)) {
    throw workspaceFailed(`repo ${repoPath} does not exist`, undefined, 'Point repos.default (or the matching repos.byLabel entry) at an existing git checkout.');
  }
  let topLevel: string;
  let commonDir: string;
  try {
    const { stdout } = await runGit(repoPath, ['rev-parse', '--show-toplevel', '--git-common-dir']);
    const [top = '', common = ''] = stdout.split('\n');
    topLevel = top;
    // --git-common-dir may be relative to the folder git ran in.
    commonDir = realpathSync(resolve(repoPath, common));
  } catch (error) {
    throw workspaceFailed(
      `repo ${repoPath} is not a git checkout with a working tree (git: ${describeGitError(error)})`,
      error,
      `Point the repo setting at a git checkout, or make this one: \`git -C ${repoPath} init && git -C ${repoPath} commit --allow-empty -m init\`.`,
    );
  }
  let headCommit: string;
  try {
    headCommit = (await runGit(topLevel, ['rev-parse', '--verify', 'HEAD^{commit}'])).stdout.trim();
  } catch (error) {
    throw workspaceFailed(`repo ${topLevel} has no commits yet, so there is nothing to branch an issue from`, error, `Make a first commit: \`git -C ${topLevel} commit --allow-empty -m init\`.`);
  }
  return { topLevel, commonDir, headCommit };
}

async function assertValidBranchName(branch: string, cwd: string): Promise<void> {
  let valid = !branch.startsWith('-');
  if (valid) {
    try {
      await runGit(cwd, ['check-ref-format', '--branch', branch]);
    } catch {
      valid = false;
    }
  }
  if (!valid) {
    throw workspaceFailed(
      `branch name ${JSON.stringify(branch)} is not a valid git branch name`,
      undefined,
      'Branch names come from the issue key and the branch prefix in the config; use letters, digits, `-`, `_`, `/` and `.`.',
    );
  }
}

async function listWorktrees(topLevel: string): Promise<WorktreeEntry[]> {
  const { stdout } = await runGit(topLevel, ['worktree', 'list', '--porcelain']);
  return parseWorktreeList(stdout);
}

/** Parses `git worktree list --porcelain`: blank-line separated blocks of `key value` lines. */
export function parseWorktreeList(porcelain: string): WorktreeEntry[] {
  const entries: WorktreeEntry[] = [];
  for (const block of porcelain.split(/\n\n+/)) {
    let path: string | undefined;
    let branchRef: string | undefined;
    let prunable = false;
    for (const line of block.split('\n')) {
      if (line.startsWith('worktree ')) path = line.slice('worktree '.length);
      else if (line.startsWith('branch ')) branchRef = line.slice('branch '.length);
      else if (line === 'prunable' || line.startsWith('prunable ')) prunable = true;
    }
    if (path !== undefined) entries.push({ path: canonicalPath(path), branchRef, prunable });
  }
  return entries;
}

/** The real path when the folder exists, so a symlinked root still matches. */
function canonicalPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/** The commit a park sits on (its park commit's parent), when this repository has the park commit. */
async function parkedOnCommit(topLevel: string, park: ParkedRun | undefined): Promise<string | undefined> {
  if (park?.commit === null || park?.commit === undefined) return undefined;
  try {
    return (await runGit(topLevel, ['rev-parse', '--verify', '--quiet', `${park.commit}^1^{commit}`])).stdout.trim();
  } catch {
    return undefined;
  }
}

async function branchExists(topLevel: string, branchRef: string): Promise<boolean> {
  try {
    await runGit(topLevel, ['rev-parse', '--verify', '--quiet', `${branchRef}^{commit}`]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the branch left the main line. Derived, not stored: for a fresh branch
 * it is the commit it was created from; for a reused one it stays the same
 * fork point across retries, so commitsSince counts the issue's own commits.
 */
async function baseCommitOf(checkout: Checkout, branchRef: string): Promise<string> {
  try {
    return (await runGit(checkout.topLevel, ['merge-base', checkout.headCommit, branchRef])).stdout.trim();
  } catch {
    // Unrelated histories: there is no fork point, so count from the branch's current tip.
    return (await runGit(checkout.topLevel, ['rev-parse', '--verify', `${branchRef}^{commit}`])).stdout.trim();
  }
}

/** A folder we would create a worktree in must be absent or empty; we never delete what is there. */
function assertFreeFolder(path: string, topLevel: string): void {
  let occupied: boolean;
  try {
    occupied = statSync(path).isDirectory() ? readdirSync(path).length > 0 : true;
  } catch {
    return; // absent
  }
  if (occupied) {
    throw workspaceFailed(
      `${path} already exists and is not a worktree of ${topLevel}`,
      undefined,
      `Move or delete ${path} (it was left behind, perhaps by an interrupted run), then retry the issue.`,
    );
  }
}

/**
 * Serializes git operations per repository within this process: concurrent
 * `worktree add` calls in one repository otherwise race on its locks. Shared
 * by every GitWorktreeWorkspace instance, keyed by the repository's common dir.
 */
const repositoryLocks = new Map<string, Promise<void>>();

async function withRepositoryLock<T>(key: string, work: () => Promise<T>): Promise<T> {
  const previous = repositoryLocks.get(key) ?? Promise.resolve();
  let release = (): void => undefined;
  const current = new Promise<void>((resolveCurrent) => {
    release = resolveCurrent;
  });
  const tail = previous.then(() => current);
  repositoryLocks.set(key, tail);
  await previous;
  try {
    return await work();
  } finally {
    release();
    if (repositoryLocks.get(key) === tail) repositoryLocks.delete(key);
  }
}

interface GitFailure extends Error {
  readonly stderr?: string;
  readonly code?: number | string;
}

function gitEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0', LC_ALL: 'C' };
  for (const name of REPOSITORY_OVERRIDE_ENV) delete env[name];
  return env;
}

async function runGit(cwd: string, args: readonly string[], extraEnv: Readonly<Record<string, string>> = {}): Promise<{ stdout: string; stderr: string }> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await execGit(cwd, args, extraEnv);
    } catch (error) {
      const retryDelay = LOCK_RETRY_DELAYS_MS[attempt];
      if (retryDelay === undefined || !isLockContention(error)) throw error;
      await delay(retryDelay);
    }
  }
}

function execGit(cwd: string, args: readonly string[], extraEnv: Readonly<Record<string, string>>): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolveGit, rejectGit) => {
    execFile(
      'git',
      [...SAFE_GIT_OPTIONS, '-C', cwd, ...args],
      { env: { ...gitEnvironment(), ...extraEnv }, timeout: GIT_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error) {
          rejectGit(Object.assign(error, { stderr }));
          return;
        }
        resolveGit({ stdout: stdout.replace(/\n$/, ''), stderr });
      },
    );
  });
}

/** git has no machine-readable code for "a lock file exists", only this message (LC_ALL=C keeps it English). */
function isLockContention(error: unknown): boolean {
  const stderr = (error as GitFailure).stderr ?? '';
  return /\.lock'?: File exists|Unable to create '[^']*\.lock'/.test(stderr);
}

function describeGitError(error: unknown): string {
  const failure = error as GitFailure;
  if (failure.code === 'ENOENT') return 'the git executable was not found on PATH';
  const stderr = failure.stderr?.trim();
  return stderr
    ? stderr
        .split('\n')
        .filter((line) => line.trim() !== '')
        .slice(-3)
        .join(' / ')
    : failure.message;
}

/**
 * Commits everything in the worktree (untracked files too, ignored ones not)
 * to `ref` on top of its HEAD, through a private index: the worktree's own
 * index and branch stay as they are.
 */
async function saveWorktree(path: string, ref: string, message: string, reflogMessage: string): Promise<ParkedWork> {
  const scratch = mkdtempSync(join(tmpdir(), 'factory-park-'));
  const env = { GIT_INDEX_FILE: join(scratch, 'index') };
  try {
    const parent = (await runGit(path, ['rev-parse', '--verify', 'HEAD^{commit}'])).stdout.trim();
    await runGit(path, ['read-tree', parent], env);
    await runGit(path, ['add', '--all', '--', '.'], env);
    const tree = (await runGit(path, ['write-tree'], env)).stdout.trim();
    const commit = (await runGit(path, ['commit-tree', tree, '-p', parent, '-m', message], PARK_IDENTITY)).stdout.trim();
    await runGit(path, ['update-ref', '-m', reflogMessage, ref, commit]);
    return { ref, commit, parent };
  } catch (error) {
    if (error instanceof FactoryError) throw error;
    throw workspaceFailed(`could not save the work in ${path} to ${ref}: ${describeGitError(error)}`, error);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Before a worktree goes: what only it holds is saved to `ref`. That is
 * uncommitted or untracked (not ignored) changes, and a detached HEAD that no
 * ref reaches (an agent's commits off any branch). Returns undefined when the
 * branch already holds everything.
 */
async function saveLeftovers(path: string, ref: string, message: string): Promise<ParkedWork | undefined> {
  let needsSaving: boolean;
  try {
    const changes = (await runGit(path, ['status', '--porcelain', '--untracked-files=all'])).stdout;
    const reachedBy = changes.trim() === '' ? (await runGit(path, ['for-each-ref', '--count=1', '--contains', 'HEAD', '--format=%(refname)'])).stdout.trim() : '';
    needsSaving = changes.trim() !== '' || reachedBy === '';
  } catch (error) {
    throw workspaceFailed(`could not read what is uncommitted in ${path}, so it was not removed: ${describeGitError(error)}`, error);
  }
  return needsSaving ? saveWorktree(path, ref, message, 'factory: leftover') : undefined;
}

/** The worktree's record as git keeps it: `.git` names its admin folder, which names the shared one. Undefined when the folder is not a linked worktree. */
async function readWorktreeRecord(path: string): Promise<WorktreeRecord | undefined> {
  try {
    const dotGit = join(path, '.git');
    if (!(await lstat(dotGit)).isFile()) return undefined;
    const gitdirLine = /^gitdir: (.+)$/m.exec(await readFile(dotGit, 'utf8'));
    if (!gitdirLine) return undefined;
    const adminDir = resolve(path, gitdirLine[1]!.trim());
    const commonDir = resolve(adminDir, (await readFile(join(adminDir, 'commondir'), 'utf8')).trim());
    const head = (await readFile(join(adminDir, 'HEAD'), 'utf8')).trim();
    const touched = await Promise.all(
      [path, join(adminDir, 'HEAD'), join(adminDir, 'index'), join(adminDir, 'logs', 'HEAD')].map((file) =>
        stat(file).then(
          (s) => s.mtimeMs,
          () => 0,
        ),
      ),
    );
    const folder = basename(path);
    return {
      path,
      repo: basename(commonDir) === '.git' ? dirname(commonDir) : commonDir,
      // Valid issue keys are their own folder names (folderNameForIssue); anything else cannot be matched to a claim.
      issueKey: isValidIssueKey(folder) ? folder : undefined,
      branch: head.startsWith('ref: refs/heads/') ? head.slice('ref: refs/heads/'.length) : undefined,
      lastModifiedMs: Math.max(...touched),
    };
  } catch {
    return undefined;
  }
}

async function realRootOrUndefined(root: string): Promise<string | undefined> {
  try {
    return await realpath(root);
  } catch {
    return undefined;
  }
}

/** Park commits are Factory's, whatever identity (if any) the machine's git config has. */
const PARK_IDENTITY = { GIT_AUTHOR_NAME: 'Factory', GIT_AUTHOR_EMAIL: 'factory@localhost', GIT_COMMITTER_NAME: 'Factory', GIT_COMMITTER_EMAIL: 'factory@localhost' };

/** Factory's refs live under refs/factory/park/ (parked runs) and refs/factory/leftover/ (removed worktrees), never over a branch or a tag. */
async function assertFactoryRef(ref: string, kind: 'park' | 'leftover', cwd: string): Promise<void> {
  let valid = ref.startsWith(`refs/factory/${kind}/`);
  if (valid) {
    try {
      await runGit(cwd, ['check-ref-format', ref]);
    } catch {
      valid = false;
    }
  }
  if (!valid) throw workspaceFailed(`${JSON.stringify(ref)} is not a valid ${kind} ref (refs/factory/${kind}/${kind === 'park' ? '<run>' : '<issue>-<time>'})`);
}

function shortHash(text: string, length: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

function workspaceFailed(message: string, cause?: unknown, hint?: string): FactoryError {
  return new FactoryError('FACTORY_WORKSPACE_FAILED', message, { ...(hint === undefined ? {} : { hint }), cause });
}
