import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { markerPrefixFor } from '../../src/main.js';
import { createScratchProject, spawnDaemon, waitFor } from '../support/sandbox.js';
import { fixtureAgentCommand } from './agent-process-support.js';

/**
 * Fault injection on the dispatch path: the daemon is SIGKILLed at each crash
 * point (FACTORY_CRASH_AT) and at random moments, then restarted. Throughout,
 * a sampler watches /proc: at no moment may two runs of one issue have live
 * processes. At the end every ready issue has succeeded, its outcome is written
 * back, the retry of the failing issue was not forgotten, and no agent
 * process is left.
 */

interface Project {
  dir: string;
  configPath: string;
  markerPrefix: string;
  keys: string[];
}

function makeProject(): Project {
  const [node, worker] = fixtureAgentCommand('tree-worker.mjs');
  const project = createScratchProject('crash', {
    // The issue body carries the worker's flags, so one issue can fail its first attempt.
    agents: { implementer: { command: [node, worker, '--work-ms', '400', '{{body}}'] } },
    // The random-kill trial crashes the daemon more often than any issue is to blame for.
    dispatch: { batchSize: 2, maxAttempts: 3, backoffBaseMs: 700, maxCrashInterruptions: 100 },
    // The worker agent commits nothing: this test is about crashes, not about whether a run changed the branch.
    runs: { killGraceMs: 300, superviseIntervalMs: 200, allowNoChanges: true },
    reaper: { graceMs: 300 },
    loop: { heartbeatIntervalMs: 200, heartbeatStaleMs: 3_000 },
    http: { enabled: false },
  });
  const keys = ['CR-1', 'CR-2', 'CR-3', 'CR-4'];
  for (const key of keys) project.writeIssue(key, { body: key === 'CR-4' ? '--fail-first-attempt' : '--steady' });
  return { dir: project.dir, configPath: project.configPath, markerPrefix: markerPrefixFor(loadConfig(project.configPath)), keys };
}

/** Live processes carrying this project's marker prefix, as issue key → run ids. */
function liveRunsByIssue(markerPrefix: string): Map<string, Set<string>> {
  const runs = new Map<string, Set<string>>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${name}/environ`, 'latin1');
    } catch {
      continue;
    }
    const marker = environ.split('\0').find((e) => e.startsWith(`FACTORY_AGENT_MARKER=${markerPrefix}`));
    if (!marker) continue;
    const runId = marker.slice(`FACTORY_AGENT_MARKER=${markerPrefix}`.length).split(':')[0]!;
    const issueKey = runId.replace(/-e\d+-a\d+-[0-9a-f]+$/, '');
    runs.set(issueKey, (runs.get(issueKey) ?? new Set()).add(runId));
  }
  return runs;
}

/** Samples /proc every 15 ms and records any moment with two live runs of one issue. */
function startInvariantSampler(markerPrefix: string) {
  const violations: string[] = [];
  let samples = 0;
  const timer = setInterval(() => {
    samples++;
    for (const [issue, runIds] of liveRunsByIssue(markerPrefix)) {
      if (runIds.size > 1) violations.push(`${issue}: ${[...runIds].join(', ')}`);
    }
  }, 15);
  return { violations, samples: () => samples, stop: () => clearInterval(timer) };
}

function outcomeOf(project: Project, key: string): string | undefined {
  const path = join(project.dir, 'issues', `${key}.outcome.md`);
  if (!existsSync(path)) return undefined;
  return /\*\*Outcome:\*\* (\S+)/.exec(readFileSync(path, 'utf8'))?.[1];
}

async function runToCompletion(project: Project): Promise<void> {
  const daemon = spawnDaemon(project.configPath);
  try {
    await waitFor('every issue to succeed', () => project.keys.every((key) => outcomeOf(project, key) === 'succeeded'), 45_000);
  } finally {
    daemon.child.kill('SIGTERM');
    const { code } = await daemon.exited;
    assert.equal(code, 0, 'the final daemon stops cleanly');
  }
}

function assertCleanEnd(project: Project): void {
  assert.deepEqual([...liveRunsByIssue(project.markerPrefix).keys()], [], 'no agent process of this factory is left');
  const registry = JSON.parse(readFileSync(join(project.dir, '.factory', 'registry.json'), 'utf8')) as { agents: unknown[] };
  assert.deepEqual(registry.agents, []);
  const log = readdirSync(join(project.dir, '.factory', 'logs', 'CR-4'));
  assert.ok(log.some((name) => /-a1-/.test(name)) && log.some((name) => /-a2-/.test(name)), `CR-4 failed once and its retry ran: ${log.join(', ')}`);
}

for (const point of ['after-claim', 'after-spawn', 'after-registry-write', 'during-writeback'] as const) {
  test(`kill -9 ${point}: the restarted daemon resolves the crash, dispatches every issue once at a time, loses nothing`, async () => {
    const project = makeProject();
    const sampler = startInvariantSampler(project.markerPrefix);
    try {
      const crashed = spawnDaemon(project.configPath, { FACTORY_CRASH_AT: `${point}:2` });
      const { signal } = await crashed.exited;
      assert.equal(signal, 'SIGKILL', `the daemon died at ${point}`);
      await runToCompletion(project);
      sampler.stop();
      assert.deepEqual(sampler.violations, [], 'two live runs of one issue at the same moment');
      assert.ok(sampler.samples() > 10);
      assertCleanEnd(project);
    } finally {
      sampler.stop();
      rmSync(project.dir, { recursive: true, force: true });
    }
  });
}

test('kill -9 at random moments, many times: at most one live team per issue, and every issue ends succeeded', async () => {
  const project = makeProject();
  const sampler = startInvariantSampler(project.markerPrefix);
  // Deterministic "random" delays, so a failure can be replayed.
  let seed = 12345;
  const nextDelay = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), 150 + (seed % 1200));
  try {
    for (let trial = 0; trial < 6; trial++) {
      const daemon = spawnDaemon(project.configPath);
      await new Promise((r) => setTimeout(r, nextDelay()));
      daemon.child.kill('SIGKILL');
      await daemon.exited;
    }
    await runToCompletion(project);
    sampler.stop();
    assert.deepEqual(sampler.violations, []);
    assertCleanEnd(project);
  } finally {
    sampler.stop();
    rmSync(project.dir, { recursive: true, force: true });
  }
});
