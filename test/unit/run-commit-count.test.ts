import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import type { RunOutcome } from '../../src/domain/run.js';
import { createHarness, type Harness } from '../support/session-harness.js';
import { ScriptedStreamHost } from '../support/scripted-stream-host.js';

/**
 * A run is judged by the commits it made itself, not by the commits earlier
 * runs left on the issue's branch: a re-run that did nothing ends
 * `no-changes`, and every outcome counts this run's commits. A resumed run is
 * the same piece of work as the part before its park.
 */

async function latestOutcome(h: Harness, issueKey: string): Promise<RunOutcome | undefined> {
  await h.settle();
  const store = new SqliteStateStore(h.stateDb);
  try {
    return (await store.recentOutcomes(50)).find((outcome) => outcome.issueKey === issueKey);
  } finally {
    await store.close();
  }
}

test('a re-run of an edited issue that commits nothing ends no-changes, though earlier runs left commits on the branch; each outcome counts its own commits', async () => {
  const h = createHarness({ team: { stages: [['implementer']] } });
  h.source.put({ key: 'X-1', title: 'first', labels: ['factory'] });
  const session = h.newSession('live');
  await session.open();
  await session.startLive();
  await h.settle();
  h.fleet.find('X-1', 'implementer')!.exit(0);
  const first = await latestOutcome(h, 'X-1');
  assert.equal(first?.reason, 'succeeded', first?.detail);
  assert.equal(first.detail, '1 agent(s) exited 0; 1 commit(s) this run on factory/X-1');

  // The edit runs again; this time the agent commits twice.
  h.source.put({ key: 'X-1', title: 'second', labels: ['factory'] });
  await h.clock.advance(h.config.intake.debounceMs);
  await h.settle();
  const second = h.fleet.find('X-1', 'implementer')!;
  h.workspace.commit({ path: second.spec.cwd, branch: 'factory/X-1' });
  second.exit(0);
  const counted = await latestOutcome(h, 'X-1');
  assert.equal(counted?.reason, 'succeeded', counted?.detail);
  assert.equal(counted.detail, '1 agent(s) exited 0; 2 commit(s) this run on factory/X-1; 3 on the branch in all');

  // Another edit, and the agent exits 0 without a commit: nothing was done.
  h.agentsCommit = false;
  h.source.put({ key: 'X-1', title: 'third', labels: ['factory'] });
  await h.clock.advance(h.config.intake.debounceMs);
  await h.settle();
  h.fleet.find('X-1', 'implementer')!.exit(0);
  const idle = await latestOutcome(h, 'X-1');
  assert.equal(idle?.reason, 'no-changes', idle?.detail);
  assert.equal(idle.detail, '1 agent(s) exited 0 but left no commit on factory/X-1 this run; 3 on the branch in all (runs.allowNoChanges is off)');
  await session.close();
});

test('a resumed run counts the commits its part before the park made: it is the same run, so it is not no-changes', async () => {
  const h = createHarness({ agents: { implementer: { driver: 'codex', command: ['codex'], codex: { model: 'gpt-scripted' } } }, team: { stages: [['implementer']] } });
  const host = new ScriptedStreamHost();
  h.source.put({ key: 'P-1', title: 'parks halfway', labels: ['factory'] });
  const session = h.newSession('live', { agentCli: host });
  await session.open();
  await session.startLive();
  await h.settle();
  const first = h.fleet.find('P-1', 'implementer')!;
  // The agent commits, then hits its usage limit (no reset time: resumed by hand).
  h.workspace.commit({ path: first.spec.cwd, branch: 'factory/P-1' });
  const limitText = "You've hit your usage limit.";
  host.emit(
    first.spec.logPath,
    { type: 'thread.started', thread_id: 'thread-1' },
    { type: 'turn.started' },
    { type: 'error', message: limitText },
    { type: 'turn.failed', error: { message: limitText } },
  );
  await h.settle();
  first.exit(1);
  const parked = await latestOutcome(h, 'P-1');
  assert.equal(parked?.reason, 'parked', parked?.detail);

  h.agentsCommit = false;
  await session.dispatcher.resume('P-1', 'resumed by the test');
  await h.settle();
  const resumed = h.fleet.find('P-1', 'implementer')!;
  assert.notEqual(resumed, first);
  host.emit(resumed.spec.logPath, { type: 'thread.started', thread_id: 'thread-1' }, { type: 'turn.started' }, { type: 'turn.completed', usage: { input_tokens: 1, output_tokens: 1 } });
  resumed.exit(0);
  const done = await latestOutcome(h, 'P-1');
  assert.equal(done?.reason, 'succeeded', done?.detail);
  assert.equal(done.detail, '1 agent(s) exited 0; 1 commit(s) this run on factory/P-1');
  await session.close();
});
