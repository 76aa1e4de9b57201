import type { DaemonMode, DaemonStatus, Heartbeat, HeartbeatResources, SkippedIssueFileStatus, SubscriptionHealth } from '../domain/heartbeat.js';
import { computeRefreshIntervalMs } from '../domain/heartbeat.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { ProcessIdentity } from '../ports/process-table.js';
import type { Logger } from '../ports/logger.js';
import type { HeartbeatStore } from '../ports/node-state-store.js';

/** Live numbers the heartbeat carries. Each getter must be O(1): the refresh calls them every tick. */
export interface HeartbeatGauges {
  inFlightTeams(): number;
  queuedIssues(): number;
  subscription(): SubscriptionHealth;
  iteration(): number;
  /** Detection's report and admission's holds; absent when the daemon was given no resource detection. */
  resources?(): HeartbeatResources;
  /** Issue files intake skips now (bounded by intake); absent or empty, the heartbeat carries none. */
  skippedFiles?(): readonly SkippedIssueFileStatus[];
}

export interface HeartbeatKeeperOptions {
  /** Where the heartbeat goes; the keeper only ever writes it (tests count and hold the writes). */
  readonly store: Pick<HeartbeatStore, 'location' | 'write'>;
  readonly hostname: string;
  readonly registryPath: string;
  readonly statePath: string;
  readonly configPath: string;
  readonly mode: DaemonMode;
  readonly maxIterations: number;
  readonly identity: ProcessIdentity;
  readonly epoch: number;
  readonly intervalMs: number;
  readonly staleMs: number;
  readonly clock: Clock;
  readonly gauges: HeartbeatGauges;
  readonly log: Logger;
}

/** The skipped files when there are any: a clean mount keeps the heartbeat as small as before. */
function skippedFilesOf(gauges: HeartbeatGauges): { skippedFiles?: readonly SkippedIssueFileStatus[] } {
  const files = gauges.skippedFiles?.() ?? [];
  return files.length > 0 ? { skippedFiles: files } : {};
}

/**
 * The least time between a prompt write and the write before it: readers see
 * a change within about this long, and a burst of events costs one write a
 * second at most, not one per event.
 */
export const PROMPT_WRITE_MIN_GAP_MS = 1_000;

/** The last heartbeat write that succeeded, for the metrics and the state API. */
export interface HeartbeatWrite {
  readonly status: DaemonStatus;
  readonly atMs: number;
  readonly durationMs: number;
}

/**
 * Keeps the heartbeat file fresh. The refresh is deliberately O(1): it builds
 * one small object from counters and writes one file: no registry rewrite,
 * no process lookups, no fleet calls (the seed's refresh did all three).
 */
export class HeartbeatKeeper {
  readonly #options: HeartbeatKeeperOptions;
  readonly #refreshIntervalMs: number;
  readonly #startedAtMs: number;
  #status: DaemonStatus = 'starting';
  #timer: TimerHandle | undefined;
  #promptTimer: TimerHandle | undefined;
  #refreshing = false;
  #refreshCancelled = true;
  #inFlight: Promise<void> = Promise.resolve();
  #writesInFlight = 0;
  #lastWriteError: string | null = null;
  #lastWrite: HeartbeatWrite | null = null;
  #httpUrl: string | undefined;

  constructor(options: HeartbeatKeeperOptions) {
    this.#options = options;
    this.#refreshIntervalMs = computeRefreshIntervalMs(options.intervalMs, options.staleMs);
    this.#startedAtMs = options.clock.now();
  }

  get refreshIntervalMs(): number {
    return this.#refreshIntervalMs;
  }

  get status(): DaemonStatus {
    return this.#status;
  }

  get lastWriteError(): string | null {
    return this.#lastWriteError;
  }

  get lastWrite(): HeartbeatWrite | null {
    return this.#lastWrite;
  }

  /**
   * Names the status server's URL in every heartbeat from the next write on,
   * so scripts and tests find a server bound to port 0 without parsing logs.
   */
  advertiseHttp(url: string): void {
    this.#httpUrl = url;
  }

  /** Writes the heartbeat with `status` now. Writes are serialized, never interleaved. */
  write(status: DaemonStatus): Promise<void> {
    this.#status = status;
    const next = this.#inFlight.then(() => this.#writeNow());
    this.#inFlight = next.catch(() => undefined);
    return next;
  }

  /** Starts the refresh timer. */
  startRefreshing(): void {
    this.#refreshCancelled = false;
    this.#schedule();
  }

  /**
   * Asks for a write soon, because what readers show changed (an event
   * arrived, a team started, the skipped files changed): within
   * PROMPT_WRITE_MIN_GAP_MS of the last write, however many ask meanwhile.
   * Only while refreshing, so a stopped daemon's final status stays last.
   */
  writeSoon(): void {
    if (this.#refreshCancelled || this.#promptTimer !== undefined) return;
    const sinceLastWriteMs = this.#lastWrite === null ? PROMPT_WRITE_MIN_GAP_MS : this.#options.clock.now() - this.#lastWrite.atMs;
    this.#promptTimer = this.#options.clock.setTimeout(
      () => {
        this.#promptTimer = undefined;
        if (this.#refreshCancelled) return;
        this.write(this.#status).catch((error: Error) => {
          // The next refresh tick writes again; a stale heartbeat is the alarm if it persists.
          this.#options.log.warn({ err: error.message, path: this.#options.store.location }, 'heartbeat write failed; retrying next tick');
        });
      },
      Math.max(0, PROMPT_WRITE_MIN_GAP_MS - sinceLastWriteMs),
    );
  }

  /** Cancels the refresh timer for good, then waits for any write already in flight. */
  async stopRefreshing(): Promise<void> {
    this.#refreshCancelled = true;
    this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#options.clock.clearTimeout(this.#promptTimer);
    this.#promptTimer = undefined;
    await this.#inFlight;
  }

  #schedule(): void {
    this.#timer = this.#options.clock.setTimeout(() => this.#refresh(), this.#refreshIntervalMs);
  }

  #refresh(): void {
    this.#timer = undefined;
    // A refresh still in flight (a slow disk) is not doubled: this tick is skipped.
    if (this.#refreshing || this.#writesInFlight > 0) {
      this.#schedule();
      return;
    }
    this.#refreshing = true;
    this.write(this.#status)
      .catch((error: Error) => {
        // Logged and retried on the next tick; a stale heartbeat is the alarm if it persists.
        this.#options.log.warn({ err: error.message, path: this.#options.store.location }, 'heartbeat refresh failed; retrying next tick');
      })
      .finally(() => {
        this.#refreshing = false;
        // stopRefreshing() may have run while this write was in flight: do not resurrect the timer.
        if (!this.#refreshCancelled) this.#schedule();
      });
  }

  async #writeNow(): Promise<void> {
    const { clock, gauges } = this.#options;
    // This write reads the gauges now, so it answers any writeSoon() asked before it.
    clock.clearTimeout(this.#promptTimer);
    this.#promptTimer = undefined;
    const nowMs = clock.now();
    const heartbeat: Heartbeat = {
      version: 1,
      pid: this.#options.identity.pid,
      startTime: this.#options.identity.startTime,
      bootId: this.#options.identity.bootId,
      hostname: this.#options.hostname,
      status: this.#status,
      mode: this.#options.mode,
      iteration: gauges.iteration(),
      maxIterations: this.#options.maxIterations,
      startedAtMs: this.#startedAtMs,
      updatedAt: new Date(nowMs).toISOString(),
      updatedAtMs: nowMs,
      registryPath: this.#options.registryPath,
      statePath: this.#options.statePath,
      configPath: this.#options.configPath,
      epoch: this.#options.epoch,
      inFlightTeams: gauges.inFlightTeams(),
      queuedIssues: gauges.queuedIssues(),
      subscription: gauges.subscription(),
      ...(gauges.resources ? { resources: gauges.resources() } : {}),
      ...skippedFilesOf(gauges),
      ...(this.#httpUrl === undefined ? {} : { http: { url: this.#httpUrl } }),
    };
    this.#writesInFlight++;
    // Wall time of the write itself (a measurement for metrics, not a timing rule, so not the clock port).
    const writeStarted = performance.now();
    try {
      await this.#options.store.write(heartbeat);
      this.#lastWrite = { status: heartbeat.status, atMs: nowMs, durationMs: performance.now() - writeStarted };
      this.#lastWriteError = null;
    } catch (error) {
      this.#lastWriteError = (error as Error).message;
      throw error;
    } finally {
      this.#writesInFlight--;
    }
  }
}
