import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { RedisLease } from '../../src/adapters/lease/redis-lease.js';
import { connectSuitableRedis } from '../../src/adapters/redis/connection.js';
import { fleetKeys } from '../../src/adapters/redis/keys.js';
import { RedisStateStore } from '../../src/adapters/state-store/redis-state-store.js';
import { redisServerAvailable, startTestRedis, type TestRedis } from '../support/redis-server.js';
import { isFactoryError } from '../../src/errors.js';
import { claim, describeStateStoreContract, outcome } from './state-store.contract.js';

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

describe('RedisStateStore beyond the contract', () => {
  const openPool = async (options: { outcomeHistoryLimit?: number; ttlMs?: number } = {}) => {
    const keys = fleetKeys('extra', `pool-${++pools}`);
    const redis = await connectSuitableRedis({ url: server.url });
    connections.push(redis);
    const lease = (hostname: string): RedisLease =>
      new RedisLease({
        redis,
        keys,
        owner: { ...IDENTITY, hostname },
        clock: new SystemClock(),
        autoRenew: false,
        ...(options.ttlMs ? { ttlMs: options.ttlMs, renewEveryMs: options.ttlMs / 4 } : {}),
      });
    return { keys, redis, lease, store: (hostname = 'host-a') => new RedisStateStore({ redis, keys, lease: lease(hostname), outcomeHistoryLimit: options.outcomeHistoryLimit }) };
  };
  const stale = (error: unknown): boolean => isFactoryError(error, 'FACTORY_STATE_STALE_EPOCH');

  it('a leader whose lease was taken over has every batch refused by the Lua fence, even while it still believes it leads', async () => {
    const { store, keys, redis } = await openPool();
    const old = store('host-a');
    const epoch = await old.beginEpoch({ ...IDENTITY, hostname: 'host-a' }, 0);
    await old.apply({ epoch, claims: [claim('KEEP', epoch)] });
    const rival = store('host-b');
    await assert.rejects(rival.beginEpoch({ ...IDENTITY, hostname: 'host-b' }, 0), (error) => isFactoryError(error, 'FACTORY_LEASE_HELD'));
    // The owner key expires (as after a long freeze) and nobody has taken it yet: same epoch, no owner.
    await redis.del(keys.leaseOwner);
    assert.equal(old.heldLease?.stillValid(), true, 'its local deadline has not passed: only the fence can stop this write');
    await assert.rejects(old.apply({ epoch, claims: [claim('LATE', epoch)] }), (error) => stale(error) && /expired/.test((error as Error).message));
    const next = await rival.beginEpoch({ ...IDENTITY, hostname: 'host-b' }, 0);
    assert.equal(next, epoch + 1);
    await assert.rejects(
      old.apply({
        epoch,
        claims: [claim('KEEP', epoch, { status: 'succeeded' }), claim('NEW', epoch)],
        skips: [{ issueKey: 'S', reason: 'r', atMs: 0 }],
        outcome: { outcome: outcome('KEEP', 'run-1'), nextClaim: claim('KEEP', epoch, { status: 'succeeded' }) },
      }),
      stale,
    );
    // Even a batch that names the new epoch is refused: the owner key is not ours.
    await assert.rejects(old.apply({ epoch: next, claims: [claim('FORGED', next)] }), (error) => stale(error) && /not held by this control plane/.test((error as Error).message));
    assert.equal((await rival.getClaim('KEEP'))?.status, 'queued');
    for (const key of ['LATE', 'NEW', 'FORGED']) assert.equal(await rival.getClaim(key), undefined, key);
    assert.deepEqual(await rival.listSkips(), []);
    assert.equal(await rival.outcomeCount(), 0);
    await rival.apply({ epoch: next, claims: [claim('KEEP', next, { status: 'running' })] });
    assert.equal((await rival.getClaim('KEEP'))?.status, 'running');
    await old.close();
    assert.equal(await rival.heldLease?.held(), true, "closing the stale store leaves the successor's lease alone");
    await rival.close();
  });

  it('a store without a lease reads and refuses every write with FACTORY_STATE_READ_ONLY', async () => {
    const { store, keys, redis } = await openPool();
    const writer = store();
    const epoch = await writer.beginEpoch(IDENTITY, 0);
    await writer.apply({ epoch, claims: [claim('FAC-1', epoch)] });
    const reader = new RedisStateStore({ redis, keys });
    assert.equal((await reader.getClaim('FAC-1'))?.status, 'queued');
    assert.equal(await reader.currentEpoch(), epoch);
    const readOnly = (error: unknown): boolean => isFactoryError(error, 'FACTORY_STATE_READ_ONLY');
    await assert.rejects(reader.beginEpoch(IDENTITY, 0), readOnly);
    await assert.rejects(reader.apply({ epoch, claims: [claim('FAC-2', epoch)] }), readOnly);
    await assert.rejects(reader.markWrittenBack('x'), readOnly);
    await writer.close();
  });

  it('the history is trimmed to its limit, but never an outcome not yet written back', async () => {
    const { store } = await openPool({ outcomeHistoryLimit: 3 });
    const s = store();
    const epoch = await s.beginEpoch(IDENTITY, 0);
    for (let i = 1; i <= 6; i++) await s.apply({ epoch, outcome: { outcome: outcome(`K${i}`, `run-${i}`), nextClaim: claim(`K${i}`, epoch, { status: 'succeeded' }) } });
    assert.deepEqual(
      (await s.pendingWritebacks()).map((o) => o.runId),
      ['run-1', 'run-2', 'run-3', 'run-4', 'run-5', 'run-6'],
      'a terminal state not yet written back is never dropped',
    );
    for (let i = 1; i <= 6; i++) await s.markWrittenBack(`run-${i}`);
    await s.apply({ epoch, outcome: { outcome: outcome('K7', 'run-7'), nextClaim: claim('K7', epoch, { status: 'succeeded' }) } });
    assert.deepEqual(
      (await s.recentOutcomes(10)).map((o) => o.runId),
      ['run-7', 'run-6', 'run-5'],
    );
    assert.equal(await s.outcomeCount(), 7, 'the count covers every outcome ever recorded');
    assert.deepEqual(
      (await s.pendingWritebacks()).map((o) => o.runId),
      ['run-7'],
    );
    await s.close();
  });

  it('1,000 runs: keys and memory stay bounded, recentOutcomes and outcomeCount stay right', async (t) => {
    const { store, keys, redis } = await openPool({ outcomeHistoryLimit: 200 });
    const s = store();
    const epoch = await s.beginEpoch(IDENTITY, 0);
    const ISSUES = 50;
    const footprint = async (): Promise<{ keys: number; bytes: number; outcomes: number }> => {
      const found = await redis.keys(`${keys.base}*`);
      let bytes = 0;
      for (const key of found) bytes += Number(await redis.memory('USAGE', key));
      return { keys: found.length, bytes, outcomes: await redis.hlen(keys.outcomes) };
    };
    const samples: { runs: number; keys: number; bytes: number; outcomes: number }[] = [];
    for (let run = 1; run <= 1_000; run++) {
      const issueKey = `FAC-${run % ISSUES}`;
      const runId = `${issueKey}-run-${run}`;
      await s.apply({ epoch, claims: [claim(issueKey, epoch, { status: 'running', attempt: 1, runId, updatedAtMs: run })] });
      await s.apply({
        epoch,
        outcome: { outcome: outcome(issueKey, runId, run % 7 === 0 ? 'failed' : 'succeeded', run), nextClaim: claim(issueKey, epoch, { status: 'succeeded', attempt: 1, runId, updatedAtMs: run }) },
      });
      await s.markWrittenBack(runId);
      if (run === 250 || run === 500 || run === 1_000) samples.push({ runs: run, ...(await footprint()) });
    }
    t.diagnostic(`footprint: ${samples.map((x) => `${x.runs} runs: ${x.keys} keys, ${x.outcomes} outcomes kept, ${x.bytes} bytes`).join('; ')}`);
    const [at250, at500, at1000] = samples as [(typeof samples)[0], (typeof samples)[0], (typeof samples)[0]];
    assert.equal(at1000.keys, at250.keys, 'no key per run');
    assert.equal(at1000.outcomes, 200);
    assert.ok(at1000.bytes <= at500.bytes * 1.05, `memory grew from ${at500.bytes} to ${at1000.bytes} bytes between 500 and 1,000 runs`);
    assert.equal(await s.outcomeCount(), 1_000);
    assert.deepEqual(
      (await s.recentOutcomes(3)).map((o) => o.runId),
      ['FAC-0-run-1000', 'FAC-49-run-999', 'FAC-48-run-998'],
    );
    assert.equal((await s.listClaims()).length, ISSUES, 'one claim per issue, however many runs');
    assert.deepEqual(await s.pendingWritebacks(), []);
    await s.close();
  });
});
