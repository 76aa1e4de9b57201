import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { Redis } from 'ioredis';
import { connectRedis } from '../../src/adapters/redis/connection.js';
import { fleetKeys } from '../../src/adapters/redis/keys.js';
import { REPO_ROOT, waitFor } from '../support/sandbox.js';
import { redisServerAvailable, startTestRedis, type TestRedis } from '../support/redis-server.js';

/**
 * The leader lease and its fencing against a real redis-server, with the
 * contenders as real processes (test/fixtures/redis-lease/contender.ts) that
 * are SIGKILLed and SIGSTOPped. Most scenarios run on a scaled lease (TTL 3 s,
 * renew every 1 s, margin 0.5 s) to keep the file fast; one runs the default
 * 15 s / 5 s / 2 s.
 */

if (!redisServerAvailable()) throw new Error('redis-server is not installed: the lease tests need it (.ci/run installs it)');

const SCALED = { LEASE_TTL_MS: '3000', LEASE_RENEW_MS: '1000', LEASE_MARGIN_MS: '500' };
const TTL = 3_000;
const MARGIN = 500;
/** Process scheduling on a loaded 2-core machine, standby polling (100 ms) and timer slop. */
const SLACK = 700;

interface ContenderEvent {
  readonly event: string;
  readonly name: string;
  readonly atMs: number;
  readonly [key: string]: unknown;
}

class Contender {
  readonly events: ContenderEvent[] = [];
  readonly child: ChildProcess;
  readonly #waiters = new Set<() => void>();
  stderr = '';

  constructor(
    url: string,
    pool: string,
    readonly name: string,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/redis-lease/contender.ts', url, pool, name], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        this.events.push(JSON.parse(buffered.slice(0, newline)) as ContenderEvent);
        buffered = buffered.slice(newline + 1);
        for (const wake of this.#waiters) wake();
      }
    });
    this.child.stderr?.on('data', (chunk: Buffer) => void (this.stderr += chunk.toString()));
  }

  /** The first event (at or after `fromIndex`) matching, waiting up to `timeoutMs`. */
  async next(what: string, match: (e: ContenderEvent) => boolean, timeoutMs: number, fromIndex = 0): Promise<ContenderEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(fromIndex).find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null) {
        throw new Error(`${this.name}: no ${what} within ${timeoutMs} ms (exit ${this.child.exitCode}); events: ${JSON.stringify(this.events.slice(-5))}; stderr: ${this.stderr.slice(-800)}`);
      }
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.#waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 200));
        this.#waiters.add(wake);
      });
    }
  }

  leading(timeoutMs: number): Promise<ContenderEvent> {
    return this.next('leading', (e) => e.event === 'leading', timeoutMs);
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGKILL');
    await new Promise((resolve) => this.child.once('exit', resolve));
  }
}

let server: TestRedis;
let redis: Redis;
let pools = 0;
const contenders: Contender[] = [];

before(async () => {
  server = await startTestRedis();
  redis = await connectRedis({ url: server.url });
});
after(async () => {
  for (const c of contenders) await c.stop();
  redis.disconnect();
  await server.stop();
});

function pool(): { name: string; keys: ReturnType<typeof fleetKeys> } {
  const name = `lease-${++pools}`;
  return { name, keys: fleetKeys('itest', name) };
}

function contender(poolName: string, name: string, env: Record<string, string> = SCALED): Contender {
  const c = new Contender(server.url, poolName, name, env);
  contenders.push(c);
  return c;
}

function acceptedKeys(c: Contender): string[] {
  return c.events.filter((e) => e.event === 'write' && e.ok === true).map((e) => String(e.key));
}

describe('leader lease on real Redis', () => {
  it('two contenders: one leads, the other stands by; the leader SIGKILLed -> the standby leads within the TTL with a higher epoch', async (t: TestContext) => {
    const { name } = pool();
    const a = contender(name, 'a');
    const first = await a.leading(20_000);
    const b = contender(name, 'b');
    await b.next('standby', (e) => e.event === 'standby', 20_000);
    // Two whole TTLs: the holder keeps renewing, so the standby never gets in.
    await new Promise((resolve) => setTimeout(resolve, 2 * TTL));
    assert.equal(
      b.events.some((e) => e.event === 'leading'),
      false,
      'the standby must not lead while the holder renews',
    );
    assert.ok(acceptedKeys(a).length > 10, 'the leader acts meanwhile');
    const killedAt = Date.now();
    a.signal('SIGKILL');
    const second = await b.leading(TTL + 5_000);
    const failoverMs = second.atMs - killedAt;
    t.diagnostic(`acquire latency ${String(first.acquireLatencyMs)} ms; failover after SIGKILL ${failoverMs} ms (TTL ${TTL} ms)`);
    assert.equal(second.epoch, Number(first.epoch) + 1);
    assert.ok(failoverMs <= TTL + SLACK, `standby led ${failoverMs} ms after the kill; the TTL is ${TTL} ms`);
    await b.next('a write', (e) => e.event === 'write' && e.ok === true, 5_000);
    await b.stop();
  });

  it('the holder SIGSTOPped past the TTL -> the standby leads; on SIGCONT the old holder finds it lost the lease and 0 of its writes are accepted', async (t: TestContext) => {
    const { name, keys } = pool();
    const a = contender(name, 'a');
    const first = await a.leading(20_000);
    const b = contender(name, 'b');
    await b.next('standby', (e) => e.event === 'standby', 20_000);
    await a.next('a write', (e) => e.event === 'write' && e.ok === true, 5_000);
    // A few renewals first, so the freeze lands mid-lease and the renewal figures mean something.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const frozenAt = Date.now();
    a.signal('SIGSTOP');
    const second = await b.leading(TTL + 5_000);
    t.diagnostic(`failover after SIGSTOP ${second.atMs - frozenAt} ms`);
    assert.equal(second.epoch, Number(first.epoch) + 1);
    assert.ok(second.atMs - frozenAt <= TTL + SLACK);
    await b.next('a write', (e) => e.event === 'write' && e.ok === true, 5_000);
    const beforeThaw = a.events.length;
    a.signal('SIGCONT');
    const lost = await a.next('lost', (e) => e.event === 'lost', 5_000, beforeThaw);
    assert.equal(lost.reason, 'deadline-passed', 'judged on its own monotonic clock before any round trip');
    const summary = await a.next('summary', (e) => e.event === 'summary', 10_000);
    t.diagnostic(`old holder: ${String(summary.renewals)} renewals before the freeze, renew round trip p50 ${String(summary.renewP50Ms)} ms, max ${String(summary.renewMaxMs)} ms`);
    assert.equal(summary.staleAccepted, 0, 'stale writes accepted');
    assert.equal(summary.actedAfterLoss, 0);
    const staleRefusals = a.events.filter((e) => e.event === 'stale-write');
    assert.equal(staleRefusals.length, 3);
    for (const refusal of staleRefusals) assert.equal(refusal.code, 'FACTORY_STATE_STALE_EPOCH');
    assert.deepEqual(
      a.events.slice(beforeThaw).filter((e) => e.event === 'write' && e.ok === true),
      [],
      'no write accepted after waking',
    );
    for (const refusal of staleRefusals) assert.equal(await redis.hexists(keys.claims, String(refusal.key)), 0, `${String(refusal.key)} must not be in Redis`);
    // Everything the old holder was told was accepted is there.
    for (const key of acceptedKeys(a)) assert.equal(await redis.hexists(keys.claims, key), 1, key);
    await b.stop();
  });

  it('Redis SIGSTOPped (a partition) past the TTL -> the holder stops acting before its key can expire; its writes on the way are refused after', async (t: TestContext) => {
    const { name, keys } = pool();
    const a = contender(name, 'a');
    const first = await a.leading(20_000);
    await a.next('a write', (e) => e.event === 'write' && e.ok === true, 5_000);
    const b = contender(name, 'b');
    await b.next('standby', (e) => e.event === 'standby', 20_000);
    const frozenAt = Date.now();
    server.freeze();
    let lost;
    try {
      lost = await a.next('lost', (e) => e.event === 'lost', TTL + 5_000);
      // Keep Redis frozen past the TTL, as a long partition.
      const left = frozenAt + TTL + 500 - Date.now();
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
    } finally {
      server.thaw();
    }
    const stoppedAfterMs = lost.atMs - frozenAt;
    t.diagnostic(`holder stopped ${stoppedAfterMs} ms into the partition, ${String(lost.sinceLastRenewMs)} ms after its last renewal was sent (TTL ${TTL} ms)`);
    assert.equal(lost.reason, 'deadline-passed');
    assert.ok(Number(lost.sinceLastRenewMs) < TTL, 'stopped before the key could expire (expiry >= last renewal sent + TTL)');
    assert.ok(Number(lost.sinceLastRenewMs) >= TTL - MARGIN - 1, 'not earlier than the deadline');
    assert.ok(stoppedAfterMs < TTL, `stopped ${stoppedAfterMs} ms into the partition`);
    const lateWrites = a.events.filter((e) => e.event === 'write' && Number(e.sentAtMs) >= lost.atMs);
    assert.deepEqual(lateWrites, [], 'no write attempted after the loss');
    const second = await b.leading(TTL + 5_000);
    assert.ok(Number(second.epoch) > Number(first.epoch));
    const summary = await a.next('summary', (e) => e.event === 'summary', 10_000);
    assert.equal(summary.staleAccepted, 0);
    // Writes that were queued in the frozen server's socket ran on thaw: the expired lease refused them.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const e of a.events.filter((x) => x.event === 'stale-write' || (x.event === 'write' && x.ok === false))) {
      assert.equal(await redis.hexists(keys.claims, String(e.key)), 0, `${String(e.key)} (${String(e.code)}) must not have been applied`);
    }
    await b.stop();
  });

  it('Redis SIGKILLed and restarted (AOF): the epoch never goes backwards and no accepted write or terminal state is lost', async (t: TestContext) => {
    const { name, keys } = pool();
    const a = contender(name, 'a');
    const first = await a.leading(20_000);
    await a.next('a terminal write', (e) => e.event === 'write' && e.ok === true && e.terminal === true, 10_000);
    const epochBefore = Number(await redis.get(keys.leaseEpoch));
    // What the holder reported before the kill, by order of arrival (its clock and ours can share a millisecond).
    const reportedBeforeKill = a.events.length;
    const killedAt = Date.now();
    await server.kill();
    await server.restart();
    await waitFor('the test connection back', () => redis.status === 'ready', 10_000);
    t.diagnostic(`Redis down for ${Date.now() - killedAt} ms`);
    assert.ok(Number(await redis.get(keys.leaseEpoch)) >= epochBefore, 'epoch after restart');
    const acceptedBeforeKill = a.events.slice(0, reportedBeforeKill).filter((e) => e.event === 'write' && e.ok === true);
    for (const e of acceptedBeforeKill) assert.equal(await redis.hexists(keys.claims, String(e.key)), 1, `${String(e.key)} lost in the restart`);
    const terminal = acceptedBeforeKill.filter((e) => e.terminal === true).map((e) => `${String(e.key)}-run`);
    assert.ok(terminal.length >= 1);
    const pending = await redis.zrange(keys.pendingWritebacks, '0', '-1');
    for (const runId of terminal) assert.ok(pending.includes(runId), `terminal outcome ${runId} lost in the restart`);
    // The holder rides the outage (or stops and leaves); either way the next leader's epoch is higher.
    const afterRestart = a.events.length;
    await a.next('a write after the restart', (e) => e.event === 'write' && e.ok === true, 10_000, afterRestart).catch(() => undefined);
    a.signal('SIGKILL');
    const b = contender(name, 'b');
    const second = await b.leading(TTL + 20_000);
    assert.ok(Number(second.epoch) > Number(first.epoch), `new leader epoch ${String(second.epoch)} > ${String(first.epoch)}`);
    for (const key of acceptedKeys(a)) assert.equal(await redis.hexists(keys.claims, key), 1, key);
    await b.stop();
  });

  it('default timings (TTL 15 s, renew every 5 s): SIGKILL of the holder -> the standby leads within the TTL', async (t: TestContext) => {
    const { name } = pool();
    const a = contender(name, 'a', {});
    const first = await a.leading(20_000);
    const b = contender(name, 'b', {});
    await b.next('standby', (e) => e.event === 'standby', 20_000);
    // Let a renewal or two happen so the kill lands at a random point of the renewal period.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    const killedAt = Date.now();
    a.signal('SIGKILL');
    const second = await b.leading(25_000);
    const failoverMs = second.atMs - killedAt;
    t.diagnostic(`failover after SIGKILL with the default lease: ${failoverMs} ms (TTL 15000 ms)`);
    assert.equal(second.epoch, Number(first.epoch) + 1);
    assert.ok(failoverMs <= 15_000 + SLACK, `${failoverMs} ms`);
    await b.stop();
  });
});

describe('connecting to Redis', () => {
  it('a wrong password is reported as refused credentials, with the password masked, not as an unreachable server', async () => {
    const guarded = await startTestRedis({ extraArgs: ['--requirepass', 'the-right-secret'] });
    try {
      const error = await connectRedis({ url: `redis://:a-wrong-secret@127.0.0.1:${guarded.port}/0` }).then(
        (client) => {
          client.disconnect();
          return assert.fail('a wrong password connected');
        },
        (e: Error) => e,
      );
      assert.match(error.message, /^Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0 refused the connection's credentials: WRONGPASS/);
      assert.ok(!error.message.includes('a-wrong-secret'), error.message);
      // The right one connects: the server was up all along.
      const client = await connectRedis({ url: `redis://:the-right-secret@127.0.0.1:${guarded.port}/0` });
      assert.equal(await client.ping(), 'PONG');
      client.disconnect();
    } finally {
      await guarded.stop();
    }
  });
});
