import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { REPO_ROOT, waitFor } from '../support/sandbox.js';
import { useFleetPerTest } from '../fixtures/fleet/harness.js';
import type { StatusSnapshot } from '../../src/core/status-snapshot.js';

/**
 * The fleet as an operator sees it: `factory status`, the state API and
 * /metrics of the leader show the workers (host, slots, runs, heartbeat age,
 * Redis), where each run is placed, and the fleet counters.
 */

const run = promisify(execFile);
const fleets = useFleetPerTest();

async function statusJson(configPath: string): Promise<StatusSnapshot> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'status', '--json', '--config', configPath], {
    cwd: REPO_ROOT,
    env: { ...process.env, FACTORY_LOG_LEVEL: 'warn' },
  });
  return JSON.parse(stdout) as StatusSnapshot;
}

test('status, the state API and /metrics show the workers, where each run is placed and the fleet counters; a standby says standby', { timeout: 90_000 }, async () => {
  // The agent outlives every check below (the fleet is stopped after the test), so a loaded machine cannot end the run before the API is asked where it is.
  const f = await fleets.start({ agentWorkMs: 60_000, slots: 2, extraConfig: { http: { enabled: true, port: 0 } } });
  const standby = await f.startControlPlane('cp1', 'standby');
  const w1 = await f.startWorker('w1');
  f.project.writeIssue('SEE-1');
  const started = await waitFor('the run to start', () => f.traceLines().find((l) => l.what === 'start'), 30_000);
  const status = await waitFor(
    'status to place the run on w1',
    async () => {
      const snapshot = await statusJson(f.project.configPath);
      return snapshot.fleet?.placements.some((p) => p.runId === started.runId && p.node === 'w1') && snapshot;
    },
    15_000,
    300,
  );
  const fleetStatus = status.fleet!;
  const worker = fleetStatus.workers.find((w) => w.node === 'w1')!;
  assert.equal(worker.slots, 2);
  assert.equal(worker.redis, 'connected');
  assert.deepEqual(
    worker.runs.map((r) => r.issueKey),
    ['SEE-1'],
  );
  assert.ok(worker.heartbeatAgeMs < 5_000, `heartbeat age ${worker.heartbeatAgeMs} ms`);
  assert.ok(fleetStatus.leader && fleetStatus.leader.epoch === fleetStatus.epoch, 'the leader is named with the current epoch');
  assert.ok(fleetStatus.redis.usedMemoryBytes > 0);

  const standbyStatus = await statusJson(join(standby.dir, 'factory.config.json'));
  assert.equal(standbyStatus.liveness.verdict, 'standby');
  assert.equal(standbyStatus.liveness.healthy, true);
  // A worker subscribes to no issues: its own status and loop-status (its health check) read healthy, not subscription-unhealthy.
  const workerStatus = await statusJson(w1.configPath);
  assert.equal(workerStatus.liveness.verdict, 'healthy', workerStatus.liveness.detail);
  assert.match(workerStatus.liveness.detail, /fleet worker pid \d+ running/);
  const workerLoopStatus = await run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'loop-status', '--config', w1.configPath], { cwd: REPO_ROOT });
  assert.match(workerLoopStatus.stdout, /^healthy: fleet worker/);

  const heartbeat = JSON.parse(readFileSync(join(f.project.dir, '.factory', 'heartbeat.json'), 'utf8')) as { http?: { url: string } };
  const url = heartbeat.http!.url;
  // Polled like status above: a worker counts as connected (and its runs as placed) only while its announcement is fresh, which a loaded machine can delay.
  await waitFor(
    'the state API to place the run on w1',
    async () => {
      const state = (await (await fetch(`${url}/api/v1/state`)).json()) as { fleet: StatusSnapshot['fleet'] };
      return state.fleet?.placements.some((p) => p.runId === started.runId && p.node === 'w1');
    },
    10_000,
    300,
  );
  const metrics = await waitFor(
    'the fleet metrics',
    async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return /factory_fleet_lock_renewals\{node="w1"\} [1-9]/.test(text) && text;
    },
    10_000,
    300,
  );
  assert.match(metrics, /factory_fleet_worker_slots\{node="w1"\} 2/);
  assert.match(metrics, /factory_fleet_worker_runs\{node="w1"\} 1/);
  assert.match(metrics, /factory_fleet_self_fences\{node="w1"\} 0/);
  assert.match(metrics, /factory_fleet_queue_depth 0/);
  assert.match(metrics, /factory_fleet_runs_lost 0/);
  assert.match(metrics, /factory_fleet_stale_rejections 0/);
  assert.match(metrics, /factory_fleet_pickup_latency_p50_seconds \d/);
  assert.match(metrics, /factory_fleet_workers 1/);
});
