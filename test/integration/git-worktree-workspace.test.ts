import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, sep } from 'node:path';
import { after, describe, it } from 'node:test';
import { GitWorktreeWorkspace } from '../../src/adapters/workspace/git-worktree-workspace.js';
import { LocalProcessFleet } from '../../src/adapters/fleet/local-process-fleet.js';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { VerifiedProcessTerminator } from '../../src/adapters/process-table/verified-process-terminator.js';
import { isFactoryError } from '../../src/errors.js';
import type { PreparedWorkspace } from '../../src/ports/workspace.js';
import { DEMO_AGENT_PATH, killProcessesWithMarkerPrefix } from './agent-process-support.js';

const scratch = realpathSync(mkdtempSync(join(tmpdir(), 'factory-worktrees-')));
const instanceId = `workspace-test-${process.pid}`;
const table = new LinuxProcessTable();
let repoCounter = 0;

after(() => {
  killProcessesWithMarkerPrefix(table, `factory:${instanceId}:`);
  rmSync(scratch, { recursive: true, force: true });
});

/** git as a user would run it, with a fixed identity so commits work on any machine. */
function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Factory test', '-c', 'user.email=test@factory.invalid', '-c', 'commit.gpgsign=false', '-C', cwd, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

function commitFile(cwd: string, name: string, content: string, message: string): string {
  writeFileSync(join(cwd, name), content);
  git(cwd, 'add', '--', name);
  git(cwd, 'commit', '--quiet', '-m', message);
  return git(cwd, 'rev-parse', 'HEAD');
}

/** A fresh checkout on `main` with one commit. */
function makeRepo(name = `repo-${++repoCounter}`): string {
  const repo = join(scratch, name);
  mkdirSync(repo, { recursive: true });
  git(repo, 'init', '--quiet', '-b', 'main');
  commitFile(repo, 'README.md', '# test repo\n', 'initial commit');
  return repo;
}

function newWorkspace(): { workspace: GitWorktreeWorkspace; root: string } {
  const root = join(scratch, `worktrees-${++repoCounter}`);
  return { workspace: new GitWorktreeWorkspace({ worktreesRoot: root }), root };
}

function currentBranch(path: string): string {
  return git(path, 'branch', '--show-current');
}

describe('GitWorktreeWorkspace', { timeout: 30_000 }, () => {
  it('refuses a missing folder, a folder that is not a checkout and a repo without commits, naming the repo', async () => {
    const { workspace } = newWorkspace();
    const missing = join(scratch, 'no-such-repo');
    const plainFolder = join(scratch, 'plain-folder');
    mkdirSync(plainFolder);
    const empty = join(scratch, 'empty-repo');
    mkdirSync(empty);
    git(empty, 'init', '--quiet', '-b', 'main');

    for (const [repo, expected] of [
      [missing, /does not exist/],
      [plainFolder, /is not a git checkout/],
      [empty, /has no commits yet/],
    ] as const) {
      await assert.rejects(workspace.prepare({ repo, issueKey: 'FAC-1', branch: 'factory/FAC-1' }), (error: unknown) => {
        assert.ok(isFactoryError(error, 'FACTORY_WORKSPACE_FAILED'), String(error));
        assert.ok(error.message.includes(repo), error.message);
        assert.match(error.message, expected);
        return true;
      });
    }
  });

  it('creates a worktree on the issue branch, starting from the checkout’s HEAD, and leaves the checkout alone', async () => {
    const repo = makeRepo();
    const head = git(repo, 'rev-parse', 'HEAD');
    const { workspace, root } = newWorkspace();

    const prepared = await workspace.prepare({ repo, issueKey: 'FAC-1', branch: 'factory/FAC-1' });

    assert.equal(basename(prepared.path), 'FAC-1');
    assert.match(prepared.path, new RegExp(`^${realpathSync(root)}/${basename(repo)}-[0-9a-f]{8}/FAC-1$`));
    assert.equal(currentBranch(prepared.path), 'factory/FAC-1');
    assert.equal(prepared.baseCommit, head);
    assert.equal(prepared.branch, 'factory/FAC-1');
    assert.equal(prepared.repo, repo);
    assert.equal(await workspace.commitsSince(prepared), 0);
    assert.equal(currentBranch(repo), 'main');
  });

  it('reuses the worktree and its commits on a second prepare, even after the checkout moved on', async () => {
    const repo = makeRepo();
    const { workspace } = newWorkspace();
    const first = await workspace.prepare({ repo, issueKey: 'FAC-2', branch: 'factory/FAC-2' });
    commitFile(first.path, 'work.txt', 'implementer was here\n', 'FAC-2: work');
    writeFileSync(join(first.path, 'notes.txt'), 'uncommitted notes\n');
    commitFile(repo, 'later.txt', 'main moved on\n', 'unrelated work on main');

    const second = await workspace.prepare({ repo, issueKey: 'FAC-2', branch: 'factory/FAC-2' });

    assert.deepEqual(second, first);
    assert.equal(readFileSync(join(second.path, 'notes.txt'), 'utf8'), 'uncommitted notes\n', 'nothing in the worktree was reset');
    assert.equal(await workspace.commitsSince(second), 1);
  });

  it('checks out an issue branch that already exists, counting only its own commits', async () => {
    const repo = makeRepo();
    const head = git(repo, 'rev-parse', 'HEAD');
    git(repo, 'checkout', '--quiet', '-b', 'factory/FAC-3');
    const branchTip = commitFile(repo, 'earlier.txt', 'from an earlier attempt\n', 'FAC-3: earlier attempt');
    git(repo, 'checkout', '--quiet', 'main');
    const { workspace } = newWorkspace();

    const prepared = await workspace.prepare({ repo, issueKey: 'FAC-3', branch: 'factory/FAC-3' });

    assert.equal(git(prepared.path, 'rev-parse', 'HEAD'), branchTip);
    assert.equal(prepared.baseCommit, head);
    assert.equal(await workspace.commitsSince(prepared), 1);
  });

  it('prepares worktrees for several issues of one repo at the same time', async () => {
    const repo = makeRepo();
    const { workspace } = newWorkspace();
    const keys = ['FAC-10', 'FAC-11', 'FAC-12', 'FAC-13', 'FAC-14', 'FAC-15'];

    const prepared = await Promise.all(keys.map((issueKey) => workspace.prepare({ repo, issueKey, branch: `factory/${issueKey}` })));

    assert.equal(new Set(prepared.map((entry) => entry.path)).size, keys.length);
    for (const [index, entry] of prepared.entries()) assert.equal(currentBranch(entry.path), `factory/${keys[index]}`);
    assert.equal(git(repo, 'worktree', 'list').split('\n').length, keys.length + 1);
  });

  it('recreates a worktree whose folder was deleted by hand, keeping the branch', async () => {
    const repo = makeRepo();
    const { workspace } = newWorkspace();
    const first = await workspace.prepare({ repo, issueKey: 'FAC-4', branch: 'factory/FAC-4' });
    const tip = commitFile(first.path, 'work.txt', 'work\n', 'FAC-4: work');
    rmSync(first.path, { recursive: true, force: true });

    const second = await workspace.prepare({ repo, issueKey: 'FAC-4', branch: 'factory/FAC-4' });

    assert.equal(second.path, first.path);
    assert.equal(git(second.path, 'rev-parse', 'HEAD'), tip);
  });

  it('puts the issue branch back when an agent switched branches inside its worktree', async () => {
    const repo = makeRepo();
    const { workspace } = newWorkspace();
    const first = await workspace.prepare({ repo, issueKey: 'FAC-5', branch: 'factory/FAC-5' });
    git(first.path, 'checkout', '--quiet', '-b', 'agent-made-this');

    const second = await workspace.prepare({ repo, issueKey: 'FAC-5', branch: 'factory/FAC-5' });

    assert.equal(second.path, first.path);
    assert.equal(currentBranch(second.path), 'factory/FAC-5');
  });

  it('refuses a branch the user has checked out, naming where', async () => {
    const repo = makeRepo();
    git(repo, 'checkout', '--quiet', '-b', 'factory/FAC-6');
    const { workspace } = newWorkspace();

    await assert.rejects(workspace.prepare({ repo, issueKey: 'FAC-6', branch: 'factory/FAC-6' }), (error: unknown) => {
      assert.ok(isFactoryError(error, 'FACTORY_WORKSPACE_FAILED'));
      assert.match(error.message, new RegExp(`already checked out at ${repo}`));
      return true;
    });
  });

  it('keeps hostile issue keys inside the worktrees root and apart from each other', async () => {
    const repo = makeRepo();
    const { workspace, root } = newWorkspace();

    const hostile = await workspace.prepare({ repo, issueKey: '../../escape', branch: 'factory/escape-1' });
    const lookalike = await workspace.prepare({ repo, issueKey: '.._.._escape', branch: 'factory/escape-2' });

    assert.ok(hostile.path.startsWith(realpathSync(root) + sep), hostile.path);
    assert.notEqual(hostile.path, lookalike.path);
    assert.ok(!existsSync(join(scratch, 'escape')));
  });

  it('refuses an invalid branch name before touching the repo', async () => {
    const repo = makeRepo();
    const { workspace } = newWorkspace();
    await assert.rejects(
      workspace.prepare({ repo, issueKey: 'FAC-7', branch: 'bad..name' }),
      (error: unknown) => isFactoryError(error, 'FACTORY_WORKSPACE_FAILED') && /bad\.\.name/.test(error.message),
    );
    assert.equal(git(repo, 'worktree', 'list').split('\n').length, 1);
  });

  it('runs the demo team: the implementer’s commit lands on the issue branch and the reviewer finds it', async () => {
    const repo = makeRepo();
    const { workspace } = newWorkspace();
    const clock = new SystemClock();
    const fleet = new LocalProcessFleet({ instanceId, processTable: table, clock, terminator: new VerifiedProcessTerminator({ processTable: table, clock }) });
    const logs = join(scratch, `demo-logs-${repoCounter}`);
    const runAgent = async (prepared: PreparedWorkspace, role: 'implementer' | 'reviewer') => {
      const handle = await fleet.spawn({
        issueKey: 'DEMO-1',
        runId: 'run-demo',
        role,
        agentName: `DEMO-1-${role}`,
        command: [process.execPath, DEMO_AGENT_PATH, 'Implement DEMO-1: add a demo file'],
        cwd: prepared.path,
        env: {},
        logPath: join(logs, `${role}.log`),
        worktree: prepared.path,
      });
      return { exit: await handle.exited, log: readFileSync(join(logs, `${role}.log`), 'utf8') };
    };

    const forImplementer = await workspace.prepare({ repo, issueKey: 'DEMO-1', branch: 'factory/DEMO-1' });
    const reviewerTooEarly = await runAgent(forImplementer, 'reviewer');
    assert.equal(reviewerTooEarly.exit.exitCode, 1, `a reviewer with nothing to review fails:\n${reviewerTooEarly.log}`);

    const implementer = await runAgent(forImplementer, 'implementer');
    assert.equal(implementer.exit.exitCode, 0, implementer.log);
    assert.equal(git(repo, 'log', '-1', '--format=%s', 'refs/heads/factory/DEMO-1'), 'DEMO-1: demo change by the implementer');
    assert.equal(git(repo, 'show', '--name-only', '--format=', 'refs/heads/factory/DEMO-1'), 'DEMO-1.md');
    assert.equal(await workspace.commitsSince(forImplementer), 1);

    const forReviewer = await workspace.prepare({ repo, issueKey: 'DEMO-1', branch: 'factory/DEMO-1' });
    const reviewer = await runAgent(forReviewer, 'reviewer');
    assert.equal(reviewer.exit.exitCode, 0, reviewer.log);
    assert.match(reviewer.log, /review of DEMO-1: [0-9a-f]{8} "DEMO-1: demo change by the implementer" changes DEMO-1\.md/);
  });
});
