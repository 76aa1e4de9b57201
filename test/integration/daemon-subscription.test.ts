import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { waitFor } from './agent-process-support.js';

const repoRoot = resolve(import.meta.dirname, '..', '..');

test('a daemon whose mount disappears for good reports it and exits 5 for its supervisor to restart it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factory-subscription-'));
  const mount = join(dir, 'issues');
  mkdirSync(mount);
  const configPath = join(dir, 'factory.config.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      mount: { root: './issues' },
      repos: { default: '.' },
      agents: { implementer: { command: ['true'] } },
      intake: { probeIntervalMs: 200, probeTimeoutMs: 200, reconcileIntervalMs: 200, unhealthyLimitMs: 1_500 },
      loop: { heartbeatIntervalMs: 100, heartbeatStaleMs: 3_000 },
      http: { enabled: false },
    }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), 'start', '--mode', 'live', '--config', configPath], {
    cwd: repoRoot,
    env: { ...process.env, FACTORY_LOG_LEVEL: 'error' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    const heartbeatPath = join(dir, '.factory', 'heartbeat.json');
    const heartbeat = () => {
      try {
        return JSON.parse(readFileSync(heartbeatPath, 'utf8')) as { status: string; subscription: { state: string; lastProgressAtMs: number | null } };
      } catch {
        return undefined;
      }
    };
    await waitFor('a probe proving the subscription', () => heartbeat()?.subscription.lastProgressAtMs != null, 15_000);
    rmSync(mount, { recursive: true, force: true });
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))]);
    assert.equal(code, 5, `exit code; stderr: ${stderr}`);
    assert.match(stderr, /FACTORY_SUBSCRIPTION_FAILED/);
    assert.equal(heartbeat()?.status, 'failed');
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
