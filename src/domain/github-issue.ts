import { createHash } from 'node:crypto';
import { isValidIssueKey, READY_STATE, type Issue } from './issue.js';
import { computeIssueRevision, normalizeIssueBody } from './issue-parse.js';

/**
 * GitHub issues as Factory issues, as pure functions: repository names, the
 * issue key derived from `owner/name#N`, and the mapping of an API record to an
 * Issue. Like issue-parse.ts, a record that cannot be an issue comes back as a
 * reason naming the issue and the field, never as a throw.
 */

export interface GitHubRepoRef {
  readonly owner: string;
  readonly name: string;
}

/** GitHub logins: letters, digits and single hyphens, not at either end, at most 39 characters. */
const OWNER_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;
/** Repository names: letters, digits, ".", "_" and "-", at most 100; "." and ".." are not names. */
const REPO_NAME_PATTERN = /^[A-Za-z0-9._-]{1,100}$/;

/** `owner/name` → a reference, or a reason saying what is wrong with it. */
export function parseRepoSlug(slug: string): { ok: true; value: GitHubRepoRef } | { ok: false; reason: string } {
  const parts = slug.split('/');
  if (parts.length !== 2) return { ok: false, reason: `expected "owner/name", got ${JSON.stringify(slug)}` };
  const [owner, name] = parts as [string, string];
  if (!OWNER_PATTERN.test(owner)) return { ok: false, reason: `${JSON.stringify(slug)}: owner must be letters, digits and single hyphens (at most 39), got ${JSON.stringify(owner)}` };
  if (!REPO_NAME_PATTERN.test(name) || name === '.' || name === '..') {
    return { ok: false, reason: `${JSON.stringify(slug)}: repository name must be letters, digits, ".", "_" or "-" (at most 100), got ${JSON.stringify(name)}` };
  }
  return { ok: true, value: { owner, name } };
}

export function formatRepoSlug(repo: GitHubRepoRef): string {
  return `${repo.owner}/${repo.name}`;
}

/** GitHub compares owner and repository names case-insensitively. */
export function sameRepo(a: GitHubRepoRef, b: GitHubRepoRef): boolean {
  return a.owner.toLowerCase() === b.owner.toLowerCase() && a.name.toLowerCase() === b.name.toLowerCase();
}

/** Longest key before the readable form is shortened with a hash (the issue key limit is 100). */
const MAX_READABLE_KEY_LENGTH = 100;

/**
 * The issue key for `owner/name#N`: `owner_name-N` in lower case (GitHub names
 * are case-insensitive), e.g. `acme_api-12`. Injective: owners never contain
 * "_", so the first "_" ends the owner; in the name "_" is written "__" and a
 * "." right after another "." is written "_d", so no key holds ".." and the
 * name decodes back; the number follows the last "-". Keys are valid issue
 * keys and git branch-name components (no "..", no leading ".", no ".lock"
 * ending, since they end in digits). A key that would exceed 100 characters
 * keeps a readable prefix and ends in a hash of the full identity.
 */
export function githubIssueKey(repo: GitHubRepoRef, number: number): string {
  if (!Number.isSafeInteger(number) || number < 1) throw new TypeError(`githubIssueKey: expected a positive issue number, got ${number}`);
  const owner = repo.owner.toLowerCase();
  const name = repo.name
    .toLowerCase()
    .replace(/_/g, '__')
    .replace(/(?<=\.)\./g, '_d');
  const readable = `${owner}_${name}-${number}`;
  if (readable.length <= MAX_READABLE_KEY_LENGTH) return readable;
  const hash = createHash('sha256').update(`${owner}/${repo.name.toLowerCase()}#${number}`).digest('hex').slice(0, 16);
  const suffix = `-h${hash}-${number}`;
  // Cut the prefix so that no "." ends it (a ".." could form with nothing, but a component must not end in ".").
  const prefix = readable.slice(0, MAX_READABLE_KEY_LENGTH - suffix.length).replace(/[._]+$/, '');
  return `${prefix}${suffix}`;
}

/** Where an issue lives, for people and logs: `owner/name#N`. */
export function githubIssueLocation(repo: GitHubRepoRef, number: number): string {
  return `${formatRepoSlug(repo)}#${number}`;
}

/** `owner/name#N` (or a github.com issue URL) → repo and number; undefined when it is neither. */
export function parseGitHubIssueReference(text: string): { repo: GitHubRepoRef; number: number } | undefined {
  const match = /^([^/#\s]+)\/([^/#\s]+)#(\d+)$/.exec(text) ?? /^https?:\/\/[^/]+\/([^/]+)\/([^/]+)\/issues\/(\d+)$/.exec(text);
  if (match === null) return undefined;
  const repo = parseRepoSlug(`${match[1]}/${match[2]}`);
  const number = Number(match[3]);
  if (!repo.ok || !Number.isSafeInteger(number) || number < 1) return undefined;
  return { repo: repo.value, number };
}

/** The fields of a REST issue record the mapping reads (a structural subset of GitHub's `issue`). */
export interface GitHubIssueRecord {
  readonly number: number;
  readonly title: string;
  readonly body?: string | null;
  readonly state: string;
  readonly labels: readonly (string | { readonly name?: string })[];
  readonly created_at: string;
  readonly updated_at: string;
  /** Present on pull requests, which the issues API lists too. */
  readonly pull_request?: unknown;
}

export interface GitHubIssueMapping {
  /**
   * Labels that put an open issue in scope (it becomes `ready`); any one is
   * enough, case-insensitively. Empty: every open issue is ready.
   */
  readonly scopeLabels: readonly string[];
  /** Label name → priority (lower runs first). These labels order work, so they are not content. */
  readonly priorityLabels: Readonly<Record<string, number>>;
  /** Factory's own lifecycle labels: status it writes, never content, so writing them never re-runs an issue. */
  readonly lifecycleLabels: readonly string[];
}

export type GitHubIssueMapResult =
  { readonly kind: 'issue'; readonly issue: Issue; readonly updatedAtMs: number } | { readonly kind: 'pull-request' } | { readonly kind: 'unreadable'; readonly reason: string };

export const OPEN_STATE = 'open';
export const CLOSED_STATE = 'closed';

/**
 * One API record → an Issue. State: a closed issue is `closed`; an open one is
 * `ready` when it carries a scope label, otherwise `open`. Priority labels
 * become `priority` and lifecycle labels are dropped, so neither changes the
 * revision. Pull requests are not issues.
 */
export function mapGitHubIssue(repo: GitHubRepoRef, record: GitHubIssueRecord, mapping: GitHubIssueMapping): GitHubIssueMapResult {
  if (record.pull_request !== undefined && record.pull_request !== null) return { kind: 'pull-request' };
  const location = githubIssueLocation(repo, record.number);
  const fail = (reason: string): GitHubIssueMapResult => ({ kind: 'unreadable', reason: `${location}: ${reason}` });
  if (typeof record.title !== 'string' || record.title.trim().length === 0) return fail('title: empty; give the issue a title');
  const createdAtMs = Date.parse(record.created_at);
  const updatedAtMs = Date.parse(record.updated_at);
  if (!Number.isFinite(createdAtMs) || !Number.isFinite(updatedAtMs)) return fail(`created_at/updated_at: expected ISO timestamps, got ${JSON.stringify([record.created_at, record.updated_at])}`);

  const lifecycle = new Set(mapping.lifecycleLabels.map((label) => label.toLowerCase()));
  const priorities = new Map(Object.entries(mapping.priorityLabels).map(([label, priority]) => [label.toLowerCase(), priority]));
  const scope = new Set(mapping.scopeLabels.map((label) => label.toLowerCase()));

  const names = record.labels.map((label) => (typeof label === 'string' ? label : (label.name ?? ''))).filter((name) => name.length > 0);
  const labels: string[] = [];
  let priority: number | undefined;
  for (const name of names) {
    const lower = name.toLowerCase();
    if (lifecycle.has(lower)) continue;
    const labelPriority = priorities.get(lower);
    if (labelPriority !== undefined) {
      priority = priority === undefined ? labelPriority : Math.min(priority, labelPriority);
      continue;
    }
    if (!labels.includes(name)) labels.push(name);
  }

  const inScope = scope.size === 0 || names.some((name) => scope.has(name.toLowerCase()));
  const state = record.state === 'open' ? (inScope ? READY_STATE : OPEN_STATE) : CLOSED_STATE;
  const key = githubIssueKey(repo, record.number);
  if (!isValidIssueKey(key)) return fail(`cannot derive a valid issue key (got ${JSON.stringify(key)})`);
  const fields = { key, title: record.title, body: normalizeIssueBody(record.body ?? ''), labels, state };
  return {
    kind: 'issue',
    updatedAtMs,
    issue: {
      ...fields,
      ...(priority === undefined ? {} : { priority }),
      createdAtMs,
      revision: computeIssueRevision(fields),
      location,
    },
  };
}

/** Marks Factory's one status comment on an issue, so it is found again after a retry or a restart. */
export const STATUS_COMMENT_MARKER = '<!-- factory:status -->';

/** True when a comment body is Factory's status comment (the marker opens it). */
export function isStatusComment(body: string): boolean {
  return body.trimStart().startsWith(STATUS_COMMENT_MARKER);
}

export interface StatusCommentOutcome {
  readonly runId: string;
  readonly reason: string;
  readonly detail: string;
  readonly attempt: number;
  readonly branch: string;
  readonly revision: string;
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  readonly agents: readonly { readonly role: string; readonly reason: string; readonly exitCode: number | null; readonly signal: string | null }[];
}

/**
 * The status comment's Markdown: outcome, run, branch and agents. Host paths
 * (worktree, log files) stay out: the comment is public to everyone who can
 * read the issue.
 */
export function renderStatusComment(issueKey: string, outcome: StatusCommentOutcome): string {
  const code = (text: string): string => `\`${text.replace(/`/g, "'")}\``;
  const lines = [
    STATUS_COMMENT_MARKER,
    `### Factory: ${outcome.reason}`,
    '',
    `| | |`,
    `|---|---|`,
    `| Outcome | **${outcome.reason}** |`,
    `| Detail | ${outcome.detail.includes('\n') ? 'see below' : outcome.detail.replace(/\|/g, '\\|') || '(none)'} |`,
    `| Attempt | ${outcome.attempt} |`,
    `| Run | ${code(outcome.runId)} |`,
    `| Issue key | ${code(issueKey)} |`,
    `| Branch | ${code(outcome.branch)} |`,
    `| Revision | ${code(outcome.revision.slice(0, 12))} |`,
    `| Started | ${new Date(outcome.startedAtMs).toISOString()} |`,
    `| Ended | ${new Date(outcome.endedAtMs).toISOString()} |`,
  ];
  if (outcome.detail.includes('\n')) lines.push('', '```text', outcome.detail.replace(/```/g, "'''"), '```');
  if (outcome.agents.length > 0) {
    lines.push('', '**Agents**', '');
    for (const agent of outcome.agents) {
      const exit = agent.signal !== null ? `killed by ${agent.signal}` : agent.exitCode !== null ? `exit code ${agent.exitCode}` : 'no exit status';
      lines.push(`- ${agent.role}: ${agent.reason} (${exit})`);
    }
  }
  lines.push('', '_Factory edits this comment in place after each run._');
  return `${lines.join('\n')}\n`;
}
