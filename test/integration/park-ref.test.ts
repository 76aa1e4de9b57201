import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GitWorktreeWorkspace } from '../../src/adapters/workspace/git-worktree-workspace.js';
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
