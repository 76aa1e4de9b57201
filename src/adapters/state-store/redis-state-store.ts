import type { Redis } from 'ioredis';
import type { RunOutcome } from '../../domain/run.js';
import { FactoryError, staleEpochError } from '../../errors.js';
import { isActiveClaimStatus, type IssueClaim } from '../../domain/claim.js';
import type { AgentUsageRecord, DaemonOwner, SkipRecord, StateBatch, StateStore, UsageSummary } from '../../ports/state-store.js';
import { summarizeUsage } from '../../domain/agent-events/usage-records.js';
import type { RedisHeldLease, RedisLease } from '../lease/redis-lease.js';
import type { FleetKeys } from '../redis/keys.js';
import { APPLY_BATCH, HASH_VALUES_OF_SET, HASH_VALUES_OF_ZRANGE, runScript } from '../redis/scripts.js';

/**
 * The state store in Redis, for control planes on several machines. The
 * epoch IS the leader lease's epoch: `beginEpoch` takes the lease, and every
 * batch is applied by one Lua script that first checks the batch's epoch
 * against the current lease epoch and the owner key against ours. A leader
 * that was frozen or partitioned and lost the lease has its writes refused
 * (FACTORY_STATE_STALE_EPOCH) with nothing of the batch applied, however late
 * they arrive. That is what makes at-least-once delivery exactly-once in
 * effect: a stale leader cannot record anything.
 *
 * Bounded: claims and skips are one hash field per issue (as in SQLite); the
 * outcome history keeps the latest `outcomeHistoryLimit` plus any outcome not
 * yet written back (a terminal state is never trimmed before it reached the
 * source); `outcomeCount` counts every outcome ever recorded.
 */

export interface RedisStateStoreOptions {
  readonly redis: Redis;
  readonly keys: FleetKeys;
  /** The leader lease on the same Redis and keys. Absent: a read-only store (status readers), never an epoch or a write. */
  readonly lease?: RedisLease;
  /** Outcomes kept for `recentOutcomes` (default 1,000). */
  readonly outcomeHistoryLimit?: number;
  /** Quit the connection on close (default false: the composition root owns it). */
  readonly ownsConnection?: boolean;
}

export const DEFAULT_OUTCOME_HISTORY_LIMIT = 1_000;

function normalizeClaim(claim: IssueClaim): IssueClaim {
  return { ...claim, interruptions: claim.interruptions ?? 0, node: claim.node ?? null, park: claim.park ?? null };
}

/** Newest update first; the issue key breaks ties so the order is stable. */
function byUpdateNewestFirst(a: IssueClaim, b: IssueClaim): number {
  return b.updatedAtMs - a.updatedAtMs || (a.issueKey < b.issueKey ? -1 : a.issueKey > b.issueKey ? 1 : 0);
}

function unreachable(error: unknown): FactoryError {
  if (error instanceof FactoryError) return error;
  return new FactoryError('FACTORY_REDIS_UNREACHABLE', `the Redis state store did not answer: ${(error as Error).message}`, { cause: error });
}

export class RedisStateStore implements StateStore {
  readonly #redis: Redis;
  readonly #keys: FleetKeys;
  readonly #lease: RedisLease | undefined;
  readonly #historyLimit: number;
  readonly #ownsConnection: boolean;
  #held: RedisHeldLease | undefined;
  #closed = false;

  constructor(options: RedisStateStoreOptions) {
    this.#redis = options.redis;
    this.#keys = options.keys;
    this.#lease = options.lease;
    this.#historyLimit = options.outcomeHistoryLimit ?? DEFAULT_OUTCOME_HISTORY_LIMIT;
    this.#ownsConnection = options.ownsConnection ?? false;
    if (!Number.isSafeInteger(this.#historyLimit) || this.#historyLimit < 1) throw new RangeError(`outcomeHistoryLimit must be a positive integer, got ${this.#historyLimit}`);
  }

  /** The lease this store writes under, once `beginEpoch` took it. */
  get heldLease(): RedisHeldLease | undefined {
    return this.#held;
  }

  #writableLease(): RedisLease {
    if (!this.#lease) throw new FactoryError('FACTORY_STATE_READ_ONLY', `the Redis state ${this.#keys.base}* was opened read-only (no leader lease) and cannot be written`);
    return this.#lease;
  }

  /**
   * Takes the leader lease: its new epoch is this store's epoch. Throws
   * FACTORY_LEASE_HELD when another control plane leads (stand by and retry).
   * A second call gives up the current grant and takes a new one.
   */
  async beginEpoch(owner: DaemonOwner, _nowMs: number): Promise<number> {
    const lease = this.#writableLease();
    if (this.#held) {
      await this.#held.release();
      this.#held = undefined;
    }
    this.#held = await lease.acquire(owner);
    return this.#held.epoch;
  }

  async currentEpoch(): Promise<number> {
    try {
      return Number((await this.#redis.get(this.#keys.leaseEpoch)) ?? 0);
    } catch (error) {
      throw unreachable(error);
    }
  }

  async getClaim(issueKey: string): Promise<IssueClaim | undefined> {
    let json: string | null;
    try {
      json = await this.#redis.hget(this.#keys.claims, issueKey);
    } catch (error) {
      throw unreachable(error);
    }
    return json === null ? undefined : (JSON.parse(json) as IssueClaim);
  }

  async listClaims(): Promise<IssueClaim[]> {
    let all: Record<string, string>;
    try {
      all = await this.#redis.hgetall(this.#keys.claims);
    } catch (error) {
      throw unreachable(error);
    }
    return Object.values(all)
      .map((json) => JSON.parse(json) as IssueClaim)
      .sort(byUpdateNewestFirst);
  }

  async listActiveClaims(): Promise<IssueClaim[]> {
    const values = await this.#script<string[]>(HASH_VALUES_OF_SET, [this.#keys.activeClaims, this.#keys.claims], []);
    return values.map((json) => JSON.parse(json) as IssueClaim).sort(byUpdateNewestFirst);
  }

  async apply(batch: StateBatch): Promise<void> {
    this.#writableLease();
    const claims = [...(batch.claims ?? []), ...(batch.outcome ? [batch.outcome.nextClaim] : [])].map(normalizeClaim);
    const payload = JSON.stringify({
      claims: claims.map((claim) => [claim.issueKey, JSON.stringify(claim), isActiveClaimStatus(claim.status) ? 1 : 0]),
      skips: (batch.skips ?? []).map((skip) => [skip.issueKey, JSON.stringify({ reason: skip.reason, atMs: skip.atMs })]),
      cleared: batch.clearedSkips ?? [],
      ...(batch.outcome ? { outcome: [batch.outcome.outcome.runId, JSON.stringify(batch.outcome.outcome)] } : {}),
    });
    const k = this.#keys;
    // Without a grant the fence value can match nothing, so the script refuses the batch and says why.
    const fence = this.#held?.fenceValue ?? '';
    const [applied, current, why] = await this.#script<[number, string, string?]>(
      APPLY_BATCH,
      [k.leaseEpoch, k.leaseOwner, k.claims, k.activeClaims, k.skips, k.outcomes, k.outcomeOrder, k.pendingWritebacks, k.outcomeSeq, k.outcomeTotal],
      [String(batch.epoch), fence, this.#historyLimit, payload],
    );
    if (applied === 1) return;
    const currentEpoch = Number(current);
    if (why === 'epoch') throw staleEpochError(batch.epoch, currentEpoch);
    throw new FactoryError(
      'FACTORY_STATE_STALE_EPOCH',
      why === 'expired'
        ? `a write from epoch ${batch.epoch} was refused: its leader lease expired and nobody holds it now`
        : `a write from epoch ${batch.epoch} was refused: the leader lease of epoch ${currentEpoch} is not held by this control plane`,
      { details: { epoch: batch.epoch, current: currentEpoch, reason: why } },
    );
  }

  /**
   * Not fenced: it records a fact (the outcome reached the source), true
   * whoever wrote it, and it only ever shrinks the pending set.
   */
  async markWrittenBack(runId: string): Promise<void> {
    this.#writableLease();
    try {
      await this.#redis.zrem(this.#keys.pendingWritebacks, runId);
    } catch (error) {
      throw unreachable(error);
    }
  }

  async pendingWritebacks(): Promise<RunOutcome[]> {
    const values = await this.#script<string[]>(HASH_VALUES_OF_ZRANGE, [this.#keys.pendingWritebacks, this.#keys.outcomes], [0, -1, '']);
    return values.map((json) => JSON.parse(json) as RunOutcome);
  }

  async recentOutcomes(limit: number): Promise<RunOutcome[]> {
    if (limit <= 0) return [];
    const values = await this.#script<string[]>(HASH_VALUES_OF_ZRANGE, [this.#keys.outcomeOrder, this.#keys.outcomes], [0, limit - 1, 'rev']);
    return values.map((json) => JSON.parse(json) as RunOutcome);
  }

  async outcomeCount(): Promise<number> {
    try {
      return Number((await this.#redis.get(this.#keys.outcomeTotal)) ?? 0);
    } catch (error) {
      throw unreachable(error);
    }
  }

  async listSkips(): Promise<SkipRecord[]> {
    let all: Record<string, string>;
    try {
      all = await this.#redis.hgetall(this.#keys.skips);
    } catch (error) {
      throw unreachable(error);
    }
    return Object.entries(all)
      .map(([issueKey, json]) => {
        const { reason, atMs } = JSON.parse(json) as { reason: string; atMs: number };
        return { issueKey, reason, atMs };
      })
      .sort((a, b) => b.atMs - a.atMs || (a.issueKey < b.issueKey ? -1 : 1));
  }

  /** One hash field per agent run, so recording it again replaces it. Not fenced (see the port). */
  async recordUsage(records: readonly AgentUsageRecord[]): Promise<void> {
    this.#writableLease();
    if (records.length === 0) return;
    try {
      await this.#redis.hset(this.#keys.usage, ...records.flatMap((record) => [`${record.runId}/${record.agentName}`, JSON.stringify(record)]));
    } catch (error) {
      throw unreachable(error);
    }
  }

  /** Summed here from every record: one record per agent run is small, and a day's runs are few. */
  async usageSummary(sinceMs: number): Promise<UsageSummary> {
    let all: string[];
    try {
      all = await this.#redis.hvals(this.#keys.usage);
    } catch (error) {
      throw unreachable(error);
    }
    return summarizeUsage(all.map((json) => JSON.parse(json) as AgentUsageRecord).filter((record) => record.endedAtMs >= sinceMs));
  }

  /** Gives the lease up (a standby takes over at once) and, when it owns it, closes the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#held?.release();
    this.#held = undefined;
    if (this.#ownsConnection) await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  async #script<T>(lua: Parameters<typeof runScript>[1], keys: readonly string[], args: readonly (string | number)[]): Promise<T> {
    try {
      return (await runScript(this.#redis, lua, keys, args)) as T;
    } catch (error) {
      throw unreachable(error);
    }
  }
}
