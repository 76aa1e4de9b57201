import assert from 'node:assert/strict';
import { test } from 'node:test';
import { settle } from '../../src/adapters/clock/fake-clock.js';
import { FixedAvailableMemorySource } from '../../src/adapters/resources/memory-sources.js';
import type { TeamBudget } from '../../src/domain/resource-budget.js';
import type { GroupMemory, ResourceSupportReport, TeamResourceGroup, TeamResourceGroups, TeamResources } from '../../src/ports/team-resources.js';
import { createHarness } from '../support/session-harness.js';

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

function fakeResources(groups: TeamResourceGroups, memory: FixedAvailableMemorySource): TeamResources {
  const report = { mechanism: 'cgroup-v1', summary: 'fake', v2: {}, v1: [], enforces: { memory: true, pids: true, cpu: true }, killAll: 'freeze-then-kill', pressure: false } as unknown as ResourceSupportReport;
  return { report, groups, availableMemory: memory };
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

  assert.deepEqual(h.fleet.running().map((agent) => agent.spec.issueKey), ['MEM-1'], 'one team runs although two slots are free');
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
  await settle();
  h.fleet.find('MEM-1', 'reviewer')!.exit(0);
  await settle();
  assert.deepEqual(h.fleet.running().map((agent) => agent.spec.issueKey), ['MEM-2']);
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
  assert.deepEqual(h.fleet.running().map((agent) => agent.spec.issueKey), ['MEM-3']);
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
