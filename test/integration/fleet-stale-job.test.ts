import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { DEFAULT_FLEET_QUEUE_SETTINGS } from '../../src/adapters/bullmq/queue-settings.js';
import { teamRunKeys } from '../../src/adapters/bullmq/team-run-keys.js';
import { RedisLease, type RedisHeldLease } from '../../src/adapters/lease/redis-lease.js';
import { fleetKeys } from '../../src/adapters/redis/keys.js';
import { BullmqTeamExecutor } from '../../src/adapters/team-executor/bullmq-team-executor.js';
import type { Logger } from '../../src/ports/logger.js';
import type { TeamPlan } from '../../src/ports/team-executor.js';
import type { WorkerAnnouncement } from '../../src/ports/team-run-queue.js';
import { waitFor } from '../support/sandbox.js';
import { AGENT, finishedRuns, sampleLiveRuns, useFleetPerTest, type TestFleet } from '../fixtures/fleet/harness.js';

/**
 * The hole a frozen leader leaves: it checked its lease, froze inside the
 * BullMQ add, and the add lands after a new leader took over, carrying the old
 * epoch. A worker that never saw the new epoch must still refuse it, because
 * it takes every run in one Lua step that compares the run's epoch with the
 * CURRENT lease epoch. Real redis-server, real `factory start` and `factory
 * worker` processes; the frozen leader is this test process's executor, whose
 * lease lapsed while it still believed its grant (it had checked before the freeze).
 */

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent } as unknown as Logger;
const keys = fleetKeys('factory', 'test');
const queueKeys = teamRunKeys({ keyPrefix: 'factory', pool: 'test' });
const settings = { ...DEFAULT_FLEET_QUEUE_SETTINGS, lockDurationMs: 3_000, stalledIntervalMs: 1_000, failedRetentionMs: 90_000, failedJobsKept: 7 };

let client: Redis | undefined;
const cleanups: (() => Promise<void>)[] = [];
// Registered before the fleet's hooks, so they run first: the frozen leader's lease and executor go before the fleet does, the client before Redis.
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});
after(() => client?.disconnect());
const fleets = useFleetPerTest({ flushRedisAfterEach: true });
/** This file's client on the test Redis, opened on first use: Redis starts in a hook, after this module loaded. */
const redisClient = (): Redis => (client ??= new Redis(fleets.redis().url));

/** A leader lease held by this process, not renewed: it lapses `ttlMs` after the grant, as a frozen holder's does. */
async function leaseThatWillLapse(ttlMs: number): Promise<RedisHeldLease> {
  const lease = new RedisLease({
    redis: redisClient(),
    keys,
    owner: { pid: process.pid, startTime: 0, bootId: 'test', hostname: 'frozen-leader' },
    clock: new SystemClock(),
    ttlMs,
    renewEveryMs: Math.floor(ttlMs / 5),
    safetyMarginMs: Math.floor(ttlMs / 5),
    autoRenew: false,
  });
  const held = await lease.acquire();
  cleanups.push(() => held.release());
  return held;
}

/** The control plane's queue side, fenced by `grant` (what the leader believes it holds). */
async function executorUnder(held: RedisHeldLease, grant: () => { epoch: number; value: string } | undefined): Promise<BullmqTeamExecutor> {
  const executor = await BullmqTeamExecutor.open({
    url: fleets.redis().url,
    keys: queueKeys,
    settings,
    agents: { implementer: IMPLEMENTER },
    currentEpoch: () => held.epoch,
    clock: new SystemClock(),
    log: silent,
    lease: { keys, grant },
  });
  cleanups.push(() => executor.close());
  return executor;
}

/** The harness's implementer: a job names the role only, and the control plane and workers each configure it (their configs agree). */
const IMPLEMENTER = { command: ['node', AGENT, '300'], env: {} };

function plan(f: TestFleet, key: string, epoch: number): TeamPlan {
  return {
    runId: `${key}-e${epoch}-a1-${Math.random().toString(16).slice(2, 8)}`,
    attempt: 1,
    repo: f.project.repo,
    branch: `factory/${key}`,
    issue: { key, title: key, body: '', labels: ['factory'], state: 'ready', createdAtMs: Date.now(), revision: key, location: key },
    // The same agent the fleet's own runs use: had it started, /proc and the trace file would show it.
    stages: [{ agents: [{ role: 'implementer', slot: 'implementer', agent: { command: ['node', AGENT, '300'], env: { FLEET_TRACE: f.trace } } }] }],
  };
}

async function jobOf(runId: string): Promise<Job | undefined> {
  const queue = new Queue(queueKeys.queueName, { connection: new Redis(fleets.redis().url, { maxRetriesPerRequest: null }), prefix: queueKeys.prefix });
  try {
    return await queue.getJob(runId);
  } finally {
    await queue.close();
    await (queue.opts.connection as Redis).quit();
  }
}

async function announcement(node: string): Promise<WorkerAnnouncement | undefined> {
  const json = await redisClient().hget(queueKeys.workers, node);
  return json ? (JSON.parse(json) as WorkerAnnouncement) : undefined;
}

function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

test('a job a frozen leader queues with its old epoch after a new leader took over is refused by a fresh worker: no agent starts, the refusal is logged and counted', { timeout: 90_000 }, async () => {
  // The old leader takes the lease, passes its check, and freezes: its lease lapses while it still believes its grant.
  const old = await leaseThatWillLapse(1_000);
  const frozenLeader = await executorUnder(old, () => ({ epoch: old.epoch, value: old.fenceValue }));
  await waitFor('the old lease to lapse', async () => (await redisClient().get(keys.leaseOwner)) === null, 5_000, 20);
  // A new leader (a real `factory start`) takes over with a higher epoch.
  const f = await fleets.start({ agentWorkMs: 300 });
  const current = Number(await redisClient().get(keys.leaseEpoch));
  assert.ok(current > old.epoch, `the new leader's epoch ${current} > the frozen leader's ${old.epoch}`);

  // The frozen leader wakes inside its add: the job lands with the old epoch, through the executor's own add path.
  const stale = plan(f, 'STALE-1', old.epoch);
  const staleRun = frozenLeader.start(stale);
  await waitFor('the stale job to be queued', async () => (await jobOf(stale.runId)) !== undefined, 5_000, 20);
  assert.equal(((await jobOf(stale.runId))!.data as { epoch: number }).epoch, old.epoch, 'the job carries the old epoch');

  // A worker that has never seen the new epoch: no epoch file, so its own floor (0) would let the job through.
  const sampler = sampleLiveRuns('STALE-1', () => f.workers.values());
  const w1Dir = join(f.project.dir, 'worker-w1');
  assert.equal(existsSync(join(w1Dir, '.factory', 'worker-epoch.json')), false, 'the worker is fresh');
  const w1 = await f.startWorker('w1');
  const refusal = await waitFor('the worker to refuse the stale job', () => logLines(w1.stderr()).find((l) => l.msg === 'refused a run from an older epoch'), 20_000, 20);
  assert.equal(refusal.run, stale.runId);
  assert.equal(refusal.epoch, old.epoch);
  assert.equal(refusal.currentEpoch, current, "judged against the current lease epoch, not the worker's own floor");
  assert.match(String(refusal.reason), /older than the current leader epoch .*lost the lease/);

  // The job is discarded (failed, never retried: attempts 1) with the reason, and the frozen leader hears the refusal.
  const job = await waitFor(
    'the job to be failed',
    async () => {
      const j = await jobOf(stale.runId);
      return j?.finishedOn !== undefined && j;
    },
    10_000,
    50,
  );
  assert.match(job.failedReason ?? '', /^refused: .*older than the current leader epoch/);
  assert.deepEqual(job.opts.removeOnFail, { age: 90, count: 7 }, 'the failed job is kept as fleet.queue.failedRetentionMs and failedJobsKept say');
  const outcome = await staleRun.outcome;
  assert.equal(outcome.reason, 'failed');
  assert.match(outcome.detail, /a worker refused the run/);
  const counted = await waitFor(
    "the refusal to be counted in the worker's announcement",
    async () => {
      const a = await announcement('w1');
      return a !== undefined && a.counters.staleRefusals >= 1 && a;
    },
    5_000,
    100,
  );
  assert.equal(counted.counters.staleRefusals, 1);
  assert.deepEqual(await redisClient().hgetall(queueKeys.runFence(stale.runId)), {}, 'the stale run was never recorded as taken');

  // Sampled from before the worker started until its job was failed for good (a failed job is never fetched again).
  const live = sampler.stop();
  assert.equal(live.maxLiveInProc, 0, `no process of the stale run in /proc (${live.samples} samples, every 25 ms)`);
  assert.equal(live.maxInRegistries, 0, "no agent in the worker's registry");

  // The same worker runs the current leader's work: it refused the run, not the queue.
  f.project.writeIssue('FRESH-1');
  const finished = await waitFor("the current leader's run to finish", () => finishedRuns(f.controlPlane)[0], 30_000);
  assert.equal(finished.reason, 'succeeded', f.controlPlane.stderr().slice(-2_000));
  const taken = await redisClient().hgetall(queueKeys.runFence(finished.run));
  assert.deepEqual([taken.takenBy, Number(taken.takenEpoch)], ['w1', current], 'the run is recorded as taken by w1 for the current epoch');

  const staleStarts = f.traceLines().filter((l) => l.runId === stale.runId);
  assert.deepEqual(staleStarts, [], 'no agent of the stale job ever started');
  assert.ok(f.traceLines().some((l) => l.what === 'start' && l.runId === finished.run));
  console.log(`stale job: epoch ${old.epoch} refused against current epoch ${current} by a fresh worker; ${live.samples} /proc samples, 0 agents of it`);
});

test('a run its predecessor queued is adopted by the new leader that attaches to it: a fresh worker runs it once instead of refusing it', { timeout: 90_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 300 });
  // The fleet's own leader steps aside (SIGTERM releases the lease): the two leaders here are in this process.
  f.controlPlane.child.kill('SIGTERM');
  await f.controlPlane.exited;
  const old = await leaseThatWillLapse(1_000);
  const oldLeader = await executorUnder(old, () => (old.stillValid() ? { epoch: old.epoch, value: old.fenceValue } : undefined));
  const queued = plan(f, 'ADOPT-1', old.epoch);
  oldLeader.start(queued);
  await waitFor('the run to be queued while the old lease holds', async () => (await jobOf(queued.runId)) !== undefined, 5_000, 20);
  await oldLeader.close();
  await waitFor('the old lease to lapse', async () => (await redisClient().get(keys.leaseOwner)) === null, 5_000, 20);
  const next = await new RedisLease({
    redis: redisClient(),
    keys,
    owner: { pid: process.pid, startTime: 0, bootId: 'test', hostname: 'new-leader' },
    clock: new SystemClock(),
    ttlMs: 15_000,
  }).acquire();
  cleanups.push(() => next.release());
  assert.ok(next.epoch > old.epoch);
  const newLeader = await executorUnder(next, () => (next.stillValid() ? { epoch: next.epoch, value: next.fenceValue } : undefined));
  const attached = await newLeader.attach(queued.runId);
  assert.ok(attached, 'the new leader attaches to the waiting run');
  assert.equal(Number(await redisClient().hget(queueKeys.runFence(queued.runId), 'adoptedEpoch')), next.epoch, 'adopted under the new epoch');

  await f.startWorker('w1');
  const outcome = await attached.outcome;
  assert.equal(outcome.reason, 'succeeded', outcome.detail);
  const taken = await redisClient().hgetall(queueKeys.runFence(queued.runId));
  assert.deepEqual([taken.takenBy, Number(taken.takenEpoch)], ['w1', next.epoch]);
  assert.equal(f.traceLines().filter((l) => l.what === 'start' && l.runId === queued.runId).length, 1, 'ran once');
});
