import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { reapOrphans } from '../../src/main.js';
import { AGENT_MARKER_ENV, LOCAL_NODE, type RegistryEntry } from '../../src/domain/registry.js';
import { waitFor } from './agent-process-support.js';
import type { PidReuseTrial } from '../fixtures/reaper/pid-reuse-trials.js';
import { AGENT_TREE_SCRIPT, liveMarkedProcesses, onlyMarkedBy, ReaperWorld, RecordingProcessTable, REAPER_FIXTURES, STALE_AGE_MS } from '../fixtures/reaper/harness.js';

/**
 * Fault injection that needs a private pid namespace: deterministic pid reuse
 * (ns_last_pid) and a pid 1 that never reaps its zombies (as on CI machines
 * and in containers). Both need root and a kernel that allows unshare; where
 * either is missing the tests are skipped with the reason.
 */

function namespaceUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for unshare --pid and /proc/sys/kernel/ns_last_pid';
  const probe = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'sh', '-c', 'echo $(( $(cat /proc/sys/kernel/ns_last_pid) )) > /proc/sys/kernel/ns_last_pid'], { encoding: 'utf8' });
  if (probe.error) return `unshare is not available: ${probe.error.message}`;
  if (probe.status !== 0) return `unshare --pid --fork --mount-proc failed here: ${probe.stderr.trim() || `exit ${probe.status}`}`;
  return undefined;
}

const skipReason = namespaceUnavailable();
const worlds: ReaperWorld[] = [];
after(async () => {
  await Promise.all(worlds.map((world) => world.cleanup()));
});

describe('reaper in a private pid namespace', () => {
  test("PID reuse: a decoy started on a dead agent's pid (and process group) is never signalled, across many trials", { skip: skipReason }, () => {
    const trials = 40;
    const run = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, '--import', 'tsx', join(REAPER_FIXTURES, 'pid-reuse-trials.ts'), String(trials)], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(run.status, 0, `trial runner failed: ${run.stderr}`);
    const results = JSON.parse(run.stdout.trim()) as PidReuseTrial[];
    assert.equal(results.length, trials);
    for (const result of results) {
      assert.equal(result.reused, true, `trial ${result.trial}: the decoy got pid ${result.pid}`);
      assert.equal(result.decoySignalled, false, `trial ${result.trial}: decoy on pid ${result.pid} was signalled`);
      assert.equal(result.decoyAlive, true, `trial ${result.trial}: decoy alive`);
      assert.equal(result.decoyReportedAsUnmarkedGroupMember, true, `trial ${result.trial}: decoy reported, not taken`);
      assert.equal(result.outcome, 'already-gone');
      assert.equal(result.exitCode, 0);
    }
    const sameTick = results.filter((result) => result.sameStartTime).length;
    // Diagnostic: in these trials pid, start time and boot id all matched; only the marker told them apart.
    process.stdout.write(`# pid reuse: ${trials} trials, ${sameTick} with an identical start time\n`);
  });

  test('zombies under a pid 1 that never reaps count as dead, and the reaper ends', { skip: skipReason }, async (t) => {
    const world = await ReaperWorld.create();
    worlds.push(world);
    const marker = world.marker('zombie-maker');
    // Namespace pid 1 starts a double-forking agent (both its processes become pid 1's children), then
    // becomes `sleep`, which never calls wait(): whatever dies in there stays a zombie.
    const script = `${AGENT_MARKER_ENV}=${marker} sh ${AGENT_TREE_SCRIPT} double-fork & exec sleep 1000`;
    const env = { ...process.env };
    delete env[AGENT_MARKER_ENV];
    const namespace = spawn('unshare', ['--pid', '--fork', '--kill-child', 'sh', '-c', script], { detached: true, stdio: 'ignore', env });
    t.after(() => {
      if (namespace.pid !== undefined) process.kill(-namespace.pid, 'SIGKILL');
    });
    const members = await waitFor('the agent inside the namespace', () => {
      const found = liveMarkedProcesses(world.table, marker);
      return found.length === 2 && found.every((info) => info.comm === 'sleep') && found;
    });
    const nsInit = members[0]?.ppid ?? 0;
    assert.ok(
      members.every((info) => info.ppid === nsInit),
      'both agent processes are children of the namespace init',
    );
    const [leader] = [...members].sort((a, b) => a.pid - b.pid);
    assert.ok(leader);
    const entry: RegistryEntry = {
      issueKey: 'ZOMBIE-1',
      runId: 'run-1',
      role: 'implementer',
      agentName: 'zombie-maker',
      node: LOCAL_NODE,
      pid: leader.pid,
      pgid: leader.pgid,
      startTime: leader.startTime,
      bootId: world.table.bootId(),
      marker,
      logPath: '',
      worktree: '',
      startedAtMs: Date.now(),
    };
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry([entry]);
    const table = new RecordingProcessTable(world.table, onlyMarkedBy(world));

    const startedAt = Date.now();
    const report = await reapOrphans(world.reaperOptions(table, { graceMs: 5_000 }));

    assert.equal(report.exitCode, 0, report.reason);
    assert.ok(Date.now() - startedAt < 4_000, 'zombies ended the grace period: it was not waited out');
    assert.equal(report.reaped[0]?.outcome, 'terminated');
    assert.deepEqual(report.survivors, []);
    for (const info of members) {
      assert.equal(world.table.inspect(info.pid)?.state, 'Z', `pid ${info.pid} is a zombie its non-reaping parent keeps`);
    }
    // Namespace init and unshare share the agent's process group but carry no marker: reported, never signalled.
    assert.ok(report.skipped.some((item) => item.pid === nsInit));
    assert.deepEqual(table.violations, []);
    assert.equal(world.table.inspect(nsInit)?.state, 'S', 'the namespace init is untouched');
  });
});
