import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InMemoryProcessTable, type InMemoryProcess } from '../../src/adapters/process-table/in-memory-process-table.js';
import { FakeClock } from '../../src/adapters/clock/fake-clock.js';
import { collectAgentTree, listMarkersWithPrefix, verifyAgentIdentity, verifyDaemonIdentity } from '../../src/domain/process-identity.js';
import { signalVerifiedProcess, VerifiedProcessTerminator } from '../../src/adapters/process-table/verified-process-terminator.js';
import { reapRegistryEntries } from '../../src/core/reaper/reap-entries.js';
import { AGENT_MARKER_ENV, LOCAL_NODE, type RegistryEntry } from '../../src/domain/registry.js';

/**
 * Identity rules on an in-memory process table: every case of pid reuse,
 * zombies, markers and protected processes, built exactly as wanted.
 */

const BOOT = 'boot-a';
const MARKER = 'factory:inst:run-1:implementer';
const GRANDPARENT = 900_001;

/** The reaper (this process), its parent and grandparent, and init: always part of the world. */
function reaperLineage(env: Record<string, string> = {}): InMemoryProcess[] {
  return [
    { pid: 1, ppid: 0, startTime: 1 },
    { pid: GRANDPARENT, ppid: 1, startTime: 5, env },
    { pid: process.ppid, ppid: GRANDPARENT, startTime: 6, env },
    { pid: process.pid, ppid: process.ppid, startTime: 7, env },
  ];
}

function marked(marker = MARKER): Record<string, string> {
  return { [AGENT_MARKER_ENV]: marker };
}

function entryFor(overrides: Partial<RegistryEntry> = {}): RegistryEntry {
  return {
    issueKey: 'FAC-1',
    runId: 'run-1',
    role: 'implementer',
    agentName: 'implementer',
    node: LOCAL_NODE,
    pid: 500,
    pgid: 500,
    startTime: 1000,
    bootId: BOOT,
    marker: MARKER,
    logPath: '',
    worktree: '',
    startedAtMs: 0,
    ...overrides,
  };
}

function tableWith(...processes: InMemoryProcess[]): InMemoryProcessTable {
  return new InMemoryProcessTable({ bootId: BOOT, processes: [...reaperLineage(), ...processes] });
}

describe('verifyAgentIdentity', () => {
  const cases: { name: string; world: InMemoryProcess[]; entry?: Partial<RegistryEntry>; verdict: string }[] = [
    { name: 'same pid, start time, boot and marker', world: [{ pid: 500, startTime: 1000, env: marked() }], verdict: 'alive' },
    { name: 'pid absent', world: [], verdict: 'dead' },
    { name: 'a zombie', world: [{ pid: 500, startTime: 1000, state: 'Z', env: marked() }], verdict: 'dead' },
    { name: 'pid reused by a later process', world: [{ pid: 500, startTime: 1001, env: marked() }], verdict: 'mismatch' },
    { name: 'recorded in another boot', world: [{ pid: 500, startTime: 1000, env: marked() }], entry: { bootId: 'boot-b' }, verdict: 'dead' },
    { name: 'same start time but no marker (reuse within one tick)', world: [{ pid: 500, startTime: 1000 }], verdict: 'mismatch' },
    { name: "same start time, another agent's marker", world: [{ pid: 500, startTime: 1000, env: marked('factory:inst:run-2:reviewer') }], verdict: 'mismatch' },
  ];
  for (const { name, world, entry, verdict } of cases) {
    test(`${name} → ${verdict}`, () => {
      const table = tableWith(...world);
      assert.equal(verifyAgentIdentity(entryFor(entry), table.snapshot(), table).verdict, verdict);
    });
  }
});

describe('verifyDaemonIdentity', () => {
  test('alive only for the same pid, start time and boot; a zombie or a reused pid is gone', () => {
    const table = tableWith({ pid: 700, startTime: 50 }, { pid: 701, startTime: 51, state: 'Z' });
    assert.equal(verifyDaemonIdentity({ pid: 700, startTime: 50, bootId: BOOT }, table).verdict, 'alive');
    assert.equal(verifyDaemonIdentity({ pid: 700, startTime: 49, bootId: BOOT }, table).verdict, 'mismatch');
    assert.equal(verifyDaemonIdentity({ pid: 700, startTime: 50, bootId: 'boot-b' }, table).verdict, 'dead');
    assert.equal(verifyDaemonIdentity({ pid: 701, startTime: 51, bootId: BOOT }, table).verdict, 'dead');
    assert.equal(verifyDaemonIdentity({ pid: 702, startTime: 52, bootId: BOOT }, table).verdict, 'dead');
  });
});

describe('collectAgentTree', () => {
  test('takes marked group members and marked escapees; reports unmarked group members; skips zombies and other markers', () => {
    const table = tableWith(
      { pid: 500, pgid: 500, startTime: 1000, env: marked() },
      { pid: 501, ppid: 500, pgid: 500, startTime: 1001, env: marked() },
      { pid: 502, ppid: 1, pgid: 502, sid: 502, startTime: 1002, env: marked() }, // setsid escapee, reparented
      { pid: 503, ppid: 500, pgid: 500, startTime: 1003 }, // in the group, no marker: not ours
      { pid: 504, ppid: 500, pgid: 500, startTime: 1004, env: marked('factory:inst:run-1:reviewer') },
      { pid: 505, ppid: 500, pgid: 500, startTime: 1005, state: 'Z', env: marked() },
    );
    const tree = collectAgentTree(entryFor(), table.snapshot(), table);
    assert.deepEqual(
      tree.members.map((m) => [m.pid, m.via]),
      [
        [500, 'group'],
        [501, 'group'],
        [502, 'escapee'],
      ],
    );
    assert.deepEqual(tree.unmarkedGroupMembers, [503, 504]);
    assert.deepEqual(tree.withheld, []);
  });

  test('withholds pid 1, the reaper and every ancestor even when they carry the marker', () => {
    const table = new InMemoryProcessTable({
      bootId: BOOT,
      processes: [...reaperLineage(marked()).map((p) => (p.pid === 1 ? { ...p, env: marked() } : p)), { pid: 500, startTime: 1000, env: marked() }],
    });
    const tree = collectAgentTree(entryFor(), table.snapshot(), table);
    assert.deepEqual(
      tree.members.map((m) => m.pid),
      [500],
    );
    assert.deepEqual(
      tree.withheld.map((w) => w.pid).sort((a, b) => a - b),
      [1, GRANDPARENT, process.ppid, process.pid].sort((a, b) => a - b),
    );
  });

  test('an entry of another boot has no tree here, whatever carries its marker', () => {
    const table = tableWith({ pid: 500, startTime: 1000, env: marked() });
    assert.deepEqual(collectAgentTree(entryFor({ bootId: 'boot-b' }), table.snapshot(), table).members, []);
  });

  test('reads each environment once per snapshot, however many entries are collected', () => {
    const table = tableWith(...Array.from({ length: 50 }, (_, i) => ({ pid: 600 + i, startTime: 2000 + i, env: marked(`factory:inst:run-1:a${i}`) })));
    let reads = 0;
    const read = table.readEnvironmentVariable.bind(table);
    table.readEnvironmentVariable = (pid, name) => {
      reads += 1;
      return read(pid, name);
    };
    const snapshot = table.snapshot();
    for (let i = 0; i < 50; i++) collectAgentTree(entryFor({ pid: 600 + i, marker: `factory:inst:run-1:a${i}` }), snapshot, table);
    assert.equal(reads, snapshot.processes.size);
  });
});

describe('listMarkersWithPrefix', () => {
  test("finds one instance's markers and refuses a prefix that would match every factory", () => {
    const table = tableWith({ pid: 500, startTime: 1, env: marked('factory:mine:r:a') }, { pid: 501, startTime: 1, env: marked('factory:other:r:a') });
    assert.deepEqual(listMarkersWithPrefix('factory:mine:', table.snapshot(), table), ['factory:mine:r:a']);
    assert.throws(() => listMarkersWithPrefix('factory:', table.snapshot(), table), RangeError);
    assert.throws(() => listMarkersWithPrefix('', table.snapshot(), table), RangeError);
  });
});

describe('signalVerifiedProcess', () => {
  test('re-proves identity at signal time and refuses protected pids', () => {
    const table = tableWith({ pid: 500, startTime: 1000, env: marked() });
    assert.equal(signalVerifiedProcess(table, { pid: 1, startTime: 1 }, 'SIGTERM').kind, 'refused');
    assert.equal(signalVerifiedProcess(table, { pid: process.pid, startTime: 7 }, 'SIGTERM').kind, 'refused');
    assert.equal(signalVerifiedProcess(table, { pid: process.ppid, startTime: 6 }, 'SIGTERM').kind, 'refused');
    assert.equal(signalVerifiedProcess(table, { pid: 500, startTime: 999, marker: MARKER }, 'SIGTERM').kind, 'gone');
    assert.equal(signalVerifiedProcess(table, { pid: 500, startTime: 1000, marker: 'factory:inst:run-9:x' }, 'SIGTERM').kind, 'gone');
    assert.deepEqual(table.signals, []);
    assert.equal(signalVerifiedProcess(table, { pid: 500, startTime: 1000, marker: MARKER }, 'SIGTERM').kind, 'sent');
    assert.deepEqual(table.signals, [{ target: 500, signal: 'SIGTERM', delivered: true }]);
  });
});

describe('the verified terminator', () => {
  test('SIGKILLs what ignores SIGTERM only once the grace period has passed on the clock', async () => {
    const table = tableWith({ pid: 500, startTime: 1000, ignoresTerm: true }, { pid: 501, startTime: 1001 });
    const clock = new FakeClock();
    const done = new VerifiedProcessTerminator({ processTable: table, clock }).terminate({
      processes: [
        { pid: 500, startTime: 1000 },
        { pid: 501, startTime: 1001 },
      ],
      graceMs: 5_000,
    });
    await clock.advance(4_900);
    assert.deepEqual(
      table.signals.map((s) => `${s.target}:${s.signal}`),
      ['500:SIGTERM', '501:SIGTERM'],
    );
    await clock.advance(200);
    const result = await done;
    assert.deepEqual(
      table.signals.map((s) => `${s.target}:${s.signal}`),
      ['500:SIGTERM', '501:SIGTERM', '500:SIGKILL'],
    );
    assert.equal(result.survivors.size, 0);
    assert.equal(result.graceWaitedMs, 5_000);
  });
});

describe('reapRegistryEntries', () => {
  test('one snapshot for the pass plus one to verify, for any number of trees', async () => {
    const entries: RegistryEntry[] = [];
    const processes: InMemoryProcess[] = [];
    for (let i = 0; i < 100; i++) {
      const marker = `factory:inst:run-1:a${i}`;
      const pid = 1000 + i * 3;
      entries.push(entryFor({ agentName: `a${i}`, pid, pgid: pid, startTime: pid, marker }));
      for (let k = 0; k < 3; k++) processes.push({ pid: pid + k, pgid: pid, startTime: pid, env: marked(marker) });
    }
    const table = tableWith(...processes);
    const result = await reapRegistryEntries(entries, { processTable: table, terminator: new VerifiedProcessTerminator({ processTable: table, clock: new FakeClock() }), graceMs: 0, dryRun: false });
    assert.equal(result.snapshots, 2);
    assert.equal(table.snapshotCount, 2);
    assert.equal(result.reaped.length, 100);
    assert.equal(table.signals.length, 300);
    assert.deepEqual(result.remaining, []);
  });
});
