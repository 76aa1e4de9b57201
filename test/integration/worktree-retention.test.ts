import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GitWorktreeWorkspace } from '../../src/adapters/workspace/git-worktree-workspace.js';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import { FileLease } from '../../src/adapters/lease/file-lease.js';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { compileConfig } from '../../src/config/load.js';
import type { ClaimStatus, IssueClaim } from '../../src/domain/claim.js';
import { isFactoryError } from '../../src/errors.js';
import type { PreparedWorkspace } from '../../src/ports/workspace.js';
import { runFactoryCli } from '../support/factory-cli.js';
import { createScratchProject, git } from '../support/sandbox.js';

/**
 * Worktree retention on real git, a real state database and the real CLI:
 * what a removal saves, what it refuses, and what `factory prune` removes.
 */

const projects: string[] = [];
after(() => projects.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

const DAY_MS = 86_400_000;

function project(name: string) {
  const scratch = createScratchProject(name, {
    agents: { implementer: { command: ['true'] } },
  });
  projects.push(scratch.dir);
  writeFileSync(join(scratch.repo, '.gitignore'), 'node_modules/\n');
  git(scratch.repo, 'add', '.gitignore');
  git(scratch.repo, 'commit', '--quiet', '-m', 'ignore node_modules');
  const config = compileConfig(JSON.parse(readFileSync(scratch.configPath, 'utf8')), scratch.configPath);
  const workspace = new GitWorktreeWorkspace({ worktreesRoot: config.paths.worktreesDir });
  return { ...scratch, config, workspace };
}

/** Makes a worktree look untouched for `days`: its folder and git's files for it. */
function age(prepared: PreparedWorkspace, days: number): void {
  const when = new Date(Date.now() - days * DAY_MS);
  const adminDir = git(prepared.path, 'rev-parse', '--absolute-git-dir').trim();
  for (const path of [prepared.path, join(adminDir, 'HEAD'), join(adminDir, 'index'), join(adminDir, 'logs', 'HEAD')]) if (existsSync(path)) utimesSync(path, when, when);
}

async function writeClaims(stateDb: string, claims: { issueKey: string; status: ClaimStatus; repo: string; updatedAtMs: number }[]): Promise<void> {
  const store = new SqliteStateStore(stateDb);
  try {
    const epoch = await store.beginEpoch({ pid: 1, startTime: 1, bootId: 'test', hostname: 'test' }, Date.now());
    const full: IssueClaim[] = claims.map((claim) => ({
      ...claim,
      revision: 'r1',
      attempt: 1,
      nextAttemptAtMs: null,
      runId: claim.status === 'running' ? `${claim.issueKey}-e1-a1-abc` : null,
      priority: null,
      createdAtMs: claim.updatedAtMs,
      lastReason: null,
      epoch,
    }));
    await store.apply({ epoch, claims: full });
  } finally {
    await store.close();
  }
}

describe('removing a worktree on real git', () => {
  it('saves uncommitted and untracked work (not ignored files) to the leftover ref, keeps the branch and its commits, and unregisters the worktree', async () => {
    const p = project('leftover');
    const prepared = await p.workspace.prepare({ repo: p.repo, issueKey: 'RET-1', branch: 'factory/RET-1' });
    writeFileSync(join(prepared.path, 'done.txt'), 'committed\n');
    git(prepared.path, 'add', 'done.txt');
    git(prepared.path, 'commit', '--quiet', '-m', 'RET-1: done');
    const branchHead = git(p.repo, 'rev-parse', 'factory/RET-1').trim();
    writeFileSync(join(prepared.path, 'README.md'), 'edited, not committed\n');
    writeFileSync(join(prepared.path, 'notes.txt'), 'untracked\n');
    mkdirSync(join(prepared.path, 'node_modules'));
    writeFileSync(join(prepared.path, 'node_modules', 'big.js'), 'ignored\n');

    const [record] = await p.workspace.listWorktrees();
    assert.equal(record?.issueKey, 'RET-1');
    assert.equal(record?.repo, p.repo);
    const removal = await p.workspace.removeWorktree(record!, { leftoverRef: 'refs/factory/leftover/RET-1-20250301T120000Z', message: 'leftover of RET-1', confirm: async () => true });

    assert.equal(removal.removed, true);
    assert.ok(removal.removed && removal.bytesFreed !== undefined && removal.bytesFreed > 0, 'the size was measured');
    assert.equal(existsSync(prepared.path), false);
    assert.doesNotMatch(git(p.repo, 'worktree', 'list', '--porcelain'), /RET-1/);
    assert.equal(git(p.repo, 'rev-parse', 'factory/RET-1').trim(), branchHead, 'the branch and its commit stay');
    const leftover = 'refs/factory/leftover/RET-1-20250301T120000Z';
    assert.equal(git(p.repo, 'show', `${leftover}:README.md`), 'edited, not committed\n');
    assert.equal(git(p.repo, 'show', `${leftover}:notes.txt`), 'untracked\n');
    assert.equal(git(p.repo, 'rev-parse', `${leftover}^1`).trim(), branchHead, 'the leftover sits on the branch head');
    assert.doesNotMatch(git(p.repo, 'ls-tree', '-r', '--name-only', leftover), /node_modules/);
  });

  it('saves commits made on a detached HEAD that no ref reaches', async () => {
    const p = project('detached');
    const prepared = await p.workspace.prepare({ repo: p.repo, issueKey: 'RET-2', branch: 'factory/RET-2' });
    git(prepared.path, 'checkout', '--quiet', '--detach');
    writeFileSync(join(prepared.path, 'off-branch.txt'), 'committed on a detached HEAD\n');
    git(prepared.path, 'add', 'off-branch.txt');
    git(prepared.path, 'commit', '--quiet', '-m', 'off any branch');
    const [record] = await p.workspace.listWorktrees();
    const removal = await p.workspace.removeWorktree(record!, { leftoverRef: 'refs/factory/leftover/RET-2-20250301T120000Z', message: 'x', confirm: async () => true });
    assert.equal(removal.removed && removal.leftover?.ref, 'refs/factory/leftover/RET-2-20250301T120000Z');
    assert.equal(git(p.repo, 'show', 'refs/factory/leftover/RET-2-20250301T120000Z:off-branch.txt'), 'committed on a detached HEAD\n');
  });

  it('never lists nor removes a worktree reached through a symlink out of the worktrees root', async () => {
    const p = project('symlink');
    await p.workspace.prepare({ repo: p.repo, issueKey: 'RET-3', branch: 'factory/RET-3' });
    const outside = join(p.dir, 'outside-worktree');
    git(p.repo, 'worktree', 'add', '--quiet', '-b', 'elsewhere', outside);
    const [ours] = await p.workspace.listWorktrees();
    const link = join(p.config.paths.worktreesDir, 'repo-link', 'RET-4');
    mkdirSync(join(p.config.paths.worktreesDir, 'repo-link'));
    symlinkSync(outside, link);

    assert.deepEqual(
      (await p.workspace.listWorktrees()).map((record) => record.issueKey),
      ['RET-3'],
    );
    for (const path of [link, outside]) {
      await assert.rejects(
        p.workspace.removeWorktree({ ...ours!, path, issueKey: 'RET-4' }, { leftoverRef: 'refs/factory/leftover/RET-4-20250301T120000Z', message: 'x', confirm: async () => true }),
        (error) => isFactoryError(error, 'FACTORY_WORKSPACE_FAILED') && /not a worktree folder under Factory's worktrees root/.test(error.message),
      );
    }
    assert.equal(existsSync(join(outside, 'README.md')), true, 'the worktree outside is untouched');
  });
});

describe('factory prune', () => {
  async function preparedProject(name: string) {
    const p = project(name);
    const finished = await p.workspace.prepare({ repo: p.repo, issueKey: 'DONE-1', branch: 'factory/DONE-1' });
    writeFileSync(join(finished.path, 'half-done.txt'), 'the agent left this\n');
    const active = await p.workspace.prepare({ repo: p.repo, issueKey: 'BUSY-1', branch: 'factory/BUSY-1' });
    const fresh = await p.workspace.prepare({ repo: p.repo, issueKey: 'FRESH-1', branch: 'factory/FRESH-1' });
    const unclaimed = await p.workspace.prepare({ repo: p.repo, issueKey: 'NOCLAIM-1', branch: 'factory/NOCLAIM-1' });
    for (const prepared of [finished, active, unclaimed]) age(prepared, 10);
    const tenDaysAgo = Date.now() - 10 * DAY_MS;
    await writeClaims(p.config.paths.stateDb, [
      { issueKey: 'DONE-1', status: 'succeeded', repo: p.repo, updatedAtMs: tenDaysAgo },
      { issueKey: 'BUSY-1', status: 'running', repo: p.repo, updatedAtMs: tenDaysAgo },
      { issueKey: 'FRESH-1', status: 'gave-up', repo: p.repo, updatedAtMs: Date.now() },
    ]);
    return { p, finished, active, fresh, unclaimed };
  }

  it('--dry-run lists what is due with sizes and removes nothing', async () => {
    const { p, finished, active, fresh, unclaimed } = await preparedProject('prune-dry');
    const result = await runFactoryCli(['prune', '--dry-run', '--config', p.configPath]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^would remove {2}DONE-1 {2}\d+ MB {2}/m);
    assert.match(result.stdout, /^would remove {2}NOCLAIM-1 /m);
    assert.match(result.stdout, /^total: 2 worktree\(s\) would be removed, \d+ MB would be freed; kept 1 claim-active, 1 recent$/m);
    for (const prepared of [finished, active, fresh, unclaimed]) assert.equal(existsSync(prepared.path), true);
  });

  it('removes finished and unclaimed worktrees past the period, never an active claim’s, and reports the leftover ref', async () => {
    const { p, finished, active, fresh, unclaimed } = await preparedProject('prune-real');
    const result = await runFactoryCli(['prune', '--json', '--config', p.configPath]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as { worktrees: { action: string; leftoverRef?: string; worktree: { issueKey: string } }[]; bytes: number };
    const byIssue = new Map(report.worktrees.map((entry) => [entry.worktree.issueKey, entry]));
    assert.equal(byIssue.get('DONE-1')?.action, 'removed');
    assert.equal(byIssue.get('NOCLAIM-1')?.action, 'removed');
    assert.equal(byIssue.get('BUSY-1')?.action, 'kept');
    assert.equal(byIssue.get('FRESH-1')?.action, 'kept');
    assert.ok(report.bytes > 0);
    assert.equal(existsSync(finished.path), false);
    assert.equal(existsSync(unclaimed.path), false);
    assert.equal(existsSync(active.path), true, 'a running claim keeps its worktree');
    assert.equal(existsSync(fresh.path), true, 'a recently finished claim keeps its worktree');
    const leftoverRef = byIssue.get('DONE-1')?.leftoverRef;
    assert.match(leftoverRef ?? '', /^refs\/factory\/leftover\/DONE-1-\d{8}T\d{6}Z$/);
    assert.equal(git(p.repo, 'show', `${leftoverRef}:half-done.txt`), 'the agent left this\n');
    assert.equal(byIssue.get('NOCLAIM-1')?.leftoverRef, undefined, 'nothing uncommitted there');
    git(p.repo, 'rev-parse', '--verify', 'factory/DONE-1');

    // --older-than 0: also the recently finished one; still never the running one.
    const again = await runFactoryCli(['prune', '--older-than', '0', '--config', p.configPath]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^removed {2}FRESH-1 /m);
    assert.equal(existsSync(active.path), true);
  });

  it('removes nothing while a daemon holds the config, and says so (exit 3)', async () => {
    const { p, finished } = await preparedProject('prune-daemon');
    const lease = await new FileLease({ path: p.config.paths.daemonLock, processTable: new LinuxProcessTable(), clock: new SystemClock(), keepOpenWhileHeld: true }).acquire();
    try {
      const result = await runFactoryCli(['prune', '--config', p.configPath]);
      assert.equal(result.code, 3, result.stdout + result.stderr);
      assert.match(result.stderr, /removes finished worktrees itself/);
      assert.equal(existsSync(finished.path), true);
      const dry = await runFactoryCli(['prune', '--dry-run', '--config', p.configPath]);
      assert.equal(dry.code, 0, dry.stderr);
    } finally {
      await lease.release();
    }
  });

  it('refuses an --older-than it cannot read', async () => {
    const p = project('prune-usage');
    const result = await runFactoryCli(['prune', '--older-than', 'soon', '--config', p.configPath]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--older-than: expected a duration such as 3d/);
  });
});
