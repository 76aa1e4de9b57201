import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReapReport } from '../../src/main.js';
import { AGENT_MARKER_ENV } from '../../src/domain/registry.js';
import { markerPrefixFor } from '../../src/main.js';
import { killProcessesWithMarkerPrefix, waitFor } from './agent-process-support.js';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { isRunning, liveProcessesCarrying, ReaperWorld } from '../fixtures/reaper/harness.js';
import { createScratchProject } from '../support/sandbox.js';

/**
 * Issue 3's end-to-end proof through the real CLI: a live daemon runs teams
 * whose agents spawn children (and one escapes its group by setsid and double
 * fork); the daemon is killed with SIGKILL; `reap-orphans` run right away,
 * while the heartbeat is still fresh, proves the daemon dead (its pid is gone,
 * nobody holds the daemon lock), removes every marked process and empties the
 * registry, while an unrelated process lives on.
 */

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const AGENT_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'agents');
// The default window: the heartbeat is certainly still fresh when the reaper runs right after the crash.
const STALE_MS = 60_000;

const children: ChildProcess[] = [];
const cleanups: (() => void | Promise<void>)[] = [];
after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const cleanup of cleanups) await cleanup();
});

function cli(args: readonly string[]): { child: ChildProcess; finished: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  delete env[AGENT_MARKER_ENV];
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return { child, finished: new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr }))) };
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** A temp folder with a one-commit git repo, two ready issues and a config running both roles at once. */
function makeSandbox(): { configPath: string; stateDir: string } {
  const { dir, configPath, writeIssue } = createScratchProject('reaper-cli', {
    agents: {
      implementer: { command: [process.execPath, join(AGENT_FIXTURES, 'spawn-tree.mjs'), '--stay'] },
      reviewer: { command: [process.execPath, join(AGENT_FIXTURES, 'escape-setsid.mjs')] },
    },
    dispatch: { batchSize: 2, teamMode: 'parallel' },
    loop: { heartbeatIntervalMs: 200, heartbeatStaleMs: STALE_MS },
    reaper: { graceMs: 500 },
    http: { enabled: false },
  });
  for (const key of ['ORPHAN-1', 'ORPHAN-2']) writeIssue(key, { body: 'b' });
  cleanups.push(() => void killProcessesWithMarkerPrefix(new LinuxProcessTable(), markerPrefixFor({ configPath })));
  return { configPath, stateDir: join(dir, '.factory') };
}

describe('reap-orphans through the CLI', () => {
  test('after kill -9 of the daemon: every marked process is gone, a bystander lives, the registry is empty', async () => {
    const { configPath, stateDir } = makeSandbox();
    const registryPath = join(stateDir, 'registry.json');
    const prefix = markerPrefixFor({ configPath });
    const world = await ReaperWorld.create();
    cleanups.push(() => world.cleanup());
    const bystander = world.spawnBystander();

    const daemon = cli(['start', '--mode', 'live', '--config', configPath]);
    type Registry = { agents: { role: string; logPath: string; marker: string }[] };
    const agents = await waitFor(
      'four agents in the registry',
      () => {
        if (daemon.child.exitCode !== null) throw new Error(`the daemon exited early (${daemon.child.exitCode})`);
        const found = readJson<Registry>(registryPath)?.agents;
        return found?.length === 4 && found;
      },
      20_000,
    );
    const ready = (agent: Registry['agents'][number]) => existsSync(agent.logPath) && /"role":"grandchild"|escapee is up/.test(readFileSync(agent.logPath, 'utf8'));
    await waitFor('every agent tree to be up', () => agents.every(ready), 15_000);
    const marked = () => liveProcessesCarrying(world.table, (marker) => marker.startsWith(prefix));
    // Two 3-process trees and two leader+escapee pairs, once each escapee's intermediate has exited.
    await waitFor('ten marked processes', () => marked().length === 2 * 3 + 2 * 2);

    daemon.child.kill('SIGKILL');
    await daemon.finished;

    const reap = await cli(['reap-orphans', '--config', configPath]).finished;
    const report = JSON.parse(reap.stdout) as ReapReport;

    assert.equal(reap.code, 0, `${report.reason}\n${reap.stderr}`);
    assert.equal(report.stale, false, 'right after the crash the heartbeat is still fresh');
    assert.equal(report.daemon.state, 'dead', 'but its pid is gone and nobody holds the daemon lock: dead now, no wait for heartbeatStaleMs');
    assert.match(report.reason, /is gone and the daemon lock's holder \(pid \d+\) is gone too/);
    assert.equal(report.reaped.length, 4);
    assert.ok(
      report.reaped.some((agent) => agent.escapees.length > 0),
      'the setsid escapees were found by marker',
    );
    assert.deepEqual(marked(), [], 'every marked process is gone');
    assert.ok(isRunning(world.table, bystander.identity), 'the unrelated process is alive');
    assert.deepEqual(readJson<Registry>(registryPath)?.agents, []);
  });
});
