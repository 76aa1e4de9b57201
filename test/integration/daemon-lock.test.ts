import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { createScratchProject, spawnDaemon, waitFor } from '../support/sandbox.js';

test('a live daemon holds its lock file open, which proves it is the daemon; the lock is gone after a clean stop', async () => {
  const project = createScratchProject('daemon-lock', { agents: { implementer: { command: ['true'] } }, loop: { heartbeatIntervalMs: 100 }, http: { enabled: false } });
  const lockPath = join(project.dir, '.factory', 'daemon.lock');
  const table = new LinuxProcessTable();
  const daemon = spawnDaemon(project.configPath);
  try {
    const heartbeat = await waitFor(
      'the running heartbeat',
      () => {
        try {
          const parsed = JSON.parse(readFileSync(join(project.dir, '.factory', 'heartbeat.json'), 'utf8')) as { pid: number; status: string };
          return parsed.status === 'running' && parsed;
        } catch {
          return undefined;
        }
      },
      20_000,
    );
    assert.equal(heartbeat.pid, daemon.child.pid);
    assert.equal(table.holdsOpen(heartbeat.pid, lockPath), true, 'the daemon has its lock open');
    assert.equal(table.holdsOpen(process.pid, lockPath), false, 'another process does not');
    daemon.child.kill('SIGTERM');
    assert.equal((await daemon.exited).code, 0);
    assert.throws(() => readFileSync(lockPath), /ENOENT/, 'the lock is released');
  } finally {
    daemon.child.kill('SIGKILL');
    rmSync(project.dir, { recursive: true, force: true });
  }
});
