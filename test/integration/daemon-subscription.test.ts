import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createScratchProject, spawnDaemon, waitFor } from '../support/sandbox.js';

test('a daemon whose mount disappears for good reports it and exits 5 for its supervisor to restart it', async () => {
  const project = createScratchProject('subscription', {
    agents: { implementer: { command: ['true'] } },
    intake: { probeIntervalMs: 200, probeTimeoutMs: 200, reconcileIntervalMs: 200, unhealthyLimitMs: 1_500 },
    loop: { heartbeatIntervalMs: 100, heartbeatStaleMs: 3_000 },
    http: { enabled: false },
  });
  const daemon = spawnDaemon(project.configPath, { FACTORY_LOG_LEVEL: 'error' });
  try {
    const heartbeatPath = join(project.dir, '.factory', 'heartbeat.json');
    const heartbeat = () => {
      try {
        return JSON.parse(readFileSync(heartbeatPath, 'utf8')) as { status: string; subscription: { state: string; lastProgressAtMs: number | null } };
      } catch {
        return undefined;
      }
    };
    await waitFor('a probe proving the subscription', () => heartbeat()?.subscription.lastProgressAtMs != null, 15_000);
    rmSync(project.issuesDir, { recursive: true, force: true });
    const exit = await Promise.race([daemon.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))]);
    assert.notEqual(exit, 'timeout', 'the daemon exited on its own');
    assert.equal(exit !== 'timeout' && exit.code, 5, `exit code; stderr: ${daemon.stderr()}`);
    assert.match(daemon.stderr(), /FACTORY_SUBSCRIPTION_FAILED/);
    assert.equal(heartbeat()?.status, 'failed');
  } finally {
    daemon.child.kill('SIGKILL');
    rmSync(project.dir, { recursive: true, force: true });
  }
});
