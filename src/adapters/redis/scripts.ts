import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * The Lua scripts of the leader lease and the state store. Each runs as one
 * atomic step on the server, which is what makes the lease check and the
 * write it guards inseparable: no other client's command runs in between.
 */

export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

function script(name: string, source: string): LuaScript {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * Runs a script by its hash, loading it when the server does not know it
 * (first use, or after a Redis restart emptied the script cache).
 */
export async function runScript(redis: Redis, lua: LuaScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  try {
    return await redis.evalsha(lua.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return redis.eval(lua.source, keys.length, ...keys, ...args);
  }
}

/**
 * KEYS: epoch, owner. ARGV: ttl ms, token, owner JSON.
 * Grants the lease when nobody holds it: the next epoch, and the owner key
 * with the TTL. Returns {1, value, epoch, ttl} on a grant, {0, holder value,
 * epoch, remaining ttl} when held.
 */
export const ACQUIRE_LEASE = script(
  'acquire-lease',
  `
local holder = redis.call('GET', KEYS[2])
if holder then
  return {0, holder, tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('PTTL', KEYS[2])}
end
local epoch = redis.call('INCR', KEYS[1])
local value = epoch .. ' ' .. ARGV[2] .. ' ' .. ARGV[3]
redis.call('SET', KEYS[2], value, 'PX', ARGV[1])
return {1, value, epoch, tonumber(ARGV[1])}
`,
);

/**
 * KEYS: epoch, owner. ARGV: ttl ms, our owner value, our epoch.
 * Extends the TTL only if the owner key is still exactly ours and the epoch
 * has not moved: an expired lease is never revived. Returns 1 or 0.
 */
export const RENEW_LEASE = script(
  'renew-lease',
  `
if redis.call('GET', KEYS[2]) == ARGV[2] and redis.call('GET', KEYS[1]) == ARGV[3] then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  return 1
end
return 0
`,
);

/** KEYS: owner. ARGV: our owner value. Deletes the owner key only if it is ours. Returns 1 or 0. */
export const RELEASE_LEASE = script(
  'release-lease',
  `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`,
);

/**
 * KEYS: epoch, owner, claims, active claims, skips, outcomes, outcome order,
 * pending writebacks, outcome seq, outcome total.
 * ARGV: batch epoch, our owner value, history limit, batch JSON
 * ({claims: [[key, json, active]], skips: [[key, json]], cleared: [key],
 * outcome?: [runId, json]}).
 *
 * The fence: the batch's epoch must be the current epoch and the owner key
 * must still be ours, or nothing is written. Returns {1, epoch} when applied,
 * {0, current epoch, why} when refused (why: epoch, owner, expired).
 */
export const APPLY_BATCH = script(
  'apply-batch',
  `
local current = redis.call('GET', KEYS[1]) or '0'
if current ~= ARGV[1] then return {0, current, 'epoch'} end
local holder = redis.call('GET', KEYS[2])
if not holder then return {0, current, 'expired'} end
if holder ~= ARGV[2] then return {0, current, 'owner'} end
local batch = cjson.decode(ARGV[4])
for _, c in ipairs(batch.claims) do
  redis.call('HSET', KEYS[3], c[1], c[2])
  if c[3] == 1 then redis.call('SADD', KEYS[4], c[1]) else redis.call('SREM', KEYS[4], c[1]) end
end
for _, s in ipairs(batch.skips) do redis.call('HSET', KEYS[5], s[1], s[2]) end
for _, k in ipairs(batch.cleared) do redis.call('HDEL', KEYS[5], k) end
if batch.outcome then
  local runId = batch.outcome[1]
  if not redis.call('ZSCORE', KEYS[7], runId) then redis.call('INCR', KEYS[10]) end
  local seq = redis.call('INCR', KEYS[9])
  redis.call('HSET', KEYS[6], runId, batch.outcome[2])
  redis.call('ZADD', KEYS[7], seq, runId)
  redis.call('ZADD', KEYS[8], seq, runId)
  local excess = redis.call('ZCARD', KEYS[7]) - tonumber(ARGV[3])
  if excess > 0 then
    -- Trim the oldest, but never an outcome not yet written back: that would lose a terminal state.
    local window = redis.call('ZRANGE', KEYS[7], 0, excess + redis.call('ZCARD', KEYS[8]) - 1)
    for _, id in ipairs(window) do
      if excess <= 0 then break end
      if not redis.call('ZSCORE', KEYS[8], id) then
        redis.call('ZREM', KEYS[7], id)
        redis.call('HDEL', KEYS[6], id)
        excess = excess - 1
      end
    end
  end
end
return {1, current}
`,
);

/**
 * KEYS: a set, a hash. The hash values of the set's members, read in one
 * step (a consistent snapshot). Missing values are skipped.
 */
export const HASH_VALUES_OF_SET = script(
  'hash-values-of-set',
  `
local values = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local value = redis.call('HGET', KEYS[2], member)
  if value then values[#values + 1] = value end
end
return values
`,
);

/**
 * KEYS: a sorted set, a hash. ARGV: start, stop, "rev" or "".
 * The hash values of the sorted set's members in that rank range, in order,
 * read in one step. Missing values are skipped.
 */
export const HASH_VALUES_OF_ZRANGE = script(
  'hash-values-of-zrange',
  `
local members
if ARGV[3] == 'rev' then
  members = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'REV')
else
  members = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
end
local values = {}
for _, member in ipairs(members) do
  local value = redis.call('HGET', KEYS[2], member)
  if value then values[#values + 1] = value end
end
return values
`,
);
