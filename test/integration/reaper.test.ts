import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { access, readFile, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { reapOrphans } from '../../src/main.js';
import { FileLease } from '../../src/adapters/lease/file-lease.js';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { AGENT_MARKER_ENV, parseRegistry } from '../../src/domain/registry.js';
import { ERROR_CATALOG } from '../../src/errors.js';
import { createRecordingLogger } from '../support/session-harness.js';
import { waitFor } from './agent-process-support.js';
import { AGENT_TREE_SCRIPT, identityOf, isRunning, liveMarkedProcesses, onlyMarkedBy, ReaperWorld, RecordingProcessTable, STALE_AGE_MS } from '../fixtures/reaper/harness.js';

/**
 * The reaper against real process trees, real files and /proc. Each test has
 * its own world (temp folder, marker prefix) and kills what it started.
 */

const worlds: ReaperWorld[] = [];
async function newWorld(): Promise<ReaperWorld> {
  const world = await ReaperWorld.create();
  worlds.push(world);
  return world;
}
after(async () => {
  await Promise.all(worlds.map((world) => world.cleanup()));
});

async function readRegistryAgents(path: string): Promise<string[]> {
  const parsed = parseRegistry(await readFile(path, 'utf8'));
  assert.ok(parsed.ok, 'the registry the reaper wrote parses');
  return parsed.value.file.agents.map((entry) => entry.agentName);
}

describe('reap-orphans on real processes', () => {
  test('reaps every tree of a dead daemon, escapees included, and leaves bystanders and the registry clean', async () => {
    const world = await newWorld();
    const plain = await world.spawnAgent('plain');
    const doubleForked = await world.spawnAgent('double-fork');
    const setsid = await world.spawnAgent('setsid');
    const bystander = world.spawnBystander();
    const daemon = await world.deadIdentity();
    await world.writeHeartbeat(daemon, { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry([plain.entry, doubleForked.entry, setsid.entry]);
    const table = new RecordingProcessTable(world.table, onlyMarkedBy(world));

    const report = await reapOrphans(world.reaperOptions(table));

    assert.equal(report.exitCode, 0, report.reason);
    assert.equal(report.stale, true);
    assert.equal(report.daemon.state, 'dead');
    assert.deepEqual(table.violations, []);
    for (const agent of [plain, doubleForked, setsid]) {
      assert.deepEqual(liveMarkedProcesses(world.table, agent.entry.marker), [], `${agent.entry.agentName}: no marked process left`);
      const reaped = report.reaped.find((item) => item.agentName === agent.entry.agentName);
      assert.equal(reaped?.outcome, 'terminated');
      assert.deepEqual([...(reaped?.pids ?? [])].sort(), agent.processes.map((info) => info.pid).sort());
    }
    // The double-forked grandchild lost its parent but kept the group; the setsid child left the group.
    const grandchild = doubleForked.processes.find((info) => info.pid !== doubleForked.entry.pid);
    assert.ok(grandchild && grandchild.ppid !== doubleForked.entry.pid && grandchild.pgid === doubleForked.entry.pgid);
    const setsidChild = setsid.processes.find((info) => info.pid !== setsid.entry.pid);
    assert.ok(setsidChild && setsidChild.pgid !== setsid.entry.pgid);
    assert.deepEqual(report.reaped.find((item) => item.agentName === setsid.entry.agentName)?.escapees, [setsidChild.pid]);

    assert.ok(isRunning(world.table, bystander.identity), 'the unmarked bystander is alive');
    assert.deepEqual(await readRegistryAgents(world.registryPath), []);
    assert.equal(report.registry.written, true);
    assert.deepEqual([...report.leftBehind.worktrees].sort(), [plain, doubleForked, setsid].map((a) => a.entry.worktree).sort());
    assert.deepEqual([...report.leftBehind.logs].sort(), [plain, doubleForked, setsid].map((a) => a.entry.logPath).sort());
    assert.equal(report.snapshots, 2, 'one snapshot for the pass, one to verify nothing new appeared');
    assert.equal(table.snapshots, 2);
    await assert.rejects(access(world.lockPath), 'the lock is released');
    assert.doesNotThrow(() => JSON.stringify(report));
  });

  test('an agent that ignores SIGTERM is SIGKILLed once the grace period is over', async () => {
    const world = await newWorld();
    const stubborn = await world.spawnAgent('ignore-term');
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry([stubborn.entry]);
    const table = new RecordingProcessTable(world.table, onlyMarkedBy(world));
    const graceMs = 400;

    const startedAt = Date.now();
    const report = await reapOrphans(world.reaperOptions(table, { graceMs }));
    const elapsed = Date.now() - startedAt;

    assert.equal(report.exitCode, 0, report.reason);
    assert.equal(report.reaped[0]?.outcome, 'killed');
    for (const info of stubborn.processes) assert.deepEqual(table.signalled(info.pid), ['SIGTERM', 'SIGKILL']);
    assert.ok(elapsed >= graceMs, `waited the grace period (${elapsed} ms)`);
    assert.ok(report.graceWaitedMs >= graceMs - 5, `graceWaitedMs ${report.graceWaitedMs}`);
    assert.deepEqual(liveMarkedProcesses(world.table, stubborn.entry.marker), []);
  });

  test('a SIGSTOPped daemon (stale heartbeat, live process) is wedged: nothing is touched and the exit code is non-zero', async () => {
    const world = await newWorld();
    const agents = [await world.spawnAgent('plain'), await world.spawnAgent('setsid')];
    const daemon = world.spawnBystander();
    process.kill(daemon.identity.pid, 'SIGSTOP');
    await waitFor('the daemon to stop', () => world.table.inspect(daemon.identity.pid)?.state === 'T');
    await world.writeHeartbeat(daemon.identity, { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry(agents.map((agent) => agent.entry));
    const registryBefore = await readFile(world.registryPath, 'utf8');
    const table = new RecordingProcessTable(world.table, () => false);

    const report = await reapOrphans(world.reaperOptions(table));

    assert.equal(report.exitCode, ERROR_CATALOG.FACTORY_DAEMON_WEDGED.exitCode);
    assert.notEqual(report.exitCode, 0);
    assert.equal(report.stale, true);
    assert.equal(report.daemon.state, 'wedged');
    assert.equal(report.daemon.verdict, 'alive');
    assert.deepEqual(table.attempts, [], 'zero signals');
    assert.deepEqual(report.reaped, []);
    assert.equal(report.skipped.length, 2);
    for (const agent of agents) {
      for (const info of agent.processes) assert.ok(isRunning(world.table, info), `agent process ${info.pid} is alive`);
    }
    assert.equal(await readFile(world.registryPath, 'utf8'), registryBefore, 'the registry is untouched');
    assert.ok(isRunning(world.table, daemon.identity));
  });

  test('--terminate-wedged-daemon stops the wedged daemon by identity, then reaps its agents', async () => {
    const world = await newWorld();
    const agent = await world.spawnAgent('plain');
    const daemon = await world.spawnDaemonStandIn();
    process.kill(daemon.identity.pid, 'SIGSTOP');
    await world.writeHeartbeat(daemon.identity, { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry([agent.entry]);
    const table = new RecordingProcessTable(world.table, onlyMarkedBy(world, [daemon.identity.pid]));

    const report = await reapOrphans(world.reaperOptions(table, { terminateWedgedDaemon: true }));

    assert.equal(report.exitCode, 0, report.reason);
    assert.equal(report.daemon.state, 'terminated');
    assert.equal(table.signalled(daemon.identity.pid)[0], 'SIGTERM');
    assert.ok(!isRunning(world.table, daemon.identity));
    assert.deepEqual(liveMarkedProcesses(world.table, agent.entry.marker), []);
    assert.deepEqual(table.violations, []);
  });

  test('--terminate-wedged-daemon refuses a process that matches a forged heartbeat but does not hold the daemon lock', async () => {
    const world = await newWorld();
    const agent = await world.spawnAgent('plain');
    const stranger = world.spawnBystander(); // e.g. the user's editor, named by a hostile heartbeat with its exact identity
    await world.writeHeartbeat(stranger.identity, { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry([agent.entry]);
    const table = new RecordingProcessTable(world.table, () => false);

    const report = await reapOrphans(world.reaperOptions(table, { terminateWedgedDaemon: true }));

    assert.equal(report.exitCode, 3, report.reason);
    assert.equal(report.daemon.state, 'wedged');
    assert.match(report.reason, /does not hold the daemon lock/);
    assert.deepEqual(table.attempts, [], 'nothing signalled');
    assert.ok(isRunning(world.table, stranger.identity), 'the stranger is alive');
    for (const info of agent.processes) assert.ok(isRunning(world.table, info), 'its agents were not touched either');
  });

  test('a fresh heartbeat whose process is gone while nobody holds the daemon lock: the daemon is dead now, its agents are reaped without waiting for the stale window', async () => {
    const world = await newWorld();
    const agent = await world.spawnAgent('plain');
    const bystander = world.spawnBystander();
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now(), status: 'running' });
    await world.writeRegistry([agent.entry]);
    const table = new RecordingProcessTable(world.table, onlyMarkedBy(world));

    const report = await reapOrphans(world.reaperOptions(table));

    assert.equal(report.exitCode, 0, report.reason);
    assert.equal(report.stale, false, 'the heartbeat itself is fresh');
    assert.equal(report.daemon.state, 'dead');
    assert.match(report.daemon.reason, /dead before its heartbeat went stale: pid \d+ \(heartbeat\) is gone and nobody holds the daemon lock/);
    assert.deepEqual(table.violations, []);
    for (const info of agent.processes) assert.ok(!isRunning(world.table, info), `pid ${info.pid} was reaped`);
    assert.ok(isRunning(world.table, bystander.identity), 'the unrelated process is alive');
    assert.deepEqual(await readRegistryAgents(world.registryPath), []);
  });

  test('a fresh heartbeat whose process is gone while a live process holds the daemon lock (a successor starting up) is left to that holder: nothing is touched', async () => {
    const world = await newWorld();
    const agent = await world.spawnAgent('plain');
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now(), status: 'stopping' });
    await world.writeRegistry([agent.entry]);
    const successor = await new FileLease({ path: world.daemonLockPath, processTable: world.table, clock: new SystemClock() }).acquire();
    try {
      const table = new RecordingProcessTable(world.table, () => false);

      const report = await reapOrphans(world.reaperOptions(table));

      assert.equal(report.exitCode, 0);
      assert.equal(report.stale, false);
      assert.equal(report.daemon.state, 'heartbeat-fresh');
      assert.deepEqual(table.attempts, []);
      assert.equal(table.snapshots, 0);
      for (const info of agent.processes) assert.ok(isRunning(world.table, info));
    } finally {
      await successor.release();
    }
  });

  test('without the daemon lock to consult, a fresh heartbeat whose process is gone still waits for the stale window', async () => {
    const world = await newWorld();
    const agent = await world.spawnAgent('plain');
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() });
    await world.writeRegistry([agent.entry]);
    const table = new RecordingProcessTable(world.table, () => false);
    const { daemonLockPath: _unused, ...withoutDaemonLock } = world.reaperOptions(table);

    const report = await reapOrphans(withoutDaemonLock);

    assert.equal(report.daemon.state, 'heartbeat-fresh');
    assert.deepEqual(table.attempts, []);
    for (const info of agent.processes) assert.ok(isRunning(world.table, info));
  });

  test('--dry-run reports the trees it would reap and signals and writes nothing', async () => {
    const world = await newWorld();
    const agents = [await world.spawnAgent('plain'), await world.spawnAgent('double-fork')];
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry(agents.map((agent) => agent.entry));
    const registryBefore = await readFile(world.registryPath, 'utf8');
    const table = new RecordingProcessTable(world.table, () => false);

    const log = createRecordingLogger();
    const report = await reapOrphans(world.reaperOptions(table, { dryRun: true, log }));

    assert.equal(report.exitCode, 0, report.reason);
    assert.equal(report.dryRun, true);
    // What a person watching stderr reads says nothing is being done.
    const progress = log.records.map((record) => record.message ?? '').filter((message) => /agent tree/.test(message));
    assert.deepEqual(progress.length, 1, JSON.stringify(log.records));
    assert.match(progress[0]!, /^dry run: 2 agent tree\(s\) listed to check, .*nothing is signalled or removed$/);
    assert.deepEqual(table.attempts, []);
    assert.deepEqual(
      report.reaped.map((item) => item.outcome),
      ['would-reap', 'would-reap'],
    );
    assert.deepEqual(
      report.reaped.map((item) => item.pids.length),
      [3, 2],
    );
    assert.equal(await readFile(world.registryPath, 'utf8'), registryBefore);
    await assert.rejects(access(world.lockPath), 'a dry run takes no lock');
    for (const agent of agents) for (const info of agent.processes) assert.ok(isRunning(world.table, info));
  });

  test("another boot's entries are removed with no signal; another node's entries are skipped and kept", async () => {
    const world = await newWorld();
    const remote = await world.spawnAgent('plain');
    const bystander = world.spawnBystander();
    // A previous boot's entry naming a live process's pid, start time and a marker that process does not carry.
    const previousBoot = { ...remote.entry, agentName: 'old-boot', marker: world.marker('old-boot'), pid: bystander.identity.pid, startTime: bystander.identity.startTime, bootId: 'another-boot' };
    const onOtherNode = { ...remote.entry, node: 'worker-7' };
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry([previousBoot, onOtherNode]);
    const table = new RecordingProcessTable(world.table, () => false);

    const report = await reapOrphans(world.reaperOptions(table));

    assert.equal(report.exitCode, 0, report.reason);
    assert.deepEqual(table.attempts, []);
    assert.deepEqual(
      report.reaped.map((item) => [item.agentName, item.outcome]),
      [['old-boot', 'other-boot']],
    );
    assert.match(report.skipped.find((item) => item.agentName === onOtherNode.agentName)?.reason ?? '', /worker-7/);
    assert.deepEqual(await readRegistryAgents(world.registryPath), [onOtherNode.agentName]);
    for (const info of remote.processes) assert.ok(isRunning(world.table, info));
    assert.ok(isRunning(world.table, bystander.identity));
  });

  test('entries naming the reaper, its parent, pid 1 or a live unmarked process are never signalled', async () => {
    const world = await newWorld();
    const template = (await world.spawnAgent('plain')).entry;
    const bystander = world.spawnBystander();
    const hostile = [
      { pid: process.pid, name: 'self' },
      { pid: process.ppid, name: 'parent' },
      { pid: 1, name: 'init' },
      { pid: bystander.identity.pid, name: 'bystander' },
    ].map(({ pid, name }) => ({ ...template, agentName: name, pid, pgid: world.table.inspect(pid)?.pgid ?? pid, startTime: identityOf(world.table, pid).startTime, marker: world.marker(name) }));
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry(hostile);
    const table = new RecordingProcessTable(world.table, () => false);

    const report = await reapOrphans(world.reaperOptions(table));

    assert.equal(report.exitCode, 0, report.reason);
    assert.deepEqual(table.attempts, []);
    for (const item of report.reaped) {
      assert.equal(item.outcome, 'already-gone');
      assert.equal(item.leader.verdict, 'mismatch', `${item.agentName}: ${item.leader.reason}`);
    }
    assert.ok(isRunning(world.table, bystander.identity));
  });

  test('an unlisted tree carrying the instance marker prefix is reaped when the registry never recorded it', async (t) => {
    const world = await newWorld();
    const unlisted = await world.spawnAgent('setsid');
    const otherFactory = await world.spawnAgent('plain', { agentName: 'other' });
    // Same prefix shape, another instance: must be left alone.
    const foreignMarker = `factory:other${world.instance}:run-1:agent`;
    const foreign = spawn('sh', [AGENT_TREE_SCRIPT, 'plain'], { detached: true, stdio: 'ignore', env: { ...process.env, [AGENT_MARKER_ENV]: foreignMarker } });
    t.after(() => {
      if (foreign.pid) process.kill(-foreign.pid, 'SIGKILL');
    });
    await waitFor('the foreign tree', () => liveMarkedProcesses(world.table, foreignMarker).length === 3);
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry([otherFactory.entry]);
    const table = new RecordingProcessTable(world.table, onlyMarkedBy(world));

    const report = await reapOrphans(world.reaperOptions(table, { markerPrefix: world.markerPrefix }));

    assert.equal(report.exitCode, 0, report.reason);
    assert.deepEqual(
      report.unlisted.map((tree) => tree.marker),
      [unlisted.entry.marker],
    );
    assert.deepEqual(liveMarkedProcesses(world.table, unlisted.entry.marker), []);
    assert.deepEqual(liveMarkedProcesses(world.table, otherFactory.entry.marker), []);
    assert.equal(liveMarkedProcesses(world.table, foreignMarker).length, 3, "another instance's agents are untouched");
    assert.deepEqual(table.violations, []);
  });

  test('a missing registry with a dead daemon is nothing to do; an unreadable one is an error that signals nothing', async () => {
    const world = await newWorld();
    const table = new RecordingProcessTable(world.table, () => false);
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() - STALE_AGE_MS });

    const missing = await reapOrphans(world.reaperOptions(table));
    assert.equal(missing.exitCode, 0, missing.reason);
    assert.equal(missing.registry.file, 'missing');

    await writeFile(world.registryPath, '{"agents": [');
    const torn = await reapOrphans(world.reaperOptions(table));
    assert.equal(torn.exitCode, ERROR_CATALOG.FACTORY_REGISTRY_UNREADABLE.exitCode);
    assert.equal(torn.registry.file, 'unreadable');
    assert.equal(await readFile(world.registryPath, 'utf8'), '{"agents": [', 'a torn registry is left for a human');
    assert.deepEqual(table.attempts, []);
  });
});
