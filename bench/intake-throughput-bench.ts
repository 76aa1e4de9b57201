import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SystemClock } from '../src/adapters/clock/system-clock.js';
import { InMemoryFleet } from '../src/adapters/fleet/in-memory-fleet.js';
import { LocalMountIssueSource } from '../src/adapters/issue-source/local-mount-issue-source.js';
import { SqliteStateStore } from '../src/adapters/state-store/sqlite-state-store.js';
import { InMemoryWorkspace } from '../src/adapters/workspace/in-memory-workspace.js';
import { compileConfig } from '../src/config/load.js';
import { FactorySession } from '../src/core/factory-session.js';
import { createSilentLogger } from '../src/core/logger.js';
import { writeHeartbeatFile, writeRegistryFile } from '../src/core/state-files.js';
import { round, waitUntil } from './bench-support.js';

/**
 * Intake throughput: issue files per second from landing in the mount to
 * claimed and queued (durable SQLite claim), through the real watch and
 * parser. The one team slot stays busy, so every file after the first queues.
 */
export async function benchIntakeThroughput(files = 2_000) {
  const dir = mkdtempSync(join(tmpdir(), 'factory-bench-intake-'));
  mkdirSync(join(dir, 'issues'));
  const clock = new SystemClock();
  const config = compileConfig(
    { mount: { root: './issues' }, repos: { default: '/repo' }, agents: { implementer: { command: ['agent'] } }, intake: { reconcileIntervalMs: 600_000 } },
    join(dir, 'factory.config.json'),
  );
  const session = new FactorySession(
    {
      config,
      source: new LocalMountIssueSource({ root: config.mount.root, clock }),
      store: new SqliteStateStore(config.paths.stateDb),
      fleet: new InMemoryFleet({ clock }), // agents never exit on their own: the slot stays taken
      workspace: new InMemoryWorkspace(),
      clock,
      log: createSilentLogger(),
      identity: { pid: process.pid, startTime: 1, bootId: 'bench' },
      writeHeartbeat: writeHeartbeatFile,
      writeRegistry: writeRegistryFile,
      reapPredecessor: async () => ({ reaped: 0, survivors: [] }),
    },
    'live',
  );
  await session.open();
  await session.startLive();
  const started = performance.now();
  try {
    for (let i = 0; i < files; i++) {
      writeFileSync(join(dir, 'issues', `T-${i}.json`), JSON.stringify({ key: `T-${i}`, title: `throughput ${i}`, body: 'x'.repeat(400), labels: ['factory'], state: 'ready' }));
    }
    await waitUntil('every file claimed', () => session.dispatcher.queuedCount + session.dispatcher.runningTeamCount === files, 120_000);
  } finally {
    var elapsedMs = performance.now() - started; // eslint-disable-line no-var
    await session.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return { name: 'intake throughput: file landed → claimed and queued', files, elapsedMs: round(elapsedMs, 1), filesPerSecond: Math.round((files / elapsedMs) * 1000) };
}
