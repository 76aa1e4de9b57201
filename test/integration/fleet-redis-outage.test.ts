import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { waitFor } from '../support/sandbox.js';
import { finishedRuns, liveAgentRuns, useFleetPerTest } from '../fixtures/fleet/harness.js';

/**
 * Redis itself failing under a running fleet: frozen (SIGSTOP, as in a
 * partition) past the lock duration, and killed and restarted while idle.
 * Real redis-server, control planes and workers.
 */

const fleets = useFleetPerTest({ flushRedisAfterEach: true });

test('Redis SIGSTOP past the lock duration: every worker self-fences its run, and after Redis returns each issue completes exactly once', { timeout: 120_000 }, async () => {
  const redis = fleets.redis();
  const lockDurationMs = 3_000;
  const f = await fleets.start({ agentWorkMs: 8_000, lockDurationMs, stalledIntervalMs: 1_000, batchSize: 2 });
  const standby = await f.startControlPlane('cp1', 'standby');
  const w1 = await f.startWorker('w1');
  const w2 = await f.startWorker('w2');
  f.project.writeIssue('PART-1');
  f.project.writeIssue('PART-2');
  const firstRuns = await waitFor(
    'both runs to start',
    () => {
      const starts = f.traceLines().filter((l) => l.what === 'start');
      return starts.length >= 2 && starts.map((l) => l.runId);
    },
    30_000,
  );
  redis.freeze();
  await new Promise((resolve) => setTimeout(resolve, lockDurationMs + 1_500));
  // Before Redis answers again: the workers have already stopped the agents of the runs they can no longer prove are theirs.
  const aliveWhileFrozen = firstRuns.filter((runId) => liveAgentRuns(runId.split('-').slice(0, 2).join('-')).has(runId));
  redis.thaw();
  assert.deepEqual(aliveWhileFrozen, [], 'no agent of a run whose lock lapsed is still running');
  for (const worker of [w1, w2]) await waitFor(`${worker.name} to say it self-fenced`, () => /self-fenced/.test(worker.stderr()), 10_000);
  // The leader could not renew its lease either: it stopped acting; the standby leads once Redis is back.
  const leaderExit = await f.controlPlane.exited;
  assert.equal(leaderExit.code, 3, f.controlPlane.stderr().slice(-1_000));
  const finished = await waitFor(
    'both issues to succeed under the new leader',
    () => {
      const runs = finishedRuns(standby);
      return runs.filter((r) => r.reason === 'succeeded').length >= 2 && runs;
    },
    60_000,
  );
  for (const key of ['PART-1', 'PART-2']) {
    const ends = f.traceLines().filter((l) => l.what === 'end' && l.runId.startsWith(`${key}-`));
    assert.equal(ends.length, 1, `${key} completed once (trace: ${JSON.stringify(f.traceLines().filter((l) => l.runId.startsWith(`${key}-`)))})`);
    assert.equal(finished.filter((r) => r.run.startsWith(`${key}-`) && r.reason === 'succeeded').length, 1);
  }
  // Nothing a fenced run said after its lock lapsed reached its stream: no outcome for the first runs.
  const client = new Redis(redis.url);
  try {
    for (const runId of firstRuns) {
      const entries = (await client.xrange(`factory:{test}:run-events:${runId}`, '-', '+')) as [string, string[]][];
      assert.ok(!entries.some(([, fields]) => fields[1] === 'outcome'), `no outcome from the fenced run ${runId}`);
    }
  } finally {
    client.disconnect();
  }
});

test('Redis killed and restarted while idle: the next run is still picked up within 15 s', { timeout: 90_000 }, async () => {
  const redis = fleets.redis();
  const f = await fleets.start({ agentWorkMs: 300, lease: { ttlMs: 15_000, renewEveryMs: 5_000, safetyMarginMs: 2_000 } });
  await f.startWorker('w1');
  f.project.writeIssue('IDLE-0');
  await waitFor('a first run to finish', () => finishedRuns(f.controlPlane)[0], 30_000);
  await redis.kill();
  await new Promise((resolve) => setTimeout(resolve, 500));
  await redis.restart();
  const backAt = Date.now();
  f.project.writeIssue('IDLE-1');
  const picked = await waitFor('the next run to start', () => f.traceLines().find((l) => l.what === 'start' && l.runId.startsWith('IDLE-1-')), 30_000, 50);
  const pickupMs = picked.atMs - backAt;
  console.log(`Redis restart while idle: next run started ${pickupMs} ms after Redis was back`);
  assert.ok(pickupMs <= 15_000, `picked up ${pickupMs} ms after Redis returned`);
  const finished = await waitFor('it to finish', () => finishedRuns(f.controlPlane).find((r) => r.run === picked.runId), 30_000);
  assert.equal(finished.reason, 'succeeded');
  assert.equal(f.controlPlane.child.exitCode, null, 'the leader kept its lease through the restart');
});
