import type { Redis } from 'ioredis';

/**
 * Lua run atomically next to the data it guards.
 *
 * `fencedPublish`: a worker appends a run event only while the job's lock
 * key still holds the worker's own token. A worker that froze past its lock
 * (or was cut off) finds the key gone or holding someone else's token, and its
 * event (the outcome above all) is refused in the same step that would have
 * written it: there is no window between the check and the write.
 * The stream is capped (MAXLEN ~) and expires `ttl` ms after its last event.
 */
const FENCED_PUBLISH = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'kind', ARGV[4], 'event', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`;

/**
 * `leaseFencedCancel`: the control plane writes a run's cancel record and
 * announces it only while the leader lease is still exactly its own (epoch
 * and owner value), in the step that writes: a leader that lost the lease
 * cannot cancel anything, however late its command arrives.
 */
const LEASE_FENCED_CANCEL = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[4])
return 1
`;

/**
 * `takeRun`: a worker takes a run it holds the lock of, in one step that
 * checks the run's epoch against the CURRENT leader epoch (the lease's epoch
 * key) and records who took it for which epoch. The run's epoch is the one
 * its job carries, or a later leader's that attached to it (`adoptedEpoch`).
 * A run older than the current epoch is refused: it was queued by a leader
 * that had already lost the lease (frozen inside its add), and nobody will
 * record what it does. Epochs only grow, so such a run can never pass.
 *
 * KEYS: lease epoch, job lock, run fence. ARGV: lock token, job epoch, node, ttl ms.
 * Returns {1, current, effective} taken, {-1, current, effective} stale,
 * {0, current, effective} when the lock is not ours (nothing written).
 */
const TAKE_RUN = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local effective = tonumber(ARGV[2])
local adopted = tonumber(redis.call('HGET', KEYS[3], 'adoptedEpoch') or '0')
if adopted > effective then effective = adopted end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {0, current, effective} end
if effective < current then return {-1, current, effective} end
redis.call('HSET', KEYS[3], 'takenBy', ARGV[3], 'takenEpoch', effective, 'takenToken', ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return {1, current, effective}
`;

/**
 * `leaseFencedAdopt`: a new leader that attaches to a run its predecessor
 * queued vouches for it under its own epoch, only while the lease is exactly
 * its own, so a worker that takes the run later does not refuse it as stale.
 *
 * KEYS: lease epoch, lease owner, run fence. ARGV: epoch, owner value, ttl ms.
 */
const LEASE_FENCED_ADOPT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[3], 'adoptedEpoch', ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
`;

export interface FencedCommands {
  fencedPublish(lockKey: string, streamKey: string, token: string, maxLen: number, ttlMs: number, kind: string, json: string): Promise<number>;
  leaseFencedCancel(leaseEpochKey: string, leaseOwnerKey: string, cancelKey: string, epoch: string, ownerValue: string, ttlMs: number, record: string, channel: string): Promise<number>;
  takeRun(leaseEpochKey: string, lockKey: string, runFenceKey: string, token: string, jobEpoch: number, node: string, ttlMs: number): Promise<[status: number, current: number, effective: number]>;
  leaseFencedAdopt(leaseEpochKey: string, leaseOwnerKey: string, runFenceKey: string, epoch: string, ownerValue: string, ttlMs: number): Promise<number>;
}

export function withFencedCommands(redis: Redis): Redis & FencedCommands {
  const typed = redis as Redis & Partial<FencedCommands>;
  if (typed.fencedPublish === undefined) redis.defineCommand('fencedPublish', { numberOfKeys: 2, lua: FENCED_PUBLISH });
  if (typed.leaseFencedCancel === undefined) redis.defineCommand('leaseFencedCancel', { numberOfKeys: 3, lua: LEASE_FENCED_CANCEL });
  if (typed.takeRun === undefined) redis.defineCommand('takeRun', { numberOfKeys: 3, lua: TAKE_RUN });
  if (typed.leaseFencedAdopt === undefined) redis.defineCommand('leaseFencedAdopt', { numberOfKeys: 3, lua: LEASE_FENCED_ADOPT });
  return redis as Redis & FencedCommands;
}
