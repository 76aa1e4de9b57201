import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { waitFor } from '../support/sandbox.js';
import { finishedRuns, liveAgentRuns, useFleetPerTest } from '../fixtures/fleet/harness.js';

const fleets = useFleetPerTest();

test('an issue that leaves scope cancels its run on the worker: no process of its group within 5 s, no retry', { timeout: 60_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 20_000 });
  await f.startWorker('w1');
  f.project.writeIssue('CANCEL-1');
  const first = await waitFor('the run to start', () => f.traceLines().find((l) => l.what === 'start'), 30_000);
  const leftAt = Date.now();
  writeFileSync(join(f.project.issuesDir, 'CANCEL-1.json'), JSON.stringify({ key: 'CANCEL-1', title: 'CANCEL-1', body: '', labels: ['factory'], state: 'done' }));
  await waitFor('the run group to be gone', () => liveAgentRuns('CANCEL-1').size === 0, 5_000, 10);
  const goneAfterMs = Date.now() - leftAt;
  const finished = await waitFor('the cancel outcome', () => finishedRuns(f.controlPlane)[0], 10_000);
  assert.deepEqual([finished.run, finished.reason], [first.runId, 'cancelled']);
  assert.ok(goneAfterMs < 5_000, `gone after ${goneAfterMs} ms`);
  // Well past the backoff and a stalled interval: nothing runs again.
  await new Promise((r) => setTimeout(r, 3_000));
  assert.equal(
    new Set(
      f
        .traceLines()
        .filter((l) => l.what === 'start')
        .map((l) => l.runId),
    ).size,
    1,
  );
  assert.equal(finishedRuns(f.controlPlane).length, 1);
});

test('worker SIGTERM: no new fetch, a run that finishes within the grace reports, exit 0', { timeout: 60_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 3_000, shutdownGraceMs: 15_000 });
  const w1 = await f.startWorker('w1');
  f.project.writeIssue('TERM-1');
  await waitFor('the run to start', () => f.traceLines().find((l) => l.what === 'start'), 30_000);
  w1.child.kill('SIGTERM');
  f.project.writeIssue('TERM-2');
  const exit = await w1.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, w1.stderr());
  const finished = await waitFor('the outcome', () => finishedRuns(f.controlPlane)[0], 10_000);
  assert.equal(finished.reason, 'succeeded');
  assert.ok(!f.traceLines().some((l) => l.runId.startsWith('TERM-2-')), 'the stopping worker fetched nothing new');
  await f.startWorker('w2');
  await waitFor('the next worker to take the queued issue', () => finishedRuns(f.controlPlane).find((r) => r.run.startsWith('TERM-2-') && r.reason === 'succeeded'), 30_000);
});

test('worker SIGTERM with a run longer than the grace: the run is stopped, handed back, finished by another worker; exit 0; one completion', { timeout: 60_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 6_000, shutdownGraceMs: 1_000 });
  const w1 = await f.startWorker('w1');
  f.project.writeIssue('BACK-1');
  const first = await waitFor('the run to start', () => f.traceLines().find((l) => l.what === 'start'), 30_000);
  w1.child.kill('SIGTERM');
  const exit = await w1.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, w1.stderr());
  assert.equal(liveAgentRuns('BACK-1').size, 0, 'the handed-back run left no process behind');
  await f.startWorker('w2');
  const finished = await waitFor('the run to finish on w2', () => finishedRuns(f.controlPlane)[0], 30_000);
  assert.deepEqual([finished.run, finished.reason], [first.runId, 'succeeded']);
  const lines = f
    .traceLines()
    .filter((l) => l.runId === first.runId)
    .map((l) => l.what);
  assert.deepEqual(lines, ['start', 'term', 'start', 'end'], 'the same run, stopped on w1 and run again from the start on w2');
  await new Promise((r) => setTimeout(r, 1_000));
  assert.equal(finishedRuns(f.controlPlane).length, 1);
});
