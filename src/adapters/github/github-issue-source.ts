import { FactoryError, isFactoryError } from '../../errors.js';
import { formatRepoSlug, githubIssueKey, mapGitHubIssue, parseGitHubIssueReference, sameRepo, type GitHubIssueMapping, type GitHubIssueRecord, type GitHubRepoRef } from '../../domain/github-issue.js';
import type { Issue } from '../../domain/issue.js';
import type { RunOutcome } from '../../domain/run.js';
import type { Clock, TimerHandle } from '../../ports/clock.js';
import type { IssueScan, IssueSource, IssueSourceEvent, IssueSubscription, IssueSubscriptionHandlers, SkippedIssueFile } from '../../ports/issue-source.js';
import type { GitHubRepoClient } from './github-repo-client.js';
import type { GitHubIssueWriteback } from './github-writeback.js';

export interface GitHubIssueSourceOptions {
  readonly repos: readonly GitHubRepoRef[];
  readonly repoClient: GitHubRepoClient;
  readonly writeback: GitHubIssueWriteback;
  readonly clock: Clock;
  /** Scope and priority labels; the lifecycle labels come from the writeback. */
  readonly scopeLabels: readonly string[];
  readonly priorityLabels?: Readonly<Record<string, number>>;
  /** Time between polls of a subscription; default 60 s. An idle poll is one free 304 per repo. */
  readonly pollIntervalMs?: number;
  /** A full re-listing of open issues heals what `since` polling cannot see (transfers, deletions); default 1 h. */
  readonly fullResyncIntervalMs?: number;
  /** Polls failing in a row before a subscription reports an error; default 5. */
  readonly pollFailureLimit?: number;
  /**
   * Requests a minute the idle source may make, all repositories together.
   * Set: each repository is polled every max(pollIntervalMs, repos x 60 s /
   * budget), one repository per tick, the ticks spread evenly; a scan reuses
   * what the poll loop already knows. Unset: every poll reads every repository.
   */
  readonly requestBudgetPerMinute?: number;
}

/** Poll interval of each repository under a request budget: never more than `budget` polls a minute in all. */
export function budgetedRepoIntervalMs(repos: number, pollIntervalMs: number, budgetPerMinute: number | undefined): number {
  if (budgetPerMinute === undefined) return pollIntervalMs;
  return Math.max(pollIntervalMs, Math.ceil((repos * 60_000) / budgetPerMinute));
}

/**
 * How far back each `since` query reaches behind the newest update seen, so an
 * issue GitHub indexes late (or a clock skew between us and GitHub) is still
 * caught. Idle, the answer does not change, so it stays a free 304.
 */
const SINCE_OVERLAP_MS = 2 * 60_000;

/** Statuses that mean "this token cannot read this repo": the repo is skipped, not retried. */
const DENIED_STATUSES = new Set([401, 403, 404, 410, 451]);

interface RepoState {
  readonly repo: GitHubRepoRef;
  loaded: boolean;
  issues: Map<number, Issue>;
  unreadable: Map<number, string>;
  /** `since` cursor (ISO) and the ETag of its last answer. */
  cursorMs: number;
  etag: string | undefined;
  lastFullListingMs: number;
  /** When the last successful poll of this repo started (budgeted polling picks the stalest). */
  lastPolledMs: number;
  /** Why the repo cannot be read right now; its issues are left out of scans. */
  deniedReason: string | undefined;
}

interface Subscriber {
  readonly handlers: IssueSubscriptionHandlers;
  open: boolean;
  snapshot: Map<string, Issue>;
  timer: TimerHandle | undefined;
  polling: Promise<void> | undefined;
  failuresInRow: number;
  /** Probe tokens waiting for the next poll that starts after them. */
  pendingProbes: string[];
}

/**
 * Issues from GitHub repositories, read through the REST API. A scan re-lists
 * nothing that did not change: each repo is listed in full once, then polled
 * with `since` and a conditional request, which is a free 304 while idle.
 * Subscriptions are poll loops on the clock; the progress receipt of a poll is
 * its success, probes echo back after the next poll, and only persistent
 * failure is reported through onError. Pull requests are not issues.
 */
export class GitHubIssueSource implements IssueSource {
  readonly description: string;
  readonly #repos: readonly RepoState[];
  readonly #options: GitHubIssueSourceOptions;
  readonly #mapping: GitHubIssueMapping;
  readonly #pollIntervalMs: number;
  readonly #fullResyncIntervalMs: number;
  readonly #pollFailureLimit: number;
  /** Under a budget: how often each repo is polled, and the tick between two single-repo polls. */
  readonly #repoIntervalMs: number;
  readonly #tickMs: number;
  readonly #budgeted: boolean;
  /** Repos a webhook named, to poll first at the next tick. */
  readonly #wanted = new Set<RepoState>();
  readonly #subscribers = new Set<Subscriber>();
  #inflight: Promise<void> | undefined;
  #queued: Promise<void> | undefined;
  #completedPolls = 0;

  constructor(options: GitHubIssueSourceOptions) {
    if (options.repos.length === 0) throw new TypeError('GitHubIssueSource: expected at least one repository');
    this.#options = options;
    this.#repos = options.repos.map((repo) => ({
      repo,
      loaded: false,
      issues: new Map(),
      unreadable: new Map(),
      cursorMs: 0,
      etag: undefined,
      lastFullListingMs: 0,
      lastPolledMs: Number.NEGATIVE_INFINITY,
      deniedReason: undefined,
    }));
    this.#mapping = { scopeLabels: options.scopeLabels, priorityLabels: options.priorityLabels ?? {}, lifecycleLabels: Object.values(options.writeback.labels) };
    this.#pollIntervalMs = options.pollIntervalMs ?? 60_000;
    this.#fullResyncIntervalMs = options.fullResyncIntervalMs ?? 3_600_000;
    this.#pollFailureLimit = options.pollFailureLimit ?? 5;
    this.#budgeted = options.requestBudgetPerMinute !== undefined;
    this.#repoIntervalMs = budgetedRepoIntervalMs(options.repos.length, this.#pollIntervalMs, options.requestBudgetPerMinute);
    this.#tickMs = this.#budgeted ? Math.max(1, Math.floor(this.#repoIntervalMs / options.repos.length)) : this.#pollIntervalMs;
    this.description = `GitHub ${options.repos.map(formatRepoSlug).join(', ')}`;
  }

  /** Successful subscription polls so far (for tests and benches that drive the clock). */
  get completedPolls(): number {
    return this.#completedPolls;
  }

  /** How often each repository is polled (after the request budget), for status views and benches. */
  get repoPollIntervalMs(): number {
    return this.#repoIntervalMs;
  }

  /** Time between two turns of a subscription's poll loop. */
  get pollTickMs(): number {
    return this.#tickMs;
  }

  async scan(): Promise<IssueScan> {
    // Under a budget the poll loop keeps every repo fresh; a scan (the reconcile pass) only reads repos the loop has not.
    await (this.#budgeted ? this.#refreshStale() : this.#refresh());
    const issues: Issue[] = [];
    const skipped: SkippedIssueFile[] = [];
    for (const state of this.#repos) {
      if (state.deniedReason !== undefined) {
        skipped.push({ path: formatRepoSlug(state.repo), reason: state.deniedReason });
        continue;
      }
      issues.push(...[...state.issues.values()].filter((issue) => issue.state !== 'closed'));
      for (const [number, reason] of state.unreadable) skipped.push({ path: `${formatRepoSlug(state.repo)}#${number}`, reason });
    }
    return { issues: issues.sort((a, b) => compareText(a.key, b.key)), skipped };
  }

  async read(keyOrPath: string): Promise<Issue> {
    const target = this.#resolve(keyOrPath);
    if (target === undefined) {
      throw new FactoryError('FACTORY_ISSUE_NOT_FOUND', `no issue ${JSON.stringify(keyOrPath)} in ${this.description}: expected an issue key such as acme_api-12 or a reference such as acme/api#12`, {
        details: { keyOrPath },
      });
    }
    const record = await this.#options.repoClient.getIssue(target.repo, target.number);
    const mapped = record === undefined ? undefined : mapGitHubIssue(target.repo, record, this.#mapping);
    if (mapped === undefined || mapped.kind === 'pull-request') {
      throw new FactoryError(
        'FACTORY_ISSUE_NOT_FOUND',
        `no issue ${JSON.stringify(keyOrPath)} in ${this.description} (${formatRepoSlug(target.repo)}#${target.number} ${mapped === undefined ? 'does not exist' : 'is a pull request'})`,
        { details: { keyOrPath } },
      );
    }
    if (mapped.kind === 'unreadable') throw new FactoryError('FACTORY_ISSUE_INVALID', mapped.reason, { details: { keyOrPath } });
    return mapped.issue;
  }

  async subscribe(handlers: IssueSubscriptionHandlers): Promise<IssueSubscription> {
    try {
      await this.#refresh();
    } catch (error) {
      throw new FactoryError('FACTORY_SUBSCRIPTION_FAILED', `cannot start polling ${this.description}: ${(error as Error).message}`, {
        hint: 'Check source.github (repos, credentials) and that GitHub is reachable.',
        ...(isFactoryError(error) ? { details: error.details } : {}),
      });
    }
    const subscriber: Subscriber = { handlers, open: true, snapshot: this.#currentIssues(), timer: undefined, polling: undefined, failuresInRow: 0, pendingProbes: [] };
    this.#subscribers.add(subscriber);
    this.#schedule(subscriber, this.#tickMs);
    return {
      close: async () => {
        if (!subscriber.open) return;
        this.#end(subscriber);
        await subscriber.polling;
      },
    };
  }

  /**
   * Echoes `token` back as a `probe` event on each open subscription after
   * its next poll, which starts at once: proof that the poll loop runs and
   * GitHub answers. It writes nothing to GitHub.
   */
  async probe(token: string): Promise<void> {
    for (const subscriber of this.#subscribers) subscriber.pendingProbes.push(token);
    this.wake();
  }

  /**
   * Polls every subscription now instead of at its next tick (a webhook
   * delivery calls this). With `repo`, only that repository is read then
   * (the others keep their turn); without, every repository is.
   */
  wake(repo?: GitHubRepoRef): void {
    const states = repo === undefined ? this.#repos : this.#repos.filter((state) => sameRepo(state.repo, repo));
    if (states.length === 0) return;
    for (const state of states) this.#wanted.add(state);
    for (const subscriber of this.#subscribers) {
      if (subscriber.polling !== undefined) continue;
      this.#options.clock.clearTimeout(subscriber.timer);
      this.#schedule(subscriber, 0);
    }
  }

  async writeBack(issue: Issue, outcome: RunOutcome): Promise<void> {
    const target = this.locate(issue);
    await this.#options.writeback.recordOutcome(target.repo, target.number, issue, outcome);
  }

  /** The repository and number of one of this source's issues; throws for an issue of another source. */
  locate(issue: Pick<Issue, 'key' | 'location'>): { repo: GitHubRepoRef; number: number } {
    const target = this.#resolve(issue.location) ?? this.#resolve(issue.key);
    if (target === undefined) {
      throw new FactoryError('FACTORY_ISSUE_INVALID', `cannot write back to ${issue.key} (${issue.location}): not an issue of ${this.description}`, {
        details: { key: issue.key, location: issue.location },
      });
    }
    return target;
  }

  /** Key, `owner/name#N` or issue URL → a configured repo and an issue number. */
  #resolve(keyOrPath: string): { repo: GitHubRepoRef; number: number } | undefined {
    const reference = parseGitHubIssueReference(keyOrPath);
    if (reference !== undefined) {
      const repo = this.#repos.find((state) => sameRepo(state.repo, reference.repo))?.repo;
      return repo === undefined ? undefined : { repo, number: reference.number };
    }
    const number = Number(/-(\d+)$/.exec(keyOrPath)?.[1]);
    if (!Number.isSafeInteger(number) || number < 1) return undefined;
    const repo = this.#repos.find((state) => githubIssueKey(state.repo, number) === keyOrPath.toLowerCase())?.repo;
    return repo === undefined ? undefined : { repo, number };
  }

  #currentIssues(): Map<string, Issue> {
    const issues = new Map<string, Issue>();
    for (const state of this.#repos) {
      if (state.deniedReason !== undefined) continue;
      for (const issue of state.issues.values()) if (issue.state !== 'closed') issues.set(issue.key, issue);
    }
    return issues;
  }

  #schedule(subscriber: Subscriber, delayMs: number): void {
    if (!subscriber.open) return;
    subscriber.timer = this.#options.clock.setTimeout(() => {
      subscriber.timer = undefined;
      subscriber.polling = this.#poll(subscriber).finally(() => {
        subscriber.polling = undefined;
        this.#schedule(subscriber, subscriber.pendingProbes.length > 0 || this.#wanted.size > 0 ? 0 : this.#tickMs);
      });
    }, delayMs);
  }

  async #poll(subscriber: Subscriber): Promise<void> {
    const probes = subscriber.pendingProbes.splice(0);
    try {
      await this.#pollTurn();
    } catch (error) {
      subscriber.pendingProbes.unshift(...probes);
      subscriber.failuresInRow++;
      if (subscriber.failuresInRow >= this.#pollFailureLimit) {
        this.#fail(
          subscriber,
          new FactoryError('FACTORY_SUBSCRIPTION_FAILED', `polling ${this.description} failed ${subscriber.failuresInRow} times in a row; last: ${(error as Error).message}`, {
            ...(isFactoryError(error) ? { details: error.details } : {}),
          }),
        );
      }
      return;
    }
    subscriber.failuresInRow = 0;
    this.#completedPolls++;
    if (!subscriber.open) return;
    const atMs = this.#options.clock.now();
    const current = this.#currentIssues();
    const events: IssueSourceEvent[] = [];
    for (const [key, issue] of current) {
      const before = subscriber.snapshot.get(key);
      if (before === undefined || before.revision !== issue.revision || before.priority !== issue.priority || before.createdAtMs !== issue.createdAtMs) {
        events.push({ kind: 'changed', path: issue.location, atMs });
      }
    }
    for (const [key, issue] of subscriber.snapshot) if (!current.has(key)) events.push({ kind: 'removed', path: issue.location, atMs });
    for (const token of probes) events.push({ kind: 'probe', token, atMs });
    subscriber.snapshot = current;
    for (const event of events) {
      if (!subscriber.open) return;
      try {
        subscriber.handlers.onEvent(event);
      } catch (error) {
        // Same rule as the other sources: a throwing handler ends its subscription through onError.
        this.#fail(subscriber, error instanceof Error ? error : new Error(String(error)));
        return;
      }
    }
  }

  #fail(subscriber: Subscriber, error: Error): void {
    if (!subscriber.open) return;
    this.#end(subscriber);
    subscriber.handlers.onError(error);
  }

  #end(subscriber: Subscriber): void {
    subscriber.open = false;
    this.#options.clock.clearTimeout(subscriber.timer);
    this.#subscribers.delete(subscriber);
  }

  /**
   * One poll of the loop: every repo without a budget; under a budget the
   * repos a webhook named, else the one polled longest ago (when its turn
   * has come), so requests stay within the budget however many repos there are.
   */
  async #pollTurn(): Promise<void> {
    if (!this.#budgeted) {
      this.#wanted.clear();
      return this.#refresh();
    }
    const wanted = [...this.#wanted];
    this.#wanted.clear();
    if (wanted.length > 0) return this.#refreshSome(wanted);
    const stalest = [...this.#repos].sort((a, b) => a.lastPolledMs - b.lastPolledMs)[0]!;
    if (this.#options.clock.now() - stalest.lastPolledMs < this.#repoIntervalMs) return;
    return this.#refreshSome([stalest]);
  }

  /** Repos never read or not polled within their interval (a scan under a budget). */
  #refreshStale(): Promise<void> {
    const now = this.#options.clock.now();
    const stale = this.#repos.filter((state) => !state.loaded || now - state.lastPolledMs >= this.#repoIntervalMs);
    return stale.length === 0 ? Promise.resolve() : this.#refreshSome(stale);
  }

  async #refreshSome(states: readonly RepoState[]): Promise<void> {
    // Behind any whole refresh in flight, so a poll never races a scan on one repo's cursor.
    await this.#inflight?.catch(() => undefined);
    const results = await Promise.allSettled(states.map((state) => this.#refreshRepo(state)));
    const failures = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected').map((result) => result.reason as Error);
    if (failures.length > 0) {
      const [first] = failures;
      throw new FactoryError('FACTORY_GITHUB_REQUEST_FAILED', `${failures.length} of ${states.length} repositories could not be polled; first: ${first?.message}`, {
        ...(isFactoryError(first) ? { details: first.details } : {}),
      });
    }
  }

  /**
   * Brings every repo up to date. Callers that arrive while a refresh runs
   * share one follow-up refresh, which starts after it: a scan always sees
   * what changed before it was called.
   */
  #refresh(): Promise<void> {
    if (this.#inflight === undefined) {
      this.#inflight = this.#refreshAll().finally(() => {
        this.#inflight = undefined;
      });
      return this.#inflight;
    }
    this.#queued ??= this.#inflight
      .catch(() => undefined)
      .then(() => {
        this.#queued = undefined;
        return this.#refresh();
      });
    return this.#queued;
  }

  async #refreshAll(): Promise<void> {
    const results = await Promise.allSettled(this.#repos.map((state) => this.#refreshRepo(state)));
    const failures = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected').map((result) => result.reason as Error);
    if (failures.length > 0) {
      const [first] = failures;
      throw new FactoryError('FACTORY_GITHUB_REQUEST_FAILED', `${failures.length} of ${this.#repos.length} repositories could not be polled; first: ${first?.message}`, {
        ...(isFactoryError(first) ? { details: first.details } : {}),
      });
    }
  }

  async #refreshRepo(state: RepoState): Promise<void> {
    const { repoClient, clock } = this.#options;
    const startedMs = clock.now();
    try {
      if (!state.loaded || clock.now() - state.lastFullListingMs >= this.#fullResyncIntervalMs) {
        const listing = await repoClient.listOpenIssues(state.repo);
        const startedAtMs = listing.serverTimeMs;
        state.issues = new Map();
        state.unreadable = new Map();
        for (const record of listing.issues) this.#apply(state, record);
        // Changes after the listing have updated_at at or after its start (less any skew).
        state.cursorMs = Math.max(state.cursorMs, startedAtMs - SINCE_OVERLAP_MS);
        state.etag = undefined;
        state.loaded = true;
        state.lastFullListingMs = clock.now();
      }
      const since = new Date(state.cursorMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
      const page = await repoClient.listIssuesUpdatedSince(state.repo, since, state.etag);
      state.deniedReason = undefined;
      state.lastPolledMs = startedMs;
      if (page.notModified) return;
      let newestMs = 0;
      for (const record of page.issues) {
        this.#apply(state, record);
        newestMs = Math.max(newestMs, Date.parse(record.updated_at) || 0);
      }
      const nextCursorMs = Math.max(state.cursorMs, newestMs - SINCE_OVERLAP_MS);
      // A new cursor is a new query: its first answer has no ETag to match yet.
      state.etag = nextCursorMs === state.cursorMs ? page.etag : undefined;
      state.cursorMs = nextCursorMs;
    } catch (error) {
      const status = isFactoryError(error) ? error.details.status : undefined;
      const refused = isFactoryError(error, 'FACTORY_GITHUB_REQUEST_FAILED') && typeof status === 'number' && DENIED_STATUSES.has(status) && error.details.rateLimited !== true;
      if (refused) {
        state.deniedReason = `${formatRepoSlug(state.repo)}: GitHub answered ${status}; the repository does not exist or the credential cannot read its issues (${error.message})`;
        state.loaded = false;
        return;
      }
      throw error;
    }
  }

  #apply(state: RepoState, record: GitHubIssueRecord): void {
    const mapped = mapGitHubIssue(state.repo, record, this.#mapping);
    state.unreadable.delete(record.number);
    if (mapped.kind === 'pull-request') return;
    if (mapped.kind === 'unreadable') {
      state.issues.delete(record.number);
      if (record.state === 'open') state.unreadable.set(record.number, mapped.reason);
      return;
    }
    if (mapped.issue.state === 'closed') state.issues.delete(record.number);
    else state.issues.set(record.number, mapped.issue);
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
