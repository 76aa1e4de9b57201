import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createScratchRepo, git, REPO_ROOT, spawnDaemon, waitFor, type DaemonProcess } from '../sandbox.js';
import { FakeGitHub } from './fake-github.js';
import { TEST_TOKEN } from './github-source-harness.js';

/**
 * A project whose issues live on the fake GitHub and whose code goes to a
 * real bare git repository standing in for GitHub's git side: `remote.git`
 * (attached to the fake, so pull request heads are what was really pushed)
 * and `repo`, a clone of it the daemon works in (its `origin`). The daemon is
 * the real `factory start`, configured for `source.kind: "github"`.
 */

export const WEBHOOK_SECRET = 'whsec-test-0123456789';
export const REPO_SLUG = 'acme/api';

export interface GitHubProject {
  readonly dir: string;
  readonly fake: FakeGitHub;
  readonly remote: string;
  readonly repo: string;
  readonly configPath: string;
  start(env?: Record<string, string>): DaemonProcess;
  /** The daemon's HTTP URL, once its heartbeat names it. */
  httpUrl(): Promise<string>;
  /** Stops the daemon and the fake, then removes the project's folder unless `keepFiles`. */
  close(options?: { keepFiles?: boolean }): Promise<void>;
}

export async function createGitHubProject(name: string, config: Record<string, unknown> = {}): Promise<GitHubProject> {
  const dir = mkdtempSync(join(tmpdir(), `factory-${name}-`));
  const fake = await FakeGitHub.start({ tokens: [TEST_TOKEN] });
  fake.createRepo(REPO_SLUG);
  const seed = join(dir, 'seed');
  createScratchRepo(seed);
  const remote = join(dir, 'remote.git');
  execFileSync('git', ['clone', '--quiet', '--bare', seed, remote]);
  fake.attachGitRemote(REPO_SLUG, remote);
  const repo = join(dir, 'repo');
  execFileSync('git', ['clone', '--quiet', remote, repo]);
  git(repo, 'config', 'user.name', 'Factory test');
  git(repo, 'config', 'user.email', 'test@factory.invalid');
  const configPath = join(dir, 'factory.config.json');
  const { source: sourceOverrides, ...rest } = config as { source?: { github?: Record<string, unknown> } };
  writeFileSync(
    configPath,
    JSON.stringify(
      {
        source: {
          kind: 'github',
          github: {
            repos: [REPO_SLUG],
            apiUrl: fake.url,
            tokenEnv: 'FACTORY_TEST_GITHUB_TOKEN',
            webhookSecretEnv: 'FACTORY_TEST_WEBHOOK_SECRET',
            pollIntervalMs: 200,
            requestBudgetPerMinute: 6000,
            requestTimeoutMs: 5000,
            ...sourceOverrides?.github,
          },
        },
        repos: { default: './repo' },
        agents: { implementer: { command: [process.execPath, join(REPO_ROOT, 'test', 'fixtures', 'github', 'committing-agent.mjs')] } },
        http: { port: 0 },
        shepherd: { pollIntervalMs: 200 },
        intake: { reconcileIntervalMs: 1000, debounceMs: 20 },
        ...rest,
      },
      null,
      2,
    ),
  );
  const heartbeatPath = join(dir, '.factory', 'heartbeat.json');
  let daemon: DaemonProcess | undefined;
  return {
    dir,
    fake,
    remote,
    repo,
    configPath,
    start(env = {}) {
      daemon = spawnDaemon(configPath, { FACTORY_TEST_GITHUB_TOKEN: TEST_TOKEN, FACTORY_TEST_WEBHOOK_SECRET: WEBHOOK_SECRET, FACTORY_LOG_LEVEL: 'info', ...env });
      return daemon;
    },
    async httpUrl() {
      // A daemon started through tsx on a busy machine can take many seconds to listen; one that exits instead fails at once, with its stderr.
      return waitFor(
        'the daemon to name its HTTP URL',
        () => {
          if (daemon && (daemon.child.exitCode !== null || daemon.child.signalCode !== null)) {
            throw new Error(`the daemon exited (${daemon.child.exitCode ?? daemon.child.signalCode}) before listening:\n${daemon.stderr().slice(-2_000)}`);
          }
          try {
            return (JSON.parse(readFileSync(heartbeatPath, 'utf8')) as { http?: { url?: string } }).http?.url;
          } catch {
            return undefined;
          }
        },
        60_000,
      );
    },
    async close(options = {}) {
      if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
        daemon.child.kill('SIGTERM');
        await daemon.exited;
      }
      await fake.close();
      if (!options.keepFiles) rmSync(dir, { recursive: true, force: true });
    },
  };
}
