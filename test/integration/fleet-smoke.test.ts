import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestRedis, type TestRedis } from '../support/redis-server.js';
import { waitFor } from '../support/sandbox.js';
import { finishedRuns, startFleet, type TestFleet } from '../fixtures/fleet/harness.js';

let redis: TestRedis;
let fleet: TestFleet | undefined;
before(async () => {
  redis = await startTestRedis();
});
after(async () => {
  await fleet?.stop();
  await redis.stop();
});

test('a ready issue runs on a worker process and its outcome reaches the control plane', { timeout: 60_000 }, async () => {
  fleet = await startFleet({ redis, agentWorkMs: 500 });
  await fleet.startWorker('w1');
  fleet.project.writeIssue('FLEET-1');
  const finished = await waitFor('the run to finish', () => finishedRuns(fleet!.controlPlane)[0], 30_000);
  assert.equal(finished.reason, 'succeeded', fleet.controlPlane.stderr());
  const lines = fleet.traceLines();
  assert.deepEqual(
    lines.map((l) => l.what),
    ['start', 'end'],
  );
});
