import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settle } from '../../src/adapters/clock/fake-clock.js';
import { runCycle, runLoop, type LoopReport } from '../../src/core/bounded-run.js';
import { createHarness, type Harness } from '../support/session-harness.js';

/** Runs `work` while ending every running agent with `exitCode` as soon as it appears, and letting time pass. */
async function driveAgents<T>(h: Harness, exitCode: number, work: Promise<T>): Promise<T> {
  let done = false;
  const result = work.finally(() => (done = true));
  for (let step = 0; !done && step < 10_000; step++) {
    await settle();
    for (const agent of h.fleet.running()) agent.exit(exitCode);
    await h.clock.advance(5);
  }
  return result;
}

test('run-once cycle: reports pulled, decisions, dispatched teams and their outcomes', async () => {
  const h = createHarness({ dispatch: { batchSize: 1 } });
  h.source.put({ key: 'A', title: 'a', labels: ['factory'] });
  h.source.put({ key: 'B', title: 'b', labels: ['factory'] });
  h.source.put({ key: 'SKIP', title: 's', labels: [] });
  const session = h.newSession('once');
  await session.open();
  const report = await driveAgents(h, 0, runCycle(session));
  assert.equal(report.pulled, 3);
  assert.deepEqual(report.decisions.map((d) => [d.issueKey, d.action]).sort(), [
    ['A', 'queued'],
    ['B', 'queued'],
    ['SKIP', 'skipped'],
  ]);
  assert.deepEqual(
    report.dispatched.map((d) => d.issueKey),
    ['A', 'B'],
    'the team started when a slot freed counts too',
  );
  assert.deepEqual(
    report.outcomes.map((o) => o.reason),
    ['succeeded', 'succeeded'],
  );
  await session.close();
});

test('loop: a heartbeat per iteration, `idle` between iterations', async () => {
  const h = createHarness();
  const session = h.newSession('loop');
  await session.open();
  h.heartbeats.length = 0;
  const report = await driveAgents(h, 0, runLoop(session, { maxIterations: 3, maxConsecutiveFailures: 2, iterationDelayMs: 100, shouldStop: () => false }));
  assert.equal(report.stoppedBecause, 'max-iterations');
  assert.equal(report.iterations.length, 3);
  assert.deepEqual(
    h.heartbeats.map((hb) => `${hb.status}#${hb.iteration}`),
    ['running#1', 'idle#1', 'running#2', 'idle#2', 'running#3'],
  );
  await session.close('idle');
  assert.equal(h.heartbeats.at(-1)!.status, 'idle');
});

test('loop: stops after maxConsecutiveFailures failed iterations, counting retries that started between iterations', async () => {
  // The retry falls due during the pause between iterations, so the dispatcher starts it on its own.
  const h = createHarness({ dispatch: { maxAttempts: 10, backoffBaseMs: 50, backoffMaxMs: 50 } });
  h.source.put({ key: 'FAC-1', title: 'always fails', labels: ['factory'] });
  const session = h.newSession('loop');
  await session.open();
  const report: LoopReport = await driveAgents(h, 1, runLoop(session, { maxIterations: 10, maxConsecutiveFailures: 3, iterationDelayMs: 60, shouldStop: () => false }));
  assert.equal(report.stoppedBecause, 'consecutive-failures');
  assert.equal(report.consecutiveFailures, 3);
  assert.equal(report.iterations.length, 3);
  for (const iteration of report.iterations) assert.ok(iteration.outcomes.length > 0 && iteration.outcomes.every((o) => o.reason === 'failed'));
  // Every team the loop ran is in exactly one iteration's report.
  const reported = report.iterations.flatMap((i) => i.outcomes.map((o) => o.runId));
  const spawnedRuns = [...new Set(h.fleet.agents.map((a) => a.spec.runId))];
  assert.deepEqual([...reported].sort(), [...spawnedRuns].sort());
  await session.close('failed');
});

test('loop: an iteration that throws counts as a failure, and a good one resets the count', async () => {
  const h = createHarness();
  const session = h.newSession('loop');
  await session.open();
  const realScan = h.source.scan.bind(h.source);
  let scans = 0;
  h.source.scan = async () => {
    scans++;
    if (scans === 2) return realScan();
    throw new Error('issue folder is gone');
  };
  const report = await driveAgents(h, 0, runLoop(session, { maxIterations: 10, maxConsecutiveFailures: 2, iterationDelayMs: 10, shouldStop: () => false }));
  assert.equal(report.stoppedBecause, 'consecutive-failures');
  assert.equal(scans, 4, 'fail, succeed (reset), fail, fail');
  assert.match(report.lastError ?? '', /iteration 4: issue folder is gone/);
  await session.close('failed');
});

test('loop: a stop request ends the loop before the next iteration', async () => {
  const h = createHarness();
  const session = h.newSession('loop');
  await session.open();
  let iterations = 0;
  const report = await driveAgents(h, 0, runLoop(session, { maxIterations: 10, maxConsecutiveFailures: 2, iterationDelayMs: 10, shouldStop: () => iterations >= 2, onIteration: () => iterations++ }));
  assert.equal(report.stoppedBecause, 'signal');
  assert.equal(report.iterations.length, 2);
  await session.close();
});

test('bounded runs keep the heartbeat fresh while a long team works, so loop-status does not call them wedged', async () => {
  for (const mode of ['loop', 'once'] as const) {
    const h = createHarness({ loop: { heartbeatIntervalMs: 1_000, heartbeatStaleMs: 6_000 } });
    h.source.put({ key: 'LONG', title: 'takes a while', labels: ['factory'] });
    const session = h.newSession(mode);
    await session.open();
    const running = mode === 'loop' ? runLoop(session, { maxIterations: 1, maxConsecutiveFailures: 2, iterationDelayMs: 10, shouldStop: () => false }) : runCycle(session);
    await settle();
    await h.clock.advance(60_000); // ten stale windows with the implementer still at work
    const last = h.heartbeats.at(-1)!;
    assert.ok(h.clock.now() - last.updatedAtMs <= 1_000, `${mode}: the last heartbeat is ${h.clock.now() - last.updatedAtMs} ms old`);
    assert.equal(last.status, 'running');
    assert.equal(last.inFlightTeams, 1);
    h.fleet.find('LONG', 'implementer')!.exit(0);
    await settle();
    h.fleet.find('LONG', 'reviewer')!.exit(0);
    await running;
    await session.close('idle');
    const count = h.heartbeats.length;
    await h.clock.advance(60_000);
    assert.equal(h.heartbeats.length, count, `${mode}: no refresh after close`);
  }
});
