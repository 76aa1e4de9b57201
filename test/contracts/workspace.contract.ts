import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFactoryError } from '../../src/errors.js';
import type { PreparedWorkspace, Workspace, WorktreeRecord } from '../../src/ports/workspace.js';

/**
 * What every Workspace owes a team run, run against git worktrees and the
 * in-memory workspace alike. (Not named *.test.ts: a suite to call.)
 */
export interface WorkspaceHarness {
  readonly workspace: Workspace;
  /** A repo with one commit that prepare() accepts. */
  newRepo(): string;
  /** A repo path that does not exist. */
  readonly missingRepo: string;
  /** Makes one commit in the prepared workspace, as an agent would. */
  commit(prepared: PreparedWorkspace, message: string): void;
  /** Leaves uncommitted work in the prepared workspace (an untracked file), as an interrupted agent would. */
  leaveChanges(prepared: PreparedWorkspace): void;
  dispose(): Promise<void>;
}

export function describeWorkspaceContract(name: string, makeHarness: () => Promise<WorkspaceHarness>): void {
  describe(`Workspace contract: ${name}`, { timeout: 60_000 }, () => {
    const withHarness = (title: string, body: (h: WorkspaceHarness) => Promise<void>): void => {
      it(title, async () => {
        const harness = await makeHarness();
        try {
          await body(harness);
        } finally {
          await harness.dispose();
        }
      });
    };

    withHarness('prepares a workspace on the requested branch with no commits of its own yet', async (h) => {
      const repo = h.newRepo();
      const prepared = await h.workspace.prepare({ repo, issueKey: 'FAC-1', branch: 'factory/FAC-1' });
      assert.equal(prepared.branch, 'factory/FAC-1');
      assert.ok(prepared.path.length > 0);
      assert.ok(prepared.baseCommit.length > 0);
      assert.equal(await h.workspace.commitsSince(prepared), 0);
    });

    withHarness('counts the commits made on the branch since it was prepared', async (h) => {
      const prepared = await h.workspace.prepare({ repo: h.newRepo(), issueKey: 'FAC-2', branch: 'factory/FAC-2' });
      h.commit(prepared, 'first');
      h.commit(prepared, 'second');
      assert.equal(await h.workspace.commitsSince(prepared), 2);
    });

    withHarness("counts the commits since a head it reported (one run's own), apart from the branch's commits in all", async (h) => {
      const prepared = await h.workspace.prepare({ repo: h.newRepo(), issueKey: 'FAC-9', branch: 'factory/FAC-9' });
      h.commit(prepared, 'an earlier run');
      const runStart = await h.workspace.branchHead(prepared);
      assert.equal(await h.workspace.commitsSince(prepared, runStart), 0, 'nothing yet since the run started');
      h.commit(prepared, 'this run, first');
      h.commit(prepared, 'this run, second');
      assert.equal(await h.workspace.commitsSince(prepared, runStart), 2);
      assert.equal(await h.workspace.commitsSince(prepared), 3);
    });

    withHarness('preparing again for the same issue (a retry, the next stage) reuses the workspace and keeps its commits', async (h) => {
      const repo = h.newRepo();
      const first = await h.workspace.prepare({ repo, issueKey: 'FAC-3', branch: 'factory/FAC-3' });
      h.commit(first, 'the implementer’s work');
      const again = await h.workspace.prepare({ repo, issueKey: 'FAC-3', branch: 'factory/FAC-3' });
      assert.equal(again.path, first.path);
      assert.equal(again.branch, first.branch);
      assert.equal(await h.workspace.commitsSince(again), 1, 'nothing was reset');
    });

    withHarness('different issues get different workspaces, also when their keys only differ in unsafe characters', async (h) => {
      const repo = h.newRepo();
      const paths = new Set<string>();
      for (const issueKey of ['FAC-4', 'FAC-5', 'a/b', 'a_b']) {
        const prepared = await h.workspace.prepare({ repo, issueKey, branch: `factory/${issueKey.replace('/', '-')}-${paths.size}` });
        paths.add(prepared.path);
      }
      assert.equal(paths.size, 4);
    });

    const recordOf = async (h: WorkspaceHarness, prepared: PreparedWorkspace): Promise<WorktreeRecord> => {
      const record = (await h.workspace.listWorktrees()).find((candidate) => candidate.path === prepared.path);
      assert.ok(record, `${prepared.path} is listed`);
      return record;
    };
    const remove = (h: WorkspaceHarness, record: WorktreeRecord, issueKey: string, confirm = true) =>
      h.workspace.removeWorktree(record, { leftoverRef: `refs/factory/leftover/${issueKey}-20250301T120000Z`, message: 'leftover', confirm: async () => confirm });

    withHarness('lists the worktrees it made with their issue, repo and branch', async (h) => {
      const repo = h.newRepo();
      const prepared = await h.workspace.prepare({ repo, issueKey: 'FAC-7', branch: 'factory/FAC-7' });
      const record = await recordOf(h, prepared);
      assert.equal(record.issueKey, 'FAC-7');
      assert.equal(record.branch, 'factory/FAC-7');
      assert.equal(await h.workspace.diskUsage(record).then((bytes) => bytes === undefined || bytes >= 0), true);
    });

    withHarness('removing a clean worktree unlists it and keeps its branch and commits: preparing again gets them back', async (h) => {
      const repo = h.newRepo();
      const prepared = await h.workspace.prepare({ repo, issueKey: 'FAC-8', branch: 'factory/FAC-8' });
      h.commit(prepared, 'work that must survive');
      const removal = await remove(h, await recordOf(h, prepared), 'FAC-8');
      assert.equal(removal.removed, true);
      assert.equal(removal.removed && removal.leftover, undefined, 'nothing uncommitted, so no leftover ref');
      assert.deepEqual(
        (await h.workspace.listWorktrees()).filter((record) => record.path === prepared.path),
        [],
      );
      const again = await h.workspace.prepare({ repo, issueKey: 'FAC-8', branch: 'factory/FAC-8' });
      assert.equal(await h.workspace.commitsSince(again), 1);
    });

    withHarness('removing a worktree with uncommitted work saves it to the leftover ref first', async (h) => {
      const prepared = await h.workspace.prepare({ repo: h.newRepo(), issueKey: 'FAC-9', branch: 'factory/FAC-9' });
      h.leaveChanges(prepared);
      const removal = await remove(h, await recordOf(h, prepared), 'FAC-9');
      assert.equal(removal.removed && removal.leftover?.ref, 'refs/factory/leftover/FAC-9-20250301T120000Z');
    });

    withHarness('a removal the confirmation refuses (the issue became active) leaves the worktree in place', async (h) => {
      const prepared = await h.workspace.prepare({ repo: h.newRepo(), issueKey: 'FAC-10', branch: 'factory/FAC-10' });
      const removal = await remove(h, await recordOf(h, prepared), 'FAC-10', false);
      assert.equal(removal.removed, false);
      await recordOf(h, prepared);
    });

    withHarness('a leftover ref outside refs/factory/leftover/ and a path it did not make are refused', async (h) => {
      const prepared = await h.workspace.prepare({ repo: h.newRepo(), issueKey: 'FAC-11', branch: 'factory/FAC-11' });
      const record = await recordOf(h, prepared);
      await assert.rejects(h.workspace.removeWorktree(record, { leftoverRef: 'refs/heads/main', message: 'x', confirm: async () => true }), (error) =>
        isFactoryError(error, 'FACTORY_WORKSPACE_FAILED'),
      );
      await assert.rejects(remove(h, { ...record, path: h.missingRepo }, 'FAC-11'), (error) => isFactoryError(error, 'FACTORY_WORKSPACE_FAILED'));
      await recordOf(h, prepared);
    });

    withHarness('a repo that does not exist is refused with FACTORY_WORKSPACE_FAILED naming it', async (h) => {
      await assert.rejects(
        h.workspace.prepare({ repo: h.missingRepo, issueKey: 'FAC-6', branch: 'factory/FAC-6' }),
        (error) => isFactoryError(error, 'FACTORY_WORKSPACE_FAILED') && error.message.includes(h.missingRepo),
      );
    });
  });
}
