import type { SubscriptionHealth, SubscriptionState } from '../domain/heartbeat.js';
import type { Issue } from '../domain/issue.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { IssueSource, IssueSourceEvent, IssueSubscription, SkippedIssueFile } from '../ports/issue-source.js';
import type { Dispatcher, IntakeDecision } from './dispatcher.js';
import type { Logger } from './logger.js';

export type IntakeTransport = 'subscribe' | 'poll' | 'subscribe-and-poll';

export interface LiveIntakeOptions {
  readonly source: IssueSource;
  readonly dispatcher: Dispatcher;
  readonly clock: Clock;
  readonly log: Logger;
  readonly transport: IntakeTransport;
  readonly reconcileIntervalMs: number;
  readonly debounceMs: number;
  /** Called when an intake pass changed something, so the daemon can react (metrics, status). */
  readonly onPass?: (pass: IntakePass) => void;
}

export interface IntakePass {
  readonly kind: 'reconcile' | 'events';
  readonly issues: number;
  readonly skippedFiles: readonly SkippedIssueFile[];
  readonly decisions: readonly IntakeDecision[];
  readonly durationMs: number;
}

/**
 * Turns source events and periodic full reconciles into dispatcher intake.
 * Events are hints: each batch re-reads only the files named, and a full
 * reconcile on a timer closes any gap a missed event left. Passes never
 * overlap, and a burst of events within `debounceMs` is one pass.
 */
export class LiveIntake {
  readonly #options: LiveIntakeOptions;
  readonly #pendingPaths = new Set<string>();
  readonly #keyByLocation = new Map<string, string>();
  #subscription: IssueSubscription | undefined;
  #debounceTimer: TimerHandle | undefined;
  #reconcileTimer: TimerHandle | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;
  #fullPassRequested = false;
  #health: {
    state: SubscriptionState;
    lastEventAtMs: number | null;
    lastProgressAtMs: number | null;
    reconcileStartedAtMs: number | null;
    lastError: string | null;
  } = { state: 'starting', lastEventAtMs: null, lastProgressAtMs: null, reconcileStartedAtMs: null, lastError: null };

  constructor(options: LiveIntakeOptions) {
    this.#options = options;
  }

  /** O(1) snapshot for the heartbeat. */
  health(): SubscriptionHealth {
    return { ...this.#health, transport: this.#options.transport };
  }

  /** Subscribes (per transport), runs the first full reconcile, and arms the reconcile timer. */
  async start(): Promise<IntakePass> {
    if (this.#options.transport !== 'poll') await this.#subscribe();
    else this.#health.state = 'polling';
    const first = await this.reconcile();
    this.#armReconcile();
    return first;
  }

  async #subscribe(): Promise<void> {
    const { source, log } = this.#options;
    try {
      this.#subscription = await source.subscribe({
        onEvent: (event) => this.#onEvent(event),
        onError: (error) => {
          this.#health.lastError = error.message;
          this.#health.state = 'reconnecting';
          log.warn({ err: error.message }, 'issue subscription broke; resubscribing and reconciling');
          void this.#resubscribe();
        },
      });
      this.#health.state = 'subscribed';
    } catch (error) {
      this.#health.state = 'reconnecting';
      this.#health.lastError = (error as Error).message;
      throw error;
    }
  }

  async #resubscribe(): Promise<void> {
    await this.#subscription?.close().catch(() => undefined);
    this.#subscription = undefined;
    if (this.#closed) return;
    try {
      await this.#subscribe();
      this.requestReconcile();
    } catch {
      // Still broken: the next reconcile tick tries again; polling keeps intake going meanwhile.
    }
  }

  #onEvent(event: IssueSourceEvent): void {
    if (this.#closed) return;
    this.#health.lastEventAtMs = event.atMs;
    if (event.kind === 'overflow' || event.path === undefined) this.#fullPassRequested = true;
    else this.#pendingPaths.add(event.path);
    if (this.#debounceTimer === undefined) {
      this.#debounceTimer = this.#options.clock.setTimeout(() => {
        this.#debounceTimer = undefined;
        void this.#serial(() => this.#processEvents());
      }, this.#options.debounceMs);
    }
  }

  /** Queues a full reconcile pass (used after a resubscribe and by the timer). */
  requestReconcile(): Promise<IntakePass> {
    return this.reconcile();
  }

  reconcile(): Promise<IntakePass> {
    return this.#serial(() => this.#reconcileNow());
  }

  async #reconcileNow(): Promise<IntakePass> {
    const { source, dispatcher, clock } = this.#options;
    const startedAt = clock.now();
    this.#health.reconcileStartedAtMs = startedAt;
    this.#fullPassRequested = false;
    try {
      const scan = await source.scan();
      this.#keyByLocation.clear();
      for (const issue of scan.issues) this.#keyByLocation.set(issue.location, issue.key);
      const decisions = dispatcher.intake(scan.issues, { complete: true });
      dispatcher.pump();
      this.#health.lastProgressAtMs = clock.now();
      this.#health.lastError = null;
      const pass: IntakePass = { kind: 'reconcile', issues: scan.issues.length, skippedFiles: scan.skipped, decisions, durationMs: clock.now() - startedAt };
      for (const skipped of scan.skipped) this.#options.log.debug({ path: skipped.path }, `issue file skipped: ${skipped.reason}`);
      this.#options.onPass?.(pass);
      return pass;
    } catch (error) {
      this.#health.lastError = (error as Error).message;
      throw error;
    } finally {
      this.#health.reconcileStartedAtMs = null;
    }
  }

  async #processEvents(): Promise<void> {
    if (this.#fullPassRequested) {
      this.#pendingPaths.clear();
      await this.#reconcileNow();
      return;
    }
    const { source, dispatcher, clock, log } = this.#options;
    const startedAt = clock.now();
    const paths = [...this.#pendingPaths];
    this.#pendingPaths.clear();
    const issues: Issue[] = [];
    const skippedFiles: SkippedIssueFile[] = [];
    const decisions: IntakeDecision[] = [];
    for (const path of paths) {
      try {
        const issue = await source.read(path);
        this.#keyByLocation.set(issue.location, issue.key);
        issues.push(issue);
      } catch (error) {
        const key = this.#keyByLocation.get(path);
        if ((error as { code?: string }).code === 'FACTORY_ISSUE_NOT_FOUND' && key !== undefined) {
          this.#keyByLocation.delete(path);
          const decision = dispatcher.removeIssue(key);
          if (decision) decisions.push(decision);
        } else if ((error as { code?: string }).code !== 'FACTORY_ISSUE_NOT_FOUND') {
          skippedFiles.push({ path, reason: (error as Error).message });
          log.warn({ path }, `issue file skipped: ${(error as Error).message}`);
        }
      }
    }
    decisions.push(...dispatcher.intake(issues, { complete: false }));
    dispatcher.pump();
    this.#options.onPass?.({ kind: 'events', issues: issues.length, skippedFiles, decisions, durationMs: clock.now() - startedAt });
  }

  #armReconcile(): void {
    if (this.#closed || this.#options.transport === 'subscribe') return;
    this.#reconcileTimer = this.#options.clock.setTimeout(() => {
      this.reconcile()
        .catch((error: Error) => this.#options.log.warn({ err: error.message }, 'reconcile pass failed; retrying next interval'))
        .finally(() => this.#armReconcile());
    }, this.#options.reconcileIntervalMs);
  }

  /** Passes run one at a time, in order. */
  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(work, work);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#options.clock.clearTimeout(this.#debounceTimer);
    this.#options.clock.clearTimeout(this.#reconcileTimer);
    await this.#subscription?.close().catch(() => undefined);
    this.#subscription = undefined;
    this.#health.state = 'not-listening';
    await this.#chain;
  }
}
