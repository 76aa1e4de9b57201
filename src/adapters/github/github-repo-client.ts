import type { GitHubIssueRecord, GitHubRepoRef } from '../../domain/github-issue.js';
import type { GitHubClient } from './github-client.js';

/**
 * The GitHub calls Factory makes, one method each, with errors already turned
 * into redacted FactoryErrors. The issue source and the writeback use the issue
 * calls; publishing and the shepherd use the pull, check, status and review
 * calls, so they all share one client, one rate budget and one error rule.
 */

export interface IssuePage {
  readonly issues: readonly GitHubIssueRecord[];
  /** Entity tag of the first page, for the next conditional request. */
  readonly etag: string | undefined;
}

export type ConditionalResult<T> = { readonly notModified: true } | ({ readonly notModified: false } & T);

export interface IssueComment {
  readonly id: number;
  readonly body: string;
  readonly createdAtMs: number;
  /** Login of the comment's author; undefined for a deleted account ("ghost"). */
  readonly author: string | undefined;
}

export interface PullSummary {
  readonly number: number;
  readonly url: string;
  readonly headRef: string;
  readonly headSha: string;
  readonly draft: boolean;
  readonly state: string;
  /** GraphQL id, for the calls REST does not have (ready for review). */
  readonly nodeId: string;
  readonly body: string;
  readonly merged: boolean;
  /** Login of whoever opened it; undefined for a deleted account. */
  readonly author: string | undefined;
  /** `owner/name` of the repository the head branch lives in (a fork's, for a pull request from a fork); undefined when that repository is gone. */
  readonly headRepo: string | undefined;
}

export interface CheckRunSummary {
  readonly name: string;
  readonly status: string;
  readonly conclusion: string | null;
  readonly summary: string | null;
  /** The check's detailed output (GitHub Actions puts the failing step's log excerpt here when asked to). */
  readonly text: string | null;
}

export interface ReviewSummary {
  readonly id: number;
  readonly state: string;
  readonly body: string;
  readonly commitId: string;
  readonly author: string;
  /** GitHub's `author_association` (`OWNER`, `MEMBER`, `COLLABORATOR`, `NONE`...). */
  readonly association: string;
  readonly submittedAtMs: number;
}

interface PullShape {
  number: number;
  html_url: string;
  head: { ref: string; sha: string; repo?: { full_name: string } | null };
  draft?: boolean;
  state: string;
  node_id: string;
  body: string | null;
  merged_at: string | null;
  merged?: boolean;
  user?: { login: string } | null;
}

function pullSummary(pull: PullShape): PullSummary {
  return {
    number: pull.number,
    url: pull.html_url,
    headRef: pull.head.ref,
    headSha: pull.head.sha,
    draft: pull.draft === true,
    state: pull.state,
    nodeId: pull.node_id,
    body: pull.body ?? '',
    merged: pull.merged === true || pull.merged_at !== null,
    author: pull.user?.login,
    headRepo: pull.head.repo?.full_name,
  };
}

const PER_PAGE = 100;

export class GitHubRepoClient {
  constructor(private readonly client: GitHubClient) {}

  /**
   * Every open issue (pull requests included, as GitHub lists them), oldest
   * first, and GitHub's clock at the listing (its `Date` header), so a `since`
   * cursor never depends on this host's clock.
   */
  async listOpenIssues(repo: GitHubRepoRef): Promise<{ issues: GitHubIssueRecord[]; serverTimeMs: number }> {
    const { octokit } = this.client;
    return this.#call(`list the open issues of ${slug(repo)}`, async () => {
      const issues: GitHubIssueRecord[] = [];
      let serverTimeMs: number | undefined;
      for await (const page of octokit.paginate.iterator(octokit.rest.issues.listForRepo, {
        owner: repo.owner,
        repo: repo.name,
        state: 'open',
        sort: 'created',
        direction: 'asc',
        per_page: PER_PAGE,
      })) {
        serverTimeMs ??= Date.parse(page.headers.date ?? '');
        issues.push(...page.data);
      }
      return { issues, serverTimeMs: Number.isFinite(serverTimeMs) ? (serverTimeMs as number) : Date.now() };
    });
  }

  /**
   * Issues of any state updated at or after `since`, oldest update first, as a
   * conditional request: `etag` from the last answer makes an unchanged answer
   * a free 304. Only the first page is conditional; later pages exist only when
   * more than 100 issues changed.
   */
  async listIssuesUpdatedSince(repo: GitHubRepoRef, since: string, etag: string | undefined): Promise<ConditionalResult<IssuePage>> {
    const { octokit } = this.client;
    const parameters = { owner: repo.owner, repo: repo.name, state: 'all' as const, since, sort: 'updated' as const, direction: 'asc' as const, per_page: PER_PAGE };
    return this.#call(`list the issues of ${slug(repo)} updated since ${since}`, async () => {
      let first;
      try {
        first = await octokit.rest.issues.listForRepo({ ...parameters, headers: etag === undefined ? {} : { 'if-none-match': etag } });
      } catch (error) {
        if ((error as { status?: number }).status === 304) return { notModified: true as const };
        throw error;
      }
      const issues: GitHubIssueRecord[] = [...first.data];
      if (/rel="next"/.test(first.headers.link ?? '')) {
        for await (const page of octokit.paginate.iterator(octokit.rest.issues.listForRepo, { ...parameters, page: 2 })) issues.push(...page.data);
      }
      return { notModified: false as const, issues, etag: first.headers.etag };
    });
  }

  async getIssue(repo: GitHubRepoRef, number: number): Promise<GitHubIssueRecord | undefined> {
    return this.#call(`read ${slug(repo)}#${number}`, async () => {
      try {
        return (await this.client.octokit.rest.issues.get({ owner: repo.owner, repo: repo.name, issue_number: number })).data;
      } catch (error) {
        if ((error as { status?: number }).status === 404 || (error as { status?: number }).status === 410) return undefined;
        throw error;
      }
    });
  }

  async listIssueLabels(repo: GitHubRepoRef, number: number): Promise<string[]> {
    return this.#call(`read the labels of ${slug(repo)}#${number}`, async () => {
      const labels = await this.client.octokit.paginate(this.client.octokit.rest.issues.listLabelsOnIssue, { owner: repo.owner, repo: repo.name, issue_number: number, per_page: PER_PAGE });
      return labels.map((label) => label.name);
    });
  }

  async addIssueLabels(repo: GitHubRepoRef, number: number, labels: readonly string[]): Promise<void> {
    await this.#call(`label ${slug(repo)}#${number} ${labels.join(', ')}`, () =>
      this.client.octokit.rest.issues.addLabels({ owner: repo.owner, repo: repo.name, issue_number: number, labels: [...labels] }),
    );
  }

  /** Removes a label; one that is not on the issue (GitHub's 404) is already removed. */
  async removeIssueLabel(repo: GitHubRepoRef, number: number, label: string): Promise<void> {
    await this.#call(`remove label ${label} from ${slug(repo)}#${number}`, async () => {
      try {
        await this.client.octokit.rest.issues.removeLabel({ owner: repo.owner, repo: repo.name, issue_number: number, name: label });
      } catch (error) {
        if ((error as { status?: number }).status !== 404) throw error;
      }
    });
  }

  /** Creates a repository label; one that exists already (GitHub's 422 already_exists) is left as it is. */
  async ensureLabel(repo: GitHubRepoRef, name: string, color: string, description: string): Promise<void> {
    await this.#call(`create label ${name} in ${slug(repo)}`, async () => {
      try {
        await this.client.octokit.rest.issues.createLabel({ owner: repo.owner, repo: repo.name, name, color, description });
      } catch (error) {
        const errors = (error as { status?: number; response?: { data?: { errors?: { code?: string }[] } } }).response?.data?.errors ?? [];
        if (!((error as { status?: number }).status === 422 && errors.some((entry) => entry.code === 'already_exists'))) throw error;
      }
    });
  }

  async listIssueComments(repo: GitHubRepoRef, number: number): Promise<IssueComment[]> {
    return this.#call(`list the comments of ${slug(repo)}#${number}`, async () => {
      const comments = await this.client.octokit.paginate(this.client.octokit.rest.issues.listComments, { owner: repo.owner, repo: repo.name, issue_number: number, per_page: PER_PAGE });
      return comments.map((comment) => ({ id: comment.id, body: comment.body ?? '', createdAtMs: Date.parse(comment.created_at), author: comment.user?.login }));
    });
  }

  /**
   * Creates a comment, without automatic retries: a create whose answer was
   * lost may have landed, and only the caller can check before trying again.
   */
  async createIssueComment(repo: GitHubRepoRef, number: number, body: string): Promise<number> {
    return this.#call(`comment on ${slug(repo)}#${number}`, async () => {
      const response = await this.client.octokit.rest.issues.createComment({ owner: repo.owner, repo: repo.name, issue_number: number, body, request: { retries: 0 } });
      return response.data.id;
    });
  }

  /** Edits a comment; false when it is gone (deleted by someone). */
  async updateIssueComment(repo: GitHubRepoRef, commentId: number, body: string): Promise<boolean> {
    return this.#call(`edit comment ${commentId} in ${slug(repo)}`, async () => {
      try {
        await this.client.octokit.rest.issues.updateComment({ owner: repo.owner, repo: repo.name, comment_id: commentId, body });
        return true;
      } catch (error) {
        if ((error as { status?: number }).status === 404) return false;
        throw error;
      }
    });
  }

  async deleteIssueComment(repo: GitHubRepoRef, commentId: number): Promise<void> {
    await this.#call(`delete comment ${commentId} in ${slug(repo)}`, async () => {
      try {
        await this.client.octokit.rest.issues.deleteComment({ owner: repo.owner, repo: repo.name, comment_id: commentId });
      } catch (error) {
        if ((error as { status?: number }).status !== 404) throw error;
      }
    });
  }

  // ---- who Factory is on GitHub ----

  /** The login a token belongs to (`GET /user`). */
  async authenticatedLogin(): Promise<string> {
    return this.#call('read the login of the token (GET /user)', async () => (await this.client.octokit.rest.users.getAuthenticated()).data.login);
  }

  /** The App's slug (`GET /app`, which Octokit's App auth signs with the App's JWT); undefined when GitHub names none. */
  async appSlug(): Promise<string | undefined> {
    return this.#call('read the GitHub App (GET /app)', async () => (await this.client.octokit.rest.apps.getAuthenticated()).data?.slug);
  }

  // ---- for publishing and the shepherd ----

  /** The open pull request whose head is `branch` in this repository, if any: find before create, so a retry never opens a second. */
  async findOpenPullByHead(repo: GitHubRepoRef, branch: string): Promise<PullSummary | undefined> {
    return this.#call(`find the pull request for ${branch} in ${slug(repo)}`, async () => {
      const pulls = await this.client.octokit.rest.pulls.list({ owner: repo.owner, repo: repo.name, state: 'open', head: `${repo.owner}:${branch}`, per_page: PER_PAGE });
      const pull = pulls.data[0];
      return pull === undefined ? undefined : pullSummary(pull);
    });
  }

  /** Opens a draft pull request, without automatic retries (see createIssueComment). */
  async createDraftPull(repo: GitHubRepoRef, fields: { branch: string; base: string; title: string; body: string }): Promise<PullSummary> {
    return this.#call(`open a pull request for ${fields.branch} in ${slug(repo)}`, async () => {
      const { data } = await this.client.octokit.rest.pulls.create({
        owner: repo.owner,
        repo: repo.name,
        head: fields.branch,
        base: fields.base,
        title: fields.title,
        body: fields.body,
        draft: true,
        request: { retries: 0 },
      });
      return pullSummary(data);
    });
  }

  async updatePull(repo: GitHubRepoRef, number: number, fields: { title?: string; body?: string }): Promise<void> {
    await this.#call(`update pull request ${slug(repo)}#${number}`, () => this.client.octokit.rest.pulls.update({ owner: repo.owner, repo: repo.name, pull_number: number, ...fields }));
  }

  async listCheckRuns(repo: GitHubRepoRef, sha: string): Promise<CheckRunSummary[]> {
    return this.#call(`list the check runs of ${sha} in ${slug(repo)}`, async () => {
      const { data } = await this.client.octokit.rest.checks.listForRef({ owner: repo.owner, repo: repo.name, ref: sha, per_page: PER_PAGE });
      return data.check_runs.map((run) => ({ name: run.name, status: run.status, conclusion: run.conclusion, summary: run.output.summary ?? null, text: run.output.text ?? null }));
    });
  }

  async getCombinedStatus(repo: GitHubRepoRef, sha: string): Promise<{ state: string; contexts: { context: string; state: string; description: string | null }[] }> {
    return this.#call(`read the commit status of ${sha} in ${slug(repo)}`, async () => {
      const { data } = await this.client.octokit.rest.repos.getCombinedStatusForRef({ owner: repo.owner, repo: repo.name, ref: sha });
      return { state: data.state, contexts: data.statuses.map((status) => ({ context: status.context, state: status.state, description: status.description })) };
    });
  }

  async listReviews(repo: GitHubRepoRef, pullNumber: number): Promise<ReviewSummary[]> {
    return this.#call(`list the reviews of ${slug(repo)}#${pullNumber}`, async () => {
      const reviews = await this.client.octokit.paginate(this.client.octokit.rest.pulls.listReviews, { owner: repo.owner, repo: repo.name, pull_number: pullNumber, per_page: PER_PAGE });
      return reviews.map((review) => ({
        id: review.id,
        state: review.state,
        body: review.body,
        commitId: review.commit_id ?? '',
        author: review.user?.login ?? 'unknown',
        association: review.author_association,
        submittedAtMs: review.submitted_at === undefined ? 0 : Date.parse(review.submitted_at),
      }));
    });
  }

  async getPull(repo: GitHubRepoRef, number: number): Promise<PullSummary | undefined> {
    return this.#call(`read pull request ${slug(repo)}#${number}`, async () => {
      try {
        return pullSummary((await this.client.octokit.rest.pulls.get({ owner: repo.owner, repo: repo.name, pull_number: number })).data);
      } catch (error) {
        if ((error as { status?: number }).status === 404) return undefined;
        throw error;
      }
    });
  }

  async listOpenPulls(repo: GitHubRepoRef): Promise<PullSummary[]> {
    return this.#call(`list the open pull requests of ${slug(repo)}`, async () => {
      const pulls = await this.client.octokit.paginate(this.client.octokit.rest.pulls.list, { owner: repo.owner, repo: repo.name, state: 'open', per_page: PER_PAGE });
      return pulls.map(pullSummary);
    });
  }

  /** REST cannot take a pull request out of draft; GraphQL's markPullRequestReadyForReview can. */
  async markReadyForReview(repo: GitHubRepoRef, pull: PullSummary): Promise<void> {
    await this.#call(`mark ${slug(repo)}#${pull.number} ready for review`, () =>
      this.client.octokit.graphql(`mutation($id: ID!) { markPullRequestReadyForReview(input: { pullRequestId: $id }) { pullRequest { isDraft } } }`, { id: pull.nodeId }),
    );
  }

  /** Merges only if the head is still `sha` (GitHub answers 409 otherwise), so a newer push is never merged unseen. */
  async mergePull(repo: GitHubRepoRef, number: number, method: 'squash' | 'merge' | 'rebase', sha: string): Promise<void> {
    await this.#call(`merge ${slug(repo)}#${number}`, () => this.client.octokit.rest.pulls.merge({ owner: repo.owner, repo: repo.name, pull_number: number, merge_method: method, sha }));
  }

  async #call<T>(what: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw this.client.toError(error, what);
    }
  }
}

function slug(repo: GitHubRepoRef): string {
  return `${repo.owner}/${repo.name}`;
}
