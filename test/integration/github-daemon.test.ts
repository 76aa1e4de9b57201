import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createGitHubProject, REPO_SLUG, WEBHOOK_SECRET, type GitHubProject } from '../support/fake-github/github-project.js';
import { TEST_TOKEN } from '../support/fake-github/github-source-harness.js';
import { waitFor } from '../support/sandbox.js';

/**
 * GitHub end to end: the real daemon (`factory start`) against the fake
 * GitHub, with a real bare repository as the remote it pushes to.
 */

const BRANCH = 'factory/acme_api-1';
const STATUS_MARKER = '<!-- factory:status -->';

function statusComments(project: GitHubProject, number: number): { id: number; body: string }[] {
  return project.fake.comments(REPO_SLUG, number).filter((comment) => comment.body.startsWith(STATUS_MARKER));
}

function remoteHead(project: GitHubProject, branch: string): string | undefined {
  try {
    return execFileSync('git', ['--git-dir', project.remote, 'rev-parse', '--verify', '--quiet', `refs/heads/${branch}`], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

function labelWrites(project: GitHubProject, number: number): number {
  return project.fake.requests.filter((request) => request.method !== 'GET' && request.url.startsWith(`/repos/${REPO_SLUG}/issues/${number}/labels`) && request.status < 300).length;
}

/** Every file under `dir` (worktrees, .git/config, logs), for secret scans. */
function filesUnder(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    if (statSync(path).size < 2_000_000) files.push(path);
  }
  return files;
}

test('an issue labelled on GitHub is worked on and ends as a draft pull request; a restart duplicates nothing; the token stays secret', { timeout: 120_000 }, async () => {
  const project = await createGitHubProject('gh-e2e');
  try {
    const number = project.fake.createIssue(REPO_SLUG, { title: 'Add a greeting', body: 'Say hello in the README.', labels: ['bug'] });
    const daemon = project.start();
    const url = await project.httpUrl();
    // GitHub's secondary rate limit hits the next requests: Factory waits it out, loses and repeats nothing.
    project.fake.secondaryRateLimitNext(3, 1);
    // Labelling it is what brings it in; the webhook announces it at once.
    project.fake.updateIssue(REPO_SLUG, number, { labels: ['bug', 'factory'] });
    const delivery = await project.fake.deliverWebhook(`${url}/webhooks/github`, WEBHOOK_SECRET, 'issues', project.fake.issuesEventPayload(REPO_SLUG, number, 'labeled'));
    assert.equal(delivery.status, 202);

    const pull = await waitFor('a pull request', () => project.fake.pulls(REPO_SLUG)[0], 60_000);
    assert.equal(pull.head, BRANCH);
    assert.equal(pull.draft, true, 'opened as a draft');
    assert.match(pull.body ?? '', /^Closes acme\/api#1$/m);
    assert.match(pull.body ?? '', /\*\*Outcome:\*\* succeeded/);
    assert.equal(pull.title, 'Add a greeting');
    // The branch was really pushed, and the pull request's head is that commit.
    assert.equal(pull.headSha, remoteHead(project, BRANCH));
    const pushed = execFileSync('git', ['--git-dir', project.remote, 'log', '--format=%s', BRANCH], { encoding: 'utf8' });
    assert.match(pushed, /work for acme_api-1/);

    await waitFor('the pr-open label and one status comment', () => project.fake.issue(REPO_SLUG, number).labels.includes('factory:pr-open') && statusComments(project, number).length === 1, 20_000);
    const issue = project.fake.issue(REPO_SLUG, number);
    assert.deepEqual(
      issue.labels.filter((label) => label.startsWith('factory:')),
      ['factory:pr-open'],
    );
    const stagesSeen = project.fake.requests.filter((request) => request.method === 'POST' && request.url === `/repos/${REPO_SLUG}/issues/${number}/labels`).length;
    assert.ok(stagesSeen >= 3, `queued, working and pr-open were each set (${stagesSeen} label additions)`);
    const comment = statusComments(project, number)[0]!;
    assert.match(comment.body, /Pull request:\*\* .*\/pull\/2/);
    assert.doesNotMatch(comment.body, new RegExp(project.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'no host path in the comment');

    // A bad signature is refused and logged without the payload.
    const forged = await project.fake.deliverWebhook(`${url}/webhooks/github`, 'not-the-secret', 'issues', {
      ...project.fake.issuesEventPayload(REPO_SLUG, number, 'labeled'),
      marker: 'FORGED-PAYLOAD-TEXT',
    });
    assert.equal(forged.status, 401);
    await waitFor('the refusal in the log', () => daemon.stderr().includes('bad signature'));
    assert.ok(!daemon.stderr().includes('FORGED-PAYLOAD-TEXT'), 'the refused payload is not logged');

    // The API lists the pull request the shepherd follows.
    const api = (await (await fetch(`${url}/api/v1/pull-requests`)).json()) as { pullRequests: { issueKey: string; pullNumber: number }[] };
    assert.deepEqual(
      api.pullRequests.map((entry) => [entry.issueKey, entry.pullNumber]),
      [['acme_api-1', pull.number]],
    );
    const apiText = JSON.stringify(api) + (await (await fetch(`${url}/api/v1/state`)).text());

    // Restart: nothing is opened, commented or labelled again.
    const before = { labelWrites: labelWrites(project, number), comments: project.fake.comments(REPO_SLUG, number).length };
    daemon.child.kill('SIGTERM');
    await daemon.exited;
    const second = project.start();
    await project.httpUrl();
    const polls = project.fake.requests.length;
    await waitFor('the restarted daemon to poll GitHub a few times', () => project.fake.requests.length > polls + 10, 20_000);
    assert.equal(project.fake.pulls(REPO_SLUG).length, 1, 'one pull request');
    assert.equal(project.fake.comments(REPO_SLUG, number).length, before.comments, `no new comment: ${JSON.stringify(project.fake.comments(REPO_SLUG, number))}\n${second.stderr().slice(-3000)}`);
    assert.equal(labelWrites(project, number), before.labelWrites, 'no label change repeated');

    // The token is nowhere: logs, API, registry, heartbeat, state, worktrees, .git/config.
    const texts = [
      daemon.stderr(),
      second.stderr(),
      apiText,
      ...filesUnder(project.dir)
        .filter((path) => !path.includes(`${join(project.dir, 'remote.git')}/objects`))
        .map((path) => readFileSync(path, 'latin1')),
    ];
    for (const text of texts) assert.ok(!text.includes(TEST_TOKEN), 'the token leaked');
    assert.doesNotMatch(readFileSync(join(project.repo, '.git', 'config'), 'utf8'), /extraheader|askpass|credential/i);
  } finally {
    await project.close();
  }
});

test('a crash right after publishing, and one before it, still end with one pull request, one comment and the pr-open label', { timeout: 120_000 }, async () => {
  for (const point of ['during-writeback', 'after-publish']) {
    const project = await createGitHubProject(`gh-crash-${point}`);
    try {
      const number = project.fake.createIssue(REPO_SLUG, { title: `Crash ${point}`, body: 'Body', labels: ['factory'] });
      const crashed = project.start({ FACTORY_CRASH_AT: point });
      const exit = await crashed.exited;
      assert.equal(exit.signal, 'SIGKILL', `the daemon died at ${point}`);
      const restarted = project.start();
      await waitFor('pr-open after the restart', () => project.fake.issue(REPO_SLUG, number).labels.includes('factory:pr-open'), 60_000);
      await waitFor('the status comment', () => statusComments(project, number).length === 1, 20_000);
      assert.equal(project.fake.pulls(REPO_SLUG).length, 1, `${point}: one pull request`);
      assert.equal(project.fake.pulls(REPO_SLUG)[0]!.headSha, remoteHead(project, BRANCH));
      assert.equal(project.fake.comments(REPO_SLUG, number).length, 1, `${point}: one comment`);
      assert.ok(!restarted.stderr().includes(TEST_TOKEN));
    } finally {
      await project.close();
    }
  }
});

test('the shepherd: a failing check sends the implementer back and the next push turns it green; the same failure twice escalates', { timeout: 180_000 }, async () => {
  const project = await createGitHubProject('gh-shepherd', { shepherd: { pollIntervalMs: 200, maxRounds: 3 } });
  try {
    const green = project.fake.createIssue(REPO_SLUG, { title: 'Fixable', body: 'Make the tests pass.', labels: ['factory'] });
    const stuck = project.fake.createIssue(REPO_SLUG, { title: 'Stubborn', body: 'Make the lint pass.', labels: ['factory'] });
    const daemon = project.start();
    const pullOf = (branch: string) => project.fake.pulls(REPO_SLUG).find((pull) => pull.head === branch);
    const greenPull = await waitFor('the first pull request', () => pullOf(`factory/acme_api-${green}`), 60_000);
    const stuckPull = await waitFor('the second pull request', () => pullOf(`factory/acme_api-${stuck}`), 60_000);

    // CI fails on the first head: the implementer is sent back with the check's name and log excerpt.
    const log = ['Run npm test', '> jest', 'FAIL src/greet.test.ts', '  ✕ greets (12 ms)', '  Error: expected "hello" got "helo" at src/greet.ts:3:7'].join('\n');
    project.fake.addCheckRun(REPO_SLUG, { headSha: greenPull.headSha, name: 'test', status: 'completed', conclusion: 'failure', summary: '1 failed', text: log });
    const fixedSha = await waitFor(
      'a new push after the fix round',
      () => {
        const head = pullOf(greenPull.head)!.headSha;
        return head !== greenPull.headSha && head;
      },
      60_000,
    );
    // The round's commit carries what the implementer was told.
    const told = execFileSync('git', ['--git-dir', project.remote, 'show', `${fixedSha}`, '--format=', '--', 'work'], { encoding: 'utf8' });
    assert.match(told, /Failed checks/);
    assert.match(told, /\*\*test\*\*: failure/);
    assert.match(told, /expected "hello" got "helo"/);
    // Green on the new head: no more rounds, the verdict is recorded.
    project.fake.addCheckRun(REPO_SLUG, { headSha: fixedSha, name: 'test', status: 'completed', conclusion: 'success', summary: 'all passed', text: null });
    await waitFor('green recorded in the status comment', () => statusComments(project, green)[0]?.body.includes(`green on ${fixedSha.slice(0, 7)}`), 30_000);
    const greenComment = statusComments(project, green)[0]!.body;
    assert.match(greenComment, /\| 1 \| ci-failed \| `[0-9a-f]{7}` \| check test: failure \| succeeded \| `[0-9a-f]{7}` \|/);
    // A stale failure on the old head triggers nothing.
    project.fake.addCheckRun(REPO_SLUG, { headSha: greenPull.headSha, name: 'lint', status: 'completed', conclusion: 'failure', summary: 'stale', text: 'error: stale' });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(pullOf(greenPull.head)!.headSha, fixedSha, 'no round for a stale result');

    // The second pull request fails the same way twice: escalated, not looped.
    const lintLog = (seconds: number) => `lint found problems\nerror: src/a.ts:${seconds}:1 no-unused-vars 'x' is unused (took ${seconds}s)`;
    project.fake.addCheckRun(REPO_SLUG, { headSha: stuckPull.headSha, name: 'lint', status: 'completed', conclusion: 'failure', summary: null, text: lintLog(3) });
    const stuckFixed = await waitFor(
      'the stubborn fix push',
      () => {
        const head = pullOf(stuckPull.head)!.headSha;
        return head !== stuckPull.headSha && head;
      },
      60_000,
    );
    project.fake.addCheckRun(REPO_SLUG, { headSha: stuckFixed, name: 'lint', status: 'completed', conclusion: 'failure', summary: null, text: lintLog(9) });
    await waitFor('needs-human', () => project.fake.issue(REPO_SLUG, stuck).labels.includes('factory:needs-human'), 30_000);
    const escalations = await waitFor('the escalation comment', () => {
      const found = project.fake.comments(REPO_SLUG, stuck).filter((comment) => comment.body.includes('Factory needs a person'));
      return found.length > 0 && found;
    });
    assert.equal(escalations.length, 1);
    assert.match(escalations[0]!.body, /same failure came back/);
    assert.match(escalations[0]!.body, /Round 1 \(ci-failed/);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(pullOf(stuckPull.head)!.headSha, stuckFixed, 'no further round after escalating');
    assert.equal(project.fake.comments(REPO_SLUG, stuck).filter((comment) => comment.body.includes('Factory needs a person')).length, 1, 'one escalation comment');
    assert.ok(!daemon.stderr().includes(TEST_TOKEN));
  } finally {
    await project.close();
  }
});

test('a credential whose login cannot be learned stops the daemon at start, before it reads or writes a marker', { timeout: 60_000 }, async () => {
  const project = await createGitHubProject('gh-identity');
  try {
    const number = project.fake.createIssue(REPO_SLUG, { title: 'Add a greeting', body: 'Say hello.', labels: ['factory'] });
    // A token that may not read GET /user (GitHub answers 403).
    project.fake.failNext(1, 403, (_method, route) => route === '/user');
    const daemon = project.start();
    const { code } = await daemon.exited;
    assert.equal(code, 2);
    assert.match(daemon.stderr(), /FACTORY_GITHUB_IDENTITY_UNKNOWN/);
    assert.match(daemon.stderr(), /source\.github\.identity/);
    assert.deepEqual(project.fake.comments(REPO_SLUG, number), [], 'nothing was written');
    assert.deepEqual(project.fake.pulls(REPO_SLUG), []);
    assert.ok(!project.fake.requests.some((request) => request.route === '/repos/{owner}/{repo}/issues/{issue_number}/comments'), 'no comment was read before the login was known');
  } finally {
    await project.close();
  }
});
