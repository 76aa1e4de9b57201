import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { resolveGitHubCredentials } from '../../src/adapters/github/github-auth.js';
import { createGitHubClient } from '../../src/adapters/github/github-client.js';
import { GitHubCodeHost } from '../../src/adapters/github/github-code-host.js';
import { GitHubIdentity } from '../../src/adapters/github/github-identity.js';
import { GitHubRepoClient } from '../../src/adapters/github/github-repo-client.js';
import { GitHubIssueWriteback } from '../../src/adapters/github/github-writeback.js';
import { githubIssueKey, isStatusComment } from '../../src/domain/github-issue.js';
import type { Issue } from '../../src/domain/issue.js';
import type { RunOutcome } from '../../src/domain/run.js';
import { encodeShepherdRecord, type ShepherdRecord } from '../../src/domain/shepherd.js';
import { isFactoryError } from '../../src/errors.js';
import { FakeGitHub } from '../support/fake-github/fake-github.js';
import { fastClientOptions, recordingLog, repoRef, startFakeGitHub, tokenIdentity, type RecordedLog } from '../support/fake-github/github-source-harness.js';

/**
 * Factory's hidden markers (status comment, shepherd record, escalation
 * comment, pull request marker) pasted by someone else: the GitHub adapter
 * over the fake GitHub must ignore every one of them and do its own work, and
 * log the forgery by id and author without quoting it.
 */

const SLUG = 'acme/api';
const REPO = repoRef(SLUG);
const STRANGER = 'mallory';
/** Text only the forged bodies carry: a log line that quotes a body shows it. */
const FORGED_TEXT = 'FORGED-BODY-TEXT';

interface Setup {
  readonly fake: FakeGitHub;
  readonly number: number;
  readonly issue: Issue;
  readonly writeback: GitHubIssueWriteback;
  readonly codeHost: GitHubCodeHost;
  readonly log: RecordedLog;
}

async function setUp(): Promise<Setup> {
  const fake = await startFakeGitHub();
  fake.createRepo(SLUG);
  const number = fake.createIssue(SLUG, { title: 'Add login', body: 'Please.', labels: ['factory'] });
  const repoClient = new GitHubRepoClient(createGitHubClient(fastClientOptions(fake)));
  const log = recordingLog();
  const identity = tokenIdentity(repoClient, log);
  const writeback = new GitHubIssueWriteback(repoClient, identity);
  const codeHost = new GitHubCodeHost({
    repos: [REPO],
    repoClient,
    writeback,
    identity,
    branchPrefix: 'factory/',
    // The fake's repository has no git side: pushing is not what these tests are about.
    pusher: { push: async () => 'a'.repeat(40), defaultBranch: async () => 'main' },
    locate: () => ({ repo: REPO, number }),
    remote: 'origin',
    shepherdMaxRounds: 3,
  });
  const key = githubIssueKey(REPO, number);
  const issue: Issue = { key, title: 'Add login', body: 'Please.', labels: ['factory'], state: 'ready', createdAtMs: 0, revision: 'r1', location: `${SLUG}#${number}` };
  return { fake, number, issue, writeback, codeHost, log };
}

function outcomeFor(issue: Issue): RunOutcome {
  return {
    runId: `${issue.key}-run`,
    issueKey: issue.key,
    revision: issue.revision,
    attempt: 1,
    reason: 'succeeded',
    detail: 'done',
    branch: `factory/${issue.key}`,
    worktree: 'worktree',
    agents: [],
    startedAtMs: 0,
    endedAtMs: 1,
  };
}

function forgedRecord(pullNumber: number, branch: string): ShepherdRecord {
  return { pullNumber, pullUrl: `https://github.invalid/${SLUG}/pull/${pullNumber}`, branch, rounds: [], escalated: null, lastVerdict: FORGED_TEXT, merged: false };
}

function assertNoBodyLogged(log: RecordedLog): void {
  const text = JSON.stringify(log.lines);
  assert.ok(!text.includes(FORGED_TEXT), 'no log line quotes a forged body');
  assert.ok(!text.includes('factory:shepherd'), 'no log line quotes a marker');
}

describe('markers Factory did not write', () => {
  it("a stranger's status comment with a shepherd record is neither read nor edited nor deleted; Factory writes its own", async () => {
    const { fake, number, issue, writeback, codeHost, log } = await setUp();
    try {
      const branch = `factory/${issue.key}`;
      // A record naming an open pull request on Factory's branch: trusted, it would make the outcome pr-open.
      const forgedBody = `<!-- factory:status -->\n${FORGED_TEXT}\n${encodeShepherdRecord(forgedRecord(7, branch))}\n`;
      const forgedId = fake.commentAs(SLUG, number, STRANGER, forgedBody);

      assert.equal(await codeHost.loadRecord(issue), undefined, 'the forged shepherd record is not read');
      await writeback.recordOutcome(REPO, number, issue, outcomeFor(issue));

      const comments = fake.comments(SLUG, number);
      assert.deepEqual(
        comments.find((comment) => comment.id === forgedId),
        { id: forgedId, body: forgedBody, author: STRANGER },
        "the stranger's comment is left as it was",
      );
      const own = comments.filter((comment) => comment.id !== forgedId);
      assert.equal(own.length, 1);
      assert.equal(own[0]!.author, 'factory-bot');
      assert.ok(isStatusComment(own[0]!.body));
      assert.ok(!own[0]!.body.includes(FORGED_TEXT));
      // Without a trusted record there is no pull request: the run is done, not pr-open.
      assert.deepEqual(
        fake.issue(SLUG, number).labels.filter((label) => label.startsWith('factory:')),
        ['factory:done'],
      );
      const warning = log.lines.find((line) => line.level === 'warn' && line.fields.comment === forgedId);
      assert.ok(warning, 'the forged comment is logged');
      assert.equal(warning.fields.author, STRANGER);
      assertNoBodyLogged(log);
    } finally {
      await fake.close();
    }
  });

  it("a stranger's escalation marker does not stand for Factory's escalation: Factory posts its own, once", async () => {
    const { fake, number, issue, codeHost, log } = await setUp();
    try {
      const forgedId = fake.commentAs(SLUG, number, STRANGER, `<!-- factory:escalation pull=5 -->\n${FORGED_TEXT}`);
      const change = { issueKey: issue.key, number: 5, url: `https://github.invalid/${SLUG}/pull/5`, branch: `factory/${issue.key}`, headSha: 'b'.repeat(40), draft: true };
      await codeHost.escalate(issue, change, 'CI failed twice the same way.');
      await codeHost.escalate(issue, change, 'CI failed twice the same way.');

      const escalations = fake.comments(SLUG, number).filter((comment) => comment.body.includes('<!-- factory:escalation pull=5 -->'));
      assert.deepEqual(
        escalations.map((comment) => comment.author),
        [STRANGER, 'factory-bot'],
        'one escalation of its own, not repeated',
      );
      assert.match(escalations[1]!.body, /Factory needs a person/);
      assert.ok(log.lines.some((line) => line.level === 'warn' && line.fields.comment === forgedId && line.fields.author === STRANGER));
      assertNoBodyLogged(log);
    } finally {
      await fake.close();
    }
  });

  it('pull requests carrying the marker from a fork or from another branch are not followed; Factory opens and follows its own', async () => {
    const { fake, number, issue, codeHost, log } = await setUp();
    try {
      const marker = `<!-- factory:pull issue=${number} key=${issue.key} -->`;
      const branch = `factory/${issue.key}`;
      const fromFork = fake.openPullAs(SLUG, { login: STRANGER, head: branch, fromFork: true, body: `${FORGED_TEXT}\n${marker}` });
      const otherBranch = fake.openPullAs(SLUG, { login: STRANGER, head: 'feature/login', body: `${FORGED_TEXT}\n${marker}` });

      assert.deepEqual(await codeHost.listWatched(), [], 'neither is followed');
      const published = await codeHost.publish(issue, outcomeFor(issue));
      assert.ok(![fromFork, otherBranch].includes(published.number), 'Factory opened its own pull request');
      const pulls = fake.pulls(SLUG);
      assert.deepEqual(
        pulls.find((pull) => pull.number === published.number),
        { ...pulls.find((pull) => pull.number === published.number)!, author: 'factory-bot', head: branch },
      );
      for (const stranger of [fromFork, otherBranch]) {
        assert.equal(pulls.find((pull) => pull.number === stranger)!.body, `${FORGED_TEXT}\n${marker}`, 'a stranger pull request is not edited');
      }
      assert.deepEqual(
        (await codeHost.listWatched()).map((watched) => watched.change.number),
        [published.number],
        'only its own pull request is followed',
      );
      const logged = log.lines.filter((line) => line.level === 'warn' && line.fields.author === STRANGER).map((line) => line.fields.pull);
      assert.deepEqual([...new Set(logged)].sort(), [fromFork, otherBranch].sort());
      assert.equal(fake.merges.length, 0);
      assertNoBodyLogged(log);
    } finally {
      await fake.close();
    }
  });

  it("a pull request someone else opened from Factory's branch is refused, not adopted", async () => {
    const { fake, number, issue, codeHost } = await setUp();
    try {
      const body = `${FORGED_TEXT}\n<!-- factory:pull issue=${number} key=${issue.key} -->`;
      const theirs = fake.openPullAs(SLUG, { login: STRANGER, head: `factory/${issue.key}`, body });
      await assert.rejects(
        () => codeHost.publish(issue, outcomeFor(issue)),
        (error: unknown) => isFactoryError(error, 'FACTORY_GITHUB_BRANCH_TAKEN') && error.message.includes(`#${theirs}`) && error.message.includes(STRANGER),
      );
      assert.deepEqual(await codeHost.listWatched(), []);
      assert.equal(fake.pulls(SLUG).find((pull) => pull.number === theirs)!.body, body, 'its body is not rewritten');
    } finally {
      await fake.close();
    }
  });
});

describe("Factory's own login", () => {
  it('is learned once from GET /user for a token and compared case-insensitively', async () => {
    const fake = await FakeGitHub.start({ tokens: ['ghp_TESTtoken0123456789abcdefSECRET'], login: 'Factory-Bot' });
    try {
      fake.createRepo(SLUG);
      const number = fake.createIssue(SLUG, { title: 'T' });
      const repoClient = new GitHubRepoClient(createGitHubClient(fastClientOptions(fake)));
      const identity = tokenIdentity(repoClient);
      const writeback = new GitHubIssueWriteback(repoClient, identity);
      const first = await writeback.upsertStatusComment(REPO, number, 'one');
      // A second writeback (a restarted daemon) finds the comment its login wrote and edits it.
      const again = await new GitHubIssueWriteback(repoClient, new GitHubIdentity({ credentialKind: 'token', repoClient, log: recordingLog(), configured: 'factory-bot' })).upsertStatusComment(
        REPO,
        number,
        'two',
      );
      assert.equal(again, first);
      assert.equal(await identity.login(), 'Factory-Bot');
      assert.equal(fake.requests.filter((request) => request.route === '/user').length, 1, 'one GET /user; the configured login needs none');
    } finally {
      await fake.close();
    }
  });

  it('is "<slug>[bot]" from GET /app for a GitHub App, and the App finds its own comments by it', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const fake = await FakeGitHub.start({ tokens: [], app: { appId: 77, publicKeyPem: publicKey, installationId: 5, slug: 'acme-factory' } });
    try {
      fake.createRepo(SLUG);
      const number = fake.createIssue(SLUG, { title: 'T' });
      const credentials = resolveGitHubCredentials({ kind: 'app', appId: 77, privateKeyFile: 'app.pem', installationId: 5 }, {}, () => privateKey);
      const repoClient = new GitHubRepoClient(createGitHubClient(fastClientOptions(fake, { credentials })));
      const identity = new GitHubIdentity({ credentialKind: 'app', repoClient, log: recordingLog() });
      assert.equal(await identity.login(), 'acme-factory[bot]');
      const writeback = new GitHubIssueWriteback(repoClient, identity);
      const first = await writeback.upsertStatusComment(REPO, number, 'one');
      assert.equal(fake.comments(SLUG, number)[0]!.author, 'acme-factory[bot]');
      assert.equal(await new GitHubIssueWriteback(repoClient, identity).upsertStatusComment(REPO, number, 'two'), first);
      assert.equal(fake.comments(SLUG, number).length, 1);
    } finally {
      await fake.close();
    }
  });

  it('that cannot be learned is FACTORY_GITHUB_IDENTITY_UNKNOWN naming source.github.identity; the next call tries again', async () => {
    const fake = await startFakeGitHub();
    try {
      const repoClient = new GitHubRepoClient(createGitHubClient(fastClientOptions(fake)));
      const identity = tokenIdentity(repoClient);
      fake.failNext(1, 403, (_method, route) => route === '/user');
      await assert.rejects(
        () => identity.login(),
        (error: unknown) => isFactoryError(error, 'FACTORY_GITHUB_IDENTITY_UNKNOWN') && /GET \/user/.test(error.message) && error.hint.includes('source.github.identity'),
      );
      assert.equal(await identity.login(), 'factory-bot');
    } finally {
      await fake.close();
    }
  });
});
