import { FactoryError, isFactoryError } from '../../errors.js';
import type { GitHubLog } from './github-client.js';
import type { GitHubRepoClient, IssueComment, PullSummary } from './github-repo-client.js';

/**
 * Who Factory is on GitHub, and the trust rule that follows from it. Factory
 * finds its own things again by hidden markers (the status comment with the
 * shepherd's record, the escalation comment, the pull request marker), and
 * anyone who may comment on an issue or open a pull request can paste those.
 * So a marker counts only where Factory's own login wrote it, and a pull
 * request only when it is also on Factory's branch for its issue in the
 * repository itself (not a fork). Anything else carrying a marker is skipped
 * with a warning naming its id and author, never its body.
 *
 * The login is learned once: a token's from `GET /user`, a GitHub App's is
 * `<slug>[bot]` from `GET /app` (signed with the App's JWT), or it is named by
 * `source.github.identity`. GitHub compares logins case-insensitively.
 */

export interface GitHubIdentityOptions {
  readonly credentialKind: 'token' | 'app';
  readonly repoClient: Pick<GitHubRepoClient, 'authenticatedLogin' | 'appSlug'>;
  readonly log: GitHubLog;
  /** `source.github.identity`: the login, named instead of learned. */
  readonly configured?: string;
}

export class GitHubIdentity {
  #login: Promise<string> | undefined;

  constructor(private readonly options: GitHubIdentityOptions) {}

  /** Factory's login. Learned on the first call; a failed attempt is not kept, so the next call tries again. */
  login(): Promise<string> {
    this.#login ??= this.#learn().catch((error: unknown) => {
      this.#login = undefined;
      throw error;
    });
    return this.#login;
  }

  /** The comments carrying a marker that Factory wrote; each one carrying it that someone else wrote is logged and left out. */
  async ownMarkedComments(comments: readonly IssueComment[], isMarked: (body: string) => boolean, issue: string): Promise<IssueComment[]> {
    const login = await this.login();
    const own: IssueComment[] = [];
    for (const comment of comments) {
      if (!isMarked(comment.body)) continue;
      if (sameLogin(comment.author, login)) own.push(comment);
      else this.options.log.warn({ issue, comment: comment.id, author: comment.author ?? 'ghost', factory: login }, "ignored a comment carrying Factory's marker: Factory did not write it");
    }
    return own;
  }

  /** Why `pull` is not Factory's pull request for `branch` in `repo` (`owner/name`), or undefined when it is. */
  async pullProblem(pull: PullSummary, repo: string, branch: string): Promise<string | undefined> {
    const login = await this.login();
    if (!sameLogin(pull.author, login)) return `it was opened by ${pull.author ?? 'a deleted account'}, not by ${login}`;
    if (pull.headRepo?.toLowerCase() !== repo.toLowerCase()) return `its head is in ${pull.headRepo ?? 'a deleted repository'}, not in ${repo}`;
    if (pull.headRef !== branch) return `its head branch is not ${branch}`;
    return undefined;
  }

  /** Whether `author` is Factory's own login (its reviews never count as a person's). */
  async isSelf(author: string | undefined): Promise<boolean> {
    return sameLogin(author, await this.login());
  }

  /** Whether `pull` is Factory's for `branch` in `repo`; one that is not is logged (id, author, reason). */
  async ownsPull(pull: PullSummary, repo: string, branch: string): Promise<boolean> {
    const problem = await this.pullProblem(pull, repo, branch);
    if (problem === undefined) return true;
    this.options.log.warn({ repo, pull: pull.number, author: pull.author ?? 'ghost', reason: problem }, "ignored a pull request carrying Factory's marker");
    return false;
  }

  async #learn(): Promise<string> {
    const { configured, credentialKind, repoClient } = this.options;
    if (configured !== undefined) return configured;
    const request = credentialKind === 'token' ? 'GET /user' : 'GET /app';
    let reason: string;
    try {
      if (credentialKind === 'token') return await repoClient.authenticatedLogin();
      const slug = await repoClient.appSlug();
      if (slug !== undefined && slug.length > 0) return `${slug}[bot]`;
      reason = 'GitHub named no slug for the App';
    } catch (error) {
      // A refused credential is the credential's problem, with its own code and hint.
      if (isFactoryError(error, 'FACTORY_GITHUB_AUTH_FAILED')) throw error;
      reason = (error as Error).message;
    }
    throw new FactoryError('FACTORY_GITHUB_IDENTITY_UNKNOWN', `could not learn the GitHub login Factory writes as (${request}): ${reason}`, {
      hint:
        credentialKind === 'token'
          ? 'Check that the token may read GET /user, or set source.github.identity to the login the token belongs to.'
          : 'Check the App id and private key (GET /app is signed with its JWT), or set source.github.identity to "<app-slug>[bot]".',
      details: { request },
    });
  }
}

function sameLogin(author: string | undefined, login: string): boolean {
  return author !== undefined && author.toLowerCase() === login.toLowerCase();
}
