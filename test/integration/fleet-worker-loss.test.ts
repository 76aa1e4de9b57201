import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { waitFor } from '../support/sandbox.js';
import { finishedRuns, liveAgentRuns, registryRuns, sampleLiveRuns, useFleetPerTest } from '../fixtures/fleet/harness.js';

const fleets = useFleetPerTest();

test('worker SIGKILL mid-run: its agents are reaped on its host by the restarted worker, the run is retried exactly once, never two live executions', { timeout: 90_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 6_000, lockDurationMs: 5_000, stalledIntervalMs: 1_000 });
  const w1 = await f.startWorker('w1');
  f.project.writeIssue('KILL-1');
  const first = await waitFor('the first run to start on w1', () => f.traceLines().find((l) => l.what === 'start'), 30_000);
  await waitFor('w1 to list the agent', () => registryRuns(w1).includes(first.runId));
  const sampler = sampleLiveRuns('KILL-1', () => f.workers.values());
  w1.child.kill('SIGKILL');
  await w1.exited;
  assert.ok(liveAgentRuns('KILL-1').has(first.runId), 'the agents outlive their SIGKILLed worker until reaped');
  // systemd's Restart=always: the new worker on this config reaps what the dead one left.
  await f.startWorker('w1');
  await waitFor('the first run to be reaped', () => !liveAgentRuns('KILL-1').has(first.runId), 10_000);
  await f.startWorker('w2');
  const finished = await waitFor(
    'the retry to finish',
    () => {
      const runs = finishedRuns(f.controlPlane);
      return runs.some((r) => r.reason === 'succeeded') && runs;
    },
    60_000,
  );
  const live = sampler.stop();
  assert.deepEqual(
    finished.map((r) => r.reason),
    ['stalled', 'succeeded'],
    f.controlPlane.stderr(),
  );
  assert.equal(finished[0]!.run, first.runId);
  assert.doesNotMatch(f.controlPlane.stderr(), /allowable limit/, "why the run was lost is said in Factory's words, not BullMQ's stall message");
  const started = [
    ...new Set(
      f
        .traceLines()
        .filter((l) => l.what === 'start')
        .map((l) => l.runId),
    ),
  ];
  assert.equal(started.length, 2, 'one retry, no more');
  assert.equal(live.maxLiveInProc, 1, `never two live executions in /proc (${live.samples} samples)`);
  assert.ok(live.maxInRegistries <= 1, 'never two runs in the registries at once');
});

test('worker SIGSTOP past its lock: another worker runs it, on SIGCONT the first kills its agents within a second and reports nothing; exactly one completion', { timeout: 90_000 }, async () => {
  // 15 s of work: the first agent must still be alive when another worker takes the run over (lock 3 s + stall check), even on a loaded machine.
  const f = await fleets.start({ agentWorkMs: 15_000, lockDurationMs: 3_000, stalledIntervalMs: 1_000 });
  const w1 = await f.startWorker('w1');
  f.project.writeIssue('STOP-1');
  const first = await waitFor('the first run to start on w1', () => f.traceLines().find((l) => l.what === 'start'), 30_000);
  await f.startWorker('w2');
  w1.child.kill('SIGSTOP');
  const second = await waitFor('another worker to run it', () => f.traceLines().find((l) => l.what === 'start' && l.runId !== first.runId), 30_000);
  assert.ok(liveAgentRuns('STOP-1').has(first.runId), "the frozen worker's agents are still alive before it wakes");
  const wokeAt = Date.now();
  w1.child.kill('SIGCONT');
  await waitFor('the woken worker to kill its agents', () => !liveAgentRuns('STOP-1').has(first.runId), 5_000, 10);
  const killedWithinMs = Date.now() - wokeAt;
  assert.ok(killedWithinMs < 1_000, `agents of the fenced run gone ${killedWithinMs} ms after SIGCONT`);
  const finished = await waitFor(
    'the second run to finish',
    () => {
      const runs = finishedRuns(f.controlPlane);
      return runs.some((r) => r.reason === 'succeeded') && runs;
    },
    60_000,
  );
  assert.deepEqual(
    finished.map((r) => [r.run, r.reason]),
    [
      [first.runId, 'stalled'],
      [second.runId, 'succeeded'],
    ],
  );
  // Nothing the fenced worker tried to say after the lock moved on reached the stream: no outcome for the first run.
  const client = new Redis(fleets.redis().url);
  try {
    const entries = (await client.xrange(`factory:{test}:run-events:${first.runId}`, '-', '+')) as [string, string[]][];
    const kinds = entries.map(([, fields]) => fields[1]);
    assert.ok(kinds.includes('picked') && !kinds.includes('outcome'), `events of the fenced run: ${kinds.join(',')}`);
  } finally {
    client.disconnect();
  }
  assert.match(w1.stderr(), /self-fenced/);
  assert.equal(w1.child.exitCode, null, 'the woken worker keeps serving');
});
