import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createGitHubGitCredential } from '../../src/adapters/github/github-wiring.js';
import { GitWorktreeWorkspace } from '../../src/adapters/workspace/git-worktree-workspace.js';
import { RepoCacheWorkspace } from '../../src/adapters/workspace/repo-cache-workspace.js';
import { sourceSchema } from '../../src/config/source-schema.js';
import { isFactoryError } from '../../src/errors.js';
import { createScratchRepo, filesContaining, git, waitFor } from '../support/sandbox.js';
import { startGitHttpServer, type GitHttpServer } from '../support/git-http-server.js';

/**
 * A fleet worker's clone, fetches and pushes reach a GitHub-hosted repo with
 * the config's token for one git command at a time (as the daemon pushes), on
 * a real git smart-HTTP server that wants that token: nothing lands in the
 * clone, its worktrees or the errors, and a missing or wrong token fails at
 * once instead of waiting on a prompt.
 */

const scratch = mkdtempSync(join(tmpdir(), 'factory-git-credential-'));
// Not shaped like a GitHub token: only redaction by value can scrub it.
const TOKEN = `factory-test-${randomBytes(12).toString('hex')}`;
const WRONG = `factory-wrong-${randomBytes(12).toString('hex')}`;
let server: GitHttpServer;

before(async () => {
  const source = join(scratch, 'source');
  createScratchRepo(source);
  mkdirSync(join(scratch, 'served'));
  execFileSync('git', ['clone', '--quiet', '--bare', source, join(scratch, 'served', 'api.git')]);
  server = await startGitHttpServer({ projectRoot: join(scratch, 'served'), token: TOKEN });
});
after(async () => {
  await server?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** source.github as a worker's config gives it: this server as the GitHub (apiUrl), the token in WORKER_GH_TOKEN. */
function credentialWith(env: Record<string, string>) {
  const github = sourceSchema.parse({ kind: 'github', github: { repos: ['acme/api'], apiUrl: `${server.origin}/api/v3`, tokenEnv: 'WORKER_GH_TOKEN' } }).github!;
  return createGitHubGitCredential({ github, env });
}

function workerWith(name: string, env: Record<string, string>) {
  const root = join(scratch, name);
  return { root, workspace: new RepoCacheWorkspace({ cacheDir: join(root, 'repos'), inner: new GitWorktreeWorkspace({ worktreesRoot: join(root, 'worktrees') }), credential: credentialWith(env) }) };
}

const served = (): string => join(scratch, 'served', 'api.git');

describe("a worker's git commands on a GitHub remote that wants the token", () => {
  it('clones, fetches, pushes the branch and the park ref, and deletes it, with the token in no file, URL or argv', async () => {
    const repo = server.repoUrl('api.git');
    const { root, workspace } = workerWith('good', { WORKER_GH_TOKEN: TOKEN });
    const prepared = await workspace.prepare({ repo, issueKey: 'API-1', branch: 'factory/API-1' });
    writeFileSync(join(prepared.path, 'fix.txt'), 'the fix\n');
    git(prepared.path, 'add', 'fix.txt');
    git(prepared.path, 'commit', '--quiet', '-m', 'API-1: the fix');
    await workspace.pushBranch(repo, prepared.path, 'factory/API-1');
    assert.equal(git(served(), 'log', '-1', '--format=%s', 'refs/heads/factory/API-1').trim(), 'API-1: the fix', 'the branch is on the server');

    // The next run fetches through the same clone.
    const before = server.requests.length;
    await workspace.prepare({ repo, issueKey: 'API-2', branch: 'factory/API-2' });
    assert.ok(
      server.requests.slice(before).some((r) => r.auth === 'ok' && r.url.includes('git-upload-pack')),
      'the fetch went to the server with the token',
    );

    // A park ref goes up, a second worker fetches it from there, and it is removed.
    writeFileSync(join(prepared.path, 'half.txt'), 'half done\n');
    const ref = 'refs/factory/park/API-1-e1-a1-abc';
    const work = await workspace.park(prepared, ref, 'park');
    await workspace.pushPark(repo, ref);
    assert.equal(git(served(), 'rev-parse', ref).trim(), work.commit);
    const other = workerWith('other', { WORKER_GH_TOKEN: TOKEN });
    const park = { runId: 'API-1-e1-a1-abc', ref, commit: work.commit, trigger: 'run-budget' as const, reason: 'over budget', resumeAtMs: null, stage: 0, sessions: {} };
    const onOther = await other.workspace.prepare({ repo, issueKey: 'API-1', branch: 'factory/API-1', park });
    await other.workspace.restorePark(onOther, ref);
    assert.equal(readFileSync(join(onOther.path, 'half.txt'), 'utf8'), 'half done\n');
    await other.workspace.deleteRemotePark(repo, ref);
    assert.equal(git(served(), 'for-each-ref', 'refs/factory/park').trim(), '');

    for (const dir of [root, other.root]) {
      assert.deepEqual(filesContaining(dir, TOKEN), [], 'no file of the clones or their worktrees (.git/config above all) holds the token');
    }
    const clone = join(root, 'repos', readdirSync(join(root, 'repos'))[0]!);
    assert.equal(git(clone, 'remote', 'get-url', 'origin').trim(), repo, "the clone's remote URL is the URL as routed, without the token");
    assert.ok(
      server.requests.every((r) => !r.url.includes(TOKEN)),
      'the token never travelled in a URL',
    );
    assert.ok(!server.requests.some((r) => r.auth === 'wrong'));
  });

  it('a wrong token: the push fails at once with an error that names where the token comes from and holds no secret', async () => {
    const repo = server.repoUrl('api.git');
    const good = workerWith('wrong-push', { WORKER_GH_TOKEN: TOKEN });
    const prepared = await good.workspace.prepare({ repo, issueKey: 'API-3', branch: 'factory/API-3' });
    git(prepared.path, 'commit', '--quiet', '--allow-empty', '-m', 'API-3: work');
    // The same clone and worktree, as a worker whose token was revoked meanwhile.
    const revoked = new RepoCacheWorkspace({
      cacheDir: join(good.root, 'repos'),
      inner: new GitWorktreeWorkspace({ worktreesRoot: join(good.root, 'worktrees') }),
      credential: credentialWith({ WORKER_GH_TOKEN: WRONG }),
    });
    const startedAt = performance.now();
    const error = await revoked.pushBranch(repo, prepared.path, 'factory/API-3').then(
      () => assert.fail('the push with a wrong token succeeded'),
      (e: Error) => e,
    );
    assert.ok(performance.now() - startedAt < 20_000, 'no prompt held it');
    assert.match(error.message, /^git could not push factory\/API-3 \(http:\/\/127\.0\.0\.1:\d+\/api\.git\): .*Authentication failed/);
    assert.match(error.message, /check that the GitHub token in WORKER_GH_TOKEN is valid and may read and push to/);
    assert.match(error.message, /bad credentials: \[REDACTED\]/, 'the server echoed the token it got; the error scrubbed it');
    assert.ok(!error.message.includes(WRONG) && !error.message.includes(TOKEN), `no token in the error: ${error.message}`);
    assert.ok(
      server.requests.some((r) => r.auth === 'wrong'),
      'the wrong token was offered, once, and refused',
    );
    assert.throws(() => git(served(), 'rev-parse', '--verify', '--quiet', 'refs/heads/factory/API-3'));
  });

  it('no token configured for the worker: refused when the credential is built, naming the variable and the fix', () => {
    assert.throws(
      () => credentialWith({}),
      (error) => isFactoryError(error, 'FACTORY_GITHUB_AUTH_FAILED') && /WORKER_GH_TOKEN/.test(error.message) && /Export WORKER_GH_TOKEN/.test(error.hint),
    );
  });

  it('without a credential (or on another host) git is not offered the token and fails at once instead of prompting', async () => {
    const repo = server.repoUrl('api.git');
    const bare = new RepoCacheWorkspace({ cacheDir: join(scratch, 'none', 'repos'), inner: new GitWorktreeWorkspace({ worktreesRoot: join(scratch, 'none', 'worktrees') }) });
    const startedAt = performance.now();
    await assert.rejects(bare.prepare({ repo, issueKey: 'API-4', branch: 'factory/API-4' }), /git could not clone \(http:\/\/127\.0\.0\.1:\d+\/api\.git\): .*terminal prompts disabled/);
    assert.ok(performance.now() - startedAt < 20_000);

    // The credential is GitHub's (this server's origin): a server on another port is another host and never sees the token.
    const elsewhere = await startGitHttpServer({ projectRoot: join(scratch, 'served'), token: TOKEN });
    try {
      const { workspace } = workerWith('elsewhere', { WORKER_GH_TOKEN: TOKEN });
      await assert.rejects(workspace.prepare({ repo: elsewhere.repoUrl('api.git'), issueKey: 'API-5', branch: 'factory/API-5' }), /terminal prompts disabled/);
      assert.ok(elsewhere.requests.length > 0 && elsewhere.requests.every((r) => r.auth === 'none'), 'the other host got no credential');
    } finally {
      await elsewhere.close();
    }
  });

  // Without the group kill the helper keeps git's pipes open and the command never returns: the test's own timeout says so.
  it('a remote that stops answering: the command is stopped at fleet.worker.remoteGitTimeoutMs with its helpers, and the run is told why', { timeout: 40_000 }, async () => {
    // Accepts connections and never says a word, as a stalled network or a hung proxy does.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      for (const [name, credential] of [
        ['with-token', credentialWith({ WORKER_GH_TOKEN: TOKEN })],
        ['without', undefined],
      ] as const) {
        const root = join(scratch, `silent-${name}`);
        const workspace = new RepoCacheWorkspace({
          cacheDir: join(root, 'repos'),
          inner: new GitWorktreeWorkspace({ worktreesRoot: join(root, 'worktrees') }),
          remoteTimeoutMs: 2_000,
          ...(credential ? { credential } : {}),
        });
        const startedAt = performance.now();
        await assert.rejects(
          workspace.prepare({ repo: `http://127.0.0.1:${port}/api.git`, issueKey: 'API-6', branch: 'factory/API-6' }),
          /^Error: git could not clone \(http:\/\/127\.0\.0\.1:\d+\/api\.git\): timed out after 2s.*; check the network to the remote, or raise fleet\.worker\.remoteGitTimeoutMs/,
        );
        assert.ok(performance.now() - startedAt < 15_000, `${name}: stopped at its timeout, not held by the silent remote`);
        // git hands HTTP to git-remote-http: that helper went with it, and nothing is left talking to the silent port.
        await waitFor(`${name}: no git process left for the silent remote`, () => gitProcessesFor(String(port)).length === 0, 5_000);
      }
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

/** Pids of git processes (git and its remote helpers) whose command line names `needle`. */
function gitProcessesFor(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(join('/proc', entry, 'cmdline'), 'utf8').split('\0');
      if (/(^|\/)git(-remote-https?)?$/.test(argv[0] ?? '') && argv.some((arg) => arg.includes(needle))) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}
