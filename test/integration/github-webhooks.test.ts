import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { it } from 'node:test';
import { formatRepoSlug, type GitHubRepoRef } from '../../src/domain/github-issue.js';
import { GitHubWebhookReceiver } from '../../src/http/github-webhooks.js';
import type { LogFields, Logger } from '../../src/ports/logger.js';
import { repoRef, startFakeGitHub } from '../support/fake-github/github-source-harness.js';

/**
 * `/webhooks/github` after the signature: a signed delivery is still read
 * only for the fields Factory uses. Malformed is 400, another repository is
 * 202 and ignored, and neither wakes anything or puts the payload in a log.
 */

const SECRET = 'whsec-test-0123456789';
/** Text only the payloads carry: a log line that quotes a payload shows it. */
const PAYLOAD_TEXT = 'PAYLOAD-BODY-TEXT';

function recordingLogger(lines: { level: string; fields: LogFields; message: string }[]): Logger {
  const at =
    (level: string) =>
    (fields: LogFields, message = ''): void =>
      void lines.push({ level, fields, message });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}

it('signed deliveries that are malformed or about another repository are skipped with a 4xx or a 202, never acted on or logged with their payload', async () => {
  const fake = await startFakeGitHub();
  fake.createRepo('acme/api');
  fake.createRepo('acme/other');
  const number = fake.createIssue('acme/api', { title: PAYLOAD_TEXT, body: PAYLOAD_TEXT, labels: ['factory'] });
  fake.createIssue('acme/other', { title: PAYLOAD_TEXT, labels: ['factory'] });
  const woken: string[] = [];
  const lines: { level: string; fields: LogFields; message: string }[] = [];
  const receiver = new GitHubWebhookReceiver(
    SECRET,
    [repoRef('acme/api')],
    { wakeIntake: (repo: GitHubRepoRef | undefined) => woken.push(`intake ${repo === undefined ? 'all' : formatRepoSlug(repo)}`), wakeShepherd: () => woken.push('shepherd') },
    recordingLogger(lines),
  );
  const server = createServer((request, response) => void receiver.handle(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/github`;
  const deliver = async (event: string, payload: unknown): Promise<{ status: number; woken: string[] }> => {
    woken.length = 0;
    const { status } = await fake.deliverWebhook(target, SECRET, event, payload);
    return { status, woken: [...woken] };
  };
  try {
    const good = fake.issuesEventPayload('acme/api', number, 'labeled');
    const { repository: _repository, ...withoutRepository } = good;
    const cases: [string, string, unknown, number, string[]][] = [
      ['a well-formed delivery for a configured repository', 'issues', good, 202, ['intake acme/api']],
      ['issue.number a string', 'issues', { ...good, issue: { ...(good.issue as object), number: String(number) } }, 400, []],
      ['no issue at all', 'issue_comment', { ...good, issue: null }, 400, []],
      ['no repository', 'issues', withoutRepository, 400, []],
      ['repository.full_name not owner/name', 'issues', { ...good, repository: { full_name: `${PAYLOAD_TEXT}/../x` } }, 400, []],
      ['a JSON array', 'issues', [good], 400, []],
      ['JSON null', 'label', null, 400, []],
      ['pull_request.number missing', 'pull_request', { ...good, pull_request: { title: PAYLOAD_TEXT } }, 400, []],
      ['a repository not in source.github.repos', 'issues', fake.issuesEventPayload('acme/other', 1, 'labeled'), 202, []],
      ['a check run of a repository not in source.github.repos', 'check_run', { ...fake.issuesEventPayload('acme/other', 1, 'labeled'), issue: undefined }, 202, []],
      ['an event Factory does not use', 'installation', { action: 'created', note: PAYLOAD_TEXT }, 202, []],
    ];
    for (const [what, event, payload, status, wakes] of cases) {
      assert.deepEqual(await deliver(event, payload), { status, woken: wakes }, what);
    }
    woken.length = 0;
    assert.equal((await fake.deliverRawWebhook(target, SECRET, 'issues', `{"repository": ${PAYLOAD_TEXT}`)).status, 400, 'a body that is not JSON');
    assert.deepEqual(woken, []);
    assert.deepEqual(receiver.counts, { accepted: 1, refused: 8, ignored: 3 });

    const refusals = lines.filter((line) => line.level === 'warn');
    assert.equal(refusals.length, 8, 'each malformed delivery is logged');
    assert.ok(refusals.every((line) => typeof line.fields.delivery === 'string' && typeof line.fields.reason === 'string'));
    assert.ok(
      lines.some((line) => line.fields.repo === 'acme/other'),
      'the ignored repository is named',
    );
    assert.ok(!JSON.stringify(lines).includes(PAYLOAD_TEXT), 'no log line quotes a payload');
  } finally {
    server.close();
    await fake.close();
  }
});

it('the event and delivery headers, which the signature does not cover, are logged only when shaped like GitHub sends them', async () => {
  const fake = await startFakeGitHub();
  fake.createRepo('acme/api');
  const number = fake.createIssue('acme/api', { title: 'x', labels: ['factory'] });
  const lines: { level: string; fields: LogFields; message: string }[] = [];
  const receiver = new GitHubWebhookReceiver(SECRET, [repoRef('acme/api')], { wakeIntake: () => undefined, wakeShepherd: () => undefined }, recordingLogger(lines));
  const server = createServer((request, response) => void receiver.handle(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/github`;
  const body = JSON.stringify(fake.issuesEventPayload('acme/api', number, 'labeled'));
  const HOSTILE = 'HOSTILE-HEADER';
  try {
    const cases: [string, string, string, { event: string; delivery: string }][] = [
      ['GitHub-shaped headers are logged as sent', 'issues', '72d3162e-cc78-11e3-81ab-4c9367dc0958', { event: 'issues', delivery: '72d3162e-cc78-11e3-81ab-4c9367dc0958' }],
      ['an event with other characters', `issues ${HOSTILE} level=error`, '72d3162e-cc78-11e3-81ab-4c9367dc0958', { event: '<malformed>', delivery: '72d3162e-cc78-11e3-81ab-4c9367dc0958' }],
      ['an event too long', 'a'.repeat(65), '72d3162e', { event: '<malformed>', delivery: '72d3162e' }],
      ['a delivery that is not a GUID', 'issues', `${HOSTILE}<script>`, { event: 'issues', delivery: '<malformed>' }],
      ['a delivery too long', 'issues', 'f'.repeat(65), { event: 'issues', delivery: '<malformed>' }],
    ];
    for (const [what, event, delivery, logged] of cases) {
      lines.length = 0;
      await fake.deliverRawWebhook(target, SECRET, event, body, delivery);
      await fake.deliverRawWebhook(target, 'not-the-secret', event, body, delivery);
      assert.equal(lines.length, 2, `${what}: the delivery and the refused one are logged`);
      for (const line of lines) assert.deepEqual({ event: line.fields.event, delivery: line.fields.delivery }, logged, `${what} (${line.message})`);
      assert.ok(!JSON.stringify(lines).includes(HOSTILE), `${what}: the header's value is not logged`);
      assert.ok(!JSON.stringify(lines).includes('a'.repeat(65)) && !JSON.stringify(lines).includes('f'.repeat(65)), `${what}: an overlong value is not logged`);
    }
  } finally {
    server.close();
    await fake.close();
  }
});
