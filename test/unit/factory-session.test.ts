import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settle } from '../../src/adapters/clock/fake-clock.js';
import { InMemoryTeamExecutor } from '../../src/adapters/team-executor/in-memory-team-executor.js';
import { isFactoryError } from '../../src/errors.js';
import { createHarness } from '../support/session-harness.js';

test('live start writes `running` before it subscribes, and resolves the predecessor before it dispatches', async () => {
  const h = createHarness();
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  const session = h.newSession();
  await session.open();
  await session.startLive();
  const order = (entry: string) => h.events.indexOf(entry);
  assert.ok(order('heartbeat running') >= 0);
  assert.ok(order('heartbeat running') < order('subscribe'), h.events.join(' | '));
  assert.ok(order('reap predecessor 0') < order('spawn FAC-1-implementer'), h.events.join(' | '));
  await session.close();
});

test('the refresh writes only the heartbeat: no registry write and no fleet call, however many agents run', async () => {
  const h = createHarness({ dispatch: { batchSize: 5 }, loop: { heartbeatIntervalMs: 1_000, heartbeatStaleMs: 60_000 } });
  for (let i = 1; i <= 5; i++) h.source.put({ key: `FAC-${i}`, title: `issue ${i}`, labels: ['factory'] });
  const session = h.newSession();
  await session.open();
  await session.startLive();
  await settle();
  assert.equal(h.fleet.running().length, 5);
  const registryWrites = h.registries.length;
  const fleetCalls = h.fleet.agents.length;
  const heartbeatWrites = h.heartbeats.length;
  await h.clock.advance(10_000);
  assert.equal(h.heartbeats.length - heartbeatWrites, 10, 'ten refreshes in ten intervals');
  assert.equal(h.registries.length, registryWrites, 'the registry was not rewritten by the refresh');
  assert.equal(h.fleet.agents.length, fleetCalls, 'no spawn or lookup through the fleet');
  assert.equal(h.heartbeats.at(-1)!.inFlightTeams, 5);
  await session.close();
});

test('stop order: refresh cancelled, in-flight write awaited, `stopping` written, then agents released, then registry and final heartbeat', async () => {
  const h = createHarness({ loop: { heartbeatIntervalMs: 1_000, heartbeatStaleMs: 60_000 } });
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  const session = h.newSession();
  await session.open();
  await session.startLive();
  await settle();
  assert.equal(h.fleet.running().length, 1);
  const release = h.holdNextHeartbeat();
  h.events.length = 0;
  await h.clock.advance(1_000); // a refresh starts and hangs in the write
  const closing = session.close();
  await settle();
  assert.deepEqual(h.events, ['heartbeat running (held)'], 'nothing else happens while the refresh write is in flight');
  release();
  await closing;
  assert.deepEqual(h.events.slice(0, 4), ['heartbeat running (held)', 'heartbeat running', 'heartbeat stopping', 'stop FAC-1-implementer']);
  assert.deepEqual(h.events.slice(-2), ['registry 0', 'heartbeat stopped']);
  const before = h.heartbeats.length;
  await h.clock.advance(60_000);
  assert.equal(h.heartbeats.length, before, 'no refresh after the stop');
});

test('close() twice runs the stop once', async () => {
  const h = createHarness();
  const session = h.newSession();
  await session.open();
  await session.startLive();
  await Promise.all([session.close(), session.close()]);
  assert.equal(h.events.filter((e) => e === 'heartbeat stopping').length, 1);
});

test('a daemon whose state was taken over by a newer epoch stops at its next state write instead of working on', async () => {
  const h = createHarness({ intake: { debounceMs: 0 } });
  const old = h.newSession();
  await old.open();
  const failures: string[] = [];
  await old.startLive((error) => failures.push(error.code));
  const successor = h.newSession('once');
  await successor.open(); // takes the next epoch, as a daemon started with the lock bypassed would
  h.source.put({ key: 'FAC-9', title: 'claimed by whom?', labels: ['factory'] });
  await h.clock.advance(10);
  await settle();
  assert.deepEqual(failures, ['FACTORY_STATE_STALE_EPOCH']);
  assert.equal(h.fleet.agents.filter((a) => a.spec.issueKey === 'FAC-9').length, 0, 'the old daemon dispatched nothing');
  await old.close('failed');
  await successor.close();
});

test('an issue whose runs die with the daemon three times in a row is given up, not fed to the fleet forever', async () => {
  const h = createHarness();
  h.source.put({ key: 'BOOM-1', title: 'takes the daemon down', labels: ['factory'] });
  const spawnsOf = () => h.fleet.agents.filter((a) => a.spec.issueKey === 'BOOM-1').length;
  for (let crash = 1; crash <= 3; crash++) {
    // Each session dispatches BOOM-1 and then "dies": it is never closed, as after a kill -9.
    const session = h.newSession();
    await session.open();
    await session.startLive();
    await settle();
    assert.equal(spawnsOf(), crash, `run ${crash} dispatched`);
  }
  const survivor = h.newSession();
  await survivor.open();
  await survivor.startLive();
  await settle();
  assert.equal(spawnsOf(), 3, 'no fourth run');
  const claim = survivor.dispatcher.claim('BOOM-1')!;
  assert.equal(claim.status, 'gave-up');
  assert.match(claim.lastReason ?? '', /interrupted by 3 daemon crashes in a row/);
  await survivor.close();
});

test('a restarted session attaches to a run still going on another node, instead of requeuing or refusing it', async () => {
  const h = createHarness();
  const executor = new InMemoryTeamExecutor({ node: 'worker-a', clock: h.clock });
  h.source.put({ key: 'FAR-1', title: 'runs on a worker', labels: ['factory'] });
  const first = h.newSession('live', { executor });
  await first.open();
  await first.startLive();
  await settle();
  assert.equal(executor.started.length, 1);
  const run = executor.runOf('FAR-1')!;
  const claimed = (await first.deps.store.getClaim('FAR-1'))!;
  assert.equal(claimed.status, 'running');
  assert.equal(claimed.node, 'worker-a', 'the claim records where its run is placed');
  // The control plane dies; the worker carries on.
  await first.intake!.close();

  const second = h.newSession('live', { executor });
  await second.open();
  assert.deepEqual(second.predecessor?.attached, [run.plan.runId]);
  assert.deepEqual(second.predecessor?.requeued, []);
  assert.equal(second.status().runningTeams, 1, 'the attached run counts as running');
  await second.startLive();
  await settle();
  assert.equal(executor.started.length, 1, 'no second run for the issue');
  assert.equal(second.dispatcher.claim('FAR-1')?.status, 'running');

  run.finish('succeeded', 'done on worker-a');
  await settle();
  const done = (await second.deps.store.getClaim('FAR-1'))!;
  assert.equal(done.status, 'succeeded');
  assert.equal(done.epoch, 2, 'the outcome is recorded by the session that attached');
  assert.deepEqual(
    h.source.writeBacks.map((w) => [w.issue.key, w.outcome.reason]),
    [['FAR-1', 'succeeded']],
  );
  assert.equal(second.status().runningTeams, 0);
  await second.close();
});

test('a run its node no longer has is treated as interrupted: requeued and run again', async () => {
  const h = createHarness();
  const executor = new InMemoryTeamExecutor({ node: 'worker-a', clock: h.clock });
  h.source.put({ key: 'LOST-1', title: 'its worker died', labels: ['factory'] });
  const first = h.newSession('live', { executor });
  await first.open();
  await first.startLive();
  await settle();
  const lost = executor.runOf('LOST-1')!;
  await first.intake!.close();
  executor.lose(lost.plan.runId);

  const second = h.newSession('live', { executor });
  await second.open();
  assert.deepEqual(second.predecessor?.attached, []);
  assert.deepEqual(second.predecessor?.requeued, ['LOST-1']);
  await second.startLive();
  await settle();
  assert.equal(executor.started.length, 2, 'run again');
  assert.equal(executor.runOf('LOST-1')!.plan.attempt, 1, 'the interrupted attempt was given back');
  await second.close();
});

test('session state: parts are refused before open with a coded error, and status() reports the state', async () => {
  const h = createHarness();
  const session = h.newSession('once');
  assert.equal(session.status().state, 'new');
  assert.throws(
    () => session.dispatcher,
    (error) => isFactoryError(error, 'FACTORY_SESSION_STATE'),
  );
  await session.open();
  assert.equal(session.status().state, 'open');
  await assert.rejects(session.open(), (error) => isFactoryError(error, 'FACTORY_SESSION_STATE') && /from open to opening/.test(error.message));
  await session.close();
  assert.equal(session.status().state, 'closed');
  await assert.rejects(session.startLive(), (error) => isFactoryError(error, 'FACTORY_SESSION_STATE'));
});
