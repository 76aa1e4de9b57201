import { createHash, createHmac, createVerify, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  checkRunObject,
  commentObject,
  integrationObject,
  issueObject,
  labelObject,
  minimalRepositoryObject,
  pullObject,
  privateUserObject,
  pullSimpleObject,
  reviewObject,
  simpleStatusObject,
  type AuthorAssociation,
  type FakeCheckRun,
  type FakeComment,
  type FakeIssue,
  type FakeLabel,
  type FakePull,
  type FakeRepoIdentity,
  type FakeReview,
  type FakeStatus,
  type FakeUser,
} from './github-objects.js';
import { assertResponseMatchesOpenApi, OpenApiViolation } from './openapi-validator.js';

/**
 * A stateful fake of the GitHub REST API on 127.0.0.1, for offline tests:
 * issues (pull requests among them, as GitHub lists them), labels, comments,
 * pulls, check runs, statuses, reviews, rate-limit headers, ETags with 304s,
 * injectable secondary limits, primary-limit exhaustion and 5xx bursts, and
 * webhook deliveries signed as GitHub signs them. Every body it sends is checked
 * against GitHub's OpenAPI description; a violation answers 500, is recorded,
 * and makes `close()` throw, so the test that caused it fails.
 *
 * GraphQL: only `markPullRequestReadyForReview` (REST has no way out of draft),
 * checked against its published signature by hand (the OpenAPI description
 * does not cover GraphQL). A repo can be backed by a real bare git repository
 * (`attachGitRemote`): pull request heads are then what was really pushed.
 * Each token belongs to a user (`factory-bot` unless `login` says otherwise;
 * an App's installation tokens to `<slug>[bot]`), served by `GET /user` and
 * `GET /app`, and what a request creates is authored by that user; `commentAs`
 * and `openPullAs` act as someone else, a fork included.
 * Not built: other GraphQL, git data endpoints.
 */

export interface FakeGitHubOptions {
  /** Tokens the API accepts (`Authorization: token X` or `Bearer X`). Default: `['fake-token']`. */
  readonly tokens?: readonly string[];
  /** Requests per hour per token; default 5000, as for a personal token. */
  readonly rateLimit?: number;
  /** Login of the user the tokens belong to; default `factory-bot`. */
  readonly login?: string;
  /** A GitHub App the fake trusts: JWTs it signs with this key may mint installation tokens. Its slug defaults to `factory-app`. */
  readonly app?: { readonly appId: number; readonly publicKeyPem: string; readonly installationId: number; readonly slug?: string };
}

export interface RecordedRequest {
  readonly method: string;
  /** The OpenAPI route template, e.g. `/repos/{owner}/{repo}/issues`, or the raw path when unmatched. */
  readonly route: string;
  readonly url: string;
  readonly status: number;
  /** False for 304s, which GitHub does not count against the rate limit. */
  readonly counted: boolean;
  readonly atMs: number;
  /** The token the request authenticated with, so a test can prove what was sent where. */
  readonly token: string | undefined;
}

interface FakeRepo {
  readonly identity: FakeRepoIdentity;
  readonly fullName: string;
  readonly labels: FakeLabel[];
  readonly issues: Map<number, FakeIssue>;
  readonly comments: FakeComment[];
  readonly pulls: Map<number, FakePull>;
  readonly checkRuns: FakeCheckRun[];
  readonly statuses: FakeStatus[];
  readonly reviews: FakeReview[];
  nextNumber: number;
  /** Set: every request for this repo answers this status, as for a repo the token cannot see. */
  deniedWith: number | undefined;
  /** A bare git repository standing in for the repo's git side: pushes land there. */
  gitDir: string | undefined;
}

interface InjectedFault {
  remaining: number;
  readonly status: number;
  readonly match: ((method: string, route: string) => boolean) | undefined;
  /** Apply the request (a write lands), then answer the error: a lost response. */
  readonly afterApplying: boolean;
  readonly retryAfterSeconds: number | undefined;
}

interface RateBucket {
  used: number;
  resetEpochSeconds: number;
}

interface Reply {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

type Handler = (request: ParsedRequest) => Reply | Promise<Reply>;

interface ParsedRequest {
  readonly method: string;
  readonly params: Record<string, string>;
  readonly query: URLSearchParams;
  readonly body: Record<string, unknown>;
  readonly token: string | undefined;
  readonly url: URL;
}

interface Route {
  readonly method: string;
  readonly template: string;
  readonly pattern: RegExp;
  readonly names: string[];
  readonly handler: Handler;
}

/** Who leaves a review: a login and how it relates to the repository. */
export interface FakeReviewer {
  readonly login: string;
  readonly association: AuthorAssociation;
}

const DOCS = 'https://docs.github.com/rest';
const BOT: FakeUser = { login: 'factory-bot', id: 9001, type: 'Bot' };
const HUMAN: FakeUser = { login: 'octo-human', id: 42, type: 'User' };

function iso(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function error(status: number, message: string, headers?: Record<string, string>): Reply {
  return { status, body: { message, documentation_url: DOCS }, ...(headers === undefined ? {} : { headers }) };
}

export class FakeGitHub {
  readonly requests: RecordedRequest[] = [];
  readonly violations: OpenApiViolation[] = [];
  readonly #server: Server;
  readonly #tokens: Set<string>;
  readonly #rateLimit: number;
  readonly #app: FakeGitHubOptions['app'];
  /** Who each token acts as: the configured tokens' user, or the App's bot for an installation token. */
  readonly #tokenUsers = new Map<string, FakeUser>();
  readonly #tokenUser: FakeUser;
  readonly #installationTokens = new Set<string>();
  readonly #startedAt = iso(Date.now());
  readonly #repos = new Map<string, FakeRepo>();
  readonly #routes: Route[] = [];
  readonly #buckets = new Map<string, RateBucket>();
  #faults: InjectedFault[] = [];
  #corruptNext: ((body: unknown) => unknown) | undefined;
  #stalls: { remaining: number; delayMs: number }[] = [];
  #nextId = 1000;
  #baseUrl = '';
  /** Real time, shifted by `advanceTime`; GitHub timestamps have second resolution. */
  #timeOffsetMs = 0;

  private constructor(options: FakeGitHubOptions) {
    this.#tokens = new Set(options.tokens ?? ['fake-token']);
    this.#rateLimit = options.rateLimit ?? 5000;
    this.#app = options.app;
    this.#tokenUser = options.login === undefined ? BOT : { login: options.login, id: BOT.id, type: 'User' };
    for (const token of this.#tokens) this.#tokenUsers.set(token, this.#tokenUser);
    this.#server = createServer((req, res) => void this.#serve(req, res));
    this.#defineRoutes();
  }

  static async start(options: FakeGitHubOptions = {}): Promise<FakeGitHub> {
    const fake = new FakeGitHub(options);
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve));
    fake.#baseUrl = `http://127.0.0.1:${(fake.#server.address() as AddressInfo).port}`;
    return fake;
  }

  /** The API base URL (what `apiUrl` points at for GitHub Enterprise). */
  get url(): string {
    return this.#baseUrl;
  }

  /** Requests GitHub would count against the rate limit (304s are free). */
  get countedRequests(): number {
    return this.requests.filter((request) => request.counted).length;
  }

  now(): number {
    return Date.now() + this.#timeOffsetMs;
  }

  /** Moves the fake's notion of time (timestamps, rate-limit resets) forward. */
  advanceTime(ms: number): void {
    this.#timeOffsetMs += ms;
  }

  /** Throws the first response that broke GitHub's OpenAPI description, if any, and stops the server. */
  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const [firstViolation] = this.violations;
    if (firstViolation !== undefined) throw firstViolation;
  }

  // ---- state, as people and CI would change it on github.com ----

  createRepo(fullName: string): void {
    const [owner, name] = fullName.split('/');
    if (owner === undefined || name === undefined) throw new TypeError(`createRepo: expected owner/name, got ${fullName}`);
    this.#repos.set(fullName.toLowerCase(), {
      identity: { owner: { login: owner, id: this.#id(), type: 'Organization' }, name, id: this.#id(), createdAt: iso(this.now()) },
      fullName,
      labels: [],
      issues: new Map(),
      comments: [],
      pulls: new Map(),
      checkRuns: [],
      statuses: [],
      reviews: [],
      nextNumber: 1,
      deniedWith: undefined,
      gitDir: undefined,
    });
  }

  /** Backs the repo with a bare git repository: a pull request's head is that repository's branch, and opening one needs the branch pushed. */
  attachGitRemote(fullName: string, bareGitDir: string): void {
    this.#repo(fullName).gitDir = bareGitDir;
  }

  /** Every request about `fullName` answers `status` (404 as for a repo the token cannot see); undefined restores it. */
  denyRepo(fullName: string, status: number | undefined): void {
    this.#repo(fullName).deniedWith = status;
  }

  createIssue(fullName: string, fields: { title: string; body?: string | null; labels?: readonly string[] }): number {
    const repo = this.#repo(fullName);
    const number = repo.nextNumber++;
    const at = iso(this.now());
    repo.issues.set(number, {
      id: this.#id(),
      number,
      title: fields.title,
      body: fields.body ?? null,
      state: 'open',
      labelIds: (fields.labels ?? []).map((name) => this.#ensureLabel(repo, name).id),
      user: HUMAN,
      createdAt: at,
      updatedAt: at,
      closedAt: null,
      comments: 0,
      pullRequest: false,
    });
    return number;
  }

  /** Edits an issue as a person would; any change moves `updated_at`. */
  updateIssue(fullName: string, number: number, fields: { title?: string; body?: string | null; labels?: readonly string[]; state?: 'open' | 'closed' }): void {
    const repo = this.#repo(fullName);
    const issue = this.#issue(repo, number);
    if (issue === undefined) throw new Error(`updateIssue: no issue ${fullName}#${number}`);
    this.#applyIssueEdit(repo, issue, fields);
  }

  issue(fullName: string, number: number): { title: string; state: string; labels: string[]; updatedAt: string } {
    const repo = this.#repo(fullName);
    const issue = this.#issue(repo, number);
    if (issue === undefined) throw new Error(`no issue ${fullName}#${number}`);
    return { title: issue.title, state: issue.state, labels: this.#labelsOf(repo, issue).map((label) => label.name), updatedAt: issue.updatedAt };
  }

  comments(fullName: string, number: number): { id: number; body: string; author: string }[] {
    return this.#repo(fullName)
      .comments.filter((comment) => comment.issueNumber === number)
      .map(({ id, body, user }) => ({ id, body, author: user.login }));
  }

  /** A comment written by `login` (someone other than the token's user), as a person would leave it. */
  commentAs(fullName: string, number: number, login: string, body: string): number {
    const repo = this.#repo(fullName);
    const issue = this.#issue(repo, number);
    if (issue === undefined) throw new Error(`commentAs: no issue ${fullName}#${number}`);
    const at = iso(this.now());
    const comment: FakeComment = { id: this.#id(), issueNumber: number, body, user: { login, id: this.#id(), type: 'User' }, createdAt: at, updatedAt: at };
    repo.comments.push(comment);
    issue.comments++;
    this.#touch(issue);
    return comment.id;
  }

  /**
   * A pull request opened by `login` from `head`: in the repository itself, or
   * with `fromFork` from `login`'s fork of it (head `login:head`).
   */
  openPullAs(fullName: string, fields: { login: string; head: string; body: string; title?: string; fromFork?: boolean; base?: string }): number {
    const repo = this.#repo(fullName);
    const user: FakeUser = { login: fields.login, id: this.#id(), type: 'User' };
    const at = iso(this.now());
    const number = repo.nextNumber++;
    const forkRepo: FakeRepoIdentity | undefined = fields.fromFork === true ? { owner: user, name: repo.identity.name, id: this.#id(), createdAt: at } : undefined;
    const pull: FakePull = {
      number,
      id: this.#id(),
      title: fields.title ?? 'A change',
      body: fields.body,
      state: 'open',
      draft: false,
      head: {
        ref: fields.head,
        sha: createHash('sha1').update(`${fields.login}:${fields.head}@${at}`).digest('hex'),
        owner: forkRepo === undefined ? repo.identity.owner.login : fields.login,
        ...(forkRepo === undefined ? {} : { repo: forkRepo }),
      },
      base: { ref: fields.base ?? 'main' },
      user,
      createdAt: at,
      updatedAt: at,
    };
    repo.pulls.set(number, pull);
    repo.issues.set(number, {
      id: this.#id(),
      number,
      title: pull.title,
      body: pull.body,
      state: 'open',
      labelIds: [],
      user,
      createdAt: at,
      updatedAt: at,
      closedAt: null,
      comments: 0,
      pullRequest: true,
    });
    return number;
  }

  pulls(fullName: string): { number: number; head: string; headSha: string; draft: boolean; state: string; merged: boolean; title: string; body: string | null; author: string }[] {
    const repo = this.#repo(fullName);
    return [...repo.pulls.values()].map((pull) => {
      this.#syncHead(repo, pull);
      return {
        number: pull.number,
        head: pull.head.ref,
        headSha: pull.head.sha,
        draft: pull.draft,
        state: pull.state,
        merged: typeof pull.mergedAt === 'string',
        title: pull.title,
        body: pull.body,
        author: pull.user.login,
      };
    });
  }

  /** Every merge the fake performed, with the method asked for and the head it merged. */
  readonly merges: { fullName: string; number: number; method: string; sha: string }[] = [];

  /**
   * A review as a person would leave it on the pull request's current head (or on `commitId`);
   * by octo-human, a MEMBER, unless `by` names another login and its `author_association`.
   */
  review(fullName: string, pullNumber: number, state: FakeReview['state'], body: string, options: { commitId?: string; by?: FakeReviewer } = {}): void {
    const repo = this.#repo(fullName);
    const pull = repo.pulls.get(pullNumber);
    if (pull === undefined) throw new Error(`no pull ${fullName}#${pullNumber}`);
    this.#syncHead(repo, pull);
    this.addReview(fullName, { pullNumber, state, body, commitId: options.commitId ?? pull.head.sha, ...(options.by ? { by: options.by } : {}) });
  }

  /** The head commit of a branch in the attached bare repository, or undefined when the branch was not pushed. */
  #branchSha(repo: FakeRepo, ref: string): string | undefined {
    if (repo.gitDir === undefined) return undefined;
    try {
      return execFileSync('git', ['--git-dir', repo.gitDir, 'rev-parse', '--verify', '--quiet', `refs/heads/${ref}^{commit}`], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      return undefined;
    }
  }

  #syncHead(repo: FakeRepo, pull: FakePull): void {
    if (pull.state !== 'open' || pull.head.repo !== undefined) return;
    const sha = this.#branchSha(repo, pull.head.ref);
    if (sha !== undefined) pull.head.sha = sha;
  }

  /** A person merges the pull request (or closes it without merging) on GitHub, outside Factory. */
  closePull(fullName: string, number: number, merged: boolean): void {
    const repo = this.#repo(fullName);
    const pull = repo.pulls.get(number);
    if (pull === undefined) throw new Error(`no pull ${fullName}#${number}`);
    this.#syncHead(repo, pull);
    pull.state = 'closed';
    pull.mergedAt = merged ? iso(this.now()) : null;
    pull.updatedAt = iso(this.now());
  }

  /** Stands in for GraphQL `markPullRequestReadyForReview`, which the fake does not serve. */
  setPullDraft(fullName: string, number: number, draft: boolean): void {
    const pull = this.#repo(fullName).pulls.get(number);
    if (pull === undefined) throw new Error(`no pull ${fullName}#${number}`);
    pull.draft = draft;
  }

  addCheckRun(fullName: string, run: Omit<FakeCheckRun, 'id' | 'startedAt' | 'completedAt'>): number {
    const id = this.#id();
    const at = iso(this.now());
    this.#repo(fullName).checkRuns.push({ ...run, id, startedAt: at, completedAt: run.status === 'completed' ? at : null });
    return id;
  }

  addStatus(fullName: string, status: Omit<FakeStatus, 'id' | 'createdAt'>): void {
    this.#repo(fullName).statuses.push({ ...status, id: this.#id(), createdAt: iso(this.now()) });
  }

  addReview(fullName: string, review: Omit<FakeReview, 'id' | 'user' | 'association' | 'submittedAt'> & { by?: FakeReviewer }): void {
    const { by, ...fields } = review;
    const user = by === undefined || by.login === HUMAN.login ? HUMAN : by.login === this.#tokenUser.login ? this.#tokenUser : { login: by.login, id: this.#id(), type: 'User' as const };
    this.#repo(fullName).reviews.push({ ...fields, id: this.#id(), user, association: by?.association ?? 'MEMBER', submittedAt: iso(this.now()) });
  }

  // ---- fault injection ----

  /** The next `count` matching requests answer `status` (a 5xx burst). */
  failNext(count: number, status: number, match?: (method: string, route: string) => boolean): void {
    this.#faults.push({ remaining: count, status, match, afterApplying: false, retryAfterSeconds: undefined });
  }

  /** The next `count` matching writes land, but their response is a `status` error: a response lost on the way back. */
  failAfterApplying(count: number, status: number, match?: (method: string, route: string) => boolean): void {
    this.#faults.push({ remaining: count, status, match, afterApplying: true, retryAfterSeconds: undefined });
  }

  /** The next `count` requests hit GitHub's secondary rate limit: 403 with `retry-after`. */
  secondaryRateLimitNext(count: number, retryAfterSeconds: number): void {
    this.#faults.push({ remaining: count, status: 403, match: undefined, afterApplying: false, retryAfterSeconds });
  }

  /** The next `count` requests are answered only after `delayMs`, as from an overloaded server. */
  stallNext(count: number, delayMs: number): void {
    this.#stalls.push({ remaining: count, delayMs });
  }

  /** Uses up every token's primary limit until `resetInMs` from now. */
  exhaustPrimaryLimit(resetInMs: number): void {
    const reset = Math.ceil((this.now() + resetInMs) / 1000);
    for (const token of this.#tokens) this.#buckets.set(token, { used: this.#rateLimit, resetEpochSeconds: reset });
  }

  /** Rewrites the next response body before validation; the validation must reject a broken one. */
  corruptNextResponse(mutate: (body: unknown) => unknown): void {
    this.#corruptNext = mutate;
  }

  // ---- webhooks ----

  /**
   * POSTs a webhook delivery to `targetUrl` signed as GitHub signs them
   * (`X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`).
   */
  async deliverWebhook(targetUrl: string, secret: string, event: string, payload: unknown): Promise<{ status: number; deliveryId: string }> {
    return this.deliverRawWebhook(targetUrl, secret, event, JSON.stringify(payload));
  }

  /** Like deliverWebhook, with the body as given (signed as it is, JSON or not); `deliveryId` replaces the GUID GitHub would send. */
  async deliverRawWebhook(targetUrl: string, secret: string, event: string, body: string, deliveryId: string = randomUUID()): Promise<{ status: number; deliveryId: string }> {
    const response = await fetch(targetUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'GitHub-Hookshot/fake',
        'x-github-event': event,
        'x-github-delivery': deliveryId,
        'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
      },
      body,
    });
    await response.arrayBuffer();
    return { status: response.status, deliveryId };
  }

  /** An `issues` event payload for an issue as it is now. */
  issuesEventPayload(fullName: string, number: number, action: string): Record<string, unknown> {
    const repo = this.#repo(fullName);
    const issue = this.#issue(repo, number);
    if (issue === undefined) throw new Error(`no issue ${fullName}#${number}`);
    return {
      action,
      issue: issueObject(this.#baseUrl, repo.fullName, issue, this.#labelsOf(repo, issue)),
      repository: minimalRepositoryObject(this.#baseUrl, repo.identity),
      sender: { login: HUMAN.login, id: HUMAN.id, type: HUMAN.type },
    };
  }

  // ---- internals ----

  #id(): number {
    return this.#nextId++;
  }

  #userOf(token: string | undefined): FakeUser {
    return (token === undefined ? undefined : this.#tokenUsers.get(token)) ?? this.#tokenUser;
  }

  #appBot(app: NonNullable<FakeGitHubOptions['app']>): FakeUser {
    return { login: `${app.slug ?? 'factory-app'}[bot]`, id: app.appId + 100_000, type: 'Bot' };
  }

  #repo(fullName: string): FakeRepo {
    const repo = this.#repos.get(fullName.toLowerCase());
    if (repo === undefined) throw new Error(`fake GitHub: no repo ${fullName}`);
    return repo;
  }

  #issue(repo: FakeRepo, number: number): FakeIssue | undefined {
    return repo.issues.get(number);
  }

  #labelsOf(repo: FakeRepo, issue: FakeIssue): FakeLabel[] {
    return issue.labelIds.map((id) => repo.labels.find((label) => label.id === id)).filter((label): label is FakeLabel => label !== undefined);
  }

  #findLabel(repo: FakeRepo, name: string): FakeLabel | undefined {
    return repo.labels.find((label) => label.name.toLowerCase() === name.toLowerCase());
  }

  /** GitHub creates a label on first use when an issue is labelled with an unknown name. */
  #ensureLabel(repo: FakeRepo, name: string): FakeLabel {
    const existing = this.#findLabel(repo, name);
    if (existing !== undefined) return existing;
    const label: FakeLabel = { id: this.#id(), name, color: 'ededed', description: null };
    repo.labels.push(label);
    return label;
  }

  #touch(issue: FakeIssue): void {
    issue.updatedAt = iso(this.now());
  }

  #applyIssueEdit(repo: FakeRepo, issue: FakeIssue, fields: { title?: string; body?: string | null; labels?: readonly string[]; state?: 'open' | 'closed' }): void {
    if (fields.title !== undefined) issue.title = fields.title;
    if (fields.body !== undefined) issue.body = fields.body;
    if (fields.labels !== undefined) issue.labelIds = [...new Set(fields.labels.map((name) => this.#ensureLabel(repo, name).id))];
    if (fields.state !== undefined && fields.state !== issue.state) {
      issue.state = fields.state;
      issue.closedAt = fields.state === 'closed' ? iso(this.now()) : null;
    }
    this.#touch(issue);
  }

  #route(method: string, template: string, handler: Handler): void {
    const names: string[] = [];
    const pattern = new RegExp(
      `^${template.replace(/\{([a-z_]+)\}/g, (_match, name: string) => {
        names.push(name);
        return '([^/]+)';
      })}$`,
    );
    this.#routes.push({ method, template, pattern, names, handler });
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.#baseUrl);
    const method = req.method ?? 'GET';
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const token = /^(?:token|bearer)\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const stall = this.#stalls.find((candidate) => candidate.remaining > 0);
    if (stall !== undefined) {
      stall.remaining--;
      await new Promise((resolve) => setTimeout(resolve, stall.delayMs));
      if (res.destroyed) return;
    }

    let route: Route | undefined;
    let params: Record<string, string> = {};
    for (const candidate of this.#routes) {
      const match = candidate.method === method ? candidate.pattern.exec(url.pathname) : null;
      if (match === null) continue;
      route = candidate;
      params = Object.fromEntries(candidate.names.map((name, index) => [name, decodeURIComponent(match[index + 1] ?? '')]));
      break;
    }
    const template = route?.template ?? url.pathname;
    const send = (reply: Reply, counted: boolean, bucketToken: string | undefined): void => {
      const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', ...this.#rateHeaders(bucketToken), ...reply.headers };
      this.requests.push({ method, route: template, url: url.pathname + url.search, status: reply.status, counted, atMs: this.now(), token });
      res.writeHead(reply.status, headers);
      res.end(reply.body === undefined ? undefined : JSON.stringify(reply.body));
    };

    try {
      if (route === undefined) return send(error(404, 'Not Found'), true, undefined);
      // These two authenticate with the App's JWT, which their handlers check.
      const signedWithAppJwt = template === '/app/installations/{installation_id}/access_tokens' || template === '/app';
      if (!signedWithAppJwt && (token === undefined || !this.#tokens.has(token))) {
        return send(this.#validated(method, template, error(401, 'Bad credentials')), false, undefined);
      }
      const bucket = this.#bucket(token);
      if (!signedWithAppJwt && bucket.used >= this.#rateLimit) {
        return send(
          this.#validated(method, template, error(403, `API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID.`)),
          false,
          token,
        );
      }

      const fault = this.#takeFault(method, template);
      if (fault !== undefined && !fault.afterApplying) {
        bucket.used++;
        if (fault.retryAfterSeconds !== undefined) {
          return send(
            this.#validated(
              method,
              template,
              error(403, 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.', { 'retry-after': String(fault.retryAfterSeconds) }),
            ),
            true,
            token,
          );
        }
        return send(this.#validated(method, template, error(fault.status, fault.status === 502 ? 'Server Error' : 'Internal Server Error')), true, token);
      }

      let body: Record<string, unknown> = {};
      if (text.length > 0) {
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          return send(this.#validated(method, template, error(400, 'Problems parsing JSON')), true, token);
        }
      }
      const repoKey = params.owner !== undefined && params.repo !== undefined ? `${params.owner}/${params.repo}`.toLowerCase() : undefined;
      const repo = repoKey === undefined ? undefined : this.#repos.get(repoKey);
      if (repoKey !== undefined && (repo === undefined || repo.deniedWith !== undefined)) {
        bucket.used++;
        const status = repo?.deniedWith ?? 404;
        return send(this.#validated(method, template, error(status, status === 404 ? 'Not Found' : 'Resource not accessible by integration')), true, token);
      }

      let reply = await route.handler({ method, params, query: url.searchParams, body, token, url });
      if (fault !== undefined) reply = error(fault.status, 'Internal Server Error');
      if (reply.status === 200 && method === 'GET' && reply.body !== undefined) {
        const etag = `W/"${createHash('sha1').update(JSON.stringify(reply.body)).digest('hex')}"`;
        if (req.headers['if-none-match'] === etag) {
          // GitHub does not count a 304 against the rate limit.
          return send({ status: 304, headers: { etag } }, false, token);
        }
        reply = { ...reply, headers: { ...reply.headers, etag } };
      }
      bucket.used++;
      return send(this.#validated(method, template, reply), true, token);
    } catch (caught) {
      if (caught instanceof OpenApiViolation) this.violations.push(caught);
      const message = caught instanceof Error ? caught.message : String(caught);
      this.requests.push({ method, route: template, url: url.pathname + url.search, status: 500, counted: false, atMs: this.now(), token });
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `fake GitHub failed: ${message}`, documentation_url: DOCS }));
    }
  }

  #validated(method: string, template: string, reply: Reply): Reply {
    // GraphQL is not in the REST description; its handler checks its own request and answer.
    if (template === '/graphql') return reply;
    let body = reply.body;
    if (this.#corruptNext !== undefined && body !== undefined) {
      body = this.#corruptNext(structuredClone(body));
      this.#corruptNext = undefined;
    }
    assertResponseMatchesOpenApi(method, template, reply.status, body);
    return { ...reply, body };
  }

  #takeFault(method: string, template: string): InjectedFault | undefined {
    const fault = this.#faults.find((candidate) => candidate.remaining > 0 && (candidate.match === undefined || candidate.match(method, template)));
    if (fault === undefined) return undefined;
    fault.remaining--;
    this.#faults = this.#faults.filter((candidate) => candidate.remaining > 0);
    return fault;
  }

  #bucket(token: string | undefined): RateBucket {
    const key = token ?? '';
    const nowSeconds = Math.floor(this.now() / 1000);
    let bucket = this.#buckets.get(key);
    if (bucket === undefined || bucket.resetEpochSeconds <= nowSeconds) {
      bucket = { used: 0, resetEpochSeconds: nowSeconds + 3600 };
      this.#buckets.set(key, bucket);
    }
    return bucket;
  }

  #rateHeaders(token: string | undefined): Record<string, string> {
    const bucket = this.#bucket(token);
    return {
      'x-ratelimit-limit': String(this.#rateLimit),
      'x-ratelimit-remaining': String(Math.max(0, this.#rateLimit - bucket.used)),
      'x-ratelimit-reset': String(bucket.resetEpochSeconds),
      'x-ratelimit-used': String(bucket.used),
      'x-ratelimit-resource': 'core',
    };
  }

  /** Slices a list by `per_page`/`page` and adds GitHub's `Link` header. */
  #page<T>(request: ParsedRequest, items: readonly T[], toJson: (item: T) => unknown): Reply {
    const perPage = Math.min(100, Math.max(1, Number(request.query.get('per_page') ?? 30) || 30));
    const page = Math.max(1, Number(request.query.get('page') ?? 1) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const body = items.slice((page - 1) * perPage, page * perPage).map(toJson);
    const link = (n: number): string => {
      const url = new URL(request.url.toString());
      url.searchParams.set('page', String(n));
      return url.toString();
    };
    const links: string[] = [];
    if (page < last) links.push(`<${link(page + 1)}>; rel="next"`, `<${link(last)}>; rel="last"`);
    if (page > 1) links.push(`<${link(1)}>; rel="first"`, `<${link(page - 1)}>; rel="prev"`);
    return { status: 200, body, ...(links.length > 0 ? { headers: { link: links.join(', ') } } : {}) };
  }

  #defineRoutes(): void {
    const repoOf = (request: ParsedRequest): FakeRepo => this.#repo(`${request.params.owner}/${request.params.repo}`);
    const issueOf = (request: ParsedRequest): { repo: FakeRepo; issue: FakeIssue } | undefined => {
      const repo = repoOf(request);
      const issue = this.#issue(repo, Number(request.params.issue_number));
      return issue === undefined ? undefined : { repo, issue };
    };
    const issueJson = (repo: FakeRepo) => (issue: FakeIssue) => issueObject(this.#baseUrl, repo.fullName, issue, this.#labelsOf(repo, issue));
    const labelsJson = (repo: FakeRepo, labels: readonly FakeLabel[]): unknown[] => labels.map((label) => labelObject(this.#baseUrl, repo.fullName, label));

    this.#route('GET', '/repos/{owner}/{repo}/issues', (request) => {
      const repo = repoOf(request);
      const state = request.query.get('state') ?? 'open';
      const wanted = (request.query.get('labels') ?? '')
        .split(',')
        .map((name) => name.trim().toLowerCase())
        .filter((name) => name.length > 0);
      const since = request.query.get('since');
      const sinceMs = since === null ? undefined : Date.parse(since);
      const sort = request.query.get('sort') ?? 'created';
      const direction = request.query.get('direction') ?? 'desc';
      const issues = [...repo.issues.values()]
        .filter((issue) => state === 'all' || issue.state === state)
        .filter((issue) => wanted.every((name) => this.#labelsOf(repo, issue).some((label) => label.name.toLowerCase() === name)))
        .filter((issue) => sinceMs === undefined || Date.parse(issue.updatedAt) >= sinceMs)
        .sort((a, b) => {
          const keyA = sort === 'updated' ? Date.parse(a.updatedAt) : a.number;
          const keyB = sort === 'updated' ? Date.parse(b.updatedAt) : b.number;
          const order = keyA - keyB || a.number - b.number;
          return direction === 'asc' ? order : -order;
        });
      return this.#page(request, issues, issueJson(repo));
    });

    this.#route('POST', '/repos/{owner}/{repo}/issues', (request) => {
      const repo = repoOf(request);
      const title = request.body.title;
      if (typeof title !== 'string' || title.length === 0) return error(422, 'Validation Failed');
      const number = this.createIssue(repo.fullName, {
        title,
        body: typeof request.body.body === 'string' ? request.body.body : null,
        labels: Array.isArray(request.body.labels) ? (request.body.labels as string[]) : [],
      });
      return { status: 201, body: issueJson(repo)(this.#issue(repo, number) as FakeIssue) };
    });

    this.#route('GET', '/repos/{owner}/{repo}/issues/{issue_number}', (request) => {
      const found = issueOf(request);
      return found === undefined ? error(404, 'Not Found') : { status: 200, body: issueJson(found.repo)(found.issue) };
    });

    this.#route('PATCH', '/repos/{owner}/{repo}/issues/{issue_number}', (request) => {
      const found = issueOf(request);
      if (found === undefined) return error(404, 'Not Found');
      const { title, body, labels, state } = request.body;
      this.#applyIssueEdit(found.repo, found.issue, {
        ...(typeof title === 'string' ? { title } : {}),
        ...(typeof body === 'string' || body === null ? { body } : {}),
        ...(Array.isArray(labels) ? { labels: labels as string[] } : {}),
        ...(state === 'open' || state === 'closed' ? { state } : {}),
      });
      return { status: 200, body: issueJson(found.repo)(found.issue) };
    });

    this.#route('GET', '/repos/{owner}/{repo}/issues/{issue_number}/labels', (request) => {
      const found = issueOf(request);
      return found === undefined ? error(404, 'Not Found') : this.#page(request, this.#labelsOf(found.repo, found.issue), (label) => labelObject(this.#baseUrl, found.repo.fullName, label));
    });

    this.#route('POST', '/repos/{owner}/{repo}/issues/{issue_number}/labels', (request) => {
      const found = issueOf(request);
      if (found === undefined) return error(404, 'Not Found');
      const names = Array.isArray(request.body.labels) ? (request.body.labels as unknown[]) : [];
      if (names.length === 0 || !names.every((name) => typeof name === 'string' && name.length > 0)) return error(422, 'Validation Failed');
      for (const name of names as string[]) {
        const label = this.#ensureLabel(found.repo, name);
        if (!found.issue.labelIds.includes(label.id)) found.issue.labelIds.push(label.id);
      }
      this.#touch(found.issue);
      return { status: 200, body: labelsJson(found.repo, this.#labelsOf(found.repo, found.issue)) };
    });

    this.#route('PUT', '/repos/{owner}/{repo}/issues/{issue_number}/labels', (request) => {
      const found = issueOf(request);
      if (found === undefined) return error(404, 'Not Found');
      const names = Array.isArray(request.body.labels) ? (request.body.labels as string[]) : [];
      this.#applyIssueEdit(found.repo, found.issue, { labels: names });
      return { status: 200, body: labelsJson(found.repo, this.#labelsOf(found.repo, found.issue)) };
    });

    this.#route('DELETE', '/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}', (request) => {
      const found = issueOf(request);
      if (found === undefined) return error(404, 'Not Found');
      const label = this.#findLabel(found.repo, request.params.name ?? '');
      if (label === undefined || !found.issue.labelIds.includes(label.id)) return error(404, 'Label does not exist');
      found.issue.labelIds = found.issue.labelIds.filter((id) => id !== label.id);
      this.#touch(found.issue);
      return { status: 200, body: labelsJson(found.repo, this.#labelsOf(found.repo, found.issue)) };
    });

    this.#route('GET', '/repos/{owner}/{repo}/labels', (request) => {
      const repo = repoOf(request);
      return this.#page(request, repo.labels, (label) => labelObject(this.#baseUrl, repo.fullName, label));
    });

    this.#route('POST', '/repos/{owner}/{repo}/labels', (request) => {
      const repo = repoOf(request);
      const { name, color, description } = request.body;
      if (typeof name !== 'string' || name.length === 0) return error(422, 'Validation Failed');
      if (this.#findLabel(repo, name) !== undefined) {
        return { status: 422, body: { message: 'Validation Failed', documentation_url: DOCS, errors: [{ resource: 'Label', code: 'already_exists', field: 'name' }] } };
      }
      const label: FakeLabel = { id: this.#id(), name, color: typeof color === 'string' ? color : 'ededed', description: typeof description === 'string' ? description : null };
      repo.labels.push(label);
      return { status: 201, body: labelObject(this.#baseUrl, repo.fullName, label) };
    });

    const commentJson = (repo: FakeRepo) => (comment: FakeComment) => commentObject(this.#baseUrl, repo.fullName, comment);

    this.#route('GET', '/repos/{owner}/{repo}/issues/{issue_number}/comments', (request) => {
      const found = issueOf(request);
      if (found === undefined) return error(404, 'Not Found');
      const comments = found.repo.comments.filter((comment) => comment.issueNumber === found.issue.number);
      return this.#page(request, comments, commentJson(found.repo));
    });

    this.#route('POST', '/repos/{owner}/{repo}/issues/{issue_number}/comments', (request) => {
      const found = issueOf(request);
      if (found === undefined) return error(404, 'Not Found');
      if (typeof request.body.body !== 'string' || request.body.body.length === 0) return error(422, 'Validation Failed');
      const at = iso(this.now());
      const comment: FakeComment = { id: this.#id(), issueNumber: found.issue.number, body: request.body.body, user: this.#userOf(request.token), createdAt: at, updatedAt: at };
      found.repo.comments.push(comment);
      found.issue.comments++;
      this.#touch(found.issue);
      return { status: 201, body: commentJson(found.repo)(comment) };
    });

    const commentOf = (request: ParsedRequest): { repo: FakeRepo; comment: FakeComment } | undefined => {
      const repo = repoOf(request);
      const comment = repo.comments.find((candidate) => candidate.id === Number(request.params.comment_id));
      return comment === undefined ? undefined : { repo, comment };
    };

    this.#route('GET', '/repos/{owner}/{repo}/issues/comments/{comment_id}', (request) => {
      const found = commentOf(request);
      return found === undefined ? error(404, 'Not Found') : { status: 200, body: commentJson(found.repo)(found.comment) };
    });

    this.#route('PATCH', '/repos/{owner}/{repo}/issues/comments/{comment_id}', (request) => {
      const found = commentOf(request);
      if (found === undefined) return error(404, 'Not Found');
      if (typeof request.body.body !== 'string' || request.body.body.length === 0) return error(422, 'Validation Failed');
      found.comment.body = request.body.body;
      found.comment.updatedAt = iso(this.now());
      const issue = this.#issue(found.repo, found.comment.issueNumber);
      if (issue !== undefined) this.#touch(issue);
      return { status: 200, body: commentJson(found.repo)(found.comment) };
    });

    this.#route('DELETE', '/repos/{owner}/{repo}/issues/comments/{comment_id}', (request) => {
      const found = commentOf(request);
      if (found === undefined) return error(404, 'Not Found');
      found.repo.comments.splice(found.repo.comments.indexOf(found.comment), 1);
      const issue = this.#issue(found.repo, found.comment.issueNumber);
      if (issue !== undefined) issue.comments--;
      return { status: 204 };
    });

    const labelsOfPull = (repo: FakeRepo, pull: FakePull): FakeLabel[] => {
      const issue = this.#issue(repo, pull.number);
      return issue === undefined ? [] : this.#labelsOf(repo, issue);
    };

    this.#route('GET', '/repos/{owner}/{repo}/pulls', (request) => {
      const repo = repoOf(request);
      const state = request.query.get('state') ?? 'open';
      const head = request.query.get('head');
      const baseRef = request.query.get('base');
      for (const pull of repo.pulls.values()) this.#syncHead(repo, pull);
      const pulls = [...repo.pulls.values()]
        .filter((pull) => state === 'all' || pull.state === state)
        .filter((pull) => head === null || `${pull.head.owner}:${pull.head.ref}`.toLowerCase() === head.toLowerCase())
        .filter((pull) => baseRef === null || pull.base.ref === baseRef)
        .sort((a, b) => b.number - a.number);
      return this.#page(request, pulls, (pull) => pullSimpleObject(this.#baseUrl, repo.identity, pull, labelsOfPull(repo, pull)));
    });

    this.#route('POST', '/repos/{owner}/{repo}/pulls', (request) => {
      const repo = repoOf(request);
      const { title, head, base, body, draft } = request.body;
      if (typeof title !== 'string' || typeof head !== 'string' || typeof base !== 'string') return error(422, 'Validation Failed');
      const [headOwner, headRef] = head.includes(':') ? (head.split(':', 2) as [string, string]) : [repo.identity.owner.login, head];
      const duplicate = [...repo.pulls.values()].some((pull) => pull.state === 'open' && pull.head.ref === headRef && pull.head.owner.toLowerCase() === headOwner.toLowerCase());
      const pushedSha = this.#branchSha(repo, headRef);
      if (repo.gitDir !== undefined && pushedSha === undefined) {
        return { status: 422, body: { message: 'Validation Failed', documentation_url: DOCS, errors: [{ resource: 'PullRequest', code: 'invalid', field: 'head' }] } };
      }
      if (duplicate) {
        return {
          status: 422,
          body: { message: 'Validation Failed', documentation_url: DOCS, errors: [{ resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${headOwner}:${headRef}.` }] },
        };
      }
      const number = repo.nextNumber++;
      const at = iso(this.now());
      const pull: FakePull = {
        number,
        id: this.#id(),
        title,
        body: typeof body === 'string' ? body : null,
        state: 'open',
        draft: draft === true,
        head: { ref: headRef, sha: pushedSha ?? createHash('sha1').update(`${headRef}@${at}`).digest('hex'), owner: headOwner },
        base: { ref: base },
        user: this.#userOf(request.token),
        createdAt: at,
        updatedAt: at,
      };
      repo.pulls.set(number, pull);
      // GitHub lists every pull request among the issues too.
      repo.issues.set(number, {
        id: this.#id(),
        number,
        title,
        body: pull.body,
        state: 'open',
        labelIds: [],
        user: pull.user,
        createdAt: at,
        updatedAt: at,
        closedAt: null,
        comments: 0,
        pullRequest: true,
      });
      return { status: 201, body: pullObject(this.#baseUrl, repo.identity, pull, []) };
    });

    this.#route('GET', '/repos/{owner}/{repo}/pulls/{pull_number}', (request) => {
      const repo = repoOf(request);
      const pull = repo.pulls.get(Number(request.params.pull_number));
      if (pull !== undefined) this.#syncHead(repo, pull);
      return pull === undefined ? error(404, 'Not Found') : { status: 200, body: pullObject(this.#baseUrl, repo.identity, pull, labelsOfPull(repo, pull)) };
    });

    this.#route('PATCH', '/repos/{owner}/{repo}/pulls/{pull_number}', (request) => {
      const repo = repoOf(request);
      const pull = repo.pulls.get(Number(request.params.pull_number));
      if (pull === undefined) return error(404, 'Not Found');
      const { title, body, state } = request.body;
      if (typeof title === 'string') pull.title = title;
      if (typeof body === 'string') pull.body = body;
      if (state === 'open' || state === 'closed') pull.state = state;
      pull.updatedAt = iso(this.now());
      const issue = this.#issue(repo, pull.number);
      if (issue !== undefined) this.#applyIssueEdit(repo, issue, { title: pull.title, body: pull.body, state: pull.state });
      return { status: 200, body: pullObject(this.#baseUrl, repo.identity, pull, labelsOfPull(repo, pull)) };
    });

    this.#route('PUT', '/repos/{owner}/{repo}/pulls/{pull_number}/merge', (request) => {
      const repo = repoOf(request);
      const pull = repo.pulls.get(Number(request.params.pull_number));
      if (pull === undefined) return error(404, 'Not Found');
      this.#syncHead(repo, pull);
      if (pull.state !== 'open') return error(405, 'Pull Request is not mergeable');
      if (typeof request.body.sha === 'string' && request.body.sha !== pull.head.sha) return error(409, 'Head branch was modified. Review and try the merge again.');
      const method = request.body.merge_method;
      if (method !== undefined && method !== 'merge' && method !== 'squash' && method !== 'rebase') return error(422, 'Validation Failed');
      this.merges.push({ fullName: repo.fullName, number: pull.number, method: typeof method === 'string' ? method : 'merge', sha: pull.head.sha });
      pull.state = 'closed';
      pull.mergedAt = iso(this.now());
      pull.updatedAt = pull.mergedAt;
      const issue = this.#issue(repo, pull.number);
      if (issue !== undefined) this.#applyIssueEdit(repo, issue, { state: 'closed' });
      return { status: 200, body: { sha: createHash('sha1').update(`merge ${pull.head.sha}`).digest('hex'), merged: true, message: 'Pull Request successfully merged' } };
    });

    this.#route('POST', '/graphql', (request) => {
      const query = typeof request.body.query === 'string' ? request.body.query : '';
      const variables = (request.body.variables ?? {}) as Record<string, unknown>;
      // The one mutation served, with GitHub's published signature:
      // markPullRequestReadyForReview(input: MarkPullRequestReadyForReviewInput!) { pullRequest { isDraft ... } },
      // where the input's only required field is pullRequestId: ID!.
      const mutation =
        /^\s*mutation\s*(\(\s*\$(\w+)\s*:\s*ID!\s*\))?\s*\{\s*markPullRequestReadyForReview\s*\(\s*input\s*:\s*\{\s*pullRequestId\s*:\s*(\$\w+|"[^"]+")\s*\}\s*\)\s*\{\s*pullRequest\s*\{\s*isDraft\s*\}\s*\}\s*\}\s*$/.exec(
          query,
        );
      if (mutation === null)
        return {
          status: 200,
          body: { errors: [{ message: `fake GitHub serves only markPullRequestReadyForReview(input: {pullRequestId}) { pullRequest { isDraft } }; got ${query.slice(0, 200)}` }] },
        };
      const argument = mutation[3] ?? '';
      const id = argument.startsWith('$') ? variables[argument.slice(1)] : argument.slice(1, -1);
      if (argument.startsWith('$') && argument.slice(1) !== mutation[2]) return { status: 200, body: { errors: [{ message: `Variable ${argument} is not declared` }] } };
      for (const repo of this.#repos.values()) {
        for (const pull of repo.pulls.values()) {
          if (`PR_${pull.id}` !== id) continue;
          pull.draft = false;
          pull.updatedAt = iso(this.now());
          return { status: 200, body: { data: { markPullRequestReadyForReview: { pullRequest: { isDraft: false } } } } };
        }
      }
      return {
        status: 200,
        body: {
          data: { markPullRequestReadyForReview: null },
          errors: [{ type: 'NOT_FOUND', path: ['markPullRequestReadyForReview'], message: `Could not resolve to a node with the global id of '${String(id)}'` }],
        },
      };
    });

    this.#route('GET', '/repos/{owner}/{repo}/pulls/{pull_number}/reviews', (request) => {
      const repo = repoOf(request);
      const reviews = repo.reviews.filter((review) => review.pullNumber === Number(request.params.pull_number));
      return this.#page(request, reviews, (review) => reviewObject(this.#baseUrl, repo.fullName, review));
    });

    this.#route('GET', '/repos/{owner}/{repo}/commits/{ref}/check-runs', (request) => {
      const repo = repoOf(request);
      const onRef = repo.checkRuns.filter((run) => run.headSha === request.params.ref);
      // GitHub's default `filter=latest`: the most recent run of each check name (a re-run replaces the earlier one).
      const latest = new Map<string, FakeCheckRun>();
      for (const run of onRef) latest.set(run.name, run);
      const runs = request.query.get('filter') === 'all' ? onRef : [...latest.values()];
      return { status: 200, body: { total_count: runs.length, check_runs: runs.map((run) => checkRunObject(this.#baseUrl, repo.fullName, run)) } };
    });

    this.#route('GET', '/repos/{owner}/{repo}/commits/{ref}/status', (request) => {
      const repo = repoOf(request);
      const sha = request.params.ref ?? '';
      // The latest status per context counts, as on GitHub.
      const latest = new Map<string, FakeStatus>();
      for (const status of repo.statuses.filter((candidate) => candidate.sha === sha)) latest.set(status.context, status);
      const statuses = [...latest.values()];
      const state = statuses.some((s) => s.state === 'failure' || s.state === 'error') ? 'failure' : statuses.every((s) => s.state === 'success') && statuses.length > 0 ? 'success' : 'pending';
      return {
        status: 200,
        body: {
          state,
          statuses: statuses.map((status) => simpleStatusObject(this.#baseUrl, repo.fullName, status)),
          sha,
          total_count: statuses.length,
          repository: minimalRepositoryObject(this.#baseUrl, repo.identity),
          commit_url: `${this.#baseUrl}/repos/${repo.fullName}/commits/${sha}`,
          url: `${this.#baseUrl}/repos/${repo.fullName}/commits/${sha}/status`,
        },
      };
    });

    this.#route('GET', '/user', (request) => {
      // An installation token acts for the App, not for a user: GitHub refuses it here.
      if (request.token !== undefined && this.#installationTokens.has(request.token)) return error(403, 'Resource not accessible by integration');
      return { status: 200, body: privateUserObject(this.#baseUrl, this.#userOf(request.token), this.#startedAt) };
    });

    this.#route('GET', '/app', (request) => {
      const app = this.#app;
      if (app === undefined || request.token === undefined || !verifyAppJwt(request.token, app.publicKeyPem, app.appId, this.now())) {
        return error(401, 'A JSON web token could not be decoded');
      }
      return {
        status: 200,
        body: integrationObject(this.#baseUrl, { id: app.appId, slug: app.slug ?? 'factory-app', owner: { login: 'acme', id: 7, type: 'Organization' }, createdAt: this.#startedAt }),
      };
    });

    this.#route('POST', '/app/installations/{installation_id}/access_tokens', (request) => {
      const app = this.#app;
      if (app === undefined || Number(request.params.installation_id) !== app.installationId) return error(404, 'Not Found');
      if (request.token === undefined || !verifyAppJwt(request.token, app.publicKeyPem, app.appId, this.now())) {
        return error(401, 'A JSON web token could not be decoded');
      }
      const token = `ghs_${randomUUID().replace(/-/g, '')}`;
      this.#tokens.add(token);
      this.#tokenUsers.set(token, this.#appBot(app));
      this.#installationTokens.add(token);
      return { status: 201, body: { token, expires_at: iso(this.now() + 3_600_000) } };
    });
  }
}

/** An RS256 JWT issued by the app (`iss`), signed with its private key and not expired. */
function verifyAppJwt(jwt: string, publicKeyPem: string, appId: number, nowMs: number): boolean {
  const [header, payload, signature] = jwt.split('.');
  if (header === undefined || payload === undefined || signature === undefined) return false;
  const verifier = createVerify('RSA-SHA256');
  verifier.update(`${header}.${payload}`);
  if (!verifier.verify(publicKeyPem, Buffer.from(signature, 'base64url'))) return false;
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { iss?: unknown; exp?: unknown };
  return String(claims.iss) === String(appId) && typeof claims.exp === 'number' && claims.exp * 1000 > nowMs - 60_000;
}
