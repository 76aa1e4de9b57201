import assert from 'node:assert/strict';
import { test } from 'node:test';
import { settle } from '../../src/adapters/clock/fake-clock.js';
import { FileHeartbeatStore, FileRegistryStore } from '../../src/adapters/node-state/file-node-state.js';
import { InMemoryProcessTable } from '../../src/adapters/process-table/in-memory-process-table.js';
import { FixedAvailableMemorySource } from '../../src/adapters/resources/memory-sources.js';
import { formatStatus } from '../../src/cli/verbs/status-run.js';
import { parseHeartbeat } from '../../src/domain/heartbeat.js';
import { readStatusSnapshot, type StatusSnapshot } from '../../src/core/status-snapshot.js';
import type { TeamBudget } from '../../src/domain/resource-budget.js';
import { statusSourcesFor } from '../../src/main.js';
import type { GroupMemory, MemoryPressure, MemoryPressureSource, ResourceSupportReport, TeamResourceGroup, TeamResourceGroups, TeamResources } from '../../src/ports/team-resources.js';
import { createHarness, type Harness } from '../support/session-harness.js';

/**
 * Memory admission through a whole session (fake clock, in-memory fleet): a
 * claim with a free slot is held while the available-memory source says
 * memory is short, shows why, and starts when another team ends or when
 * memory frees up (the periodic re-pump), and every team runs in a group.
 */

const GB = 2 ** 30;

/** Groups on paper: what the session creates, joins and removes is recorded; usage is what the test sets. */
class RecordingGroups implements TeamResourceGroups {
  readonly mechanism = 'cgroup-v1' as const;
  readonly created: string[] = [];
  readonly removed: string[] = [];
  readonly usage = new Map<string, number>();

  create(teamId: string, budget: TeamBudget): TeamResourceGroup {
    this.created.push(teamId);
    const memory = (): GroupMemory => ({ currentBytes: this.usage.get(teamId) ?? 0, peakBytes: this.usage.get(teamId) ?? 0, oomKills: 0, limitBytes: budget.memoryMaxBytes ?? null });
    return {
      teamId,
      name: `factory-test-${teamId}`,
      budget,
      joinCommand: (command) => ['join', teamId, ...command],
      pids: () => [],
      memory,
      killAll: async () => ({ method: 'freeze-then-kill', killed: 0, survivors: [] }),
      remove: async () => void this.removed.push(teamId),
    };
  }
  listLeftovers() {
    return [];
  }
  adopt(): TeamResourceGroup {
    throw new Error('not used');
  }
}

function fakeResources(groups: TeamResourceGroups, memory: FixedAvailableMemorySource, pressure?: MemoryPressureSource): TeamResources {
  const report = {
    mechanism: 'cgroup-v1',
    summary: 'cgroup v1 (memory, pids, cpu, freezer writable); v2: no memory controller',
    v2: {},
    v1: [],
    enforces: { memory: true, pids: true, cpu: false },
    killAll: 'freeze-then-kill',
    pressure: pressure !== undefined,
  } as unknown as ResourceSupportReport;
  return { report, groups, availableMemory: memory, ...(pressure ? { pressure } : {}) };
}

/** A team's end goes through real SQLite and file writes: settle until `probe` holds (bounded), not a fixed number of turns. */
async function settleUntil(probe: () => boolean): Promise<void> {
  for (let turn = 0; turn < 200 && !probe(); turn++) await settle();
}

/** PSI as the test sets it. */
class SettablePressure implements MemoryPressureSource {
  someAvg10 = 0;
  read(): MemoryPressure {
    return { someAvg10: this.someAvg10, fullAvg10: 0 };
  }
}

/** The harness's daemon identity, alive in this process table, so status reads the session as healthy. */
const daemonProcesses = new InMemoryProcessTable({ bootId: 'boot', processes: [{ pid: 4242, startTime: 7 }] });

/** Lets one heartbeat refresh pass, writes what the session recorded to the real files, and reads status as the CLI does. */
async function statusNow(h: Harness): Promise<StatusSnapshot> {
  await h.clock.advance(h.config.loop.heartbeatIntervalMs);
  await settle();
  await new FileHeartbeatStore(h.config.loop.heartbeatPath).write(h.heartbeats.at(-1)!);
  await new FileRegistryStore(h.config.loop.registryPath).write(h.registries.at(-1)!);
  return readStatusSnapshot(statusSourcesFor(h.config, daemonProcesses), { nowMs: h.clock.now() });
}

test('a team waits for memory with its reason while a free slot exists, and starts when the running team ends', async () => {
  const h = createHarness({ dispatch: { batchSize: 2 }, runs: { superviseIntervalMs: 1_000 }, resources: { team: { memoryMax: '4G' } } });
  const groups = new RecordingGroups();
  // 8 GB machine, 6 GB available: reserve 10% = 0.8 GB, so one 4 GB team fits (4.8 GB) and a second does not (6 - 4 = 2 GB free).
  const memory = new FixedAvailableMemorySource(6 * GB, 8 * GB);
  const session = h.newSession('live', { resources: fakeResources(groups, memory) });
  h.source.put({ key: 'MEM-1', title: 'first', labels: ['factory'], createdAtMs: 1 });
  h.source.put({ key: 'MEM-2', title: 'second', labels: ['factory'], createdAtMs: 2 });
  await session.open();
  await session.startLive();
  await settle();

  assert.deepEqual(
    h.fleet.running().map((agent) => agent.spec.issueKey),
    ['MEM-1'],
    'one team runs although two slots are free',
  );
  const spec = h.fleet.running()[0]!.spec;
  assert.deepEqual(spec.resourceGroup?.joinCommand(['impl']), ['join', spec.runId, 'impl'], "the agent is started through its team's group");
  assert.equal(session.heldReasons().get('MEM-2'), 'waiting for memory: need 4.8 GB, 2.0 GB free');
  assert.equal(session.dispatcher.claim('MEM-2')?.status, 'queued');

  // The re-pump on the supervision tick keeps it held while nothing changed.
  await h.clock.advance(1_000);
  await settle();
  assert.equal(h.fleet.running().length, 1);

  // The first team's implementer and reviewer finish: its budget is free again and MEM-2 starts at once.
  h.fleet.find('MEM-1', 'implementer')!.exit(0);
  await settleUntil(() => h.fleet.find('MEM-1', 'reviewer') !== undefined);
  h.fleet.find('MEM-1', 'reviewer')!.exit(0);
  await settleUntil(() => h.fleet.find('MEM-2', 'implementer') !== undefined);
  assert.deepEqual(
    h.fleet.running().map((agent) => agent.spec.issueKey),
    ['MEM-2'],
  );
  assert.equal(session.heldReasons().size, 0);
  assert.equal(groups.removed.length, 1, "the ended team's group was removed");
  await session.close();
});

test('a held team starts on the periodic re-pump once available memory rises, without any team ending', async () => {
  const h = createHarness({ dispatch: { batchSize: 2 }, runs: { superviseIntervalMs: 1_000 }, resources: { team: { memoryMax: '4G' }, reserve: '0%' } });
  const memory = new FixedAvailableMemorySource(3 * GB, 8 * GB);
  const session = h.newSession('live', { resources: fakeResources(new RecordingGroups(), memory) });
  h.source.put({ key: 'MEM-3', title: 'big', labels: ['factory'] });
  await session.open();
  await session.startLive();
  await settle();
  assert.equal(h.fleet.running().length, 0);
  assert.equal(session.heldReasons().get('MEM-3'), 'waiting for memory: need 4.0 GB, 3.0 GB free');

  memory.set(5 * GB);
  await h.clock.advance(1_000);
  await settle();
  assert.deepEqual(
    h.fleet.running().map((agent) => agent.spec.issueKey),
    ['MEM-3'],
  );
  await session.close();
});

test('without a budget there is no group and no wrapper, and nothing is held', async () => {
  const h = createHarness({ dispatch: { batchSize: 2 } });
  const groups = new RecordingGroups();
  const session = h.newSession('live', { resources: fakeResources(groups, new FixedAvailableMemorySource(0, 8 * GB)) });
  h.source.put({ key: 'PLAIN-1', title: 'plain', labels: ['factory'] });
  await session.open();
  await session.startLive();
  await settle();
  assert.equal(h.fleet.running().length, 1);
  assert.equal(h.fleet.running()[0]!.spec.resourceGroup, undefined, 'started as configured, no join wrapper');
  assert.deepEqual(groups.created, []);
  await session.close();
});

test('status shows the detection report and, for a held claim, the memory reason instead of the slot reason', async () => {
  const h = createHarness({
    dispatch: { batchSize: 2 },
    runs: { superviseIntervalMs: 3_600_000 },
    loop: { heartbeatIntervalMs: 1_000, heartbeatStaleMs: 60_000 },
    resources: { team: { memoryMax: '4G' } },
  });
  const session = h.newSession('live', { resources: fakeResources(new RecordingGroups(), new FixedAvailableMemorySource(6 * GB, 8 * GB)) });
  h.source.put({ key: 'MEM-1', title: 'first', labels: ['factory'], createdAtMs: 1 });
  h.source.put({ key: 'MEM-2', title: 'second', labels: ['factory'], createdAtMs: 2 });
  await session.open();
  await session.startLive();
  await settle();

  const status = await statusNow(h);
  assert.equal(status.resources?.mechanism, 'cgroup-v1');
  assert.deepEqual(status.resources?.enforces, { memory: true, pids: true, cpu: false });
  assert.equal(status.resources?.killAll, 'freeze-then-kill');
  assert.equal(status.resources?.budgeted, true);
  assert.deepEqual(status.resources?.held, [{ issueKey: 'MEM-2', reason: 'waiting for memory: need 4.8 GB, 2.0 GB free' }]);
  // One slot of two is free, so without the hold MEM-2 would read "next to start".
  assert.deepEqual(
    status.queue.map((claim) => [claim.issueKey, claim.why]),
    [['MEM-2', 'waiting for memory: need 4.8 GB, 2.0 GB free']],
  );
  const text = formatStatus(status);
  assert.match(text, /^resources: cgroup-v1: cgroup v1 \(memory, pids, cpu, freezer writable\)/m);
  assert.match(text, /enforces memory, pids; kill-all freeze-then-kill; PSI not readable; 1 held for memory/);
  assert.match(text, /MEM-2 .*waiting for memory: need 4\.8 GB, 2\.0 GB free/);

  // When the hold lifts, the heartbeat and status say so.
  h.fleet.find('MEM-1', 'implementer')!.exit(0);
  await settleUntil(() => h.fleet.find('MEM-1', 'reviewer') !== undefined);
  h.fleet.find('MEM-1', 'reviewer')!.exit(0);
  await settleUntil(() => h.fleet.find('MEM-2', 'implementer') !== undefined);
  const after = await statusNow(h);
  assert.deepEqual(after.resources?.held, []);
  assert.deepEqual(after.queue, []);
  await session.close();
});

test('sustained memory pressure (PSI) holds new teams while it stays high and releases them when it falls', async () => {
  const h = createHarness({
    dispatch: { batchSize: 2 },
    runs: { superviseIntervalMs: 5_000 },
    loop: { heartbeatIntervalMs: 1_000, heartbeatStaleMs: 60_000 },
    resources: { team: { memoryMax: '1G' }, onPressure: 'hold' },
  });
  const psi = new SettablePressure();
  // Plenty of memory: only pressure can hold a team here.
  const session = h.newSession('live', { resources: fakeResources(new RecordingGroups(), new FixedAvailableMemorySource(16 * GB, 16 * GB), psi) });
  await session.open();
  await session.startLive();
  await settle();

  // High, but not yet for the whole 30 s window: a team still starts.
  psi.someAvg10 = 45;
  h.source.put({ key: 'EARLY-1', title: 'before the window is full', labels: ['factory'] });
  await h.clock.advance(20);
  await settleUntil(() => h.fleet.running().length > 0);
  assert.deepEqual(
    h.fleet.running().map((agent) => agent.spec.issueKey),
    ['EARLY-1'],
  );

  // 35 s of supervision ticks at 45%: pressure is sustained, so a new issue with a free slot and memory waits.
  for (let tick = 0; tick < 7; tick++) await h.clock.advance(5_000);
  await settle();
  h.source.put({ key: 'PRES-1', title: 'under pressure', labels: ['factory'] });
  await h.clock.advance(20);
  await settle();
  assert.deepEqual(
    h.fleet.running().map((agent) => agent.spec.issueKey),
    ['EARLY-1'],
    'no new team starts under sustained pressure',
  );
  const reason = session.heldReasons().get('PRES-1');
  assert.match(reason ?? '', /^waiting for memory: the machine's memory pressure has stayed high \(PSI some avg10 45% ≥ 20% for 30 s\)$/);
  const held = await statusNow(h);
  assert.deepEqual(held.resources?.pressure, { readable: true, someAvg10: 45, holding: true });
  assert.equal(held.queue.find((claim) => claim.issueKey === 'PRES-1')?.why, reason);

  // Still high on the next ticks: still held.
  await h.clock.advance(5_000);
  await settle();
  assert.equal(h.fleet.find('PRES-1', 'implementer'), undefined);

  // Pressure falls: the next supervision tick samples it and the held team starts.
  psi.someAvg10 = 3;
  await h.clock.advance(5_000);
  await settleUntil(() => h.fleet.find('PRES-1', 'implementer') !== undefined);
  assert.ok(h.fleet.find('PRES-1', 'implementer'), 'the held team starts once pressure falls');
  assert.equal(session.heldReasons().size, 0);
  const released = await statusNow(h);
  assert.deepEqual(released.resources?.pressure, { readable: true, someAvg10: 3, holding: false });
  assert.deepEqual(released.resources?.held, []);
  await session.close();
});

test("a heartbeat's resources block is untrusted: malformed parts are dropped, text and the held list are bounded", () => {
  const base = { pid: 4242, startTime: 7, bootId: 'boot', status: 'running', updatedAtMs: 1 };
  const read = (resources: unknown) => {
    const parsed = parseHeartbeat(JSON.stringify({ ...base, resources }));
    assert.ok(parsed.ok);
    return parsed.value.resources;
  };
  assert.equal(read(undefined), undefined);
  assert.equal(read('cgroup-v1'), undefined);
  assert.equal(read({ summary: 'no mechanism' }), undefined);
  const hostile = read({
    mechanism: 'x'.repeat(10_000),
    enforces: { memory: 'yes', pids: true },
    pressure: { readable: true, someAvg10: 'high', holding: 1 },
    held: [{ issueKey: 'A-1', reason: 'waiting for memory' }, { issueKey: 5, reason: 'bad key' }, 'junk', ...Array.from({ length: 1_000 }, (_, i) => ({ issueKey: `K-${i}`, reason: 'r' }))],
  });
  assert.equal(hostile?.mechanism.length, 500);
  assert.deepEqual(hostile?.enforces, { memory: false, pids: true, cpu: false });
  assert.deepEqual(hostile?.pressure, { readable: true, someAvg10: null, holding: false });
  assert.equal(hostile?.budgeted, false);
  assert.deepEqual(hostile?.held[0], { issueKey: 'A-1', reason: 'waiting for memory' });
  assert.ok((hostile?.held.length ?? 0) <= 200, 'a hostile list is cut');
  assert.ok(hostile?.held.every((entry) => typeof entry.issueKey === 'string'));
});

/** settleUntil through the harness's settle, which also waits for the session's real I/O (reviewer verdict reads): teams end reliably under load. */
async function settleSessionUntil(h: Harness, probe: () => boolean): Promise<void> {
  for (let turn = 0; turn < 50 && !probe(); turn++) await h.settle();
}

test('onPressure "park": sustained pressure parks the newest running team (its work and claim kept), the older one runs on, and the parked one resumes and finishes once pressure has stayed low', async () => {
  const h = createHarness({
    dispatch: { batchSize: 3 },
    runs: { superviseIntervalMs: 5_000 },
    loop: { heartbeatIntervalMs: 1_000, heartbeatStaleMs: 60_000 },
    resources: { team: { memoryMax: '1G' }, onPressure: 'park' },
  });
  const psi = new SettablePressure();
  const session = h.newSession('live', { resources: fakeResources(new RecordingGroups(), new FixedAvailableMemorySource(16 * GB, 16 * GB), psi) });
  await session.open();
  await session.startLive();
  h.source.put({ key: 'OLD-1', title: 'started first', labels: ['factory'], createdAtMs: 1 });
  await h.clock.advance(20);
  await settleSessionUntil(h, () => h.fleet.find('OLD-1', 'implementer') !== undefined);
  await h.clock.advance(1_000);
  h.source.put({ key: 'NEW-1', title: 'started second', labels: ['factory'], createdAtMs: 2 });
  await h.clock.advance(20);
  await settleSessionUntil(h, () => h.fleet.find('NEW-1', 'implementer') !== undefined);
  const older = h.fleet.find('OLD-1', 'implementer')!;
  const newer = h.fleet.find('NEW-1', 'implementer')!;
  const newerRun = session.dispatcher.claim('NEW-1')!.runId!;

  // High, but not yet for a whole window: nothing is parked.
  psi.someAvg10 = 45;
  for (let tick = 0; tick < 5; tick++) await h.clock.advance(5_000);
  await settle();
  assert.equal(newer.stopRequests, 0, 'a spike shorter than the window parks nothing');

  // Past the 30 s window: the newest team is parked, the older one is left alone.
  for (let tick = 0; tick < 2; tick++) await h.clock.advance(5_000);
  await settleSessionUntil(h, () => session.dispatcher.claim('NEW-1')?.status === 'parked');
  const parked = session.dispatcher.claim('NEW-1')!;
  assert.equal(parked.status, 'parked');
  assert.equal(parked.park?.trigger, 'memory-pressure');
  assert.equal(parked.park?.resumeAtMs, null, 'no clock time: it waits for pressure to fall');
  assert.equal(parked.park?.ref, `refs/factory/park/${newerRun}`);
  assert.ok(h.workspace.parked.has(parked.park!.ref), "the newer team's worktree was committed to its park ref");
  assert.match(
    parked.lastReason ?? '',
    /^parked \(memory-pressure\): the machine's memory pressure has stayed high \(PSI some avg10 45% ≥ 20% for 30 s\); resumes by itself once memory pressure has stayed low/,
  );
  assert.ok(newer.stopRequests > 0, 'the newer agent was stopped');
  assert.equal(older.stopRequests, 0, 'the older team keeps running');
  assert.equal(session.dispatcher.claim('OLD-1')?.status, 'running');
  const status = await statusNow(h);
  assert.deepEqual(
    status.parked.map((claim) => [claim.issueKey, claim.park?.trigger]),
    [['NEW-1', 'memory-pressure']],
  );
  assert.match(formatStatus(status), /NEW-1 +when pressure is low +parked \(memory-pressure\)/);

  // Pressure falls, but a quiet moment is not a quiet window: still parked.
  psi.someAvg10 = 3;
  await h.clock.advance(5_000);
  await settle();
  assert.equal(session.dispatcher.claim('NEW-1')?.status, 'parked');
  // Low for the whole window: it resumes by itself in its worktree and runs to the end.
  for (let tick = 0; tick < 7; tick++) await h.clock.advance(5_000);
  await settleSessionUntil(h, () => h.fleet.find('NEW-1', 'implementer') !== newer && h.fleet.find('NEW-1', 'implementer') !== undefined);
  const resumed = h.fleet.find('NEW-1', 'implementer')!;
  assert.notEqual(resumed, newer, 'a new agent continues the parked run');
  assert.equal(session.dispatcher.claim('NEW-1')?.status, 'running');
  assert.equal(session.dispatcher.claim('NEW-1')?.park?.runId, newerRun, 'the start continues the parked run');
  assert.equal(older.stopRequests, 0);
  resumed.exit(0);
  await settleSessionUntil(h, () => h.fleet.find('NEW-1', 'reviewer') !== undefined);
  h.fleet.find('NEW-1', 'reviewer')!.exit(0);
  await settleSessionUntil(h, () => session.dispatcher.claim('NEW-1')?.status === 'succeeded');
  assert.equal(session.dispatcher.claim('NEW-1')?.status, 'succeeded', session.dispatcher.claim('NEW-1')?.lastReason ?? '');
  assert.equal(session.dispatcher.claim('NEW-1')?.park, null);
  older.exit(0);
  await settleSessionUntil(h, () => h.fleet.find('OLD-1', 'reviewer') !== undefined);
  h.fleet.find('OLD-1', 'reviewer')!.exit(0);
  await settleSessionUntil(h, () => session.dispatcher.claim('OLD-1')?.status === 'succeeded');
  assert.equal(session.dispatcher.claim('OLD-1')?.status, 'succeeded', 'the older team was never touched');
  await session.close();
});
