import { readFileSync } from 'node:fs';
import type { PublishConfig, ShepherdConfig } from '../../config/publish-schema.js';
import type { SourceConfig } from '../../config/source-schema.js';
import { parseRepoSlug, type GitHubRepoRef } from '../../domain/github-issue.js';
import { FactoryError } from '../../errors.js';
import type { Clock } from '../../ports/clock.js';
import { createBranchPusher, type RemoteCredential } from './git-push.js';
import { resolveGitHubCredentials, type GitHubAuthSettings, type GitHubCredentials } from './github-auth.js';
import { createGitHubClient, type GitHubClient, type GitHubLog } from './github-client.js';
import { GitHubCodeHost, GitHubIssueProgress } from './github-code-host.js';
import { GitHubIdentity } from './github-identity.js';
import { GitHubIssueSource } from './github-issue-source.js';
import { GitHubRepoClient } from './github-repo-client.js';
import { GitHubIssueWriteback } from './github-writeback.js';

/**
 * Everything GitHub-backed that a daemon uses, built once from the config:
 * one client (one rate budget, one redaction), Factory's identity on GitHub,
 * the issue source, the label progress, the code host for publishing and the
 * shepherd, and the webhook secret. The composition root calls this; nothing here reads the process
 * environment itself.
 */

export type GitHubSourceSettings = NonNullable<SourceConfig['github']>;

export interface GitHubWiring {
  readonly source: GitHubIssueSource;
  readonly progress: GitHubIssueProgress;
  readonly codeHost: GitHubCodeHost;
  readonly repoClient: GitHubRepoClient;
  /** The login Factory writes as; a daemon learns it before it opens (`login()`), so a credential that cannot tell fails at start. */
  readonly identity: GitHubIdentity;
  /** `source.github.repos`, parsed: a webhook about any other repository is ignored. */
  readonly repos: readonly GitHubRepoRef[];
  /** Set when `webhookSecretEnv`/`webhookSecretFile` names one: `/webhooks/github` is served then. */
  readonly webhookSecret: string | undefined;
  /** Scrubs this wiring's secrets from text. */
  redact(text: string): string;
}

export interface GitHubWiringOptions {
  readonly github: GitHubSourceSettings;
  readonly publish: PublishConfig;
  readonly shepherd: ShepherdConfig;
  /** `dispatch.branchPrefix`: a pull request counts as Factory's only from Factory's branch for its issue. */
  readonly branchPrefix: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly clock: Clock;
  readonly log: GitHubLog;
  readonly readText?: (path: string) => string;
}

export function createGitHubWiring(options: GitHubWiringOptions): GitHubWiring {
  const { github, env } = options;
  const readText = options.readText ?? ((path: string) => readFileSync(path, 'utf8'));
  const credentials = resolveGitHubCredentials(authSettingsOf(github), env, readText);
  const client = createGitHubClient({ credentials, apiUrl: github.apiUrl, requestTimeoutMs: github.requestTimeoutMs, log: options.log, userAgent: 'factory' });
  const repoClient = new GitHubRepoClient(client);
  const identity = new GitHubIdentity({ credentialKind: credentials.kind, repoClient, log: options.log, ...(github.identity === undefined ? {} : { configured: github.identity }) });
  const writeback = new GitHubIssueWriteback(repoClient, identity, github.lifecycleLabels, { shepherdMaxRounds: options.shepherd.maxRounds });
  const repos = github.repos.map(repoRef);
  const source = new GitHubIssueSource({
    repos,
    repoClient,
    writeback,
    clock: options.clock,
    scopeLabels: github.labels,
    priorityLabels: github.priorityLabels,
    pollIntervalMs: github.pollIntervalMs,
    requestBudgetPerMinute: github.requestBudgetPerMinute,
  });
  const locate = (issue: { key: string; location: string }) => source.locate(issue);
  const pushToken = gitTokenSource(credentials, client);
  const codeHost = new GitHubCodeHost({
    repos,
    repoClient,
    writeback,
    identity,
    branchPrefix: options.branchPrefix,
    pusher: createBranchPusher({ token: pushToken, redact: client.redact }),
    locate,
    remote: options.publish.remote,
    ...(options.publish.base === undefined ? {} : { base: options.publish.base }),
    shepherdMaxRounds: options.shepherd.maxRounds,
  });
  return {
    source,
    progress: new GitHubIssueProgress(writeback, locate),
    codeHost,
    repoClient,
    identity,
    repos,
    webhookSecret: readWebhookSecret(github, env, readText),
    redact: client.redact,
  };
}

function authSettingsOf(github: GitHubSourceSettings): GitHubAuthSettings {
  return github.app !== undefined
    ? { kind: 'app', ...github.app }
    : { kind: 'token', ...(github.tokenEnv === undefined ? {} : { tokenEnv: github.tokenEnv }), ...(github.tokenFile === undefined ? {} : { tokenFile: github.tokenFile }) };
}

/** A token for one git command: the configured token, or a fresh installation token of the App. */
function gitTokenSource(credentials: GitHubCredentials, client: GitHubClient): () => Promise<string> {
  return async () => {
    if (credentials.kind === 'token') return credentials.token;
    const auth = (await client.octokit.auth({ type: 'installation' })) as { token?: string };
    if (typeof auth.token !== 'string') throw new FactoryError('FACTORY_GITHUB_AUTH_FAILED', 'the GitHub App gave no installation token to push with');
    return auth.token;
  };
}

/**
 * Where git reaches the GitHub that `apiUrl` names: `https://github.com` for
 * the public API, the API's own origin for GitHub Enterprise Server
 * (`https://HOST/api/v3` → `https://HOST`).
 */
export function githubGitOrigin(apiUrl: string): string {
  const api = new URL(apiUrl);
  return api.hostname.toLowerCase() === 'api.github.com' ? `${api.protocol}//github.com` : api.origin;
}

/**
 * The credential a fleet worker's git commands use for the repos on its
 * GitHub (the same token or App as a daemon, read from this process's
 * environment or the files the config names): a token that cannot be read
 * fails here, when the worker starts, with FACTORY_GITHUB_AUTH_FAILED. A repo
 * on any other host (or a path, or an SSH address) never gets the token.
 */
export function createGitHubGitCredential(options: {
  readonly github: GitHubSourceSettings;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log?: GitHubLog;
  readonly readText?: (path: string) => string;
}): RemoteCredential {
  const { github } = options;
  const settings = authSettingsOf(github);
  const credentials = resolveGitHubCredentials(settings, options.env, options.readText);
  const client = createGitHubClient({ credentials, apiUrl: github.apiUrl, requestTimeoutMs: github.requestTimeoutMs, ...(options.log ? { log: options.log } : {}), userAgent: 'factory' });
  const origin = githubGitOrigin(github.apiUrl);
  return {
    appliesTo(repo) {
      try {
        return new URL(repo).origin === origin;
      } catch {
        return false;
      }
    },
    token: gitTokenSource(credentials, client),
    redact: client.redact,
    describe:
      settings.kind === 'app'
        ? `GitHub App ${settings.appId}'s installation token`
        : settings.tokenFile !== undefined
          ? `the GitHub token in ${settings.tokenFile}`
          : `the GitHub token in ${settings.tokenEnv ?? 'GITHUB_TOKEN'}`,
  };
}

function repoRef(slug: string): GitHubRepoRef {
  const parsed = parseRepoSlug(slug);
  if (!parsed.ok) throw new FactoryError('FACTORY_CONFIG_INVALID', `source.github.repos: ${parsed.reason}`);
  return parsed.value;
}

function readWebhookSecret(github: GitHubSourceSettings, env: Readonly<Record<string, string | undefined>>, readText: (path: string) => string): string | undefined {
  if (github.webhookSecretFile !== undefined) {
    let secret: string;
    try {
      secret = readText(github.webhookSecretFile).trim();
    } catch (error) {
      throw new FactoryError('FACTORY_CONFIG_INVALID', `cannot read the webhook secret file ${github.webhookSecretFile} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`, {
        hint: 'Write the secret alone into the file named by source.github.webhookSecretFile (mode 600), or remove the key.',
      });
    }
    if (secret.length === 0) throw new FactoryError('FACTORY_CONFIG_INVALID', `the webhook secret file ${github.webhookSecretFile} is empty`);
    return secret;
  }
  if (github.webhookSecretEnv === undefined) return undefined;
  const secret = env[github.webhookSecretEnv]?.trim() ?? '';
  if (secret.length === 0) {
    throw new FactoryError('FACTORY_CONFIG_INVALID', `source.github.webhookSecretEnv names ${github.webhookSecretEnv}, which is not set or empty`, {
      hint: `Export ${github.webhookSecretEnv} with the webhook's secret, or remove the key.`,
    });
  }
  return secret;
}
