import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { Webhooks } from '@octokit/webhooks';
import { FakeGitHub } from '../support/fake-github/fake-github.js';
import { OpenApiViolation } from '../support/fake-github/openapi-validator.js';

/** The fake GitHub is only worth its tests if it answers like GitHub: these check the fake itself. */

const auth = { authorization: 'token fake-token' };

describe('fake GitHub', () => {
  it("rejects a response that breaks GitHub's OpenAPI description, and close() fails the test", async () => {
    const fake = await FakeGitHub.start();
    fake.createRepo('acme/api');
    const number = fake.createIssue('acme/api', { title: 'Add login' });

    const good = await fetch(`${fake.url}/repos/acme/api/issues/${number}`, { headers: auth });
    assert.equal(good.status, 200);
    fake.corruptNextResponse((body) => {
      const issue = body as Record<string, unknown>;
      delete issue.number;
      issue.state = 'opened';
      return issue;
    });
    const broken = await fetch(`${fake.url}/repos/acme/api/issues/${number}`, { headers: auth });

    assert.equal(broken.status, 500);
    assert.match(((await broken.json()) as { message: string }).message, /OpenAPI description does not allow/);
    assert.equal(fake.violations.length, 1);
    assert.match(fake.violations[0]!.message, /issues\/get/);
    await assert.rejects(fake.close(), OpenApiViolation);
  });

  it('sends rate-limit headers on every response, and a 304 for a matching ETag that does not count', async () => {
    const fake = await FakeGitHub.start({ rateLimit: 100 });
    fake.createRepo('acme/api');
    fake.createIssue('acme/api', { title: 'Add login', labels: ['factory'] });

    const first = await fetch(`${fake.url}/repos/acme/api/issues`, { headers: auth });
    const etag = first.headers.get('etag');
    assert.ok(etag);
    for (const header of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-ratelimit-used', 'x-ratelimit-resource']) {
      assert.ok(first.headers.get(header), `missing ${header}`);
    }
    assert.equal(first.headers.get('x-ratelimit-remaining'), '99');

    const second = await fetch(`${fake.url}/repos/acme/api/issues`, { headers: { ...auth, 'if-none-match': etag } });
    assert.equal(second.status, 304);
    assert.equal(second.headers.get('x-ratelimit-remaining'), '99', 'a 304 is free');

    fake.updateIssue('acme/api', 1, { title: 'Add login page' });
    const third = await fetch(`${fake.url}/repos/acme/api/issues`, { headers: { ...auth, 'if-none-match': etag } });
    assert.equal(third.status, 200, 'a change breaks the ETag');
    assert.equal(fake.countedRequests, 2);
    await fake.close();
  });

  it('injects secondary limits (403 + retry-after), 5xx bursts and primary exhaustion, and refuses bad tokens', async () => {
    const fake = await FakeGitHub.start();
    fake.createRepo('acme/api');
    const url = `${fake.url}/repos/acme/api/issues`;

    fake.secondaryRateLimitNext(1, 7);
    const secondary = await fetch(url, { headers: auth });
    assert.equal(secondary.status, 403);
    assert.equal(secondary.headers.get('retry-after'), '7');
    assert.match(((await secondary.json()) as { message: string }).message, /secondary rate limit/);

    fake.failNext(2, 502);
    assert.deepEqual([(await fetch(url, { headers: auth })).status, (await fetch(url, { headers: auth })).status, (await fetch(url, { headers: auth })).status], [502, 502, 200]);

    fake.exhaustPrimaryLimit(60_000);
    const exhausted = await fetch(url, { headers: auth });
    assert.equal(exhausted.status, 403);
    assert.equal(exhausted.headers.get('x-ratelimit-remaining'), '0');
    assert.ok(Number(exhausted.headers.get('x-ratelimit-reset')) * 1000 > Date.now());

    assert.equal((await fetch(url, { headers: { authorization: 'token wrong' } })).status, 401);
    await fake.close();
  });

  it('lists pull requests among issues, as GitHub does, with a pull_request marker', async () => {
    const fake = await FakeGitHub.start();
    fake.createRepo('acme/api');
    fake.createIssue('acme/api', { title: 'An issue' });
    const created = await fetch(`${fake.url}/repos/acme/api/pulls`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'A PR', head: 'factory/x', base: 'main', draft: true }),
    });
    assert.equal(created.status, 201);

    const issues = (await (await fetch(`${fake.url}/repos/acme/api/issues`, { headers: auth })).json()) as { number: number; pull_request?: unknown }[];
    assert.deepEqual(
      issues.map((issue) => [issue.number, issue.pull_request !== undefined]),
      [
        [2, true],
        [1, false],
      ],
    );
    await fake.close();
  });

  it('signs webhook deliveries as GitHub does (X-Hub-Signature-256 over the raw body)', async () => {
    const fake = await FakeGitHub.start();
    fake.createRepo('acme/api');
    fake.createIssue('acme/api', { title: 'Add login', labels: ['factory'] });
    const received: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const target = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/github`;
      const { status, deliveryId } = await fake.deliverWebhook(target, 'hook-secret', 'issues', fake.issuesEventPayload('acme/api', 1, 'labeled'));

      assert.equal(status, 202);
      const [delivery] = received;
      assert.ok(delivery);
      assert.equal(delivery.headers['x-github-event'], 'issues');
      assert.equal(delivery.headers['x-github-delivery'], deliveryId);
      const signature = delivery.headers['x-hub-signature-256'] as string;
      assert.equal(await new Webhooks({ secret: 'hook-secret' }).verify(delivery.body, signature), true);
      assert.equal(await new Webhooks({ secret: 'other-secret' }).verify(delivery.body, signature), false);
      assert.equal((JSON.parse(delivery.body) as { issue: { number: number } }).issue.number, 1);
    } finally {
      receiver.close();
      await fake.close();
    }
  });
});
