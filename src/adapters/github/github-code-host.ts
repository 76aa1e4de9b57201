import { formatRepoSlug, githubIssueKey, githubIssueLocation, type GitHubRepoRef } from '../../domain/github-issue.js';
import type { Issue } from '../../domain/issue.js';
import type { RunOutcome } from '../../domain/run.js';
import { branchNameFor } from '../../domain/triage.js';
import { FactoryError, isFactoryError } from '../../errors.js';
import { checkState, renderShepherdSection, type PullCheck, type PullObservation, type ShepherdRecord } from '../../domain/shepherd.js';
import type { CodeHost, IssueProgress, IssueStage, PublishedChange, WatchedChange } from '../../ports/publisher.js';
import type { BranchPusher } from './git-push.js';
import type { GitHubIdentity } from './github-identity.js';
import type { GitHubRepoClient, PullSummary } from './github-repo-client.js';
import { lifecycleStageOf, type GitHubIssueWriteback } from './github-writeback.js';

/**
 * GitHub as Factory's code host: pushes a run's branch, opens or updates its
 * draft pull request, reads checks, statuses and reviews for the shepherd,
 * merges when told to, and keeps the shepherd's record in the issue's status
 * comment. Each pull request Factory opens carries a hidden marker naming its
 * issue, so a restarted daemon finds the ones it follows again; a marker
 * counts only on a pull request Factory's login opened from Factory's branch
 * for that issue in the repository itself (see GitHubIdentity).
 */

const PULL_MARKER = 'factory:pull';

export interface GitHubCodeHostOptions {
  readonly repos: readonly GitHubRepoRef[];
  readonly repoClient: GitHubRepoClient;
  readonly writeback: GitHubIssueWriteback;
  readonly identity: Pick<GitHubIdentity, 'ownMarkedComments' | 'ownsPull' | 'pullProblem' | 'isSelf'>;
  readonly pusher: BranchPusher;
  /** `dispatch.branchPrefix`: Factory's branch for an issue is this prefix and the issue key. */
  readonly branchPrefix: string;
  /** Where a Factory issue lives on GitHub (the GitHub source's `locate`). */
  readonly locate: (issue: Pick<Issue, 'key' | 'location'>) => { repo: GitHubRepoRef; number: number };
  readonly remote: string;
  /** Base branch; default: the remote's default branch. */
  readonly base?: string;
  readonly shepherdMaxRounds: number;
}

export class GitHubCodeHost implements CodeHost {
  constructor(private readonly options: GitHubCodeHostOptions) {}

  async publish(issue: Issue, outcome: RunOutcome, shepherd?: ShepherdRecord): Promise<PublishedChange> {
    const { repoClient, pusher, writeback, remote } = this.options;
    const { repo, number } = this.options.locate(issue);
    const headSha = await pusher.push(outcome.worktree, remote, outcome.branch);
    const known = shepherd ?? (await writeback.shepherdRecord(repo, number));
    const body = (pull: { number: number; url: string } | undefined): string =>
      renderPullBody(repo, number, issue, outcome, known !== undefined && known.pullNumber === pull?.number ? known : undefined, this.options.shepherdMaxRounds);
    // Find before create: a retry, a restart or a lost answer must never open a second pull request.
    let pull = await this.#openPullOf(repo, outcome.branch);
    if (pull === undefined) {
      const base = this.options.base ?? (await pusher.defaultBranch(outcome.worktree, remote));
      try {
        pull = await repoClient.createDraftPull(repo, { branch: outcome.branch, base, title: issue.title, body: body(undefined) });
      } catch (error) {
        // The create may have landed with its answer lost; a pull request someone else opened there is still refused.
        pull = await this.#openPullOf(repo, outcome.branch).catch((again: unknown) => {
          if (isFactoryError(again, 'FACTORY_GITHUB_BRANCH_TAKEN')) throw again;
          return undefined;
        });
        if (pull === undefined) throw error;
      }
    }
    const wanted = body(pull);
    if (pull.body.trim() !== wanted.trim()) await repoClient.updatePull(repo, pull.number, { body: wanted });
    let draft = pull.draft;
    if (draft && reviewerApproved(outcome)) {
      await repoClient.markReadyForReview(repo, pull);
      draft = false;
    }
    const record: ShepherdRecord =
      known !== undefined && known.pullNumber === pull.number
        ? known
        : { pullNumber: pull.number, pullUrl: pull.url, branch: outcome.branch, rounds: [], escalated: null, lastVerdict: 'opened; waiting for checks', merged: false };
    // Written with the outcome's own status comment write, which follows.
    await writeback.setShepherdRecord(repo, number, record, false);
    return { issueKey: issue.key, number: pull.number, url: pull.url, branch: outcome.branch, headSha, draft };
  }

  async listWatched(): Promise<WatchedChange[]> {
    const watched: WatchedChange[] = [];
    for (const repo of this.options.repos) {
      for (const pull of await this.options.repoClient.listOpenPulls(repo)) {
        const issueNumber = pullMarkerIssue(pull.body);
        if (issueNumber === undefined) continue;
        const issueKey = githubIssueKey(repo, issueNumber);
        if (!(await this.options.identity.ownsPull(pull, formatRepoSlug(repo), branchNameFor(issueKey, this.options.branchPrefix)))) continue;
        watched.push({ change: changeOf(pull, issueKey), issueLocation: githubIssueLocation(repo, issueNumber) });
      }
    }
    return watched;
  }

  async observe(change: PublishedChange): Promise<PullObservation> {
    const { repoClient } = this.options;
    const repo = this.#repoOfChange(change);
    const pull = await repoClient.getPull(repo, change.number);
    if (pull === undefined || pull.state !== 'open') {
      return { number: change.number, state: pull?.merged === true ? 'merged' : 'closed', draft: pull?.draft ?? false, headSha: pull?.headSha ?? change.headSha, checks: [], reviews: [] };
    }
    const [runs, status, reviews] = await Promise.all([repoClient.listCheckRuns(repo, pull.headSha), repoClient.getCombinedStatus(repo, pull.headSha), repoClient.listReviews(repo, pull.number)]);
    const checks: PullCheck[] = [
      ...runs.map((run) => ({
        name: run.name,
        state: checkState(run.status, run.conclusion),
        conclusion: run.conclusion ?? run.status,
        output: [run.summary, run.text].filter((part): part is string => typeof part === 'string' && part.length > 0).join('\n'),
      })),
      ...status.contexts.map((context) => ({
        name: context.context,
        state: checkState(context.state === 'pending' ? 'pending' : context.state, context.state === 'pending' ? null : context.state),
        conclusion: context.state,
        output: context.description ?? '',
      })),
    ];
    return {
      number: pull.number,
      state: 'open',
      draft: pull.draft,
      headSha: pull.headSha,
      checks,
      reviews: await Promise.all(
        reviews.map(async (review) => ({
          id: review.id,
          author: review.author,
          association: review.association,
          byFactory: await this.options.identity.isSelf(review.author),
          state: review.state,
          body: review.body,
          commitId: review.commitId,
          submittedAtMs: review.submittedAtMs,
        })),
      ),
    };
  }

  async merge(change: PublishedChange, method: 'squash' | 'merge' | 'rebase', headSha: string): Promise<void> {
    await this.options.repoClient.mergePull(this.#repoOfChange(change), change.number, method, headSha);
  }

  async loadRecord(issue: Issue): Promise<ShepherdRecord | undefined> {
    const { repo, number } = this.options.locate(issue);
    return this.options.writeback.shepherdRecord(repo, number);
  }

  async saveRecord(issue: Issue, record: ShepherdRecord): Promise<void> {
    const { repo, number } = this.options.locate(issue);
    await this.options.writeback.setShepherdRecord(repo, number, record, true);
  }

  async escalate(issue: Issue, change: PublishedChange, text: string): Promise<void> {
    const { repoClient, writeback } = this.options;
    const { repo, number } = this.options.locate(issue);
    await writeback.setStage(repo, number, 'needsHuman');
    // One escalation comment per pull request: found again by its marker before posting, so a restart does not repeat it.
    const marker = `<!-- factory:escalation pull=${change.number} -->`;
    const comments = await repoClient.listIssueComments(repo, number);
    const posted = await this.options.identity.ownMarkedComments(comments, (body) => body.includes(marker), `${formatRepoSlug(repo)}#${number}`);
    if (posted.length > 0) return;
    await repoClient.createIssueComment(repo, number, `${marker}\n**Factory needs a person** for ${change.url}.\n\n${text}`);
  }

  /** The open pull request from `branch`, when Factory opened it; one someone else opened there is refused, never adopted. */
  async #openPullOf(repo: GitHubRepoRef, branch: string): Promise<PullSummary | undefined> {
    const pull = await this.options.repoClient.findOpenPullByHead(repo, branch);
    if (pull === undefined) return undefined;
    const problem = await this.options.identity.pullProblem(pull, formatRepoSlug(repo), branch);
    if (problem === undefined) return pull;
    throw new FactoryError('FACTORY_GITHUB_BRANCH_TAKEN', `${formatRepoSlug(repo)}#${pull.number} is open from Factory's branch ${branch}, but ${problem}`, {
      details: { pull: pull.number, author: pull.author ?? 'ghost', branch },
    });
  }

  #repoOfChange(change: PublishedChange): GitHubRepoRef {
    return this.options.locate({ key: change.issueKey, location: change.issueKey }).repo;
  }
}

/** Marks issue stages with the lifecycle labels, one call at a time per issue, in the order they were made. */
export class GitHubIssueProgress implements IssueProgress {
  readonly #chains = new Map<string, Promise<void>>();

  constructor(
    private readonly writeback: GitHubIssueWriteback,
    private readonly locate: (issue: Pick<Issue, 'key' | 'location'>) => { repo: GitHubRepoRef; number: number },
  ) {}

  markStage(issue: Issue, stage: IssueStage): Promise<void> {
    const { repo, number } = this.locate(issue);
    const previous = this.#chains.get(issue.key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.writeback.setStage(repo, number, lifecycleStageOf(stage)));
    this.#chains.set(issue.key, next);
    void next
      .finally(() => {
        if (this.#chains.get(issue.key) === next) this.#chains.delete(issue.key);
      })
      .catch(() => undefined);
    return next;
  }
}

function changeOf(pull: PullSummary, issueKey: string): PublishedChange {
  return { issueKey, number: pull.number, url: pull.url, branch: pull.headRef, headSha: pull.headSha, draft: pull.draft };
}

/** The issue number a pull request's marker names; the key beside it is derived again from the number, never taken from the body. */
function pullMarkerIssue(body: string): number | undefined {
  const match = new RegExp(`<!-- ${PULL_MARKER} issue=(\\d+) key=([A-Za-z0-9._-]+) -->`).exec(body);
  const number = match === null ? undefined : Number(match[1]);
  return number !== undefined && Number.isSafeInteger(number) && number >= 1 ? number : undefined;
}

/** Whether the run's last review verdict was an approval (a team without a review stage never approves). */
export function reviewerApproved(outcome: RunOutcome): boolean {
  const verdicts = (outcome.reviewRounds ?? []).filter((entry) => entry.verdict !== undefined);
  return verdicts.at(-1)?.verdict === 'approve';
}

/** The pull request's description: what it closes, the run's outcome, the rounds so far. No host paths. */
export function renderPullBody(repo: GitHubRepoRef, number: number, issue: Issue, outcome: RunOutcome, record: ShepherdRecord | undefined, maxRounds: number): string {
  const lines = [
    `Closes ${formatRepoSlug(repo)}#${number}`,
    '',
    `Factory's team worked on **${issue.title.replace(/\n/g, ' ')}** on branch \`${outcome.branch}\`.`,
    '',
    '### Outcome',
    '',
    `- **Outcome:** ${outcome.reason}`,
    `- **Detail:** ${outcome.detail.split('\n')[0] ?? ''}`,
    `- **Attempt:** ${outcome.attempt}`,
    `- **Run:** \`${outcome.runId}\``,
    `- **Agents:** ${outcome.agents.map((agent) => `${agent.role} ${agent.reason}`).join(', ') || 'none'}`,
  ];
  const reviews = (outcome.reviewRounds ?? []).filter((entry) => entry.verdict !== undefined);
  if (reviews.length > 0) lines.push(`- **Review:** ${reviews.map((entry) => `round ${entry.round} ${entry.verdict}${entry.commentsSummary ? ` (${entry.commentsSummary})` : ''}`).join('; ')}`);
  if (record !== undefined && record.rounds.length > 0) lines.push('', '### Shepherd', '', renderShepherdSection(record, maxRounds));
  lines.push('', `<!-- ${PULL_MARKER} issue=${number} key=${issue.key} -->`);
  return `${lines.join('\n')}\n`;
}
