import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { GitWorktreeWorkspace } from '../../src/adapters/workspace/git-worktree-workspace.js';
import { RepoCacheWorkspace } from '../../src/adapters/workspace/repo-cache-workspace.js';
import type { ParkedRun } from '../../src/domain/budgets.js';
import { isFactoryError } from '../../src/errors.js';
import { createScratchRepo, git } from '../support/sandbox.js';

/**
 * Parking a run's work on real git: everything the agent changed, committed
 * or not, goes to refs/factory/park/<run> without moving the branch or
 * touching any index; restoring puts it back as uncommitted changes.
 */

const scratch = mkdtempSync(join(tmpdir(), 'factory-park-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

async function preparedWithWork(name: string) {
  const repo = join(scratch, name, 'repo');
  createScratchRepo(repo);
  writeFileSync(join(repo, '.gitignore'), 'build/\n');
  writeFileSync(join(repo, 'gone.txt'), 'to be deleted\n');
  git(repo, 'add', '.gitignore', 'gone.txt');
  git(repo, 'commit', '--quiet', '-m', 'ignore build output');
  const workspace = new GitWorktreeWorkspace({ worktreesRoot: join(scratch, name, 'worktrees') });
  const prepared = await workspace.prepare({ repo, issueKey: 'PARK-1', branch: 'factory/PARK-1' });
  const wt = prepared.path;
  // What an agent leaves when it is stopped mid-way: a commit, a staged edit, an unstaged edit, a new file, a deletion, build output.
  writeFileSync(join(wt, 'done.txt'), 'committed by the agent\n');
  git(wt, 'add', 'done.txt');
  git(wt, 'commit', '--quiet', '-m', 'PARK-1: first step');
  writeFileSync(join(wt, 'README.md'), '# scratch repo\nstaged edit\n');
  git(wt, 'add', 'README.md');
  writeFileSync(join(wt, 'README.md'), '# scratch repo\nstaged edit\nunstaged edit\n');
  writeFileSync(join(wt, 'new.txt'), 'untracked work\n');
  unlinkSync(join(wt, 'gone.txt'));
  mkdirSync(join(wt, 'build'));
  writeFileSync(join(wt, 'build', 'out.js'), 'ignored build output\n');
  return { repo, workspace, prepared, wt };
}

describe('parking work to refs/factory/park/<run>', () => {
  it('commits everything the agent changed to the park ref; the branch, the worktree index and the user index stay as they were', async () => {
    const { repo, workspace, prepared, wt } = await preparedWithWork('park');
    const branchBefore = git(repo, 'rev-parse', 'factory/PARK-1').trim();
    const userIndexBefore = git(repo, 'ls-files', '--stage');
    const worktreeStatusBefore = git(wt, 'status', '--porcelain');
    const parked = await workspace.park(prepared, 'refs/factory/park/PARK-1-e1-a1-abc', 'park PARK-1: run budget');

    assert.equal(git(repo, 'rev-parse', 'refs/factory/park/PARK-1-e1-a1-abc').trim(), parked.commit);
    assert.equal(parked.parent, branchBefore, 'the park commit sits on the branch head');
    assert.equal(git(repo, 'rev-parse', 'factory/PARK-1').trim(), branchBefore, 'the branch did not move');
    assert.equal(git(repo, 'ls-files', '--stage'), userIndexBefore);
    assert.equal(git(wt, 'status', '--porcelain'), worktreeStatusBefore, 'the worktree (and what the agent staged) is untouched');
    assert.equal(git(repo, 'show', `${parked.commit}:README.md`), '# scratch repo\nstaged edit\nunstaged edit\n');
    assert.equal(git(repo, 'show', `${parked.commit}:new.txt`), 'untracked work\n');
    assert.deepEqual(git(repo, 'ls-tree', '--name-only', parked.commit).trim().split('\n').sort(), ['.gitignore', 'README.md', 'done.txt', 'new.txt']);
    assert.equal(git(repo, 'log', '-1', '--format=%an %s', parked.commit).trim(), 'Factory park PARK-1: run budget');
  });

  it('restores parked work into a clean worktree as uncommitted changes, and refuses once the branch moved on', async () => {
    const { workspace, prepared, wt } = await preparedWithWork('restore');
    const ref = 'refs/factory/park/PARK-1-e1-a1-def';
    await workspace.park(prepared, ref, 'park');
    const statusWhenParked = git(wt, 'status', '--porcelain', '--untracked-files=all')
      .split('\n')
      .map((l) => l.slice(3))
      .sort();
    // The worktree loses the uncommitted work (a cleanup, a crash, another machine).
    git(wt, 'checkout', '--', '.');
    git(wt, 'clean', '-fdq');
    git(wt, 'read-tree', 'HEAD');
    git(wt, 'checkout', '--', '.');
    assert.equal(existsSync(join(wt, 'new.txt')), false);

    await workspace.restorePark(prepared, ref);
    assert.equal(readFileSync(join(wt, 'README.md'), 'utf8'), '# scratch repo\nstaged edit\nunstaged edit\n');
    assert.equal(readFileSync(join(wt, 'new.txt'), 'utf8'), 'untracked work\n');
    assert.equal(existsSync(join(wt, 'gone.txt')), false);
    assert.deepEqual(
      git(wt, 'status', '--porcelain', '--untracked-files=all')
        .split('\n')
        .map((l) => l.slice(3))
        .sort(),
      statusWhenParked,
    );
    assert.equal(git(wt, 'diff', '--cached', '--name-only').trim(), '', 'restored as unstaged changes');

    git(wt, 'add', '--all');
    git(wt, 'commit', '--quiet', '-m', 'moved on');
    await assert.rejects(workspace.restorePark(prepared, ref), (error) => isFactoryError(error, 'FACTORY_WORKSPACE_FAILED') && /sits on [0-9a-f]{12}, but .* is now at/.test(error.message));
    await assert.rejects(workspace.park(prepared, 'refs/heads/main', 'x'), (error) => isFactoryError(error, 'FACTORY_WORKSPACE_FAILED'));
  });
});

describe('parked work between two workers, through the remote', () => {
  /** A bare remote and two workers' repo caches (separate clones, separate worktree roots), as `factory worker` builds them. */
  function twoWorkers(name: string) {
    const source = join(scratch, name, 'source');
    createScratchRepo(source);
    const remote = join(scratch, name, 'remote.git');
    execFileSync('git', ['clone', '--quiet', '--bare', source, remote]);
    const worker = (id: string) => new RepoCacheWorkspace({ cacheDir: join(scratch, name, id, 'repos'), inner: new GitWorktreeWorkspace({ worktreesRoot: join(scratch, name, id, 'worktrees') }) });
    return { remote, a: worker('a'), b: worker('b') };
  }

  /** Worker A: the agent commits a step and leaves an uncommitted change; the run parks. */
  async function parkOnA(a: RepoCacheWorkspace, remote: string, runId: string): Promise<ParkedRun> {
    const prepared = await a.prepare({ repo: remote, issueKey: 'PARK-2', branch: 'factory/PARK-2' });
    writeFileSync(join(prepared.path, 'step.txt'), 'committed on A\n');
    git(prepared.path, 'add', 'step.txt');
    git(prepared.path, 'commit', '--quiet', '-m', 'PARK-2: a step on A');
    writeFileSync(join(prepared.path, 'half.txt'), 'uncommitted on A\n');
    const ref = `refs/factory/park/${runId}`;
    const work = await a.park(prepared, ref, 'park');
    return { runId, ref, commit: work.commit, trigger: 'run-budget', reason: 'over budget', resumeAtMs: null, stage: 0, sessions: {} };
  }

  it('a park ref pushed by worker A is fetched by worker B, whose new branch starts where the work was parked; deleting it leaves the remote clean', async () => {
    const { remote, a, b } = twoWorkers('shared');
    const park = await parkOnA(a, remote, 'PARK-2-e1-a1-aaa');
    await a.pushPark(remote, park.ref);
    assert.equal(git(remote, 'rev-parse', park.ref).trim(), park.commit);

    const onB = await b.prepare({ repo: remote, issueKey: 'PARK-2', branch: 'factory/PARK-2', park });
    assert.equal(git(onB.path, 'rev-parse', 'HEAD').trim(), git(remote, 'rev-parse', `${park.ref}^1`).trim(), "B's branch starts on the commit A parked on, with A's unpushed commit");
    await b.restorePark(onB, park.ref);
    assert.equal(readFileSync(join(onB.path, 'step.txt'), 'utf8'), 'committed on A\n');
    assert.equal(readFileSync(join(onB.path, 'half.txt'), 'utf8'), 'uncommitted on A\n');

    await b.deleteRemotePark(remote, park.ref);
    assert.equal(git(remote, 'for-each-ref', 'refs/factory/park').trim(), '');
  });

  it('a park ref that never reached the remote: worker A still resumes it from its clone, worker B refuses with FACTORY_PARK_UNAVAILABLE naming where it is', async () => {
    const { remote, a, b } = twoWorkers('local-only');
    const park: ParkedRun = { ...(await parkOnA(a, remote, 'PARK-2-e1-a1-bbb')), placement: { node: 'worker-a', pushed: false, pushError: 'remote refused' } };
    await assert.rejects(
      b.prepare({ repo: remote, issueKey: 'PARK-2', branch: 'factory/PARK-2', park }),
      (error) => isFactoryError(error, 'FACTORY_PARK_UNAVAILABLE') && /worker worker-a parked it and could not push it \(remote refused\)/.test(error.message),
    );
    const onA = await a.prepare({ repo: remote, issueKey: 'PARK-2', branch: 'factory/PARK-2', park });
    git(onA.path, 'clean', '-fdq');
    await a.restorePark(onA, park.ref);
    assert.equal(readFileSync(join(onA.path, 'half.txt'), 'utf8'), 'uncommitted on A\n');
  });
});
