import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settle } from '../../src/adapters/clock/fake-clock.js';
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
