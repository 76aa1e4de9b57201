import { githubIssueKey, isStatusComment } from '../../src/domain/github-issue.js';
import { createSourceOverFake, repoRef, startFakeGitHub } from '../support/fake-github/github-source-harness.js';
import { describeIssueSourceContract } from './issue-source.contract.js';

/**
 * The IssueSource contract over the fake GitHub. GitHub cannot be told an
 * issue's key or workflow state, so the harness translates the suite's drafts:
 * - keys: each draft key gets its own issue number in `acme/fac`; `keyFor`
 *   gives the key the source derives from it (`acme_fac-N`);
 * - state: `ready` is the scope label `factory` on an open issue; any other
 *   state is an open issue without it (GitHub has no free-form state);
 * - priority: a priority label (`P2`), which the source turns back into `priority`;
 * - removal: closing the issue (the REST API cannot delete issues);
 * - an unreadable record: a second configured repository the token loses
 *   access to (404), reported as skipped under `acme/side`.
 */
describeIssueSourceContract('GitHubIssueSource', async () => {
  const fake = await startFakeGitHub();
  fake.createRepo('acme/fac');
  fake.createRepo('acme/side');
  const { source } = createSourceOverFake(fake, ['acme/fac', 'acme/side']);
  const numbers = new Map<string, number>();
  // Keys asked about but never put get numbers no issue will have, the same each time.
  const neverPut = new Map<string, number>();
  const labelsFor = (draft: { labels?: readonly string[]; state?: string; priority?: number }): string[] => {
    const labels = (draft.labels ?? []).filter((label) => label.toLowerCase() !== 'factory');
    if ((draft.state ?? 'ready') === 'ready') labels.unshift('factory');
    if (draft.priority !== undefined) labels.push(`P${draft.priority}`);
    return labels;
  };
  return {
    source,
    keyFor: (draftKey) => {
      if (!numbers.has(draftKey) && !neverPut.has(draftKey)) neverPut.set(draftKey, 100_000 + neverPut.size);
      return githubIssueKey(repoRef('acme/fac'), numbers.get(draftKey) ?? (neverPut.get(draftKey) as number));
    },
    putIssue: async (draft) => {
      const fields = { title: draft.title, body: draft.body ?? null, labels: labelsFor(draft) };
      const number = numbers.get(draft.key);
      if (number === undefined) numbers.set(draft.key, fake.createIssue('acme/fac', fields));
      else fake.updateIssue('acme/fac', number, { ...fields, state: 'open' });
    },
    removeIssue: async (key) => {
      const number = numbers.get(key);
      if (number !== undefined) fake.updateIssue('acme/fac', number, { state: 'closed' });
    },
    putUnreadable: async () => {
      fake.denyRepo('acme/side', 404);
      return 'acme/side';
    },
    readWrittenOutcome: async (key) => {
      const number = numbers.get(key);
      if (number === undefined) return undefined;
      return fake.comments('acme/fac', number).find((comment) => isStatusComment(comment.body))?.body;
    },
    dispose: () => fake.close(),
  };
});
