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

export interface FencedCommands {
  fencedPublish(lockKey: string, streamKey: string, token: string, maxLen: number, ttlMs: number, kind: string, json: string): Promise<number>;
  leaseFencedCancel(leaseEpochKey: string, leaseOwnerKey: string, cancelKey: string, epoch: string, ownerValue: string, ttlMs: number, record: string, channel: string): Promise<number>;
}

export function withFencedCommands(redis: Redis): Redis & FencedCommands {
  const typed = redis as Redis & Partial<FencedCommands>;
  if (typed.fencedPublish === undefined) redis.defineCommand('fencedPublish', { numberOfKeys: 2, lua: FENCED_PUBLISH });
  if (typed.leaseFencedCancel === undefined) redis.defineCommand('leaseFencedCancel', { numberOfKeys: 3, lua: LEASE_FENCED_CANCEL });
  return redis as Redis & FencedCommands;
}
