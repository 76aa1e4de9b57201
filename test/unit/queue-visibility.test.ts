import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settle } from '../../src/adapters/clock/fake-clock.js';
import { FileHeartbeatStore, FileRegistryStore } from '../../src/adapters/node-state/file-node-state.js';
import { InMemoryProcessTable } from '../../src/adapters/process-table/in-memory-process-table.js';
import { formatStatus } from '../../src/cli/verbs/status-run.js';
import type { FactorySession } from '../../src/core/factory-session.js';
import { readStatusSnapshot, type StatusSnapshot } from '../../src/core/status-snapshot.js';
import { statusSourcesFor } from '../../src/main.js';
import { createHarness, type Harness } from '../support/session-harness.js';

/**
 * What `factory status` (and the state API, which serves the same snapshot)
 * says about issues that wait, read from the files and database a live
 * session writes, and whether the listed order is the order they start in.
 */

/** The harness's daemon identity, alive in this process table. */
const daemonProcesses = new InMemoryProcessTable({ bootId: 'boot', processes: [{ pid: 4242, startTime: 7 }] });

async function openLive(h: Harness): Promise<FactorySession> {
  const session = h.newSession();
  await session.open();
  await session.startLive();
  await settle();
  return session;
}

/** Lets one heartbeat refresh pass, writes what the session recorded to the real files, and reads status as the CLI does. */
async function statusNow(h: Harness): Promise<StatusSnapshot> {
  await h.clock.advance(h.config.loop.heartbeatIntervalMs);
  await new FileHeartbeatStore(h.config.loop.heartbeatPath).write(h.heartbeats.at(-1)!);
  await new FileRegistryStore(h.config.loop.registryPath).write(h.registries.at(-1)!);
  return readStatusSnapshot(statusSourcesFor(h.config, daemonProcesses), { nowMs: h.clock.now() });
}

function implementerStarts(h: Harness): string[] {
  return h.fleet.agents.filter((a) => a.spec.role === 'implementer').map((a) => a.spec.issueKey);
}

async function finishImplementer(h: Harness, key: string, exitCode: number): Promise<void> {
  const agent = h.fleet.find(key, 'implementer');
  assert.ok(agent && !agent.ended, `the implementer of ${key} runs`);
  agent.exit(exitCode);
  await settle();
}

test('with every slot busy, status lists the queue in dispatch order with why each waits, and they start in that order', async () => {
  const h = createHarness({
    dispatch: { batchSize: 1, maxAttempts: 3, backoffBaseMs: 60_000 },
    team: { stages: [['implementer']] },
    runs: { superviseIntervalMs: 3_600_000 },
    loop: { heartbeatIntervalMs: 1_000, heartbeatStaleMs: 60_000 },
  });
  const t0 = h.clock.now();
  h.source.put({ key: 'BUSY', title: 'takes the only slot', labels: ['factory'], priority: 1, createdAtMs: t0 - 100_000 });
  const session = await openLive(h);
  assert.deepEqual(implementerStarts(h), ['BUSY']);

  // Newest first would be HIGH, MID, LOW; dispatch order is by priority.
  h.source.put({ key: 'LOW', title: 'low', labels: ['factory'], priority: 5, createdAtMs: t0 - 3_000 });
  h.source.put({ key: 'MID', title: 'mid', labels: ['factory'], priority: 3, createdAtMs: t0 - 2_000 });
  h.source.put({ key: 'HIGH', title: 'high', labels: ['factory'], priority: 1, createdAtMs: t0 - 1_000 });
  await settle();
  await h.clock.advance(h.config.intake.debounceMs);

  const first = await statusNow(h);
  assert.equal(first.liveness.verdict, 'healthy', first.liveness.detail);
  assert.deepEqual(
    first.queue.map((c) => [c.issueKey, c.why]),
    [
      ['HIGH', 'waiting for a slot: 1 of 1 busy'],
      ['MID', 'waiting for a slot: 1 of 1 busy'],
      ['LOW', 'waiting for a slot: 1 of 1 busy'],
    ],
  );
  const text = formatStatus(first);
  const queueLines = text.split('\n').filter((line) => /^\s+\d+\s+(HIGH|MID|LOW)\s/.test(line));
  assert.deepEqual(
    queueLines.map((line) => line.trim().split(/\s+/).slice(0, 2).join(' ')),
    ['1 HIGH', '2 MID', '3 LOW'],
    text,
  );
  assert.ok(
    queueLines.every((line) => line.endsWith('waiting for a slot: 1 of 1 busy')),
    text,
  );
  assert.deepEqual(
    JSON.parse(JSON.stringify(first)).queue.map((c: { why: string }) => c.why),
    first.queue.map((c) => c.why),
    'the same reasons in --json',
  );

  // BUSY fails: it waits for its retry, and the first of the queue takes the slot.
  await finishImplementer(h, 'BUSY', 1);
  assert.deepEqual(implementerStarts(h), ['BUSY', 'HIGH']);
  const second = await statusNow(h);
  const retryAt = new Date(session.dispatcher.claim('BUSY')!.nextAttemptAtMs!).toISOString();
  assert.deepEqual(
    second.retries.map((c) => [c.issueKey, c.why]),
    [['BUSY', `retrying at ${retryAt} (attempt 2 of 3)`]],
  );
  assert.deepEqual(
    second.queue.map((c) => c.issueKey),
    ['MID', 'LOW'],
  );
  assert.match(formatStatus(second), new RegExp(`BUSY .*retrying at ${retryAt.replace(/\./g, '\\.')} \\(attempt 2 of 3\\)`));

  // A priority edit is not a new revision, but it moves the issue in the queue and in the start order alike.
  h.source.put({ key: 'LOW', title: 'low', labels: ['factory'], priority: 0, createdAtMs: t0 - 3_000 });
  await settle();
  await h.clock.advance(h.config.intake.debounceMs);
  const third = await statusNow(h);
  assert.deepEqual(
    third.queue.map((c) => c.issueKey),
    ['LOW', 'MID'],
  );

  const listed = [...first.queue.slice(0, 1), ...third.queue].map((c) => c.issueKey);
  for (const key of ['HIGH', 'LOW', 'MID']) await finishImplementer(h, key, 0);
  assert.deepEqual(implementerStarts(h).slice(1), listed, 'issues started in the order status listed them');
  await session.close();
});

test('a queued issue with no daemon dispatching says so instead of blaming the slots', async () => {
  const h = createHarness({ dispatch: { batchSize: 2 }, runs: { superviseIntervalMs: 3_600_000 } });
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  h.source.put({ key: 'FAC-2', title: 'two', labels: ['factory'] });
  h.source.put({ key: 'FAC-3', title: 'three', labels: ['factory'] });
  const session = await openLive(h);
  const withSlots = await statusNow(h);
  assert.deepEqual(
    withSlots.queue.map((c) => [c.issueKey, c.why]),
    [['FAC-3', 'waiting for a slot: 2 of 2 busy']],
  );
  await session.close();
  await new FileHeartbeatStore(h.config.loop.heartbeatPath).write(h.heartbeats.at(-1)!);
  const stopped = await readStatusSnapshot(statusSourcesFor(h.config, new InMemoryProcessTable({ bootId: 'boot' })), { nowMs: h.clock.now() });
  assert.deepEqual(
    stopped.queue.map((c) => c.why),
    ['waiting for a daemon: the daemon is stopped', 'waiting for a daemon: the daemon is stopped', 'waiting for a daemon: the daemon is stopped'],
  );
});
