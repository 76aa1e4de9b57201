import { FactoryError } from '../../errors.js';
import { isValidIssueKey, READY_STATE, type Issue } from '../../domain/issue.js';
import { computeIssueRevision, normalizeIssueBody } from '../../domain/issue-parse.js';
import type { RunOutcome } from '../../domain/run.js';
import type { Clock } from '../../ports/clock.js';
import type { IssueScan, IssueSource, IssueSourceEvent, IssueSubscription, IssueSubscriptionHandlers, SkippedIssueFile } from '../../ports/issue-source.js';

/** What a test says about an issue; everything but key and title has a default. */
export interface InMemoryIssueInput {
  readonly key: string;
  readonly title: string;
  readonly body?: string;
  readonly labels?: readonly string[];
  /** Default `ready`. */
  readonly state?: string;
  readonly priority?: number;
  /** Default: the clock's now at the first put of this key. */
  readonly createdAtMs?: number;
}

export interface RecordedWriteBack {
  readonly issue: Issue;
  readonly outcome: RunOutcome;
  readonly atMs: number;
}

interface Subscriber {
  readonly handlers: IssueSubscriptionHandlers;
  open: boolean;
  /** Wedged: still open, but events no longer reach it, like a watcher that silently stopped. */
  deaf: boolean;
}

export interface InMemoryIssueSourceOptions {
  readonly clock: Clock;
  readonly description?: string;
  /**
   * Offer `probe()`, echoing each token back as a `probe` event. Off by
   * default: a daemon only probes sources that offer it, so tests that do not
   * care about subscription health see no probe traffic.
   */
  readonly probes?: boolean;
}

/**
 * An IssueSource held in memory, for unit tests of the daemon. It behaves like
 * the local mount where the daemon can tell: revisions follow the same rule,
 * events arrive asynchronously and in order, every put announces itself (even
 * one that changes nothing, as a touched file does), and writeBack is recorded
 * but never announced.
 */
export class InMemoryIssueSource implements IssueSource {
  readonly description: string;
  readonly #clock: Clock;
  readonly #issues = new Map<string, Issue>();
  readonly #unreadable = new Map<string, SkippedIssueFile>();
  readonly #subscribers = new Set<Subscriber>();
  readonly #writeBacks: RecordedWriteBack[] = [];
  #writeBackFailure: Error | undefined;
  #scanCount = 0;

  /** Present only when constructed with `probes: true` (see InMemoryIssueSourceOptions). */
  readonly probe?: (token: string) => Promise<void>;

  constructor(options: InMemoryIssueSourceOptions) {
    this.#clock = options.clock;
    this.description = options.description ?? 'in-memory issues';
    if (options.probes === true) {
      this.probe = async (token: string) => this.#announce({ kind: 'probe', token, atMs: this.#clock.now() });
    }
  }

  /** Every writeBack so far, oldest first. */
  get writeBacks(): readonly RecordedWriteBack[] {
    return this.#writeBacks;
  }

  /** How many scans ran: lets a test prove a reconcile pass happened (or did not). */
  get scanCount(): number {
    return this.#scanCount;
  }

  get openSubscriptionCount(): number {
    return this.#subscribers.size;
  }

  /** Where an issue with this key lives in this source. */
  locationOf(key: string): string {
    return `memory://${key}`;
  }

  /** Adds or replaces an issue and announces it with a `changed` event. */
  put(input: InMemoryIssueInput): Issue {
    if (!isValidIssueKey(input.key)) throw new TypeError(`InMemoryIssueSource.put: invalid issue key ${JSON.stringify(input.key)}`);
    const previous = this.#issues.get(input.key);
    const fields = {
      key: input.key,
      title: input.title,
      body: normalizeIssueBody(input.body ?? ''),
      labels: [...new Set(input.labels ?? [])],
      state: input.state ?? READY_STATE,
    };
    const issue: Issue = {
      ...fields,
      ...(input.priority === undefined ? {} : { priority: input.priority }),
      createdAtMs: input.createdAtMs ?? previous?.createdAtMs ?? this.#clock.now(),
      revision: computeIssueRevision(fields),
      location: this.locationOf(input.key),
    };
    this.#unreadable.delete(issue.location);
    this.#issues.set(issue.key, issue);
    this.#announce({ kind: 'changed', path: issue.location, atMs: this.#clock.now() });
    return issue;
  }

  /** Adds a record the source cannot read; scans report it as skipped with `reason`. */
  putUnreadable(location: string, reason: string): void {
    this.#unreadable.set(location, { path: location, reason });
    this.#announce({ kind: 'changed', path: location, atMs: this.#clock.now() });
  }

  /** Removes an issue (by key or location) or an unreadable record; announces a `removed` event. */
  remove(keyOrLocation: string): boolean {
    const issue = this.#findIssue(keyOrLocation);
    const location = issue?.location ?? keyOrLocation;
    const removed = (issue !== undefined && this.#issues.delete(issue.key)) || this.#unreadable.delete(location);
    if (removed) this.#announce({ kind: 'removed', path: location, atMs: this.#clock.now() });
    return removed;
  }

  /** Tells subscribers that events were lost, so they must reconcile. */
  announceOverflow(): void {
    this.#announce({ kind: 'overflow', atMs: this.#clock.now() });
  }

  /**
   * Makes every open subscription silently stop delivering (probes included),
   * as a stuck watcher does: no error, just nothing. Subscriptions made later
   * work, so resubscribing heals it.
   */
  wedgeSubscriptions(): void {
    for (const subscriber of this.#subscribers) subscriber.deaf = true;
  }

  /** Breaks every open subscription, as a watcher error or a removed folder would. */
  breakSubscriptions(error: Error): void {
    for (const subscriber of [...this.#subscribers]) this.#fail(subscriber, error);
  }

  /** Makes every following writeBack throw `error` (undefined restores success). */
  failWriteBacksWith(error: Error | undefined): void {
    this.#writeBackFailure = error;
  }

  async scan(): Promise<IssueScan> {
    this.#scanCount++;
    const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    return {
      issues: [...this.#issues.values()].sort((a, b) => compareText(a.location, b.location)),
      skipped: [...this.#unreadable.values()].sort((a, b) => compareText(a.path, b.path)),
    };
  }

  async read(keyOrPath: string): Promise<Issue> {
    const issue = this.#findIssue(keyOrPath);
    if (issue !== undefined) return issue;
    const unreadable = this.#unreadable.get(keyOrPath) ?? this.#unreadable.get(this.locationOf(keyOrPath));
    if (unreadable !== undefined) throw new FactoryError('FACTORY_ISSUE_INVALID', unreadable.reason, { details: { path: unreadable.path } });
    throw new FactoryError('FACTORY_ISSUE_NOT_FOUND', `no issue ${JSON.stringify(keyOrPath)} in ${this.description}`, { details: { keyOrPath } });
  }

  async subscribe(handlers: IssueSubscriptionHandlers): Promise<IssueSubscription> {
    const subscriber: Subscriber = { handlers, open: true, deaf: false };
    this.#subscribers.add(subscriber);
    return {
      close: async () => {
        subscriber.open = false;
        this.#subscribers.delete(subscriber);
      },
    };
  }

  async writeBack(issue: Issue, outcome: RunOutcome): Promise<void> {
    if (this.#writeBackFailure !== undefined) throw this.#writeBackFailure;
    this.#writeBacks.push({ issue, outcome, atMs: this.#clock.now() });
  }

  #findIssue(keyOrLocation: string): Issue | undefined {
    const byKey = this.#issues.get(keyOrLocation);
    if (byKey !== undefined) return byKey;
    return [...this.#issues.values()].find((issue) => issue.location === keyOrLocation);
  }

  /**
   * Delivers on a microtask, like a real watcher that reports after the write
   * returned: a daemon test cannot come to rely on synchronous delivery.
   */
  #announce(event: IssueSourceEvent): void {
    for (const subscriber of this.#subscribers) {
      if (subscriber.deaf) continue;
      queueMicrotask(() => {
        if (!subscriber.open) return;
        try {
          subscriber.handlers.onEvent(event);
        } catch (error) {
          // Same rule as the local mount: a throwing handler ends its subscription through onError.
          this.#fail(subscriber, error instanceof Error ? error : new Error(String(error)));
        }
      });
    }
  }

  #fail(subscriber: Subscriber, error: Error): void {
    if (!subscriber.open) return;
    subscriber.open = false;
    this.#subscribers.delete(subscriber);
    subscriber.handlers.onError(error);
  }
}
