import type { RunOutcome } from '../../domain/run.js';
import { FactoryError, isFactoryError } from '../../errors.js';
import type { Clock } from '../../ports/clock.js';
import type { IssueClaim } from '../../domain/claim.js';
import type { AgentUsageRecord, DaemonOwner, SkipRecord, StateBatch, StateStore, UsageSummary } from '../../ports/state-store.js';
import type { RedisHeldLease } from '../lease/redis-lease.js';
import type { RedisStateStore } from './redis-state-store.js';

/**
 * The fleet control plane's state store: the Redis state store, taken only
 * under the leader lease.
 *
 * - `beginEpoch` stands by while another control plane leads: it polls the
 *   lease (every `pollMs`, sooner when the holder's TTL ends sooner) and
 *   returns the lease epoch once it has the lease. `onStandby` is told on each
 *   poll (the heartbeat says `standby`); `signal` ends the wait.
 * - `apply` refuses locally, without a round trip, once the lease is no longer
 *   provably held (`stillValid()` on the monotonic clock), so a leader past its
 *   deadline stops writing even before Redis would refuse it.
 */
export interface LeaderStateStoreOptions {
  readonly inner: RedisStateStore;
  readonly clock: Clock;
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
  readonly onStandby?: (holder: { readonly hostname?: string; readonly pid?: number; readonly epoch?: number } | null) => void | Promise<void>;
  /** Told once the lease is taken, before `beginEpoch` returns (the standby heartbeat stops here). */
  readonly onLeading?: (epoch: number) => void | Promise<void>;
  /** Told when `signal` ends the wait, before `beginEpoch` rejects (the standby heartbeat says `stopped` here, not a dead `standby`). */
  readonly onStandbyEnded?: () => void | Promise<void>;
}

export class LeaderStateStore implements StateStore {
  readonly #options: LeaderStateStoreOptions;
  readonly #inner: RedisStateStore;

  constructor(options: LeaderStateStoreOptions) {
    this.#options = options;
    this.#inner = options.inner;
  }

  /** The grant this store writes under, once it leads. */
  get heldLease(): RedisHeldLease | undefined {
    return this.#inner.heldLease;
  }

  async beginEpoch(owner: DaemonOwner, nowMs: number): Promise<number> {
    try {
      return await this.#standByUntilLeading(owner, nowMs);
    } catch (error) {
      if (this.#options.signal?.aborted) await this.#options.onStandbyEnded?.();
      throw error;
    }
  }

  async #standByUntilLeading(owner: DaemonOwner, nowMs: number): Promise<number> {
    const pollMs = this.#options.pollMs ?? 1_000;
    for (;;) {
      this.#options.signal?.throwIfAborted();
      let waitMs = pollMs;
      try {
        const epoch = await this.#inner.beginEpoch(owner, nowMs);
        await this.#options.onLeading?.(epoch);
        return epoch;
      } catch (error) {
        if (isFactoryError(error, 'FACTORY_LEASE_HELD')) {
          const retryInMs = Number(error.details.retryInMs);
          if (Number.isFinite(retryInMs)) waitMs = Math.min(pollMs, retryInMs + 1);
          const holder = error.details.owner as { hostname?: string; pid?: number } | null;
          await this.#options.onStandby?.(holder ? { ...holder, epoch: Number(error.details.epoch) } : null);
        } else if (isFactoryError(error, 'FACTORY_REDIS_UNREACHABLE')) {
          // Redis away: ride it out as a standby, it may come back.
          await this.#options.onStandby?.(null);
        } else {
          throw error;
        }
      }
      await abortableSleep(this.#options.clock, Math.max(1, waitMs), this.#options.signal);
    }
  }

  async apply(batch: StateBatch): Promise<void> {
    const held = this.#inner.heldLease;
    if (held && !held.stillValid()) {
      throw new FactoryError('FACTORY_STATE_STALE_EPOCH', `a write from epoch ${batch.epoch} was not sent: this control plane no longer holds the leader lease (${held.lossReason ?? 'released'})`, {
        details: { epoch: batch.epoch, reason: 'lease-lost' },
      });
    }
    return this.#inner.apply(batch);
  }

  currentEpoch(): Promise<number> {
    return this.#inner.currentEpoch();
  }
  getClaim(issueKey: string): Promise<IssueClaim | undefined> {
    return this.#inner.getClaim(issueKey);
  }
  listClaims(): Promise<IssueClaim[]> {
    return this.#inner.listClaims();
  }
  listActiveClaims(): Promise<IssueClaim[]> {
    return this.#inner.listActiveClaims();
  }
  markWrittenBack(runId: string): Promise<void> {
    return this.#inner.markWrittenBack(runId);
  }
  pendingWritebacks(): Promise<RunOutcome[]> {
    return this.#inner.pendingWritebacks();
  }
  recentOutcomes(limit: number): Promise<RunOutcome[]> {
    return this.#inner.recentOutcomes(limit);
  }
  outcomeCount(): Promise<number> {
    return this.#inner.outcomeCount();
  }
  listSkips(): Promise<SkipRecord[]> {
    return this.#inner.listSkips();
  }
  recordUsage(records: readonly AgentUsageRecord[]): Promise<void> {
    return this.#inner.recordUsage(records);
  }
  usageSummary(sinceMs: number): Promise<UsageSummary> {
    return this.#inner.usageSummary(sinceMs);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

async function abortableSleep(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return clock.sleep(ms);
  signal.throwIfAborted();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<void>((resolve) => {
    onAbort = () => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
  });
  await Promise.race([clock.sleep(ms), aborted]);
  signal.removeEventListener('abort', onAbort!);
  signal.throwIfAborted();
}
