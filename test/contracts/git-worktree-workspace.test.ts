import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GitWorktreeWorkspace } from '../../src/adapters/workspace/git-worktree-workspace.js';
import { createScratchRepo, git } from '../support/sandbox.js';
import { describeWorkspaceContract } from './workspace.contract.js';

describeWorkspaceContract('GitWorktreeWorkspace', async () => {
  const scratch = realpathSync(mkdtempSync(join(tmpdir(), 'factory-workspace-contract-')));
  let repos = 0;
  let commits = 0;
  return {
    workspace: new GitWorktreeWorkspace({ worktreesRoot: join(scratch, 'worktrees') }),
    newRepo: () => {
      const repo = join(scratch, `repo-${++repos}`);
      mkdirSync(repo, { recursive: true });
      createScratchRepo(repo);
      return repo;
    },
    missingRepo: join(scratch, 'no-such-repo'),
    commit: (prepared, message) => {
      const file = `work-${++commits}.txt`;
      writeFileSync(join(prepared.path, file), `${message}\n`);
      git(prepared.path, 'add', '--', file);
      git(prepared.path, 'commit', '--quiet', '-m', message);
    },
    leaveChanges: (prepared) => writeFileSync(join(prepared.path, 'unfinished.txt'), 'not committed yet\n'),
    dispose: async () => rmSync(scratch, { recursive: true, force: true }),
  };
});
