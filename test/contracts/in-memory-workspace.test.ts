import { InMemoryWorkspace } from '../../src/adapters/workspace/in-memory-workspace.js';
import { describeWorkspaceContract } from './workspace.contract.js';

describeWorkspaceContract('InMemoryWorkspace', async () => {
  const repos: string[] = [];
  const workspace = new InMemoryWorkspace({ repos });
  return {
    workspace,
    newRepo: () => {
      const repo = `/repos/r${repos.length}`;
      repos.push(repo);
      return repo;
    },
    missingRepo: '/repos/missing',
    commit: (prepared) => workspace.commit(prepared),
    leaveChanges: (prepared) => workspace.leaveChanges(prepared),
    dispose: async () => undefined,
  };
});
