import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { runCycle } from '../../src/core/bounded-run.js';
import { createSilentLogger } from '../../src/core/logger.js';
import { createRuntime, openSession } from '../../src/main.js';
import { fixtureAgentCommand } from './agent-process-support.js';

/** A temp folder with a real git repo, an issues folder and a config. */
function makeProject(config: Record<string, unknown>, issues: Record<string, unknown>[]): { dir: string; configPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'factory-supervision-'));
  const repo = join(dir, 'repo');
  mkdirSync(repo);
  mkdirSync(join(dir, 'issues'));
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', '-C', repo, ...args]);
  git('init', '-q');
  writeFileSync(join(repo, 'README.md'), 'x\n');
  git('add', '.');
  git('commit', '-qm', 'init');
  for (const issue of issues) writeFileSync(join(dir, 'issues', `${issue.key}.json`), JSON.stringify({ labels: ['factory'], state: 'ready', body: '', ...issue }));
  const configPath = join(dir, 'factory.config.json');
  writeFileSync(configPath, JSON.stringify({ mount: { root: './issues' }, repos: { default: './repo' }, ...config }));
  return { dir, configPath };
}

test('a silent agent that burns CPU is busy, not stalled; an idle silent one is stopped as stalled', async () => {
  // Each issue names its fixture agent in its body, rendered into the command.
  const [node, busyScript] = fixtureAgentCommand('output-then-cpu.mjs');
  const [, idleScript] = fixtureAgentCommand('idle-silent.mjs');
  const { dir, configPath } = makeProject(
    {
      agents: { implementer: { command: [node, '{{body}}'] } },
      dispatch: { batchSize: 2, maxAttempts: 1 },
      runs: { stallLimitMs: 1_500, superviseIntervalMs: 200, maxRuntimeMs: 5_000, killGraceMs: 300 },
    },
    [
      { key: 'BUSY-1', title: 'busy', body: busyScript },
      { key: 'IDLE-1', title: 'idle', body: idleScript },
    ],
  );
  const opened = await openSession(createRuntime(loadConfig(configPath), createSilentLogger()), 'once');
  try {
    const report = await runCycle(opened.session);
    const byKey = new Map(report.outcomes.map((o) => [o.issueKey, o]));
    const idle = byKey.get('IDLE-1')!;
    const busy = byKey.get('BUSY-1')!;
    assert.equal(idle.reason, 'stalled', idle.detail);
    assert.ok(idle.endedAtMs - idle.startedAtMs < 4_000, `stalled within the limit plus a check interval, took ${idle.endedAtMs - idle.startedAtMs} ms`);
    assert.equal(busy.reason, 'timed-out', `the CPU-busy agent ran until runs.maxRuntimeMs instead of being called stalled: ${busy.reason} ${busy.detail}`);
    assert.ok(busy.endedAtMs - busy.startedAtMs >= 5_000);
  } finally {
    await opened.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
