import { SystemClock } from '../../../src/adapters/clock/system-clock.js';
import { createGitHubClient, type GitHubClientOptions, type GitHubLog } from '../../../src/adapters/github/github-client.js';
import { GitHubIdentity } from '../../../src/adapters/github/github-identity.js';
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
  readonly identity: GitHubIdentity;
}

/** Log lines the GitHub adapter wrote, kept for assertions. */
export interface RecordedLog extends GitHubLog {
  readonly lines: { level: 'debug' | 'warn'; fields: Record<string, unknown>; message: string }[];
}

export function recordingLog(): RecordedLog {
  const lines: RecordedLog['lines'] = [];
  return {
    lines,
    debug: (fields, message = '') => void lines.push({ level: 'debug', fields, message }),
    warn: (fields, message = '') => void lines.push({ level: 'warn', fields, message }),
  };
}

/** Factory's identity over a token client: learned from the fake's `GET /user`. */
export function tokenIdentity(repoClient: GitHubRepoClient, log: GitHubLog = recordingLog()): GitHubIdentity {
  return new GitHubIdentity({ credentialKind: 'token', repoClient, log });
}

/** A GitHubIssueSource over the fake, as the composition root will build one. */
export function createSourceOverFake(
  fake: FakeGitHub,
  repos: readonly string[],
  options: { clock?: Clock; client?: Partial<GitHubClientOptions>; source?: Partial<GitHubIssueSourceOptions>; log?: GitHubLog } = {},
): GitHubSourceSetup {
  const client = createGitHubClient(fastClientOptions(fake, options.client));
  const repoClient = new GitHubRepoClient(client);
  const identity = tokenIdentity(repoClient, options.log);
  const writeback = new GitHubIssueWriteback(repoClient, identity);
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
  return { source, repoClient, writeback, identity };
}

export async function startFakeGitHub(): Promise<FakeGitHub> {
  return FakeGitHub.start({ tokens: [TEST_TOKEN] });
}
