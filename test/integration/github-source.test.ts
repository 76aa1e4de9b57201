import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { FakeClock } from '../../src/adapters/clock/fake-clock.js';
import { resolveGitHubCredentials } from '../../src/adapters/github/github-auth.js';
import { createGitHubClient, type GitHubLog } from '../../src/adapters/github/github-client.js';
import { GitHubRepoClient } from '../../src/adapters/github/github-repo-client.js';
import { GitHubIssueWriteback } from '../../src/adapters/github/github-writeback.js';
import { isStatusComment } from '../../src/domain/github-issue.js';
import { isFactoryError } from '../../src/errors.js';
import { EventRecorder, makeOutcome } from '../contracts/issue-source.contract.js';
import { FakeGitHub } from '../support/fake-github/fake-github.js';
import { createSourceOverFake, fastClientOptions, repoRef, startFakeGitHub, TEST_TOKEN, tokenIdentity } from '../support/fake-github/github-source-harness.js';
import { waitFor } from '../support/sandbox.js';

/** Records every log line the client writes, as text, so a test can search it for secrets. */
class CapturingLog implements GitHubLog {
  readonly lines: string[] = [];
  debug(fields: Record<string, unknown>, message?: string): void {
    this.lines.push(`${message ?? ''} ${JSON.stringify(fields)}`);
  }
  warn(fields: Record<string, unknown>, message?: string): void {
    this.lines.push(`${message ?? ''} ${JSON.stringify(fields)}`);
  }
}

const keysOf = async (source: { scan(): Promise<{ issues: readonly { key: string }[] }> }): Promise<string[]> => (await source.scan()).issues.map((issue) => issue.key);

describe('GitHubIssueSource against the fake GitHub', () => {
  it('is slowed down by a secondary rate limit (403 + retry-after) and neither loses nor repeats an issue', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    fake.createIssue('acme/api', { title: 'One', labels: ['factory'] });
    const log = new CapturingLog();
    const { source } = createSourceOverFake(fake, ['acme/api'], { client: { log } });
    assert.deepEqual(await keysOf(source), ['acme_api-1']);

    fake.createIssue('acme/api', { title: 'Two', labels: ['factory'] });
    fake.secondaryRateLimitNext(2, 1);
    const startedAt = Date.now();
    const keys = await keysOf(source);

    assert.deepEqual(keys, ['acme_api-1', 'acme_api-2'], 'each issue exactly once');
    assert.ok(Date.now() - startedAt >= 1900, `two retry-after: 1 waits must slow the scan down (took ${Date.now() - startedAt} ms)`);
    assert.equal(fake.requests.filter((request) => request.status === 403).length, 2);
    assert.ok(
      log.lines.some((line) => /secondary rate limit/.test(line)),
      'the wait is logged',
    );
    await fake.close();
  });

  it('waits for the primary limit to reset (x-ratelimit-reset) and then carries on', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    fake.createIssue('acme/api', { title: 'One', labels: ['factory'] });
    const { source } = createSourceOverFake(fake, ['acme/api']);
    await source.scan();

    fake.createIssue('acme/api', { title: 'Two', labels: ['factory'] });
    fake.exhaustPrimaryLimit(1_000);
    const startedAt = Date.now();
    assert.deepEqual(await keysOf(source), ['acme_api-1', 'acme_api-2']);
    assert.ok(Date.now() - startedAt >= 900, 'the scan waited for the reset');
    assert.ok(fake.requests.some((request) => request.status === 403));
    await fake.close();
  });

  it('gives up a wait longer than maxRateLimitWaitMs with a coded error, and the next scan recovers', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    fake.createIssue('acme/api', { title: 'One', labels: ['factory'] });
    const { source } = createSourceOverFake(fake, ['acme/api'], { client: { maxRateLimitWaitMs: 5_000 } });
    fake.exhaustPrimaryLimit(3_600_000);

    await assert.rejects(source.scan(), (error) => isFactoryError(error, 'FACTORY_GITHUB_REQUEST_FAILED') && /403/.test(error.message));
    fake.advanceTime(3_601_000);
    assert.deepEqual(await keysOf(source), ['acme_api-1']);
    await fake.close();
  });

  it('retries a 5xx burst with backoff', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    fake.createIssue('acme/api', { title: 'One', labels: ['factory'] });
    const { source } = createSourceOverFake(fake, ['acme/api']);

    fake.failNext(3, 502);
    assert.deepEqual(await keysOf(source), ['acme_api-1']);
    assert.deepEqual(
      fake.requests.slice(0, 4).map((request) => request.status),
      [502, 502, 502, 200],
    );
    await fake.close();
  });

  it('never lets the token reach a log line or an error, whatever fails', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    const log = new CapturingLog();
    const client = createGitHubClient(fastClientOptions(fake, { log, maxRetries: 1 }));
    const repoClient = new GitHubRepoClient(client);
    const errors: unknown[] = [];
    const collect = (promise: Promise<unknown>): Promise<void> =>
      promise.then(
        () => assert.fail('expected a failure'),
        (error: unknown) => void errors.push(error),
      );

    fake.failNext(5, 500);
    await collect(repoClient.listOpenIssues(repoRef('acme/api')));
    await collect(repoClient.getIssue(repoRef('acme/gone'), 1).then((found) => (found === undefined ? Promise.reject(new Error('404 is undefined')) : found)));
    await collect(repoClient.addIssueLabels(repoRef('acme/api'), 99, ['x']));
    const badToken = new GitHubRepoClient(createGitHubClient(fastClientOptions(fake, { credentials: { kind: 'token', token: 'ghp_WRONGtoken0123456789abcdefSECRET' }, log })));
    await collect(badToken.listOpenIssues(repoRef('acme/api')));
    const slow = new GitHubRepoClient(createGitHubClient(fastClientOptions(fake, { requestTimeoutMs: 200, maxRetries: 1, log })));
    fake.stallNext(2, 1_000);
    const stalledAt = Date.now();
    await collect(slow.listOpenIssues(repoRef('acme/api')));
    assert.ok(Date.now() - stalledAt < 900, 'each attempt is cut off by the request timeout');
    assert.ok(isFactoryError(errors.at(-1), 'FACTORY_GITHUB_REQUEST_FAILED'));

    assert.equal(errors.length, 5);
    assert.ok(
      errors.some((error) => isFactoryError(error, 'FACTORY_GITHUB_AUTH_FAILED')),
      'a 401 is an auth error',
    );
    assert.ok(errors.some((error) => isFactoryError(error, 'FACTORY_GITHUB_REQUEST_FAILED') && error.details.status === 500));
    const everything = [...errors.map((error) => `${String(error)}\n${inspect(error, { depth: 10 })}\n${JSON.stringify(error)}`), ...log.lines].join('\n');
    assert.ok(!everything.includes(TEST_TOKEN), 'the token leaked');
    assert.ok(!everything.includes('ghp_WRONGtoken0123456789abcdefSECRET'), 'the wrong token leaked');
    assert.ok(!everything.includes('SECRET'));
    assert.ok(
      fake.requests.some((request) => request.token === TEST_TOKEN),
      'the token was sent to GitHub itself',
    );
    await fake.close();
  });

  it('reads a token from the env or a file and names the variable, never the value, when it is missing', () => {
    assert.deepEqual(resolveGitHubCredentials({ kind: 'token', tokenEnv: 'GH_T' }, { GH_T: ' abc123 \n' }), { kind: 'token', token: 'abc123' });
    assert.deepEqual(
      resolveGitHubCredentials({ kind: 'token', tokenFile: '/t' }, {}, () => 'ghp_fromfile\n'),
      { kind: 'token', token: 'ghp_fromfile' },
    );
    assert.throws(
      () => resolveGitHubCredentials({ kind: 'token', tokenEnv: 'GH_T' }, {}),
      (error) => isFactoryError(error, 'FACTORY_GITHUB_AUTH_FAILED') && error.message.includes('GH_T'),
    );
    assert.throws(
      () => resolveGitHubCredentials({ kind: 'token', tokenFile: '/t' }, {}, () => 'two words'),
      (error) => isFactoryError(error, 'FACTORY_GITHUB_AUTH_FAILED') && !error.message.includes('two words'),
    );
  });

  it('authenticates as a GitHub App installation (JWT, then an installation token) via @octokit/auth-app', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const fake = await FakeGitHub.start({ tokens: [], app: { appId: 77, publicKeyPem: publicKey, installationId: 5 } });
    fake.createRepo('acme/api');
    fake.createIssue('acme/api', { title: 'One', labels: ['factory'] });
    const log = new CapturingLog();
    const credentials = resolveGitHubCredentials({ kind: 'app', appId: 77, privateKeyFile: '/key.pem', installationId: 5 }, {}, () => privateKey);
    const { source } = createSourceOverFake(fake, ['acme/api'], { client: { credentials, log } });

    assert.deepEqual(await keysOf(source), ['acme_api-1']);
    const tokenRequest = fake.requests.find((request) => request.route === '/app/installations/{installation_id}/access_tokens');
    assert.equal(tokenRequest?.status, 201);
    const installationToken = fake.requests.find((request) => request.route === '/repos/{owner}/{repo}/issues')?.token;
    assert.match(installationToken ?? '', /^ghs_/);

    fake.failNext(5, 500);
    const error = await source.scan().then(
      () => undefined,
      (caught: unknown) => caught,
    );
    const text = `${inspect(error, { depth: 10 })}\n${log.lines.join('\n')}`;
    assert.ok(!text.includes(installationToken!), 'the installation token leaked');
    assert.ok(!text.includes('PRIVATE KEY'), 'the private key leaked');
    await fake.close();
  });

  it('ignores pull requests, and reports a repository it cannot read as skipped while the others load', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    fake.createRepo('acme/web');
    fake.createIssue('acme/api', { title: 'One', labels: ['factory'] });
    const { source, repoClient } = createSourceOverFake(fake, ['acme/api', 'acme/web']);
    await repoClient.createDraftPull(repoRef('acme/api'), { branch: 'factory/acme_api-1', base: 'main', title: 'PR', body: 'Closes acme/api#1' });
    fake.denyRepo('acme/web', 404);

    const { issues, skipped } = await source.scan();
    assert.deepEqual(
      issues.map((issue) => issue.key),
      ['acme_api-1'],
    );
    assert.deepEqual(
      skipped.map((entry) => entry.path),
      ['acme/web'],
    );
    assert.match(skipped[0]!.reason, /404/);
    await assert.rejects(source.read('acme/api#2'), (error) => isFactoryError(error, 'FACTORY_ISSUE_NOT_FOUND') && /pull request/.test(error.message));
    await fake.close();
  });

  it('reports polling errors through onError only when they persist', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    const clock = new FakeClock();
    const { source } = createSourceOverFake(fake, ['acme/api'], { clock, client: { maxRetries: 0 }, source: { pollIntervalMs: 1_000, pollFailureLimit: 3 } });
    const recorder = new EventRecorder();
    await source.subscribe(recorder.handlers);
    const pollsAfter = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const before = fake.requests.length;
        await clock.advance(1_000);
        await waitFor('a poll', () => fake.requests.length > before);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };

    fake.failNext(2, 503);
    await pollsAfter(3);
    assert.deepEqual(recorder.errors, [], 'two failed polls followed by a good one are not an error');
    fake.failNext(3, 503);
    await pollsAfter(3);
    await waitFor('the persistent failure reported', () => recorder.errors.length === 1);
    assert.ok(isFactoryError(recorder.errors[0], 'FACTORY_SUBSCRIPTION_FAILED'));
    await fake.close();
  });
});

describe('GitHub writeback', () => {
  it('moves the label lifecycle one stage at a time, verified by reading back', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    const number = fake.createIssue('acme/api', { title: 'One', labels: ['factory', 'bug'] });
    const { writeback } = createSourceOverFake(fake, ['acme/api']);
    const repo = repoRef('acme/api');

    await writeback.setStage(repo, number, 'queued');
    assert.deepEqual(fake.issue('acme/api', number).labels, ['factory', 'bug', 'factory:queued']);
    await writeback.setStage(repo, number, 'working');
    assert.deepEqual(fake.issue('acme/api', number).labels, ['factory', 'bug', 'factory:working']);
    await writeback.setStage(repo, number, 'done');
    assert.deepEqual(fake.issue('acme/api', number).labels, ['factory', 'bug', 'factory:done']);
    assert.ok(
      fake.requests.some((request) => request.method === 'GET' && request.route === '/repos/{owner}/{repo}/issues/{issue_number}/labels'),
      'labels are read back',
    );
    await fake.close();
  });

  it('keeps one status comment per issue across retries, a lost response and a restart', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    const number = fake.createIssue('acme/api', { title: 'Add login', labels: ['factory'] });
    const first = createSourceOverFake(fake, ['acme/api']);
    const issue = await first.source.read('acme_api-1');
    const statusComments = (): { id: number; body: string }[] => fake.comments('acme/api', number).filter((comment) => isStatusComment(comment.body));

    // The first create lands but its answer is lost: the writeback must find it rather than post another.
    fake.failAfterApplying(1, 502, (method, route) => method === 'POST' && route === '/repos/{owner}/{repo}/issues/{issue_number}/comments');
    await first.source.writeBack(issue, makeOutcome(issue, { reason: 'failed', detail: 'implementer exited 3', attempt: 1 }));
    assert.equal(statusComments().length, 1);
    await first.source.writeBack(issue, makeOutcome(issue, { reason: 'failed', detail: 'implementer exited 4', attempt: 2 }));
    assert.equal(statusComments().length, 1);

    // A restart: a new source instance, with no memory of the comment id.
    const restarted = createSourceOverFake(fake, ['acme/api']);
    await restarted.source.writeBack(issue, makeOutcome(issue, { reason: 'succeeded', detail: 'done', attempt: 3 }));

    const comments = statusComments();
    assert.equal(comments.length, 1, 'exactly one status comment');
    assert.match(comments[0]!.body, /succeeded/);
    assert.match(comments[0]!.body, /\| Attempt \| 3 \|/);
    assert.doesNotMatch(comments[0]!.body, /\/tmp\//, 'host paths stay out of a public comment');
    assert.deepEqual(fake.issue('acme/api', number).labels, ['factory', 'factory:done']);
    await fake.close();
  });

  it('folds duplicate status comments (two daemons raced) into the oldest', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    const number = fake.createIssue('acme/api', { title: 'Add login', labels: ['factory'] });
    const client = new GitHubRepoClient(createGitHubClient(fastClientOptions(fake)));
    const repo = repoRef('acme/api');
    const oldest = await client.createIssueComment(repo, number, '<!-- factory:status -->\nfirst');
    await client.createIssueComment(repo, number, 'a human comment');
    await client.createIssueComment(repo, number, '<!-- factory:status -->\nsecond');

    const id = await new GitHubIssueWriteback(client, tokenIdentity(client)).upsertStatusComment(repo, number, 'latest');
    assert.equal(id, oldest);
    assert.deepEqual(
      fake.comments('acme/api', number).map((comment) => comment.body),
      ['<!-- factory:status -->\nlatest', 'a human comment'],
    );
    await fake.close();
  });

  it('offers publishing and the shepherd the calls they will need: find-before-create pulls, checks, statuses, reviews', async () => {
    const fake = await startFakeGitHub();
    fake.createRepo('acme/api');
    const client = new GitHubRepoClient(createGitHubClient(fastClientOptions(fake)));
    const repo = repoRef('acme/api');

    assert.equal(await client.findOpenPullByHead(repo, 'factory/acme_api-1'), undefined);
    const opened = await client.createDraftPull(repo, { branch: 'factory/acme_api-1', base: 'main', title: 'Add login', body: 'Closes acme/api#1' });
    const found = await client.findOpenPullByHead(repo, 'factory/acme_api-1');
    assert.deepEqual(found, opened);
    assert.equal(found?.draft, true);
    await assert.rejects(
      client.createDraftPull(repo, { branch: 'factory/acme_api-1', base: 'main', title: 'again', body: '' }),
      (error) => isFactoryError(error, 'FACTORY_GITHUB_REQUEST_FAILED') && error.details.status === 422,
      'GitHub refuses a second open pull request for one branch',
    );
    await client.updatePull(repo, opened.number, { body: 'Closes acme/api#1\n\nUpdated' });
    assert.equal(fake.pulls('acme/api')[0]?.body, 'Closes acme/api#1\n\nUpdated');

    fake.addCheckRun('acme/api', { headSha: opened.headSha, name: 'test', status: 'completed', conclusion: 'failure', summary: '2 failed', text: null });
    fake.addStatus('acme/api', { sha: opened.headSha, context: 'lint', state: 'success', description: 'ok', targetUrl: null });
    fake.addReview('acme/api', { pullNumber: opened.number, body: 'Rename the helper', state: 'CHANGES_REQUESTED', commitId: opened.headSha });
    assert.deepEqual(await client.listCheckRuns(repo, opened.headSha), [{ name: 'test', status: 'completed', conclusion: 'failure', summary: '2 failed', text: null }]);
    assert.deepEqual(await client.getCombinedStatus(repo, opened.headSha), { state: 'success', contexts: [{ context: 'lint', state: 'success', description: 'ok' }] });
    assert.deepEqual(
      (await client.listReviews(repo, opened.number)).map(({ state, body, commitId, author }) => ({ state, body, commitId, author })),
      [{ state: 'CHANGES_REQUESTED', body: 'Rename the helper', commitId: opened.headSha, author: 'octo-human' }],
    );
    await fake.close();
  });
});
