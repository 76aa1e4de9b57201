import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { defaultCgroupIo } from '../../src/adapters/resources/cgroup-files.js';
import { CgroupV1TeamGroups } from '../../src/adapters/resources/cgroup-v1.js';
import { detectResourceSupport } from '../../src/adapters/resources/detect-resources.js';
import type { CgroupV1Hierarchy, TeamResourceGroup } from '../../src/ports/team-resources.js';
import { REPO_ROOT, waitFor } from '../support/sandbox.js';

/**
 * Real cgroup v1 groups on this machine (a v1/v2 hybrid whose memory
 * controller is bound to v1). Skipped, with the reason, where v1 memory is
 * not writable (not root, or a pure v2 machine).
 */

const MB = 2 ** 20;
const report = detectResourceSupport();
const skip = report.mechanism === 'cgroup-v1' ? false : `needs a writable cgroup v1 memory hierarchy; this machine offers: ${report.summary}`;
const writable: CgroupV1Hierarchy[] = report.v1.filter((hierarchy) => hierarchy.writable);
const namePrefix = `factory-test${process.pid}-`;
const table = new LinuxProcessTable();
const HOG = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'memory-hog.mjs');
const CRASHING_DAEMON = join(REPO_ROOT, 'test', 'fixtures', 'resources', 'crashing-daemon.ts');

function newGroups(prefix = namePrefix): CgroupV1TeamGroups {
  return new CgroupV1TeamGroups({ hierarchies: writable, namePrefix: prefix, io: defaultCgroupIo(table) });
}

/** The group a process is in, per v1 controller, from /proc/<pid>/cgroup. */
function cgroupOf(pid: number, controller: string): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((entry) => entry.split(':')[1]?.split(',').includes(controller));
    return line?.split(':').slice(2).join(':');
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  const info = table.inspect(pid);
  return info !== undefined && info.state !== 'Z';
}

function startIn(group: TeamResourceGroup, command: string[], options: { stdout?: 'pipe' } = {}): ChildProcess {
  const [program, ...args] = group.joinCommand(command);
  // detached: the agent leads its own session, as the fleet starts it.
  return spawn(program!, args, { detached: true, stdio: ['ignore', options.stdout ?? 'ignore', 'inherit'] });
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  // A child that already exited has emitted 'exit' once and never will again.
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

// A hung step fails the file instead of holding up the whole suite.
describe('cgroup v1 team groups (real, this machine)', { skip, timeout: 120_000 }, () => {
  const scratch = mkdtempSync(join(tmpdir(), 'factory-cgroup-v1-'));
  const outsiders: ChildProcess[] = [];

  before(() => {
    assert.deepEqual(newGroups().listLeftovers(), [], 'no groups of this test before it starts');
  });

  after(async () => {
    // Whatever a failed assertion left behind: the same sweep a reaper does.
    const groups = newGroups();
    for (const leftover of groups.listLeftovers()) {
      const group = groups.adopt(leftover);
      await group.killAll();
      await group.remove();
    }
    for (const child of outsiders) child.kill('SIGKILL');
    rmSync(scratch, { recursive: true, force: true });
  });

  test('a memory hog with a 100 MB budget is OOM-killed inside its group; its setsid escapee is inside too and dies with kill-all; the sibling team and everything outside keep running', async () => {
    const groups = newGroups();
    const hogGroup = groups.create('hog', { memoryMaxBytes: 100 * MB, pidsMax: 64 });
    const siblingGroup = groups.create('sibling', { memoryMaxBytes: 100 * MB });

    const outsider = spawn('sleep', ['600'], { stdio: 'ignore' });
    outsiders.push(outsider);
    const sibling = startIn(siblingGroup, ['sleep', '600']);
    outsiders.push(sibling);

    const escapeeFile = join(scratch, 'escapee.pid');
    const hog = startIn(hogGroup, [process.execPath, HOG, '--step-mb', '8', '--interval-ms', '20', '--escapee', escapeeFile], { stdout: 'pipe' });
    let output = '';
    hog.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const hogExit = exitOf(hog);

    const escapee = await waitFor('the escapee to write its pid', () => {
      const text = existsSync(escapeeFile) ? readFileSync(escapeeFile, 'utf8').trim() : '';
      return text === '' ? undefined : Number(text);
    });
    // Escaped: another session than the agent's, not its child; yet inside the team's group in every hierarchy.
    assert.notEqual(table.inspect(escapee)?.sid, hog.pid, 'the escapee runs in its own session');
    for (const hierarchy of writable) {
      assert.ok(cgroupOf(escapee, hierarchy.controller)?.endsWith(`/${hogGroup.name}`), `escapee is in the team's ${hierarchy.controller} group (${cgroupOf(escapee, hierarchy.controller)})`);
    }
    assert.ok(hogGroup.pids().includes(escapee) && hogGroup.pids().includes(hog.pid!));

    const exit = await hogExit;
    assert.equal(exit.signal, 'SIGKILL', `the hog was killed by the kernel, not exited (${JSON.stringify(exit)})`);
    const reached = Math.max(
      ...output
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { allocatedMb: number }).allocatedMb),
    );
    assert.ok(reached < 100, `the hog never held 100 MB of its own (reached ${reached} MB)`);

    const memory = hogGroup.memory();
    assert.ok(memory.oomKills > 0, `the OOM kill is counted (${JSON.stringify(memory)})`);
    assert.equal(memory.limitBytes, 100 * MB);
    assert.ok(memory.peakBytes > 60 * MB && memory.peakBytes <= 100 * MB, `peak memory reported: ${(memory.peakBytes / MB).toFixed(1)} MB`);

    // The OOM killer took the biggest process only; the escapee lives on until the team is stopped.
    assert.ok(isRunning(escapee), 'the small escapee survived the OOM kill of the hog');
    const killed = await hogGroup.killAll();
    assert.equal(killed.method, 'freeze-then-kill');
    assert.deepEqual(killed.survivors, []);
    assert.equal(killed.killed, 1, 'only the escapee was left to kill, counted once');
    assert.equal(isRunning(escapee), false, 'kill-all took the escapee');
    assert.deepEqual(hogGroup.pids(), []);

    await hogGroup.remove();
    for (const hierarchy of writable) assert.equal(existsSync(join(hierarchy.parentPath, hogGroup.name)), false, `${hierarchy.controller} group removed`);

    // Nothing else was touched.
    assert.ok(isRunning(sibling.pid!), 'the sibling team keeps running');
    assert.equal(siblingGroup.memory().oomKills, 0);
    assert.ok(isRunning(outsider.pid!), 'a process outside every group keeps running');
    assert.equal(cgroupOf(outsider.pid!, 'memory'), cgroupOf(process.pid, 'memory'), 'the outsider stayed where it was started');

    await siblingGroup.killAll();
    await siblingGroup.remove();
    assert.equal(isRunning(sibling.pid!), false);
    assert.ok(isRunning(outsider.pid!), 'still untouched after the sibling team stopped');
  });

  test('pidsMax caps how many processes a team can have', async () => {
    const group = newGroups().create('pids', { pidsMax: 5 });
    // Wants 1 + 12 processes; the shell gives up ("Cannot fork") when the group is full.
    const forker = startIn(group, ['sh', '-c', 'n=0; while [ $n -lt 12 ]; do sleep 30 & n=$((n+1)); done; wait']);
    const exit = await exitOf(forker);
    assert.notEqual(exit.code, 0, 'the shell could not start all twelve');
    const left = group.pids();
    assert.ok(left.length >= 1 && left.length < 5, `the sleepers it did start stay under the cap (${left.length})`);
    await group.killAll();
    await group.remove();
  });

  test('a wrapper that cannot join its group never runs the agent (fails closed with exit 125)', async () => {
    const group = newGroups().create('gone', {});
    await group.remove();
    const marker = join(scratch, 'ran-outside');
    const child = startIn(group, ['touch', marker]);
    const exit = await exitOf(child);
    assert.equal(exit.code, 125);
    assert.equal(existsSync(marker), false, 'the agent never ran outside its group');
  });

  test("a crashed daemon's groups are listed by prefix, killed and removed like a reaper would", async () => {
    const crashedPrefix = `${namePrefix}crashed-`;
    const daemon = spawn(process.execPath, ['--import', 'tsx', CRASHING_DAEMON, crashedPrefix, 'FAC-1-e1-a1-aaaaaa', 'FAC-2-e1-a1-bbbbbb'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let line = '';
    daemon.stdout!.on('data', (chunk: Buffer) => (line += chunk.toString()));
    const { started } = await waitFor('the daemon to start its teams', () => (line.includes('\n') ? (JSON.parse(line) as { started: { name: string; pid: number }[] }) : undefined), 20_000);
    daemon.kill('SIGKILL');
    await exitOf(daemon);

    const reaper = newGroups(crashedPrefix);
    const leftovers = reaper.listLeftovers();
    assert.deepEqual(
      leftovers.map((leftover) => leftover.teamId),
      ['FAC-1-e1-a1-aaaaaa', 'FAC-2-e1-a1-bbbbbb'],
    );
    for (const { name, pid } of started) {
      assert.ok(isRunning(pid), `${name}'s agent outlived its daemon`);
      assert.deepEqual(leftovers.find((leftover) => leftover.name === name)?.pids, [pid]);
    }
    // Another instance's prefix sees none of them.
    assert.deepEqual(newGroups(`${namePrefix}other-`).listLeftovers(), []);

    for (const leftover of leftovers) {
      const group = reaper.adopt(leftover);
      assert.deepEqual((await group.killAll()).survivors, []);
      await group.remove();
    }
    for (const { pid } of started) assert.equal(isRunning(pid), false);
    assert.deepEqual(reaper.listLeftovers(), []);
  });
});
