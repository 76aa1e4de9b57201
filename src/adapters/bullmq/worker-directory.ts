import type { Redis } from 'ioredis';
import type { FleetStatus, WorkerAnnouncement } from '../../ports/team-run-queue.js';
import { parseRedisInfo } from '../redis/connection.js';
import type { FleetKeys } from '../redis/keys.js';
import type { TeamRunKeys } from './team-run-keys.js';

/**
 * Workers announce themselves in the pool's `workers` hash (node -> JSON) every
 * heartbeat interval, and remove their entry when they stop in order. Readers
 * (status, the state API, metrics) judge a worker by the age of its entry: a
 * worker that died or lost Redis stops refreshing it. A worker silent for
 * `forgetAfterMs` is dropped from the hash by the next reader, so the hash
 * stays as small as the fleet.
 */

/** A worker whose entry is older than this many refresh intervals reads as cut off (`silent`). */
const SILENT_AFTER_INTERVALS = 3;
const FORGET_AFTER_MS = 24 * 3_600_000;

export async function announceWorker(redis: Redis, keys: Pick<TeamRunKeys, 'workers'>, announcement: WorkerAnnouncement): Promise<void> {
  await redis.hset(keys.workers, announcement.node, JSON.stringify(announcement));
}

export async function removeWorker(redis: Redis, keys: Pick<TeamRunKeys, 'workers'>, node: string): Promise<void> {
  await redis.hdel(keys.workers, node);
}

function parseAnnouncement(json: string): WorkerAnnouncement | undefined {
  try {
    const value = JSON.parse(json) as WorkerAnnouncement;
    return typeof value.node === 'string' && typeof value.updatedAtMs === 'number' && Array.isArray(value.runs) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Reads the fleet as it is now: a handful of commands, none of which grows with history. */
export async function readFleetStatus(
  redis: Redis,
  keys: { readonly queue: TeamRunKeys; readonly lease: Pick<FleetKeys, 'leaseEpoch' | 'leaseOwner'> },
  options: { readonly nowMs: number; readonly refreshIntervalMs: number },
): Promise<FleetStatus> {
  const q = `${keys.queue.prefix}:${keys.queue.queueName}`;
  const [entries, owner, ownerTtl, epoch, waiting, prioritized, active, delayed, completed, failed, info, dbsize] = await Promise.all([
    redis.hgetall(keys.queue.workers),
    redis.get(keys.lease.leaseOwner),
    redis.pttl(keys.lease.leaseOwner),
    redis.get(keys.lease.leaseEpoch),
    redis.llen(`${q}:wait`),
    redis.zcard(`${q}:prioritized`),
    redis.llen(`${q}:active`),
    redis.zcard(`${q}:delayed`),
    redis.zcard(`${q}:completed`),
    redis.zcard(`${q}:failed`),
    redis.info('memory'),
    redis.dbsize(),
  ]);
  const workers: FleetStatus['workers'][number][] = [];
  const forgotten: string[] = [];
  for (const [node, json] of Object.entries(entries)) {
    const announcement = parseAnnouncement(json);
    const ageMs = announcement ? options.nowMs - announcement.updatedAtMs : Number.POSITIVE_INFINITY;
    if (!announcement || ageMs > FORGET_AFTER_MS) {
      forgotten.push(node);
      continue;
    }
    workers.push({ ...announcement, heartbeatAgeMs: ageMs, redis: ageMs <= SILENT_AFTER_INTERVALS * options.refreshIntervalMs ? 'connected' : 'silent' });
  }
  if (forgotten.length > 0) await redis.hdel(keys.queue.workers, ...forgotten).catch(() => undefined);
  workers.sort((a, b) => a.heartbeatAgeMs - b.heartbeatAgeMs || (a.node < b.node ? -1 : 1));
  return {
    leader: parseLeader(owner, ownerTtl),
    epoch: Number(epoch ?? 0),
    workers,
    placements: workers.filter((w) => w.redis === 'connected').flatMap((w) => w.runs.map((run) => ({ ...run, node: w.node }))),
    queue: { waiting: waiting + prioritized, active, delayed, completed, failed },
    redis: { usedMemoryBytes: Number(parseRedisInfo(info).get('used_memory') ?? 0), keys: dbsize },
  };
}

/** The lease owner key is `<epoch> <token> <owner JSON>`. */
function parseLeader(value: string | null, ttlMs: number): FleetStatus['leader'] {
  if (value === null) return null;
  const first = value.indexOf(' ');
  const second = value.indexOf(' ', first + 1);
  try {
    const owner = JSON.parse(value.slice(second + 1)) as { hostname?: string; pid?: number };
    return { hostname: String(owner.hostname ?? '?'), pid: Number(owner.pid ?? 0), epoch: Number(value.slice(0, first)), expiresInMs: ttlMs >= 0 ? ttlMs : null };
  } catch {
    return null;
  }
}
