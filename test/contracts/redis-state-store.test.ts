import { after, before } from 'node:test';
import type { Redis } from 'ioredis';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { RedisLease } from '../../src/adapters/lease/redis-lease.js';
import { connectSuitableRedis } from '../../src/adapters/redis/connection.js';
import { fleetKeys } from '../../src/adapters/redis/keys.js';
import { RedisStateStore } from '../../src/adapters/state-store/redis-state-store.js';
import { redisServerAvailable, startTestRedis, type TestRedis } from '../support/redis-server.js';
import { describeStateStoreContract } from './state-store.contract.js';

/**
 * The Redis state store against the same contract as SQLite and the in-memory
 * store, on a real redis-server started for this file. Each test gets its own
 * pool (its own keys); a reopen is a new connection, lease and store object on
 * the same keys, as a restarted control plane would have.
 */

if (!redisServerAvailable()) throw new Error('redis-server is not installed: the Redis state store contract needs it (.ci/run installs it)');

let server: TestRedis;
const connections: Redis[] = [];
let pools = 0;

before(async () => {
  server = await startTestRedis();
});
after(async () => {
  for (const redis of connections) redis.disconnect();
  await server.stop();
});

const IDENTITY = { pid: process.pid, startTime: 1, bootId: 'contract-boot', hostname: 'contract-host' };

describeStateStoreContract('RedisStateStore', async () => {
  const keys = fleetKeys('contract', `pool-${++pools}`);
  const open = async (): Promise<RedisStateStore> => {
    const redis = await connectSuitableRedis({ url: server.url, connectionName: 'contract' });
    connections.push(redis);
    return new RedisStateStore({ redis, keys, lease: new RedisLease({ redis, keys, owner: IDENTITY, clock: new SystemClock() }) });
  };
  return { open, reopen: open, dispose: async () => undefined };
});
