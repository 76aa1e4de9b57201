import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { settle } from '../../src/adapters/clock/fake-clock.js';
import { FileRegistryStore } from '../../src/adapters/node-state/file-node-state.js';
import { InMemoryProcessTable } from '../../src/adapters/process-table/in-memory-process-table.js';
import { InMemoryTeamExecutor } from '../../src/adapters/team-executor/in-memory-team-executor.js';
import { readStatusSnapshot } from '../../src/core/status-snapshot.js';
import { sessionView } from '../../src/http/daemon-view.js';
import { buildStateDocument } from '../../src/http/state-document.js';
import { statusSourcesFor } from '../../src/main.js';
import { createHarness } from '../support/session-harness.js';

test('/api/v1/state lists the agents of a team placed on another node by node, with no pid', async () => {
  const h = createHarness();
  const executor = new InMemoryTeamExecutor({ node: 'worker-a', clock: h.clock });
  h.source.put({ key: 'FAR-1', title: 'runs on a worker', labels: ['factory'] });
  const session = h.newSession('live', { executor });
  await session.open();
  await session.startLive();
  await settle();
  const snapshot = await readStatusSnapshot(statusSourcesFor(h.config, new InMemoryProcessTable()), { nowMs: h.clock.now() });
  const document = buildStateDocument(snapshot, { staleMs: h.config.loop.heartbeatStaleMs, view: sessionView(session) });
  const team = document.teams.find((t) => t.issueKey === 'FAR-1');
  assert.ok(team, 'the remote team is listed');
  assert.deepEqual(
    team.agents.map((a) => [a.role, a.node, a.pid]),
    [['implementer', 'worker-a', null]],
  );
  await session.close();
});

test("a team's start time is when the team started, not when its current stage's agent did: the reviewer stage keeps its age and its place in the order, in the API and in status", async () => {
  const h = createHarness();
  h.source.put({ key: 'AGE-1', title: 'implemented, then reviewed', labels: ['factory'] });
  const session = h.newSession();
  await session.open();
  await session.startLive();
  await h.settle();
  const teamStartedAtMs = h.clock.now();
  await h.clock.advance(5 * 60_000);
  h.fleet.find('AGE-1', 'implementer')!.exit(0);
  await h.settle();
  assert.ok(h.fleet.find('AGE-1', 'reviewer'), 'the reviewer is at work');
  // The harness keeps registry writes in memory; the snapshot reads the file, as `status` and the API do.
  mkdirSync(dirname(h.config.loop.registryPath), { recursive: true });
  await new FileRegistryStore(h.config.loop.registryPath).write(h.registries.at(-1)!);
  const snapshot = await readStatusSnapshot(statusSourcesFor(h.config, new InMemoryProcessTable()), { nowMs: h.clock.now() });
  const document = buildStateDocument(snapshot, { staleMs: h.config.loop.heartbeatStaleMs, view: sessionView(session) });
  const team = document.teams.find((t) => t.issueKey === 'AGE-1');
  assert.ok(team, 'the team is listed');
  assert.deepEqual(
    team.agents.map((a) => a.role),
    ['reviewer'],
  );
  assert.equal(team.startedAtMs, teamStartedAtMs, 'the team has been at work for five minutes, not since its reviewer started');
  // `factory status` reads the registry without the daemon: the registry keeps the team's start too.
  assert.equal(snapshot.teams.find((t) => t.issueKey === 'AGE-1')?.startedAtMs, teamStartedAtMs, 'status without the daemon agrees');
  await session.close();
});
