import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/adapters/clock/fake-clock.js';
import { computeRefreshIntervalMs, type Heartbeat } from '../../src/domain/heartbeat.js';
import { HeartbeatKeeper, type HeartbeatGauges } from '../../src/core/heartbeat-keeper.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';

interface Recorder {
  writes: Heartbeat[];
  gaugeReads: number;
  /** When set, the next write waits until release() is called. */
  hold?: { release: () => void; promise: Promise<void> };
  failNext?: boolean;
}

function makeKeeper(clock: FakeClock, options: { intervalMs?: number; staleMs?: number; recorder?: Recorder; gauges?: Partial<HeartbeatGauges> } = {}) {
  const recorder: Recorder = options.recorder ?? { writes: [], gaugeReads: 0 };
  const keeper = new HeartbeatKeeper({
    store: {
      location: '/tmp/hb.json',
      write: async (heartbeat) => {
        const hold = recorder.hold;
        if (hold) {
          recorder.hold = undefined;
          await hold.promise;
        }
        if (recorder.failNext) {
          recorder.failNext = false;
          throw new Error('disk full');
        }
        recorder.writes.push(heartbeat);
      },
    },
    hostname: 'test-host',
    registryPath: '/tmp/registry.json',
    statePath: '/tmp/state.db',
    configPath: '/tmp/factory.config.json',
    mode: 'live',
    maxIterations: 0,
    identity: { pid: 4242, startTime: 99, bootId: 'boot-a' },
    epoch: 3,
    intervalMs: options.intervalMs ?? 15_000,
    staleMs: options.staleMs ?? 60_000,
    clock,
    log: createSilentLogger(),
    gauges: {
      inFlightTeams: () => (recorder.gaugeReads++, 0),
      queuedIssues: () => 0,
      iteration: () => 0,
      subscription: () => ({
        state: 'subscribed',
        transport: 'subscribe',
        lastEventAtMs: null,
        lastProgressAtMs: null,
        reconcileStartedAtMs: null,
        reconcileStalledAfterMs: null,
        unhealthySinceMs: null,
        lastError: null,
      }),
      ...options.gauges,
    },
  });
  return { keeper, recorder };
}

function holdNextWrite(recorder: Recorder): () => void {
  let release!: () => void;
  const promise = new Promise<void>((r) => (release = r));
  recorder.hold = { release, promise };
  return release;
}

test('the refresh interval is the configured one, capped so three refreshes fit in the stale window', () => {
  assert.equal(computeRefreshIntervalMs(15_000, 60_000), 15_000);
  assert.equal(computeRefreshIntervalMs(15_000, 30_000), 10_000);
  assert.equal(computeRefreshIntervalMs(15_000, 45_000), 15_000);
  assert.equal(computeRefreshIntervalMs(1_000, 60_000), 1_000);
  assert.ok(computeRefreshIntervalMs(15_000, 2) >= 1);
});

test('refreshes every interval with a fresh updatedAtMs, keeping the status', async () => {
  const clock = new FakeClock();
  const { keeper, recorder } = makeKeeper(clock, { intervalMs: 15_000, staleMs: 60_000 });
  await keeper.write('running');
  keeper.startRefreshing();
  await clock.advance(14_999);
  assert.equal(recorder.writes.length, 1, 'no refresh before the interval');
  await clock.advance(1);
  assert.equal(recorder.writes.length, 2);
  await clock.advance(30_000);
  assert.equal(recorder.writes.length, 4);
  const times = recorder.writes.map((w) => w.updatedAtMs);
  assert.deepEqual(
    times.slice(1).map((t, i) => t - times[i]!),
    [15_000, 15_000, 15_000],
  );
  assert.ok(recorder.writes.every((w) => w.status === 'running' && w.pid === 4242 && w.bootId === 'boot-a' && w.startTime === 99));
  assert.equal(recorder.writes.at(-1)!.updatedAt, new Date(recorder.writes.at(-1)!.updatedAtMs).toISOString());
  await keeper.stopRefreshing();
});

test('a short stale window shortens the interval so at least three refreshes fit', async () => {
  const clock = new FakeClock();
  const { keeper, recorder } = makeKeeper(clock, { intervalMs: 15_000, staleMs: 9_000 });
  assert.equal(keeper.refreshIntervalMs, 3_000);
  keeper.startRefreshing();
  await clock.advance(9_000);
  assert.equal(recorder.writes.length, 3);
  await keeper.stopRefreshing();
});

test('a refresh still in flight is not doubled, and the next tick goes ahead after it', async () => {
  const clock = new FakeClock();
  const { keeper, recorder } = makeKeeper(clock, { intervalMs: 1_000, staleMs: 60_000 });
  keeper.startRefreshing();
  const release = holdNextWrite(recorder);
  await clock.advance(1_000); // refresh starts and hangs
  await clock.advance(5_000); // five more ticks would fall due
  assert.equal(recorder.writes.length, 0, 'the hung write has not completed');
  release();
  await clock.advance(0);
  assert.equal(recorder.writes.length, 1, 'exactly the one write, no pile-up behind it');
  await clock.advance(1_000);
  assert.equal(recorder.writes.length, 2);
  await keeper.stopRefreshing();
});

test('a failed refresh is logged and retried on the next tick', async () => {
  const clock = new FakeClock();
  const { keeper, recorder } = makeKeeper(clock, { intervalMs: 1_000 });
  keeper.startRefreshing();
  recorder.failNext = true;
  await clock.advance(1_000);
  assert.equal(recorder.writes.length, 0);
  assert.equal(keeper.lastWriteError, 'disk full');
  await clock.advance(1_000);
  assert.equal(recorder.writes.length, 1);
  assert.equal(keeper.lastWriteError, null);
  await keeper.stopRefreshing();
});

test('stopRefreshing cancels the timer and waits for the write in flight', async () => {
  const clock = new FakeClock();
  const { keeper, recorder } = makeKeeper(clock, { intervalMs: 1_000 });
  keeper.startRefreshing();
  const release = holdNextWrite(recorder);
  await clock.advance(1_000);
  let stopped = false;
  const stopping = keeper.stopRefreshing().then(() => (stopped = true));
  await clock.advance(0);
  assert.equal(stopped, false, 'stop waits for the write in flight');
  release();
  await stopping;
  assert.equal(recorder.writes.length, 1);
  assert.equal(clock.pendingTimerCount(), 0, 'no refresh timer left');
  await clock.advance(10_000);
  assert.equal(recorder.writes.length, 1, 'no refresh after stop');
});

test('the refresh costs the same with 1,000 agents as with none: it reads counters, not the fleet', async () => {
  // The gauges are the only view the keeper has of the fleet; count how often it asks.
  const clock = new FakeClock();
  const { keeper, recorder } = makeKeeper(clock, { intervalMs: 1_000, gauges: { inFlightTeams: () => (recorder.gaugeReads++, 1_000) } });
  keeper.startRefreshing();
  await clock.advance(10_000);
  assert.equal(recorder.writes.length, 10);
  assert.equal(recorder.gaugeReads, 10, 'one O(1) counter read per refresh');
  assert.ok(recorder.writes.every((w) => w.inFlightTeams === 1_000));
  await keeper.stopRefreshing();
});

test('writeSoon writes within a second of the last write, once for a burst, and not after stop', async () => {
  const clock = new FakeClock();
  const { keeper, recorder } = makeKeeper(clock, { intervalMs: 15_000 });
  await keeper.write('running');
  keeper.startRefreshing();
  await clock.advance(5_000);
  keeper.writeSoon();
  await clock.advance(0);
  assert.equal(recorder.writes.length, 2, 'long after the last write: at once');
  for (let i = 0; i < 10; i++) {
    keeper.writeSoon();
    await clock.advance(100);
  }
  assert.equal(recorder.writes.length, 3, 'a burst within the second is one more write');
  assert.equal(recorder.writes[2]!.updatedAtMs - recorder.writes[1]!.updatedAtMs, 1_000, 'one second after the previous write, not sooner');
  await clock.advance(5_000);
  assert.equal(recorder.writes.length, 3, 'nothing asked: nothing until the refresh');
  keeper.writeSoon();
  await keeper.stopRefreshing();
  await clock.advance(5_000);
  assert.equal(recorder.writes.length, 3, 'a stopped keeper leaves the final status last');
  assert.equal(clock.pendingTimerCount(), 0);
});
