import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { askpassHelperPath, createBranchPusher, pushCommand, runGit, TOKEN_VARIABLE, type GitCommand } from '../../src/adapters/github/git-push.js';
import { createGitHubGitCredential, githubGitOrigin } from '../../src/adapters/github/github-wiring.js';
import { sourceSchema } from '../../src/config/source-schema.js';
import { createScratchRepo, git } from '../support/sandbox.js';

const TOKEN = 'ghs_PUSHtoken0123456789abcdefSECRET';

test('the push credential travels in the command environment only: not in argv, not on disk, not in any credential store', () => {
  const helper = askpassHelperPath();
  const command = pushCommand('/srv/checkout', 'origin', 'factory/acme_api-1', TOKEN, helper);
  assert.ok(!command.argv.join(' ').includes(TOKEN), 'argv (visible in /proc/<pid>/cmdline) has no token');
  assert.deepEqual(command.argv.slice(0, 8), ['-C', '/srv/checkout', '-c', 'credential.helper=', '-c', 'core.askPass=', 'push', '--porcelain']);
  assert.equal(command.env.GIT_ASKPASS, helper);
  assert.equal(command.env.GIT_TERMINAL_PROMPT, '0');
  assert.equal(command.env[TOKEN_VARIABLE], TOKEN);
  // The helper holds no secret, only this user can run it, and it answers git's two prompts.
  assert.ok(!readFileSync(helper, 'utf8').includes(TOKEN));
  assert.equal(statSync(helper).mode & 0o077, 0);
  const ask = (prompt: string): string => execFileSync(helper, [prompt], { env: { [TOKEN_VARIABLE]: TOKEN }, encoding: 'utf8' }).trim();
  assert.equal(ask("Username for 'https://github.com': "), 'x-access-token');
  assert.equal(ask("Password for 'https://x-access-token@github.com': "), TOKEN);
});

test('a real push leaves no trace of the token in the worktree, .git/config or the remote', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factory-push-'));
  const repo = join(dir, 'repo');
  createScratchRepo(repo);
  const remote = join(dir, 'remote.git');
  execFileSync('git', ['clone', '--quiet', '--bare', repo, remote]);
  git(repo, 'remote', 'add', 'origin', remote);
  git(repo, 'checkout', '--quiet', '-b', 'factory/acme_api-1');
  git(repo, 'commit', '--quiet', '--allow-empty', '-m', 'work');
  const seen: GitCommand[] = [];
  const pusher = createBranchPusher({
    token: async () => TOKEN,
    redact: (text) => text.split(TOKEN).join('[REDACTED]'),
    run: (command, timeoutMs) => {
      seen.push(command);
      return runGit(command, timeoutMs);
    },
  });
  const sha = await pusher.push(repo, 'origin', 'factory/acme_api-1');
  assert.equal(sha, execFileSync('git', ['--git-dir', remote, 'rev-parse', 'refs/heads/factory/acme_api-1'], { encoding: 'utf8' }).trim());
  assert.equal(await pusher.defaultBranch(repo, 'origin'), 'main');
  assert.ok(
    seen.some((command) => command.env[TOKEN_VARIABLE] === TOKEN),
    'the push got the token in its environment',
  );
  for (const root of [repo, remote]) {
    for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) assert.ok(!readFileSync(join(entry.parentPath, entry.name), 'latin1').includes(TOKEN), `${entry.name} holds the token`);
    }
  }
  // A refused push names the problem with the credential redacted.
  await assert.rejects(pusher.push(repo, 'no-such-remote', 'factory/acme_api-1'), (error: Error & { code?: string }) => error.code === 'FACTORY_GIT_PUSH_FAILED' && !error.message.includes(TOKEN));
});

test("the askpass helper's folder goes when the process that wrote it exits", () => {
  const module = new URL('../../src/adapters/github/git-push.ts', import.meta.url).href;
  const script = `import(${JSON.stringify(module)}).then(({ askpassHelperPath }) => { const path = askpassHelperPath(); require('node:fs').accessSync(path); console.log(path); });`;
  const path = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', cwd: join(import.meta.dirname, '..', '..') }).trim();
  assert.match(path, /factory-askpass-[^/]+\/askpass\.sh$/);
  assert.throws(() => statSync(join(path, '..')), /ENOENT/, 'the folder was removed at exit');
});

test("a worker's GitHub credential is offered only to repos on that GitHub: never to another host, a plain-HTTP twin, a path or an SSH address", async () => {
  assert.equal(githubGitOrigin('https://api.github.com'), 'https://github.com');
  assert.equal(githubGitOrigin('https://ghe.example.com/api/v3'), 'https://ghe.example.com');
  const credentialFor = (apiUrl?: string) =>
    createGitHubGitCredential({ github: sourceSchema.parse({ kind: 'github', github: { repos: ['acme/api'], ...(apiUrl ? { apiUrl } : {}) } }).github!, env: { GITHUB_TOKEN: TOKEN } });
  const github = credentialFor();
  assert.equal(github.describe, 'the GitHub token in GITHUB_TOKEN');
  assert.equal(await github.token(), TOKEN);
  assert.equal(github.appliesTo('https://github.com/acme/api.git'), true);
  assert.equal(github.appliesTo('https://GitHub.com/acme/api'), true);
  for (const elsewhere of [
    'http://github.com/acme/api.git',
    'https://github.com.evil.example/acme/api.git',
    'https://gitlab.com/acme/api.git',
    'git@github.com:acme/api.git',
    'ssh://git@github.com/acme/api.git',
    '/srv/repos/api',
  ]) {
    assert.equal(github.appliesTo(elsewhere), false, elsewhere);
  }
  const enterprise = credentialFor('https://ghe.example.com/api/v3');
  assert.equal(enterprise.appliesTo('https://ghe.example.com/acme/api.git'), true);
  assert.equal(enterprise.appliesTo('https://github.com/acme/api.git'), false);
  assert.equal(github.redact(`fatal: bad token ${TOKEN}`), 'fatal: bad token [REDACTED]');
});
