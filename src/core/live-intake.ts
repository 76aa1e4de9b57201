import { randomBytes } from 'node:crypto';
import type { SkippedIssueFileStatus, SubscriptionHealth, SubscriptionState } from '../domain/heartbeat.js';
import { FactoryError, isFactoryError } from '../errors.js';
import type { Issue } from '../domain/issue.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { IssueSource, IssueSourceEvent, IssueSubscription, SkippedIssueFile } from '../ports/issue-source.js';
import type { Dispatcher, IntakeDecision } from './dispatch/dispatcher.js';
import type { Logger } from '../ports/logger.js';

export type IntakeTransport = 'subscribe' | 'poll' | 'subscribe-and-poll';

export interface LiveIntakeOptions {
  readonly source: IssueSource;
  readonly dispatcher: Dispatcher;
  readonly clock: Clock;
  readonly log: Logger;
  readonly transport: IntakeTransport;
  readonly reconcileIntervalMs: number;
  readonly debounceMs: number;
  /** How often a probe proves events flow end to end (sources with `probe()` only). */
  readonly probeIntervalMs: number;
  /** A probe not seen back within this marks the subscription wedged. */
  readonly probeTimeoutMs: number;
  /** Unhealthy for longer than this is fatal: `onFatal` is called and the daemon exits non-zero. */
  readonly unhealthyLimitMs: number;
  readonly onFatal: (error: FactoryError) => void;
  /** Called after every intake pass (metrics, status). */
  readonly onPass?: (pass: IntakePass) => void;
  /**
   * Called when what the heartbeat shows changed between its refreshes: a
   * source event arrived, an event pass ran, a reconcile decided something or
   * changed the skipped files. The session writes the heartbeat soon after.
   */
  readonly onVisibleChange?: () => void;
}

/** The heartbeat carries at most this many skipped files (it is rewritten every refresh). */
const MAX_SKIPPED_FILES_SHOWN = 100;

/** A pass in flight this many reconcile intervals (at least a minute) reads as stalled. */
const STALLED_RECONCILE_INTERVALS = 3;
const MIN_STALLED_RECONCILE_MS = 60_000;

export interface IntakePass {
  readonly kind: 'reconcile' | 'events';
  readonly issues: number;
  readonly skippedFiles: readonly SkippedIssueFile[];
  readonly decisions: readonly IntakeDecision[];
  readonly durationMs: number;
  /** When the earliest source event behind this pass arrived; null for a timer reconcile. Feeds the event-to-dispatch latency metric. */
  readonly firstEventAtMs: number | null;
}

/**
 * Turns source events and periodic full reconciles into dispatcher intake.
 * Events are hints: each batch re-reads only the files named, and a full
 * reconcile on a timer closes any gap a missed event left. Passes never
 * overlap, and a burst of events within `debounceMs` is one pass.
 *
 * It also proves its own health. A process can be alive while its watcher has
 * silently stopped delivering, so every `probeIntervalMs` a probe is written
 * into the source and must come back through the subscription within
 * `probeTimeoutMs`. A lost probe marks the subscription `wedged`: it is
 * resubscribed and a full reconcile closes the gap. Unhealthy for longer than
 * `unhealthyLimitMs` (a watcher that cannot heal, reconciles that keep
 * failing or hang) is fatal: the daemon exits non-zero for its supervisor to
 * restart it.
 */
export class LiveIntake {
  readonly #options: LiveIntakeOptions;
  readonly #pendingPaths = new Set<string>();
  readonly #keyByLocation = new Map<string, string>();
  /** Files skipped now, by path, with the version each was reported for: one warn per version, not one per pass. */
  readonly #skippedFiles = new Map<string, SkippedIssueFileStatus & { readonly version: string }>();
  #subscription: IssueSubscription | undefined;
  #debounceTimer: TimerHandle | undefined;
  #reconcileTimer: TimerHandle | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;
  #fullPassRequested = false;
  #firstPendingEventAtMs: number | null = null;
  #healthTimer: TimerHandle | undefined;
  #probeTimer: TimerHandle | undefined;
  #pendingProbe: string | undefined;
  #fatal = false;
  #health: {
    state: SubscriptionState;
    lastEventAtMs: number | null;
    lastProgressAtMs: number | null;
    reconcileStartedAtMs: number | null;
    unhealthySinceMs: number | null;
    lastError: string | null;
  } = { state: 'starting', lastEventAtMs: null, lastProgressAtMs: null, reconcileStartedAtMs: null, unhealthySinceMs: null, lastError: null };

  constructor(options: LiveIntakeOptions) {
    this.#options = options;
  }

  get #stalledAfterMs(): number {
    return Math.max(MIN_STALLED_RECONCILE_MS, STALLED_RECONCILE_INTERVALS * this.#options.reconcileIntervalMs);
  }

  /** Whether this intake proves its subscription with probes (else reconciles are the proof). */
  get #probing(): boolean {
    return this.#options.transport !== 'poll' && typeof this.#options.source.probe === 'function';
  }

  /** O(1) snapshot for the heartbeat. */
  health(): SubscriptionHealth {
    return { ...this.#health, transport: this.#options.transport, reconcileStalledAfterMs: this.#stalledAfterMs };
  }

  /** Files the source cannot read as issues right now, at most MAX_SKIPPED_FILES_SHOWN (the heartbeat refresh carries them to `status`). */
  skippedFiles(): readonly SkippedIssueFileStatus[] {
    const shown: SkippedIssueFileStatus[] = [];
    for (const { path, reason, sinceMs } of this.#skippedFiles.values()) {
      if (shown.length === MAX_SKIPPED_FILES_SHOWN) break;
      shown.push({ path, reason, sinceMs });
    }
    return shown;
  }

  /**
   * Records the files a pass skipped and warns once per file version: a
   * malformed file present at startup is reported at the first reconcile and
   * again only when it changes, however many passes see it. A complete pass
   * also forgets files that are fixed or gone. Returns whether the set changed.
   */
  #noteSkippedFiles(skipped: readonly SkippedIssueFile[], options: { complete: boolean }): boolean {
    const { clock, log } = this.#options;
    let changed = false;
    if (options.complete) {
      const stillSkipped = new Set(skipped.map((file) => file.path));
      for (const path of this.#skippedFiles.keys()) if (!stillSkipped.has(path)) changed = this.#skippedFiles.delete(path) || changed;
    }
    for (const file of skipped) {
      const version = file.revision ?? file.reason;
      if (this.#skippedFiles.get(file.path)?.version === version) continue;
      this.#skippedFiles.set(file.path, { path: file.path, reason: file.reason, sinceMs: clock.now(), version });
      changed = true;
      log.warn({ path: file.path }, `issue file skipped: ${file.reason}`);
    }
    return changed;
  }

  /** Subscribes (per transport), runs the first full reconcile, and arms the reconcile and health timers. */
  async start(): Promise<IntakePass> {
    if (this.#options.transport !== 'poll') await this.#subscribe();
    else this.#health.state = 'polling';
    const first = await this.reconcile();
    this.#armReconcile();
    this.#armHealthCheck();
    return first;
  }

  #markUnhealthy(reason: string): void {
    this.#health.lastError = reason;
    this.#health.unhealthySinceMs ??= this.#options.clock.now();
  }

  #markHealthy(): void {
    this.#health.unhealthySinceMs = null;
    this.#health.lastError = null;
    this.#health.lastProgressAtMs = this.#options.clock.now();
  }

  #armHealthCheck(): void {
    if (this.#closed) return;
    this.#healthTimer = this.#options.clock.setTimeout(
      () => {
        this.#checkHealth();
        this.#armHealthCheck();
      },
      Math.min(this.#options.probeIntervalMs, this.#options.reconcileIntervalMs),
    );
  }

  /** Runs on its own timer: sends a probe, and gives up when unhealthy for too long. */
  #checkHealth(): void {
    const { clock, unhealthyLimitMs, log } = this.#options;
    const now = clock.now();
    const startedAt = this.#health.reconcileStartedAtMs;
    if (startedAt !== null && now - startedAt > this.#stalledAfterMs) this.#markUnhealthy(`a reconcile pass has been in flight for ${now - startedAt} ms (stalled)`);
    const since = this.#health.unhealthySinceMs;
    if (since !== null && now - since > unhealthyLimitMs && !this.#fatal) {
      this.#fatal = true;
      this.#health.state = 'wedged';
      const message = `the issue subscription has been unhealthy for ${now - since} ms (intake.unhealthyLimitMs ${unhealthyLimitMs}): ${this.#health.lastError ?? 'no progress'}`;
      log.error({ unhealthySinceMs: since }, message);
      this.#options.onFatal(new FactoryError('FACTORY_SUBSCRIPTION_FAILED', message));
      return;
    }
    if (this.#probing && this.#pendingProbe === undefined && this.#subscription) void this.#sendProbe();
  }

  async #sendProbe(): Promise<void> {
    const { source, clock, probeTimeoutMs } = this.#options;
    const token = randomBytes(6).toString('hex');
    this.#pendingProbe = token;
    this.#probeTimer = clock.setTimeout(() => this.#onProbeLost(token), probeTimeoutMs);
    try {
      await source.probe!(token);
    } catch (error) {
      this.#options.log.warn({ err: (error as Error).message }, 'could not write the subscription probe');
    }
  }

  #onProbeLost(token: string): void {
    if (this.#pendingProbe !== token || this.#closed) return;
    this.#pendingProbe = undefined;
    this.#health.state = 'wedged';
    this.#markUnhealthy(`probe not seen back through the subscription within ${this.#options.probeTimeoutMs} ms`);
    this.#options.log.warn({}, 'issue subscription is wedged (probe lost); resubscribing and reconciling');
    void this.#resubscribe();
  }

  #onProbeSeen(token: string | undefined): void {
    if (token === undefined || token !== this.#pendingProbe) return;
    this.#options.clock.clearTimeout(this.#probeTimer);
    this.#pendingProbe = undefined;
    if (this.#health.state !== 'subscribed') this.#options.log.info({}, 'issue subscription healthy again (probe seen)');
    this.#health.state = 'subscribed';
    this.#markHealthy();
  }

  async #subscribe(): Promise<void> {
    const { source, log } = this.#options;
    try {
      this.#subscription = await source.subscribe({
        onEvent: (event) => this.#onEvent(event),
        onError: (error) => {
          this.#markUnhealthy(error.message);
          this.#health.state = 'reconnecting';
          log.warn({ err: error.message }, 'issue subscription broke; resubscribing and reconciling');
          void this.#resubscribe();
        },
      });
      // After a wedge, a new subscription is not proof of health: with probes,
      // the state stays as it is until a probe comes back through it.
      if (this.#health.unhealthySinceMs === null || !this.#probing) this.#health.state = 'subscribed';
    } catch (error) {
      this.#health.state = 'reconnecting';
      this.#markUnhealthy((error as Error).message);
      throw error;
    }
  }

  async #resubscribe(): Promise<void> {
    await this.#subscription?.close().catch(() => undefined);
    this.#subscription = undefined;
    if (this.#closed) return;
    try {
      await this.#subscribe();
      // Prove the new subscription at once rather than at the next interval.
      if (this.#probing && this.#pendingProbe === undefined) void this.#sendProbe();
      await this.reconcile().catch(() => undefined);
    } catch {
      // Still broken: the next health check or subscription error tries again; polling keeps intake going meanwhile.
      if (!this.#closed) this.#resubscribeTimer = this.#options.clock.setTimeout(() => void this.#resubscribe(), this.#options.probeTimeoutMs);
    }
  }

  #resubscribeTimer: TimerHandle | undefined;

  #onEvent(event: IssueSourceEvent): void {
    if (this.#closed) return;
    this.#health.lastEventAtMs = event.atMs;
    if (event.kind === 'probe') {
      this.#onProbeSeen(event.token);
      return;
    }
    this.#options.onVisibleChange?.();
    this.#firstPendingEventAtMs ??= event.atMs;
    if (event.kind === 'overflow' || event.path === undefined) this.#fullPassRequested = true;
    else this.#pendingPaths.add(event.path);
    if (this.#debounceTimer === undefined) {
      this.#debounceTimer = this.#options.clock.setTimeout(() => {
        this.#debounceTimer = undefined;
        void this.#serial(() => this.#processEvents());
      }, this.#options.debounceMs);
    }
  }

  /** Runs a full reconcile pass after any pass in flight (used at start, after a resubscribe and by the timer). */
  reconcile(): Promise<IntakePass> {
    return this.#serial(() => this.#reconcileNow());
  }

  async #reconcileNow(firstEventAtMs: number | null = null): Promise<IntakePass> {
    const { source, dispatcher, clock } = this.#options;
    const startedAt = clock.now();
    this.#health.reconcileStartedAtMs = startedAt;
    this.#fullPassRequested = false;
    try {
      const scan = await source.scan();
      this.#keyByLocation.clear();
      for (const issue of scan.issues) this.#keyByLocation.set(issue.location, issue.key);
      const decisions = await dispatcher.intake(scan.issues, { complete: true });
      await dispatcher.pump();
      // A completed pass is the progress receipt of a source without probes. With
      // probes, only a probe seen back proves the watcher itself is healthy.
      if (!this.#probing) this.#markHealthy();
      else this.#health.lastProgressAtMs = clock.now();
      const pass: IntakePass = { kind: 'reconcile', issues: scan.issues.length, skippedFiles: scan.skipped, decisions, durationMs: clock.now() - startedAt, firstEventAtMs };
      const skippedChanged = this.#noteSkippedFiles(scan.skipped, { complete: true });
      if (skippedChanged || decisions.length > 0) this.#options.onVisibleChange?.();
      this.#options.onPass?.(pass);
      return pass;
    } catch (error) {
      this.#markUnhealthy(`reconcile failed: ${(error as Error).message}`);
      throw error;
    } finally {
      this.#health.reconcileStartedAtMs = null;
    }
  }

  async #processEvents(): Promise<void> {
    const firstEventAtMs = this.#firstPendingEventAtMs;
    this.#firstPendingEventAtMs = null;
    if (this.#fullPassRequested) {
      this.#pendingPaths.clear();
      await this.#reconcileNow(firstEventAtMs);
      return;
    }
    const { source, dispatcher, clock } = this.#options;
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
        this.#skippedFiles.delete(path);
        issues.push(issue);
      } catch (error) {
        const key = this.#keyByLocation.get(path);
        const removed = isFactoryError(error, 'FACTORY_ISSUE_NOT_FOUND');
        if (removed) this.#skippedFiles.delete(path);
        if (removed && key !== undefined) {
          this.#keyByLocation.delete(path);
          const decision = await dispatcher.removeIssue(key);
          if (decision) decisions.push(decision);
        } else if (!removed) {
          const revision = isFactoryError(error) && typeof error.details.revision === 'string' ? error.details.revision : undefined;
          skippedFiles.push({ path, reason: (error as Error).message, ...(revision ? { revision } : {}) });
        }
      }
    }
    this.#noteSkippedFiles(skippedFiles, { complete: false });
    decisions.push(...(await dispatcher.intake(issues, { complete: false })));
    await dispatcher.pump();
    this.#options.onVisibleChange?.();
    this.#options.onPass?.({ kind: 'events', issues: issues.length, skippedFiles, decisions, durationMs: clock.now() - startedAt, firstEventAtMs });
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
    const guarded = async (): Promise<T> => {
      try {
        return await work();
      } catch (error) {
        // A newer daemon owns the state: this one must stop now, not retry.
        if (isFactoryError(error, 'FACTORY_STATE_STALE_EPOCH') && !this.#fatal) {
          this.#fatal = true;
          this.#options.onFatal(error);
        }
        throw error;
      }
    };
    const next = this.#chain.then(guarded, guarded);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of [this.#debounceTimer, this.#reconcileTimer, this.#healthTimer, this.#probeTimer, this.#resubscribeTimer]) this.#options.clock.clearTimeout(timer);
    await this.#subscription?.close().catch(() => undefined);
    this.#subscription = undefined;
    this.#health.state = 'not-listening';
    await this.#chain;
  }
}
