import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createScratchRepo, filesContaining, git, waitFor } from '../support/sandbox.js';
import { startGitHttpServer, type GitHttpServer } from '../support/git-http-server.js';
import { AGENT, finishedRuns, useFleetPerTest, type TestFleet } from '../fixtures/fleet/harness.js';

/**
 * Real `factory worker` processes whose config's source is GitHub (this test
 * git server stands in for it, `apiUrl` naming it) clone, fetch and push the
 * routed repo with the token from their own environment, for one git command
 * at a time: the branch reaches the server, and the token is in no file, log,
 * outcome or agent environment. A worker without the token refuses to start;
 * one with a wrong token fails its run with an error that says what to fix.
 */

// Registered before the fleet's hooks, so the server closes after the fleet stopped using it.
const servers: GitHttpServer[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'factory-fleet-credential-'));
after(async () => {
  for (const server of servers) await server.close();
  rmSync(scratch, { recursive: true, force: true });
});
const fleets = useFleetPerTest();

// Not shaped like a GitHub token: only redaction by value can scrub it.
const TOKEN = `fleet-test-${randomBytes(12).toString('hex')}`;
const WRONG = `fleet-wrong-${randomBytes(12).toString('hex')}`;

/** A bare repo served over smart HTTP behind TOKEN, a fleet routed to it, workers whose config's GitHub is that server with the token in WORKER_GH_TOKEN. */
async function fleetOnServedRepo(name: string) {
  const root = join(scratch, name);
  createScratchRepo(join(root, 'source'));
  mkdirSync(join(root, 'served'));
  execFileSync('git', ['clone', '--quiet', '--bare', join(root, 'source'), join(root, 'served', 'api.git')]);
  const server = await startGitHttpServer({ projectRoot: join(root, 'served'), token: TOKEN });
  servers.push(server);
  const envOut = join(root, 'agent-env');
  mkdirSync(envOut);
  const f = await fleets.start({
    agentWorkMs: 300,
    repoUrl: server.repoUrl('api.git'),
    extraConfig: { agents: { implementer: { command: ['node', AGENT, '300'], env: { FLEET_ENV_OUT: envOut } } } },
    workerConfig: { source: { kind: 'github', github: { repos: ['acme/api'], apiUrl: `${server.origin}/api/v3`, tokenEnv: 'WORKER_GH_TOKEN' } } },
  });
  return { f, server, served: join(root, 'served', 'api.git'), envOut };
}

function everythingLogged(f: TestFleet): string {
  return [f.controlPlane.stderr(), ...[...f.workers.values()].map((w) => w.stderr())].join('\n');
}

test("a worker clones and pushes with its config's GitHub token, which lands in no file, log or agent", { timeout: 90_000 }, async () => {
  const { f, server, served, envOut } = await fleetOnServedRepo('good');
  const w1 = await f.startWorker('w1', { env: { WORKER_GH_TOKEN: TOKEN } });
  f.project.writeIssue('CRED-1');
  const finished = await waitFor('the run to finish', () => finishedRuns(f.controlPlane)[0], 45_000);
  assert.equal(finished.reason, 'succeeded', everythingLogged(f).slice(-2_000));
  const branch = git(served, 'for-each-ref', '--format=%(refname:short)', 'refs/heads')
    .split('\n')
    .find((b) => b.includes('CRED-1'));
  assert.ok(branch, 'the run branch is on the server');
  assert.equal(git(served, 'log', '-1', '--format=%s', `refs/heads/${branch}`).trim(), `work of ${finished.run}`);
  assert.ok(
    server.requests.some((r) => r.auth === 'ok' && r.url.includes('git-receive-pack')),
    'the push carried the token',
  );

  assert.deepEqual(filesContaining(w1.dir, TOKEN), [], "no file of the worker (its clone's .git/config, worktrees, run logs, registry) holds the token");
  assert.deepEqual(filesContaining(envOut, TOKEN), [], "the agent's environment does not hold it");
  assert.ok(!everythingLogged(f).includes(TOKEN), 'no log line holds it');
  const clone = join(w1.dir, 'repos', readdirSync(join(w1.dir, 'repos'))[0]!);
  assert.equal(git(clone, 'remote', 'get-url', 'origin').trim(), server.repoUrl('api.git'));
});

test('a worker without its token refuses to start; one with a wrong token fails the run at once, saying what to fix, with no secret', { timeout: 90_000 }, async () => {
  const { f } = await fleetOnServedRepo('bad');
  const startedAt = performance.now();
  await assert.rejects(f.startWorker('w-missing'), /FACTORY_GITHUB_AUTH_FAILED/);
  const missing = f.workers.get('w-missing')!;
  assert.equal((await missing.exited).code, 2);
  assert.match(missing.stderr(), /the environment variable WORKER_GH_TOKEN holding the GitHub token is not set or empty/);
  assert.match(missing.stderr(), /Export WORKER_GH_TOKEN/);

  await f.startWorker('w-wrong', { env: { WORKER_GH_TOKEN: WRONG } });
  f.project.writeIssue('CRED-2');
  const finished = await waitFor('the run to end', () => finishedRuns(f.controlPlane)[0], 45_000);
  assert.notEqual(finished.reason, 'succeeded');
  const logged = everythingLogged(f);
  const outcome = f.controlPlane
    .stderr()
    .split('\n')
    .find((line) => line.includes('"team finished') && line.includes(finished.run));
  assert.match(
    outcome ?? '',
    /team finished: could not prepare the worktree: git could not clone \(http:\/\/127\.0\.0\.1:\d+\/api\.git\): .*Authentication failed.*check that the GitHub token in WORKER_GH_TOKEN is valid/,
  );
  assert.match(outcome ?? '', /bad credentials: \[REDACTED\]/, 'the token the server echoed is scrubbed from the outcome');
  assert.ok(performance.now() - startedAt < 60_000, 'no git prompt held the run');
  assert.ok(!logged.includes(WRONG), 'the wrong token (which the server echoed) is in no log line');
});
