import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import { createGitHubProject, REPO_SLUG } from '../support/fake-github/github-project.js';
import { REPO_ROOT, waitFor } from '../support/sandbox.js';

/**
 * The shepherd's paths past a failing check, with the real daemon against the
 * fake GitHub: ready for review after the team's reviewer approved, a change
 * request on the head commit sending the implementer back with the comments,
 * and `publish.merge: "squash"` merging only once CI is green and a review
 * approved that head. The dashboard shows the pull request and its round.
 */

const CHROMIUM = '/usr/bin/chromium';
const agents = {
  implementer: { command: [process.execPath, join(REPO_ROOT, 'test', 'fixtures', 'github', 'committing-agent.mjs')] },
  reviewer: { command: [process.execPath, join(REPO_ROOT, 'test', 'fixtures', 'github', 'approving-reviewer.mjs')] },
};

test(
  'approved by its reviewer: ready for review over GraphQL; changes requested: the implementer gets the comments; squash merge waits for green CI and an approval on the head',
  { timeout: 180_000 },
  async (t) => {
    const project = await createGitHubProject('gh-paths', { agents, publish: { merge: 'squash' }, shepherd: { pollIntervalMs: 200, maxRounds: 3 } });
    try {
      const number = project.fake.createIssue(REPO_SLUG, { title: 'Greet', body: 'Say hello.', labels: ['factory'] });
      const daemon = project.start();
      const pullOf = () => project.fake.pulls(REPO_SLUG)[0];
      const first = await waitFor('the pull request', pullOf, 60_000);

      // The team's reviewer approved: the draft is marked ready for review with GraphQL (REST cannot).
      await waitFor('ready for review', () => pullOf()!.draft === false, 20_000);
      const graphql = project.fake.requests.filter((request) => request.method === 'POST' && request.url === '/graphql');
      assert.equal(graphql.length, 1, 'one markPullRequestReadyForReview call');
      assert.equal(graphql[0]!.status, 200);

      // Green CI without an approval on GitHub: no merge.
      project.fake.addCheckRun(REPO_SLUG, { headSha: first.headSha, name: 'test', status: 'completed', conclusion: 'success', summary: 'ok', text: null });
      const url = await project.httpUrl();
      const verdictOf = async (): Promise<string | undefined> => ((await (await fetch(`${url}/api/v1/pull-requests`)).json()) as { pullRequests: { verdict: string }[] }).pullRequests[0]?.verdict;
      await waitFor('green, waiting for review', async () => (await verdictOf())?.includes('waiting for review'), 20_000);
      assert.equal(project.fake.merges.length, 0, 'green alone does not merge');

      // A reviewer requests changes on the head commit: the implementer is sent back with the comments.
      project.fake.review(REPO_SLUG, first.number, 'CHANGES_REQUESTED', 'Please greet in French too: "bonjour".');
      const fixedSha = await waitFor(
        'the fix round push',
        () => {
          const head = pullOf()!.headSha;
          return head !== first.headSha && head;
        },
        60_000,
      );
      const told = execFileSync('git', ['--git-dir', project.remote, 'show', fixedSha, '--format=', '--', 'work'], { encoding: 'utf8' });
      assert.match(told, /Changes requested in review/);
      assert.match(told, /octo-human/);
      assert.match(told, /greet in French too: "bonjour"/);
      const runs = execFileSync('git', ['--git-dir', project.remote, 'log', '--format=%s', pullOf()!.head], { encoding: 'utf8' });
      assert.match(runs, /\(acme_api-\d+-e\d+-f1-[0-9a-f]+\)/, 'the round ran as a dispatched fix round');

      // The dashboard shows the pull request and its round.
      const browser = existsSync(CHROMIUM) ? await openDashboard(url) : undefined;
      if (browser === undefined) t.diagnostic('chromium not installed: the dashboard part is skipped');
      try {
        if (browser) {
          const round = browser.page.locator(`[data-testid="pull"][data-issue="acme_api-${number}"] [data-testid="pull-round"]`);
          await round.waitFor({ timeout: 15_000 });
          await waitFor('the round finished on the dashboard', async () => (await round.textContent())?.startsWith('succeeded'), 15_000);
          const text = (await round.textContent()) ?? '';
          assert.match(text, new RegExp(`^succeeded #1 changes-requested on ${first.headSha.slice(0, 7)}: review by octo-human: changes requested → pushed ${fixedSha.slice(0, 7)}$`));
        }

        // The new head: an approval while CI still runs does not merge; green CI then merges, squashed, pinned to that head.
        project.fake.review(REPO_SLUG, first.number, 'APPROVED', 'Looks good.');
        project.fake.addCheckRun(REPO_SLUG, { headSha: fixedSha, name: 'test', status: 'in_progress', conclusion: null, summary: null, text: null });
        await waitFor('waiting for the check', async () => (await verdictOf())?.startsWith('waiting for 1 check'), 20_000);
        assert.equal(project.fake.merges.length, 0, 'no merge while a check is pending');
        // CI re-reports the check as finished (GitHub lists the latest run of each check name).
        project.fake.addCheckRun(REPO_SLUG, { headSha: fixedSha, name: 'test', status: 'completed', conclusion: 'success', summary: 'ok', text: null });
        await waitFor('the merge', () => project.fake.merges.length > 0, 20_000);
        assert.deepEqual(project.fake.merges, [{ fullName: REPO_SLUG, number: first.number, method: 'squash', sha: fixedSha }]);
        await waitFor('done', () => project.fake.issue(REPO_SLUG, number).labels.includes('factory:done'), 20_000);
        assert.match(statusCommentText(project.fake.comments(REPO_SLUG, number)), /\| 1 \| changes-requested \| `[0-9a-f]{7}` \| review by octo-human: changes requested \| succeeded \|/);
        // A merged pull request is no longer followed: the panel goes away.
        if (browser) await waitFor('the panel hidden once the pull request merged', async () => browser.page.locator('#pulls-section').isHidden(), 15_000);
      } finally {
        await browser?.close();
      }
      assert.ok(!daemon.stderr().includes('FACTORY_TEST_GITHUB_TOKEN='));
    } finally {
      await project.close();
    }
  },
);

test('pull requests merged and closed while the daemon was down: the restarted daemon ends their claims (merged: done) instead of following them forever', { timeout: 120_000 }, async () => {
  const project = await createGitHubProject('gh-closed-while-down', { shepherd: { pollIntervalMs: 200, maxRounds: 3 } });
  try {
    const merged = project.fake.createIssue(REPO_SLUG, { title: 'Merged by hand', body: 'Say hello.', labels: ['factory'] });
    const closed = project.fake.createIssue(REPO_SLUG, { title: 'Closed by hand', body: 'Say bye.', labels: ['factory'] });
    const daemon = project.start();
    const pullOf = (number: number) => project.fake.pulls(REPO_SLUG).find((pull) => pull.head === `factory/acme_api-${number}`);
    for (const number of [merged, closed]) await waitFor(`pr-open on #${number}`, () => pullOf(number) && project.fake.issue(REPO_SLUG, number).labels.includes('factory:pr-open'), 60_000);
    // Both outcomes are written back, so the restart has nothing left to publish (a publish would open a new pull request for a closed one).
    const stateDb = join(project.dir, '.factory', 'state.db');
    await waitFor('both outcomes written back', async () => (await readState(stateDb, (store) => store.pendingWritebacks())).length === 0, 20_000);
    daemon.child.kill('SIGTERM');
    await daemon.exited;
    assert.deepEqual(await claimStatuses(stateDb), { [`acme_api-${merged}`]: 'shepherding', [`acme_api-${closed}`]: 'shepherding' });

    // While no daemon runs, a person merges one pull request, and drops the other (closes it and its issue): neither is listed as open any more.
    project.fake.closePull(REPO_SLUG, pullOf(merged)!.number, true);
    project.fake.closePull(REPO_SLUG, pullOf(closed)!.number, false);
    project.fake.updateIssue(REPO_SLUG, closed, { state: 'closed' });
    const restarted = project.start();
    await waitFor('factory:done on the merged one', () => project.fake.issue(REPO_SLUG, merged).labels.includes('factory:done'), 30_000);
    await waitFor('both seen closed in the log', () => (restarted.stderr().match(/pull request closed; no longer followed/g) ?? []).length === 2, 20_000);
    const url = await project.httpUrl();
    const api = (await (await fetch(`${url}/api/v1/pull-requests`)).json()) as { pullRequests: unknown[] };
    assert.deepEqual(api.pullRequests, [], 'neither is shown as followed');
    restarted.child.kill('SIGTERM');
    await restarted.exited;
    const claims = await readState(stateDb, (store) => store.listClaims());
    const reasonOf = (number: number) => claims.find((claim) => claim.issueKey === `acme_api-${number}`)?.lastReason;
    assert.deepEqual(await claimStatuses(stateDb), { [`acme_api-${merged}`]: 'succeeded', [`acme_api-${closed}`]: 'gave-up' });
    assert.match(reasonOf(merged) ?? '', /^pull request merged: /);
    assert.match(reasonOf(closed) ?? '', /^pull request closed without merging: /, 'ended by its pull request, before intake saw the issue gone');
    assert.match(statusCommentText(project.fake.comments(REPO_SLUG, merged)), /\*\*Shepherd:\*\* merged/);
    assert.match(statusCommentText(project.fake.comments(REPO_SLUG, closed)), /\*\*Shepherd:\*\* closed without merging/);
  } finally {
    await project.close();
  }
});

async function readState<T>(stateDb: string, read: (store: SqliteStateStore) => Promise<T>): Promise<T> {
  const store = new SqliteStateStore(stateDb, { readonly: true });
  try {
    return await read(store);
  } finally {
    await store.close();
  }
}

async function claimStatuses(stateDb: string): Promise<Record<string, string>> {
  return readState(stateDb, async (store) => Object.fromEntries((await store.listClaims()).map((claim) => [claim.issueKey, claim.status])));
}

function statusCommentText(comments: readonly { body: string }[]): string {
  return comments.map((comment) => comment.body).join('\n');
}

async function openDashboard(url: string): Promise<{ page: Page; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'factory-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(url);
  return {
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
