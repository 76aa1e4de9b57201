import { execFileSync } from 'node:child_process';
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
 * process. Targets: p50 < 100 ms (peers poll every 5–30 s), and at most 2x
 * the `git worktree add` each dispatch needs, timed on the same repository in
 * the same run (the baseline).
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
  }
  // The baseline: the git command each dispatch runs, alone, on the same repository (a new branch and worktree each time).
  const worktreeAdds: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const started = performance.now();
      execFileSync('git', ['-C', project.repo, 'worktree', 'add', '--quiet', '-b', `bench-baseline-${i}`, join(dir, 'baseline', String(i))], { stdio: 'ignore' });
      worktreeAdds.push(performance.now() - started);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const p50 = median(latencies);
  const worktreeAddP50 = median(worktreeAdds);
  const ratio = p50 / worktreeAddP50;
  return {
    name: 'live latency: issue file → implementer spawned',
    samples,
    p50Ms: round(p50, 1),
    p95Ms: round(percentile(latencies, 95), 1),
    gitWorktreeAddP50Ms: round(worktreeAddP50, 1),
    ratioToWorktreeAdd: round(ratio, 2),
    target: 'p50 < 100 ms and ≤ 2x git worktree add',
    met: p50 < 100 && ratio <= 2,
  };
}
