import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { FakeClock } from '../../src/adapters/clock/fake-clock.js';
import { RedisLease, type LeaseLoss, type RedisLeaseOptions } from '../../src/adapters/lease/redis-lease.js';
import { connectRedis } from '../../src/adapters/redis/connection.js';
import { fleetKeys } from '../../src/adapters/redis/keys.js';
import { isFactoryError } from '../../src/errors.js';
import { waitFor } from '../support/sandbox.js';
import { startTestRedis, type TestRedis } from '../support/redis-server.js';

/**
 * When the leader lease renews and when its holder stops acting, on the fake
 * clock (which also stands in for the monotonic clock), against a real Redis.
 * TTL 15 s, renewal every 5 s, safety margin 2 s: a holder that cannot renew
 * stops 13 s after the last renewal it SENT, 2 s before its key can expire.
 */

let server: TestRedis;
let redis: Redis;
let pools = 0;
before(async () => {
  server = await startTestRedis();
  redis = await connectRedis({ url: server.url, commandTimeoutMs: 500 });
});
after(async () => {
  redis.disconnect();
  await server.stop();
});

const OWNER = { pid: process.pid, startTime: 1, bootId: 'boot', hostname: 'host-a' };

function setup(overrides: Partial<RedisLeaseOptions> = {}): { clock: FakeClock; lease: RedisLease; losses: LeaseLoss[]; keys: ReturnType<typeof fleetKeys> } {
  const clock = new FakeClock(0);
  const losses: LeaseLoss[] = [];
  const keys = fleetKeys('timing', `pool-${++pools}`);
  const lease = new RedisLease({ redis, keys, owner: OWNER, clock, monotonicNow: () => clock.now(), onLost: (loss) => losses.push(loss), ...overrides });
  return { clock, lease, losses, keys };
}

describe('RedisLease timing', () => {
  it('renews every 5 s while held, and the key keeps about 15 s of TTL', async () => {
    const { clock, lease, keys } = setup();
    const held = await lease.acquire();
    try {
      for (let round = 1; round <= 3; round++) {
        await clock.advance(5_000);
        await waitFor(`renewal ${round}`, () => held.renewals === round, 2_000);
        const pttl = await redis.pttl(keys.leaseOwner);
        assert.ok(pttl > 14_000 && pttl <= 15_000, `TTL after renewal ${round}: ${pttl} ms`);
      }
      assert.equal(held.stillValid(), true);
      assert.equal(held.validForMs(), 13_000, 'valid until the last renewal sent + 15 s - 2 s margin');
      await clock.advance(4_999);
      assert.equal(held.renewals, 3, 'no renewal before the period');
    } finally {
      await held.release();
    }
  });

  it('with Redis frozen, the holder stops at 13 s after its last renewal, while its key still lives', async () => {
    const { clock, lease, losses, keys } = setup();
    const held = await lease.acquire();
    server.freeze();
    try {
      await clock.advance(12_999);
      assert.equal(held.stillValid(), true, 'still within the deadline');
      assert.equal(losses.length, 0);
      await clock.advance(1);
      assert.equal(held.stillValid(), false);
      assert.equal(losses.length, 1);
      assert.equal(losses[0]?.reason, 'deadline-passed');
      assert.equal(losses[0]?.sinceLastRenewMs, 13_000);
    } finally {
      server.thaw();
    }
    // The key has not expired (15 s of real time have not passed): the holder stopped before it could.
    assert.ok((await redis.pttl(keys.leaseOwner)) > 0, 'the key still lives in Redis');
    // A renewal reply that comes in after the deadline does not revive the grant.
    await assert.rejects(held.renew(), (error) => isFactoryError(error, 'FACTORY_LEASE_LOST'));
    assert.equal(held.stillValid(), false);
    assert.equal(await held.held(), false);
    await held.release();
    assert.equal(await redis.exists(keys.leaseOwner), 0, 'release removes our key so a standby need not wait out the TTL');
  });

  it('a holder frozen past its deadline refuses to act on waking, even though Redis would still renew its key', async () => {
    let monotonic = 0;
    const { clock, lease, losses } = setup({ monotonicNow: () => monotonic + clock.now() });
    const held = await lease.acquire();
    // SIGSTOP for 20 s: the monotonic clock moved, no timer ran.
    monotonic += 20_000;
    assert.equal(held.stillValid(), false, 'checked before acting: the deadline passed while frozen');
    assert.equal(losses[0]?.reason, 'deadline-passed');
    await clock.advance(5_000);
    assert.equal(held.renewals, 0, 'a lost lease is not renewed');
    await held.release();
  });

  it('a takeover is noticed at the next renewal; the old holder is told once', async () => {
    const { clock, lease, losses, keys } = setup();
    const held = await lease.acquire();
    // An operator (or an expiry while this process was frozen) removes the key; another control plane takes it.
    await redis.del(keys.leaseOwner);
    const other = new RedisLease({ redis, keys, owner: { ...OWNER, hostname: 'host-b' }, clock, monotonicNow: () => clock.now(), autoRenew: false });
    const successor = await other.acquire();
    assert.equal(successor.epoch, held.epoch + 1);
    await clock.advance(5_000);
    await waitFor('loss noticed', () => losses.length === 1, 2_000);
    assert.equal(losses[0]?.reason, 'taken-over');
    assert.equal(await held.held(), false);
    await held.release();
    assert.equal((await other.inspect())?.owner.hostname, 'host-b', "releasing a lost lease never removes the successor's key");
    await successor.release();
  });

  it('a second contender is refused with FACTORY_LEASE_HELD naming the holder and when to retry; after release it gets the next epoch', async () => {
    const { lease, keys, clock } = setup({ autoRenew: false });
    const held = await lease.acquire();
    const other = new RedisLease({ redis, keys, owner: { ...OWNER, pid: 999, hostname: 'host-b' }, clock, monotonicNow: () => clock.now(), autoRenew: false });
    await assert.rejects(other.acquire(), (error) => {
      assert.ok(isFactoryError(error, 'FACTORY_LEASE_HELD'));
      assert.equal((error.details.owner as { hostname: string }).hostname, 'host-a');
      assert.ok(Number(error.details.retryInMs) > 14_000);
      assert.match(error.message, /held by host-a pid \d+ \(epoch 1\)/);
      return true;
    });
    await held.release();
    const next = await other.acquire();
    assert.equal(next.epoch, 2);
    assert.equal(await other.currentEpoch(), 2);
    await next.release();
  });

  it('refuses timings that leave no room for two renewals before the holder must stop', () => {
    assert.throws(() => setup({ ttlMs: 10_000, renewEveryMs: 5_000 }), RangeError);
  });
});
