import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../src/config/load.js';
import { createSilentLogger } from '../src/adapters/logging/pino-logger.js';
import { createRuntime, openSession } from '../src/main.js';
import { createScratchProject } from '../test/support/sandbox.js';
import { median, percentile, round, waitUntil } from './bench-support.js';

/**
 * Live latency from a new issue file landing in the mount to its implementer
 * process spawned (its registry entry written), through the real daemon: the
 * local mount's watch, triage, a SQLite claim, a real git worktree and a real
 * process. Target: p50 < 100 ms (peers poll every 5–30 s).
 */
export async function benchLiveLatency(samples = 30) {
  const project = createScratchProject('bench-latency', {
    agents: { implementer: { command: ['sleep', '60'] } },
    dispatch: { batchSize: samples + 1 },
    runs: { killGraceMs: 1000 },
    intake: { debounceMs: 0 },
    http: { enabled: false },
  });
  const dir = project.dir;
  const runtime = createRuntime(loadConfig(project.configPath), createSilentLogger());
  const opened = await openSession(runtime, 'live');
  const latencies: number[] = [];
  try {
    await opened.session.startLive();
    for (let i = 0; i < samples; i++) {
      const key = `LAT-${i}`;
      const landed = performance.now();
      writeFileSync(join(dir, 'issues', `${key}.json`), JSON.stringify({ key, title: `latency ${i}`, body: '', labels: ['factory'], state: 'ready' }));
      await waitUntil(`${key} spawned`, () => opened.session.registry.entries().some((e) => e.issueKey === key));
      latencies.push(performance.now() - landed);
    }
  } finally {
    await opened.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const p50 = median(latencies);
  return { name: 'live latency: issue file → implementer spawned', samples, p50Ms: round(p50, 1), p95Ms: round(percentile(latencies, 95), 1), target: 'p50 < 100 ms', met: p50 < 100 };
}
