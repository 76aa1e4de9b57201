import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../src/config/load.js';
import { createSilentLogger } from '../src/core/logger.js';
import { createRuntime, openSession } from '../src/main.js';
import { median, percentile, round, waitUntil } from './bench-support.js';

/**
 * Live latency from a new issue file landing in the mount to its implementer
 * process spawned (its registry entry written), through the real daemon: the
 * local mount's watch, triage, a SQLite claim, a real git worktree and a real
 * process. Target: p50 < 100 ms (peers poll every 5–30 s).
 */
export async function benchLiveLatency(samples = 30) {
  const dir = mkdtempSync(join(tmpdir(), 'factory-bench-latency-'));
  const repo = join(dir, 'repo');
  mkdirSync(repo);
  mkdirSync(join(dir, 'issues'));
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=b', '-c', 'user.email=b@b', '-C', repo, ...args]);
  git('init', '-q');
  writeFileSync(join(repo, 'README.md'), 'bench\n');
  git('add', '.');
  git('commit', '-qm', 'init');
  writeFileSync(
    join(dir, 'factory.config.json'),
    JSON.stringify({
      mount: { root: './issues' },
      repos: { default: './repo' },
      agents: { implementer: { command: ['sleep', '60'] } },
      dispatch: { batchSize: samples + 1 },
      runs: { killGraceMs: 1000 },
      intake: { debounceMs: 0 },
      loop: { heartbeatIntervalMs: 15000 },
    }),
  );
  const runtime = createRuntime(loadConfig(join(dir, 'factory.config.json')), createSilentLogger());
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
