import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../support/sandbox.js';
import { finishedRuns, useFleetPerTest } from '../fixtures/fleet/harness.js';

const fleets = useFleetPerTest();

test('a ready issue runs on a worker process and its outcome reaches the control plane', { timeout: 60_000 }, async () => {
  const fleet = await fleets.start({ agentWorkMs: 500 });
  await fleet.startWorker('w1');
  fleet.project.writeIssue('FLEET-1');
  const finished = await waitFor('the run to finish', () => finishedRuns(fleet.controlPlane)[0], 30_000);
  assert.equal(finished.reason, 'succeeded', fleet.controlPlane.stderr());
  const lines = fleet.traceLines();
  assert.deepEqual(
    lines.map((l) => l.what),
    ['start', 'end'],
  );
});
