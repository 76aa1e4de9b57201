import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ProcessIdentity } from '../../domain/process.js';
import { FactoryError, isFactoryError } from '../../errors.js';
import type { Clock, TimerHandle } from '../../ports/clock.js';
import type { HeldLease, Lease, LeaseGrant, LeaseOwner } from '../../ports/lease.js';
import type { Logger } from '../../ports/logger.js';
import type { FleetKeys } from '../redis/keys.js';
import { ACQUIRE_LEASE, RELEASE_LEASE, RENEW_LEASE, runScript } from '../redis/scripts.js';

/**
 * The control plane's leader lease in Redis: an epoch counter (INCR on every
 * grant, so it only grows) and an owner key with a TTL. Acquire, renew and
 * release are Lua scripts, so "is it still ours?" and the change happen in
 * one step. Renewal only extends a key that is still exactly ours under the
 * same epoch; an expired lease is never revived.
 *
 * The holder stops acting BEFORE the key can expire. Each grant or renewal
 * gives a deadline on the monotonic clock, counted from the moment the
 * command was SENT (the server set the TTL later, so its expiry is later):
 * `sentAt + ttl - safetyMargin`. A watchdog fires at that deadline unless a
 * renewal moved it; the holder is then told (`onLost`) and `stillValid()`
 * turns false. A frozen holder that wakes up finds its deadline passed before
 * it can act; a partitioned one stops while its key still lives in Redis.
 *
 * What the lease does not stop alone, fencing does: every state write carries
 * the epoch and the owner value, checked by the same Lua step that writes
 * (adapters/state-store/redis-state-store.ts).
 */

export interface RedisLeaseOwner extends LeaseOwner {
  readonly hostname: string;
}

export interface RedisLeaseGrant extends LeaseGrant {
  readonly owner: RedisLeaseOwner;
}

export type LeaseLossReason =
  /** No renewal succeeded before the monotonic deadline (Redis unreachable, or this process was frozen). */
  | 'deadline-passed'
  /** Redis says the key is no longer ours: expired, or another holder took it. */
  | 'taken-over';

export interface LeaseLoss {
  readonly name: string;
  readonly epoch: number;
  readonly reason: LeaseLossReason;
  /** Monotonic ms between the last successful grant/renewal send and the loss. */
  readonly sinceLastRenewMs: number;
}

export interface RedisLeaseOptions {
  readonly redis: Redis;
  readonly keys: Pick<FleetKeys, 'leaseEpoch' | 'leaseOwner'>;
  /** Who acquires (written into the owner key, so `inspect()` and `factory status` can name the leader). */
  readonly owner: ProcessIdentity & { readonly hostname: string };
  /** Timers (renewal, watchdog, standby polling) and wall-clock stamps. */
  readonly clock: Clock;
  /**
   * The monotonic clock the deadline is judged on: `performance.now()` by
   * default. A test on a FakeClock passes `() => clock.now()`.
   */
  readonly monotonicNow?: () => number;
  readonly ttlMs?: number;
  readonly renewEveryMs?: number;
  /**
   * The holder stops this long before the earliest moment its key could
   * expire: room for the time between a `stillValid()` check and the act it
   * guards, and for clock-rate drift between this host and Redis's.
   */
  readonly safetyMarginMs?: number;
  /** Renew on a timer while held (default true). Off: the caller calls `renew()`. */
  readonly autoRenew?: boolean;
  /** Told once when a held lease is lost; the holder must stop acting at once. */
  readonly onLost?: (loss: LeaseLoss) => void;
  /** Told after each successful renewal, with its round trip (for metrics). */
  readonly onRenewed?: (latencyMs: number) => void;
  readonly log?: Logger;
}

export const DEFAULT_LEASE_TTL_MS = 15_000;
export const DEFAULT_LEASE_RENEW_EVERY_MS = 5_000;
export const DEFAULT_LEASE_SAFETY_MARGIN_MS = 2_000;
/** A renewal that failed (timeout, Redis away) is retried this soon rather than a full period later. */
const RENEW_RETRY_MS = 1_000;

/** The owner key's value: `<epoch> <token> <owner JSON>`. */
function parseOwnerValue(name: string, value: string): RedisLeaseGrant | null {
  const first = value.indexOf(' ');
  const second = value.indexOf(' ', first + 1);
  if (first < 0 || second < 0) return null;
  const epoch = Number(value.slice(0, first));
  try {
    const owner = JSON.parse(value.slice(second + 1)) as RedisLeaseOwner & { expiresAtMs?: number };
    if (!Number.isSafeInteger(epoch) || typeof owner.pid !== 'number') return null;
    return { name, epoch, owner: { pid: owner.pid, startTime: owner.startTime, bootId: owner.bootId, hostname: owner.hostname, acquiredAtMs: owner.acquiredAtMs }, expiresAtMs: null };
  } catch {
    return null;
  }
}

function asReply(reply: unknown): [number, string, number, number] {
  const [granted, value, epoch, ttl] = reply as [number, string, number | string, number];
  return [granted, value, Number(epoch), Number(ttl)];
}

function unreachable(name: string, error: unknown): FactoryError {
  if (isFactoryError(error)) return error;
  return new FactoryError('FACTORY_REDIS_UNREACHABLE', `the leader lease ${name} could not be reached in Redis: ${(error as Error).message}`, { cause: error });
}

export class RedisLease implements Lease {
  readonly name: string;
  readonly ttlMs: number;
  readonly renewEveryMs: number;
  readonly safetyMarginMs: number;
  readonly #options: RedisLeaseOptions;
  readonly #monotonic: () => number;

  constructor(options: RedisLeaseOptions) {
    this.#options = options;
    this.name = options.keys.leaseOwner;
    this.ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    this.renewEveryMs = options.renewEveryMs ?? DEFAULT_LEASE_RENEW_EVERY_MS;
    this.safetyMarginMs = options.safetyMarginMs ?? DEFAULT_LEASE_SAFETY_MARGIN_MS;
    this.#monotonic = options.monotonicNow ?? (() => performance.now());
    // Two renewals must fit before the holder stops, or one slow round trip would cost the lease.
    if (2 * this.renewEveryMs >= this.ttlMs - this.safetyMarginMs) {
      throw new RangeError(`lease renewEveryMs (${this.renewEveryMs}) must be under half of ttlMs - safetyMarginMs (${this.ttlMs} - ${this.safetyMarginMs})`);
    }
  }

  async inspect(): Promise<RedisLeaseGrant | null> {
    let value: string | null;
    let pttl: number;
    try {
      [value, pttl] = await Promise.all([this.#options.redis.get(this.name), this.#options.redis.pttl(this.name)]);
    } catch (error) {
      throw unreachable(this.name, error);
    }
    if (value === null) return null;
    const grant = parseOwnerValue(this.name, value);
    return grant && { ...grant, expiresAtMs: pttl >= 0 ? this.#options.clock.now() + pttl : null };
  }

  /** The current epoch (0 before the first grant). */
  async currentEpoch(): Promise<number> {
    try {
      return Number((await this.#options.redis.get(this.#options.keys.leaseEpoch)) ?? 0);
    } catch (error) {
      throw unreachable(this.name, error);
    }
  }

  /**
   * Takes the lease when nobody holds it. Throws FACTORY_LEASE_HELD
   * (details.owner, details.retryInMs) when another holder has it, and
   * FACTORY_REDIS_UNREACHABLE when Redis does not answer. `owner` replaces the
   * configured owner for this grant (the state store passes the daemon's).
   */
  async acquire(owner: ProcessIdentity & { readonly hostname: string } = this.#options.owner): Promise<RedisHeldLease> {
    const { redis, keys, clock } = this.#options;
    const token = randomBytes(12).toString('hex');
    const ownerRecord: RedisLeaseOwner = { pid: owner.pid, startTime: owner.startTime, bootId: owner.bootId, hostname: owner.hostname, acquiredAtMs: clock.now() };
    const sentAt = this.#monotonic();
    let reply: [number, string, number, number];
    try {
      reply = asReply(await runScript(redis, ACQUIRE_LEASE, [keys.leaseEpoch, keys.leaseOwner], [this.ttlMs, token, JSON.stringify(ownerRecord)]));
    } catch (error) {
      throw unreachable(this.name, error);
    }
    const [granted, value, epoch, ttl] = reply;
    if (granted !== 1) {
      const holder = parseOwnerValue(this.name, value);
      throw new FactoryError(
        'FACTORY_LEASE_HELD',
        `the leader lease ${this.name} is held by ${holder ? `${holder.owner.hostname} pid ${holder.owner.pid}` : 'another control plane'} (epoch ${holder?.epoch ?? epoch})`,
        { details: { name: this.name, owner: holder?.owner ?? null, epoch: holder?.epoch ?? epoch, retryInMs: Math.max(0, ttl) } },
      );
    }
    const held = new RedisHeldLease(this, this.#options, this.#monotonic, { value, epoch, owner: ownerRecord, sentAt });
    this.#options.log?.info({ lease: this.name, epoch, latencyMs: Math.round(this.#monotonic() - sentAt) }, 'leader lease acquired');
    return held;
  }

  /**
   * Stands by until the lease is free, then takes it: polls every `pollMs`,
   * or sooner when the holder's remaining TTL is shorter. Redis being away is
   * ridden out (retried at the same pace). Rejects with the signal's reason
   * when aborted.
   */
  async acquireWhenFree(options: { readonly pollMs?: number; readonly signal?: AbortSignal; readonly owner?: ProcessIdentity & { readonly hostname: string } } = {}): Promise<RedisHeldLease> {
    const pollMs = options.pollMs ?? 1_000;
    for (;;) {
      options.signal?.throwIfAborted();
      let waitMs = pollMs;
      try {
        return await this.acquire(options.owner);
      } catch (error) {
        if (isFactoryError(error, 'FACTORY_LEASE_HELD')) {
          const retryInMs = Number(error.details.retryInMs);
          if (Number.isFinite(retryInMs)) waitMs = Math.min(pollMs, retryInMs + 1);
        } else if (!isFactoryError(error, 'FACTORY_REDIS_UNREACHABLE')) {
          throw error;
        }
      }
      await this.#options.clock.sleep(Math.max(1, waitMs));
    }
  }
}

interface GrantState {
  readonly value: string;
  readonly epoch: number;
  readonly owner: RedisLeaseOwner;
  readonly sentAt: number;
}

type HoldState = 'held' | 'lost' | 'released';

/** A grant of the leader lease: renews itself (unless told not to) and knows, locally, until when it may act. */
export class RedisHeldLease implements HeldLease {
  readonly name: string;
  readonly owner: RedisLeaseOwner;
  readonly epoch: number;
  /** The exact owner-key value: what the state store's fence compares. */
  readonly fenceValue: string;
  readonly #lease: RedisLease;
  readonly #options: RedisLeaseOptions;
  readonly #monotonic: () => number;
  #state: HoldState = 'held';
  /** Monotonic ms when the last successful grant/renewal was sent. */
  #lastSentAt: number;
  /** Monotonic: stop acting at this instant unless renewed. */
  #actUntil: number;
  /** Wall clock estimate of the key's expiry, for readers. */
  #expiresAtMs: number;
  #renewTimer: TimerHandle | undefined;
  #watchdog: TimerHandle | undefined;
  #renewing: Promise<boolean> | undefined;
  #renewals = 0;
  #lossReason: LeaseLossReason | undefined;

  constructor(lease: RedisLease, options: RedisLeaseOptions, monotonic: () => number, grant: GrantState) {
    this.#lease = lease;
    this.#options = options;
    this.#monotonic = monotonic;
    this.name = lease.name;
    this.owner = grant.owner;
    this.epoch = grant.epoch;
    this.fenceValue = grant.value;
    this.#lastSentAt = grant.sentAt;
    this.#actUntil = grant.sentAt + lease.ttlMs - lease.safetyMarginMs;
    this.#expiresAtMs = options.clock.now() + lease.ttlMs;
    this.#armWatchdog();
    if (options.autoRenew ?? true) this.#scheduleRenew(lease.renewEveryMs);
  }

  get expiresAtMs(): number {
    return this.#expiresAtMs;
  }

  /** Successful renewals so far. */
  get renewals(): number {
    return this.#renewals;
  }

  get lossReason(): LeaseLossReason | undefined {
    return this.#lossReason;
  }

  /** Monotonic ms left before this holder must stop acting (0 when it must stop now). */
  validForMs(): number {
    return this.#state === 'held' ? Math.max(0, this.#actUntil - this.#monotonic()) : 0;
  }

  /**
   * The local, instant answer to "may I act?": still held and the monotonic
   * deadline not reached. No round trip, so it is cheap enough to ask before
   * every dispatch.
   */
  stillValid(): boolean {
    if (this.#state !== 'held') return false;
    if (this.#monotonic() >= this.#actUntil) {
      this.#lose('deadline-passed');
      return false;
    }
    return true;
  }

  async held(): Promise<boolean> {
    if (!this.stillValid()) return false;
    let value: string | null;
    try {
      value = await this.#options.redis.get(this.name);
    } catch {
      // Redis did not answer: the local deadline still bounds the grant (nobody can take the key before it expires).
      return this.stillValid();
    }
    if (value !== this.fenceValue) {
      this.#lose('taken-over');
      return false;
    }
    return this.stillValid();
  }

  async renew(): Promise<RedisHeldLease> {
    if (!(await this.#renewOnce())) {
      throw new FactoryError('FACTORY_LEASE_LOST', `the leader lease ${this.name} (epoch ${this.epoch}) is no longer held by this process (${this.#lossReason ?? this.#state})`, {
        details: { name: this.name, epoch: this.epoch, reason: this.#lossReason ?? this.#state },
      });
    }
    return this;
  }

  async release(): Promise<void> {
    if (this.#state === 'released') return;
    const wasHeld = this.#state === 'held';
    this.#state = 'released';
    this.#stopTimers();
    // Hand over at once rather than make a standby wait out the TTL; a key that is no longer ours is left alone.
    if (wasHeld || this.#lossReason === 'deadline-passed') {
      await runScript(this.#options.redis, RELEASE_LEASE, [this.name], [this.fenceValue]).catch(() => undefined);
    }
    this.#options.log?.info({ lease: this.name, epoch: this.epoch }, 'leader lease released');
  }

  /** One renewal; concurrent callers share it. True when the lease is still ours afterwards. */
  #renewOnce(): Promise<boolean> {
    if (this.#state !== 'held') return Promise.resolve(false);
    this.#renewing ??= this.#sendRenewal().finally(() => {
      this.#renewing = undefined;
    });
    return this.#renewing;
  }

  async #sendRenewal(): Promise<boolean> {
    const { redis, keys, clock } = this.#options;
    const sentAt = this.#monotonic();
    let renewed: boolean;
    try {
      renewed = Number(await runScript(redis, RENEW_LEASE, [keys.leaseEpoch, keys.leaseOwner], [this.#lease.ttlMs, this.fenceValue, String(this.epoch)])) === 1;
    } catch (error) {
      // Not an answer either way: keep the current deadline and let the watchdog judge.
      this.#options.log?.warn({ lease: this.name, epoch: this.epoch, error: (error as Error).message, validForMs: Math.round(this.validForMs()) }, 'leader lease renewal failed');
      return this.stillValid();
    }
    if (this.#state !== 'held') return false;
    if (!renewed) {
      this.#lose('taken-over');
      return false;
    }
    // A renewal that returns after the deadline does not revive the grant: the holder has already stopped.
    if (this.#monotonic() >= this.#actUntil) {
      this.#lose('deadline-passed');
      return false;
    }
    this.#lastSentAt = sentAt;
    this.#actUntil = sentAt + this.#lease.ttlMs - this.#lease.safetyMarginMs;
    this.#expiresAtMs = clock.now() + this.#lease.ttlMs;
    this.#renewals += 1;
    this.#armWatchdog();
    this.#options.onRenewed?.(this.#monotonic() - sentAt);
    return true;
  }

  #scheduleRenew(delayMs: number): void {
    const { clock } = this.#options;
    clock.clearTimeout(this.#renewTimer);
    this.#renewTimer = clock.setTimeout(() => {
      this.#renewTimer = undefined;
      void this.#renewOnce().then((ok) => {
        if (this.#state === 'held') this.#scheduleRenew(ok ? this.#lease.renewEveryMs : Math.min(RENEW_RETRY_MS, this.#lease.renewEveryMs));
      });
    }, delayMs);
  }

  #armWatchdog(): void {
    const { clock } = this.#options;
    clock.clearTimeout(this.#watchdog);
    this.#watchdog = clock.setTimeout(
      () => {
        this.#watchdog = undefined;
        // Timers can fire late (a frozen process) or early by a tick: judge on the monotonic clock only.
        if (!this.stillValid() || this.#state !== 'held') return;
        this.#armWatchdog();
      },
      Math.max(1, this.#actUntil - this.#monotonic()),
    );
  }

  #stopTimers(): void {
    this.#options.clock.clearTimeout(this.#renewTimer);
    this.#options.clock.clearTimeout(this.#watchdog);
    this.#renewTimer = undefined;
    this.#watchdog = undefined;
  }

  #lose(reason: LeaseLossReason): void {
    if (this.#state !== 'held') return;
    this.#state = 'lost';
    this.#lossReason = reason;
    this.#stopTimers();
    const loss: LeaseLoss = { name: this.name, epoch: this.epoch, reason, sinceLastRenewMs: this.#monotonic() - this.#lastSentAt };
    this.#options.log?.warn({ lease: this.name, epoch: this.epoch, reason, sinceLastRenewMs: Math.round(loss.sinceLastRenewMs) }, 'leader lease lost: this control plane stops acting');
    this.#options.onLost?.(loss);
  }
}
