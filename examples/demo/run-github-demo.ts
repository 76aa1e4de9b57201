import { execFileSync } from 'node:child_process';
import { createGitHubProject, REPO_SLUG, WEBHOOK_SECRET } from '../../test/support/fake-github/github-project.js';
import { waitFor } from '../../test/support/sandbox.js';

/**
 * `npm run demo:github`: the demo story against a fake GitHub on 127.0.0.1
 * (no account, no network). A person labels an issue `factory`; the real
 * daemon takes it, its team commits, Factory pushes the branch to a real bare
 * repository and opens a draft pull request; CI fails once, the shepherd sends
 * the implementer back, the next push is green.
 *
 * Its scratch folder (the repositories, the config, the daemon's state) is
 * removed at the end and on Ctrl-C; FACTORY_DEMO_KEEP=1 keeps it and says where.
 */

const say = (line: string): void => console.log(line);
const project = await createGitHubProject('demo-github');
let finishing: Promise<void> | undefined;
/** Stops the daemon and the fake, then removes the scratch folder unless asked to keep it. Once, whichever way the demo ends. */
const finish = (): Promise<void> =>
  (finishing ??= (async () => {
    const keepFiles = process.env.FACTORY_DEMO_KEEP === '1';
    await project.close({ keepFiles });
    if (keepFiles) say(`\nThe demo's files are kept in ${project.dir} (FACTORY_DEMO_KEEP=1); remove the folder when done.`);
  })());
process.once('SIGINT', () => {
  void finish().finally(() => process.exit(130));
});
try {
  say(`fake GitHub on ${project.fake.url}; ${REPO_SLUG}'s git side is ${project.remote}`);
  const number = project.fake.createIssue(REPO_SLUG, { title: 'Greet the user by name', body: 'The greeting should say "Hello, <name>!".', labels: ['enhancement'] });
  say(`\n1. A person opens ${REPO_SLUG}#${number}, not yet for Factory.`);
  const daemon = project.start();
  const url = await project.httpUrl();
  say(`2. factory start is running (dashboard and API on ${url}).`);
  project.fake.updateIssue(REPO_SLUG, number, { labels: ['enhancement', 'factory'] });
  const delivery = await project.fake.deliverWebhook(`${url}/webhooks/github`, WEBHOOK_SECRET, 'issues', project.fake.issuesEventPayload(REPO_SLUG, number, 'labeled'));
  say(`3. They add the "factory" label; GitHub's signed webhook delivery is answered ${delivery.status}, and intake wakes at once.`);
  const pull = await waitFor('the pull request', () => project.fake.pulls(REPO_SLUG)[0], 60_000);
  say(`4. The team committed; Factory pushed ${pull.head} (${pull.headSha.slice(0, 7)}) and opened draft pull request #${pull.number}:`);
  say(`   ${(pull.body ?? '').split('\n').slice(0, 3).join('\n   ')}`);
  await waitFor(
    'pr-open alone',
    () =>
      project.fake
        .issue(REPO_SLUG, number)
        .labels.filter((label) => label.startsWith('factory:'))
        .join() === 'factory:pr-open',
  );
  say(`5. The issue's labels: ${project.fake.issue(REPO_SLUG, number).labels.join(', ')}`);
  project.fake.addCheckRun(REPO_SLUG, {
    headSha: pull.headSha,
    name: 'test',
    status: 'completed',
    conclusion: 'failure',
    summary: '1 failed',
    text: 'FAIL src/greet.test.ts\n  Error: expected "Hello, Ada!" got "Hello Ada"',
  });
  say(`6. CI fails on ${pull.headSha.slice(0, 7)} (check "test"). The shepherd sends the implementer back with the log excerpt...`);
  const fixed = await waitFor(
    'the fix push',
    () => {
      const head = project.fake.pulls(REPO_SLUG)[0]!.headSha;
      return head !== pull.headSha && head;
    },
    60_000,
  );
  say(`7. ...which commits again; Factory pushed ${fixed.slice(0, 7)}:`);
  say(
    `   ${execFileSync('git', ['--git-dir', project.remote, 'log', '--format=%h %s', `refs/heads/${pull.head}`], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .join('\n   ')}`,
  );
  project.fake.addCheckRun(REPO_SLUG, { headSha: fixed, name: 'test', status: 'completed', conclusion: 'success', summary: 'all passed', text: null });
  await waitFor('green', () => project.fake.comments(REPO_SLUG, number).some((comment) => comment.body.includes(`green on ${fixed.slice(0, 7)}`)), 30_000);
  const comment = project.fake.comments(REPO_SLUG, number).find((entry) => entry.body.startsWith('<!-- factory:status -->'))!;
  say(`8. CI is green on the new head. The issue's one status comment now reads:\n`);
  say(
    comment.body
      .replace(/<!--[\s\S]*?-->/g, '')
      .replace(/\n{3,}/g, '\n\n')
      .trim()
      .replace(/^/gm, '   | '),
  );
  const api = (await (await fetch(`${url}/api/v1/pull-requests`)).json()) as { pullRequests: { pullUrl: string; verdict: string; rounds: unknown[] }[] };
  say(`\n9. GET /api/v1/pull-requests: ${api.pullRequests.map((entry) => `${entry.pullUrl}: ${entry.verdict}, ${entry.rounds.length} round(s)`).join('; ')}`);
  say(
    `\nGitHub was asked ${project.fake.requests.length} requests (${project.fake.countedRequests} counted against the rate limit). The daemon's log: ${daemon.stderr().split('\n').length} lines, no token in them: ${!daemon.stderr().includes('ghp_')}`,
  );
} finally {
  await finish();
}
