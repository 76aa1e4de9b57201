import { SystemClock } from '../../../src/adapters/clock/system-clock.js';
import { createGitHubClient, type GitHubClientOptions } from '../../../src/adapters/github/github-client.js';
import { GitHubIssueSource, type GitHubIssueSourceOptions } from '../../../src/adapters/github/github-issue-source.js';
import { GitHubRepoClient } from '../../../src/adapters/github/github-repo-client.js';
import { GitHubIssueWriteback } from '../../../src/adapters/github/github-writeback.js';
import { parseRepoSlug, type GitHubRepoRef } from '../../../src/domain/github-issue.js';
import type { Clock } from '../../../src/ports/clock.js';
import { FakeGitHub } from './fake-github.js';

/** The token the fake accepts in tests; distinctive, so a leak is easy to find in any text. */
export const TEST_TOKEN = 'ghp_TESTtoken0123456789abcdefSECRET';

export const PRIORITY_LABELS: Readonly<Record<string, number>> = { P0: 0, P1: 1, P2: 2, P3: 3 };

export function repoRef(slug: string): GitHubRepoRef {
  const parsed = parseRepoSlug(slug);
  if (!parsed.ok) throw new TypeError(parsed.reason);
  return parsed.value;
}

/** Client settings that keep tests fast: no write spacing, short backoff, short timeouts. */
export function fastClientOptions(fake: FakeGitHub, overrides: Partial<GitHubClientOptions> = {}): GitHubClientOptions {
  return {
    credentials: { kind: 'token', token: TEST_TOKEN },
    apiUrl: fake.url,
    minWriteIntervalMs: 0,
    retryBaseMs: 10,
    requestTimeoutMs: 5_000,
    ...overrides,
  };
}

export interface GitHubSourceSetup {
  readonly source: GitHubIssueSource;
  readonly repoClient: GitHubRepoClient;
  readonly writeback: GitHubIssueWriteback;
}

/** A GitHubIssueSource over the fake, as the composition root will build one. */
export function createSourceOverFake(
  fake: FakeGitHub,
  repos: readonly string[],
  options: { clock?: Clock; client?: Partial<GitHubClientOptions>; source?: Partial<GitHubIssueSourceOptions> } = {},
): GitHubSourceSetup {
  const client = createGitHubClient(fastClientOptions(fake, options.client));
  const repoClient = new GitHubRepoClient(client);
  const writeback = new GitHubIssueWriteback(repoClient);
  const source = new GitHubIssueSource({
    repos: repos.map(repoRef),
    repoClient,
    writeback,
    clock: options.clock ?? new SystemClock(),
    scopeLabels: ['factory'],
    priorityLabels: PRIORITY_LABELS,
    pollIntervalMs: 50,
    ...options.source,
  });
  return { source, repoClient, writeback };
}

export async function startFakeGitHub(): Promise<FakeGitHub> {
  return FakeGitHub.start({ tokens: [TEST_TOKEN] });
}
