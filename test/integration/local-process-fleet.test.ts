import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LocalProcessFleet } from '../../src/adapters/fleet/local-process-fleet.js';
import { createCallbackLogger } from '../../src/adapters/logging/callback-logger.js';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { VerifiedProcessTerminator } from '../../src/adapters/process-table/verified-process-terminator.js';
import { isFactoryError } from '../../src/errors.js';
import type { AgentSpec } from '../../src/ports/fleet.js';
import type { ProcessTable } from '../../src/ports/process-table.js';
import { AGENT_MARKER_ENV } from '../../src/domain/registry.js';
import { fixtureAgentCommand, isDead, killProcessesWithMarkerPrefix, readReportedPids, waitFor, waitForPids } from './agent-process-support.js';

const table = new LinuxProcessTable();
const clock = new SystemClock();
const scratch = mkdtempSync(join(tmpdir(), 'factory-fleet-'));
const instanceId = `fleet-test-${process.pid}`;
const bystanders: ChildProcess[] = [];
let agentCounter = 0;

/** Records every signal, so a test can prove that nothing was signalled. */
class RecordingProcessTable implements ProcessTable {
  readonly signals: { target: number; signal: NodeJS.Signals }[] = [];
  snapshots = 0;
  /** How long each snapshot takes, as reading /proc does on a loaded host with many processes. */
  snapshotCostMs = 0;
  bootId = () => table.bootId();
  snapshot = () => {
    this.snapshots++;
    const taken = table.snapshot();
    const until = Date.now() + this.snapshotCostMs;
    while (Date.now() < until); // /proc reads are synchronous: the event loop waits with them
    return taken;
  };
  inspect = (pid: number) => table.inspect(pid);
  readEnvironmentVariable = (pid: number, name: string) => table.readEnvironmentVariable(pid, name);
  holdsOpen = (pid: number, path: string) => table.holdsOpen(pid, path);
  self = () => table.self();
  signal(target: number, signal: NodeJS.Signals): boolean {
    this.signals.push({ target, signal });
    return table.signal(target, signal);
  }
}

function newFleet(processTable: ProcessTable = table): LocalProcessFleet {
  return new LocalProcessFleet({ instanceId, processTable, clock, terminator: new VerifiedProcessTerminator({ processTable, clock }) });
}

function agentSpec(command: string[], overrides: Partial<AgentSpec> = {}): AgentSpec {
  const agentName = `FAC-${++agentCounter}-implementer`;
  return {
    issueKey: `FAC-${agentCounter}`,
    runId: `run-${agentCounter}`,
    role: 'implementer',
    agentName,
    command,
    cwd: scratch,
    env: {},
    logPath: join(scratch, 'logs', `${agentName}.log`),
    worktree: scratch,
    ...overrides,
  };
}

after(() => {
  // Not through stop(): if the fleet is what broke, its own cleanup cannot be trusted.
  killProcessesWithMarkerPrefix(table, `factory:${instanceId}:`);
  for (const bystander of bystanders) bystander.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

// A broken stop() hangs rather than fails; the timeout turns that into a failure.
describe('LocalProcessFleet', { timeout: 20_000 }, () => {
  it('runs the agent in its own session and group, and every descendant inherits its marker', async () => {
    const spec = agentSpec(fixtureAgentCommand('spawn-tree.mjs', '--stay'), {
      // A spec cannot forge the marker: the fleet's value wins.
      env: { EXTRA_FROM_SPEC: 'yes', [AGENT_MARKER_ENV]: 'factory:forged' },
    });
    const handle = await newFleet().spawn(spec);
    const { identity } = handle;

    assert.equal(identity.node, 'local');
    assert.equal(identity.pgid, identity.pid);
    assert.equal(identity.startTime, table.inspect(identity.pid)?.startTime);
    assert.equal(identity.bootId, table.bootId());
    assert.equal(identity.logPath, spec.logPath);
    assert.match(identity.marker, /^factory:fleet-test-\d+:run-\d+:FAC-\d+-implementer$/);
    assert.notEqual(table.inspect(process.pid)?.pgid, identity.pgid, 'the agent must not share the daemon’s process group');

    const pids = await waitForPids(spec.logPath, ['leader', 'child', 'grandchild']);
    for (const [role, pid] of pids) {
      const info = table.inspect(pid);
      assert.equal(info?.pgid, identity.pgid, `${role} is in the agent's group`);
      assert.equal(info?.sid, identity.pid, `${role} is in the agent's session`);
      assert.equal(table.readEnvironmentVariable(pid, AGENT_MARKER_ENV), identity.marker, `${role} carries the marker`);
    }
    const grandchild = pids.get('grandchild') ?? 0;
    assert.equal(table.readEnvironmentVariable(grandchild, 'FACTORY_ISSUE_KEY'), spec.issueKey);
    assert.equal(table.readEnvironmentVariable(grandchild, 'FACTORY_RUN_ID'), spec.runId);
    assert.equal(table.readEnvironmentVariable(grandchild, 'FACTORY_AGENT_ROLE'), 'implementer');
    assert.equal(table.readEnvironmentVariable(grandchild, 'EXTRA_FROM_SPEC'), 'yes');

    const exit = await handle.stop(2000);
    assert.equal(exit.signal, 'SIGTERM');
    for (const [role, pid] of pids) assert.ok(isDead(table, pid), `${role} (pid ${pid}) was stopped`);
  });

  it('after the leader exits 0, stop() still ends the descendants it left in its group', async () => {
    const spec = agentSpec(fixtureAgentCommand('spawn-tree.mjs'));
    const handle = await newFleet().spawn(spec);

    const exit = await handle.exited;
    assert.deepEqual({ exitCode: exit.exitCode, signal: exit.signal }, { exitCode: 0, signal: null });
    const pids = readReportedPids(spec.logPath);
    const descendants = [pids.get('child'), pids.get('grandchild')].filter((pid): pid is number => pid !== undefined);
    assert.equal(descendants.length, 2);
    for (const pid of descendants) assert.ok(!isDead(table, pid), `descendant ${pid} outlived its leader`);

    assert.equal(await handle.stop(2000), exit, 'stop() after exit reports the same exit');
    for (const pid of descendants) assert.ok(isDead(table, pid), `descendant ${pid} was stopped`);
  });

  it('escalates to SIGKILL after the grace period for a tree that ignores SIGTERM', async () => {
    const spec = agentSpec(fixtureAgentCommand('ignore-sigterm.mjs'));
    const handle = await newFleet().spawn(spec);
    const pids = await waitForPids(spec.logPath, ['leader', 'child']);

    const startedMs = Date.now();
    const exit = await handle.stop(300);
    const elapsedMs = Date.now() - startedMs;

    assert.equal(exit.signal, 'SIGKILL');
    assert.ok(elapsedMs >= 290, `waited out the grace period (${elapsedMs} ms)`);
    assert.ok(elapsedMs < 3000, `did not wait much longer than the grace period (${elapsedMs} ms)`);
    for (const [role, pid] of pids) assert.ok(isDead(table, pid), `${role} (pid ${pid}) was killed`);
    await waitFor('both SIGTERMs to be logged', () => readFileSync(spec.logPath, 'utf8').match(/ignoring SIGTERM/g)?.length === 2);
  });

  it('still SIGKILLs the group when the process table cannot be read, and reports the failed step', async () => {
    const blind = new RecordingProcessTable();
    blind.snapshot = () => {
      throw new Error('EMFILE: too many open files, scandir /proc');
    };
    const warnings: string[] = [];
    const logger = createCallbackLogger((level, fields, message) => {
      if (level === 'warn') warnings.push(`${String(fields.step)}: ${message}`);
    });
    const spec = agentSpec(fixtureAgentCommand('ignore-sigterm.mjs'));
    const handle = await new LocalProcessFleet({ instanceId, processTable: blind, clock, terminator: new VerifiedProcessTerminator({ processTable: blind, clock }), logger }).spawn(spec);
    const pids = await waitForPids(spec.logPath, ['leader', 'child']);

    const exit = await handle.stop(200);

    assert.equal(exit.signal, 'SIGKILL');
    assert.deepEqual(blind.signals, [
      { target: -handle.identity.pgid, signal: 'SIGTERM' },
      { target: -handle.identity.pgid, signal: 'SIGKILL' },
    ]);
    await waitFor('the child to die with its group', () => isDead(table, pids.get('child') ?? 0));
    assert.ok(
      warnings.some((warning) => warning.startsWith('find the tree by its marker:')),
      warnings.join('\n'),
    );
  });

  it('returns as soon as the tree exits on SIGTERM, and stop() is idempotent', async () => {
    const recording = new RecordingProcessTable();
    const spec = agentSpec(fixtureAgentCommand('hang.mjs'));
    const handle = await newFleet(recording).spawn(spec);
    await waitForPids(spec.logPath, ['leader']);

    const startedMs = Date.now();
    const [first, second] = await Promise.all([handle.stop(10_000), handle.stop(10_000)]);
    assert.ok(Date.now() - startedMs < 3000, 'did not wait out a 10 s grace for a tree that had exited');
    assert.equal(first, second);
    assert.equal(first.signal, 'SIGTERM');
    assert.equal(first.exitCode, null);

    const signalsAfterFirstStop = recording.signals.length;
    assert.equal(await handle.stop(10_000), first);
    assert.equal(recording.signals.length, signalsAfterFirstStop, 'a repeated stop() signals nothing');
    assert.deepEqual(recording.signals[0], { target: -handle.identity.pgid, signal: 'SIGTERM' });
  });

  it('reports a failing exit code and captures stdout and stderr, appending across attempts', async () => {
    const fleet = newFleet();
    const spec = agentSpec(fixtureAgentCommand('fail-exit-3.mjs'));
    const first = await fleet.spawn(spec);
    const exit = await first.exited;
    assert.deepEqual({ exitCode: exit.exitCode, signal: exit.signal }, { exitCode: 3, signal: null });

    const agentOutput = 'fail-exit-3: starting\nfail-exit-3: something went wrong, exiting with 3\n';
    assert.equal((await first.activity()).outputBytes, Buffer.byteLength(agentOutput), 'outputBytes counts the agent’s own output, not the header');

    const retry = await fleet.spawn({ ...spec, runId: `${spec.runId}-retry` });
    await retry.exited;
    const log = readFileSync(spec.logPath, 'utf8');
    assert.equal(log.split(agentOutput).length - 1, 2, 'both attempts are in the log');
    assert.equal(log.match(/^--- factory: implementer /gm)?.length, 2, 'each attempt starts with a header');
  });

  it('signals nothing when stopped after the leader exited and no process carries its marker', async () => {
    // Once the leader is reaped its pid and group id may be reused by anyone: without a
    // marked process in the group, the group is not ours to signal.
    const recording = new RecordingProcessTable();
    const handle = await newFleet(recording).spawn(agentSpec(fixtureAgentCommand('fail-exit-3.mjs')));
    const exit = await handle.exited;

    assert.equal(await handle.stop(100), exit);
    assert.deepEqual(recording.signals, []);
  });

  it('rejects a command that does not exist, a missing cwd and a non-executable file with clear errors', async () => {
    const fleet = newFleet();
    await assert.rejects(fleet.spawn(agentSpec(['factory-test-no-such-command', '--flag'])), (error: unknown) => {
      assert.ok(isFactoryError(error, 'FACTORY_AGENT_SPAWN_FAILED'));
      assert.match(error.message, /command "factory-test-no-such-command" was not found/);
      return true;
    });

    const missingCwd = join(scratch, 'no-such-worktree');
    await assert.rejects(fleet.spawn(agentSpec(fixtureAgentCommand('hang.mjs'), { cwd: missingCwd })), (error: unknown) => {
      assert.ok(isFactoryError(error, 'FACTORY_AGENT_SPAWN_FAILED'));
      assert.ok(error.message.includes(missingCwd), error.message);
      return true;
    });

    const notExecutable = join(scratch, 'not-executable.sh');
    writeFileSync(notExecutable, '#!/bin/sh\nexit 0\n');
    chmodSync(notExecutable, 0o644);
    await assert.rejects(fleet.spawn(agentSpec([notExecutable])), (error: unknown) => {
      assert.ok(isFactoryError(error, 'FACTORY_AGENT_SPAWN_FAILED'));
      assert.match(error.message, /is not executable/);
      return true;
    });
  });

  it('kills escaped descendants that carry its marker, and spares other agents and bystanders', async () => {
    const fleet = newFleet();
    const escaperSpec = agentSpec(fixtureAgentCommand('escape-setsid.mjs'));
    const escaper = await fleet.spawn(escaperSpec);
    const otherAgentSpec = agentSpec(fixtureAgentCommand('hang.mjs'));
    const otherAgent = await fleet.spawn(otherAgentSpec);
    const bystander = spawn(process.execPath, fixtureAgentCommand('hang.mjs').slice(1), { detached: true, stdio: 'ignore' });
    bystanders.push(bystander);

    const pids = await waitForPids(escaperSpec.logPath, ['leader', 'escaped']);
    const escaped = pids.get('escaped') ?? 0;
    const escapedInfo = table.inspect(escaped);
    assert.notEqual(escapedInfo?.pgid, escaper.identity.pgid, 'the escapee left the agent’s group');
    assert.notEqual(escapedInfo?.sid, escaper.identity.pid, 'the escapee left the agent’s session');
    assert.equal(table.readEnvironmentVariable(escaped, AGENT_MARKER_ENV), escaper.identity.marker);
    const otherAgentPid = (await waitForPids(otherAgentSpec.logPath, ['leader'])).get('leader') ?? 0;

    await escaper.stop(300);

    assert.ok(isDead(table, escaped), 'the escapee was killed');
    assert.ok(!isDead(table, otherAgentPid), 'another agent of the same fleet survived');
    assert.ok(bystander.pid !== undefined && !isDead(table, bystander.pid), 'an unmarked bystander survived');
    await otherAgent.stop(1000);
  });

  it('stall checks of several agents in one round share one process-table snapshot', async () => {
    const recording = new RecordingProcessTable();
    const fleet = newFleet(recording);
    const agents = await Promise.all([1, 2, 3].map(() => fleet.spawn(agentSpec(fixtureAgentCommand('idle-silent.mjs')))));
    try {
      const before = recording.snapshots;
      await Promise.all(agents.map((agent) => agent.activity()));
      assert.equal(recording.snapshots - before, 1, 'one snapshot for the whole round');
      // However long the snapshot took: slower than the reuse window, a round still reads /proc once.
      recording.snapshotCostMs = 250;
      await new Promise((resolve) => setTimeout(resolve, 150));
      const slowBefore = recording.snapshots;
      await Promise.all(agents.map((agent) => agent.activity()));
      assert.equal(recording.snapshots - slowBefore, 1, 'one slow snapshot for the whole round');
    } finally {
      await Promise.all(agents.map((agent) => agent.stop(200)));
    }
  });

  it('reports activity: output bytes and the CPU time of the whole tree tell busy-silent from idle', async () => {
    const fleet = newFleet();
    // The busy work happens in a child of an idle shell, so only counting the tree sees it.
    const busySpec = agentSpec(['/bin/sh', '-c', `"${process.execPath}" "${fixtureAgentCommand('output-then-cpu.mjs')[1]}" & wait`]);
    const busy = await fleet.spawn(busySpec);
    const idle = await fleet.spawn(agentSpec(fixtureAgentCommand('idle-silent.mjs')));
    await waitFor('the busy agent’s output', async () => (await busy.activity()).outputBytes > 0 && readFileSync(busySpec.logPath, 'utf8').includes('quietly'));
    // Let node start-up CPU settle before sampling the idle agent.
    await new Promise((resolve) => setTimeout(resolve, 200));

    const busyBefore = await busy.activity();
    const idleBefore = await idle.activity();
    // Wait for the busy tree to burn 20 ticks (0.2 s of CPU) however loaded the machine is, not for a fixed
    // time: the idle agent is then measured over that same window, however long it took.
    const busyAfter = await waitFor(
      'the busy tree to burn 20 CPU ticks',
      async () => {
        const now = await busy.activity();
        return (now.treeCpuTicks ?? 0) - (busyBefore.treeCpuTicks ?? 0) >= 20 && now;
      },
      60_000,
      100,
    );
    const idleAfter = await idle.activity();

    assert.equal(busyAfter.outputBytes, busyBefore.outputBytes, 'the busy agent is silent');
    assert.ok((busyAfter.treeCpuTicks ?? 0) - (busyBefore.treeCpuTicks ?? 0) >= 20, `busy tree burned CPU: ${busyBefore.treeCpuTicks} -> ${busyAfter.treeCpuTicks}`);
    assert.equal(idleAfter.outputBytes, 0);
    assert.ok((idleAfter.treeCpuTicks ?? 0) - (idleBefore.treeCpuTicks ?? 0) <= 3, `idle tree burned no CPU: ${idleBefore.treeCpuTicks} -> ${idleAfter.treeCpuTicks}`);

    await Promise.all([busy.stop(1000), idle.stop(1000)]);
  });
});
