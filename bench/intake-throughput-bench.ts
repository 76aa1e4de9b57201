import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalMountIssueSource } from '../src/adapters/issue-source/local-mount-issue-source.js';
import { openInProcessSession } from '../test/support/in-process-session.js';
import { round, waitUntil } from './bench-support.js';

/**
 * Intake throughput: issue files per second from landing in the mount to
 * claimed and queued (durable SQLite claim), through the real watch and
 * parser. The one team slot stays busy, so every file after the first queues.
 */
export async function benchIntakeThroughput(files = 2_000) {
  const dir = mkdtempSync(join(tmpdir(), 'factory-bench-intake-'));
  mkdirSync(join(dir, 'issues'));
  // The in-memory fleet's agents never exit on their own: the one slot stays taken.
  const { session } = await openInProcessSession(dir, {
    config: { intake: { reconcileIntervalMs: 600_000 } },
    source: (config, clock) => new LocalMountIssueSource({ root: config.mount.root, clock }),
  });
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
