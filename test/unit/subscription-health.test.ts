import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settle } from '../../src/adapters/clock/fake-clock.js';
import type { FactoryError } from '../../src/errors.js';
import { createHarness } from '../support/session-harness.js';

const HEALTH = { intake: { probeIntervalMs: 10_000, probeTimeoutMs: 2_000, unhealthyLimitMs: 60_000, reconcileIntervalMs: 30_000, debounceMs: 0 } };

test('a probe seen back through the subscription is the progress receipt', async () => {
  const h = createHarness(HEALTH, { probes: true });
  const session = h.newSession();
  await session.open();
  await session.startLive();
  await h.clock.advance(10_000);
  const health = session.intake!.health();
  assert.equal(health.state, 'subscribed');
  assert.equal(health.lastProgressAtMs, h.clock.now());
  assert.equal(health.unhealthySinceMs, null);
  await session.close();
});

test('a watcher that silently stops is detected within probe interval + timeout, healed, and the missed issue dispatched once', async () => {
  const h = createHarness(HEALTH, { probes: true });
  const session = h.newSession();
  await session.open();
  await session.startLive();
  h.source.wedgeSubscriptions();
  const wedgedAt = h.clock.now();
  h.source.put({ key: 'MISSED-1', title: 'lost event', labels: ['factory'] });
  await settle();
  assert.equal(h.fleet.agents.length, 0, 'the event was lost: nothing dispatched yet');
  await h.clock.advance(12_000); // at most one probe interval + one probe timeout
  await settle();
  const spawns = h.fleet.agents.filter((a) => a.spec.issueKey === 'MISSED-1');
  assert.equal(spawns.length, 1, 'the resubscribe + reconcile dispatched the missed issue exactly once');
  assert.ok(h.clock.now() - wedgedAt <= 12_000);
  assert.equal(session.intake!.health().state, 'subscribed', 'a fresh probe proved the new subscription');
  assert.equal(session.intake!.health().unhealthySinceMs, null);
  // More probes and reconciles later do not dispatch it again.
  await h.clock.advance(60_000);
  assert.equal(h.fleet.agents.filter((a) => a.spec.issueKey === 'MISSED-1').length, 1);
  await session.close();
});

test('a watcher that cannot heal is reported wedged and fails the daemon after intake.unhealthyLimitMs', async () => {
  const h = createHarness({ ...HEALTH, loop: { heartbeatIntervalMs: 1_000, heartbeatStaleMs: 60_000 } }, { probes: true, alwaysDeaf: true });
  const session = h.newSession();
  await session.open();
  const failures: FactoryError[] = [];
  await session.startLive((error) => failures.push(error));
  await h.clock.advance(13_000);
  assert.equal(h.heartbeats.at(-1)!.subscription.state, 'wedged', 'the heartbeat says so');
  assert.deepEqual(failures, [], 'not fatal before the limit');
  await h.clock.advance(55_000);
  assert.deepEqual(failures, [], 'still within intake.unhealthyLimitMs of the first lost probe');
  await h.clock.advance(15_000); // the limit, plus at most one health-check interval
  assert.equal(failures.length, 1, 'fatal once, after the limit');
  const failure: FactoryError = failures[0]!;
  assert.equal(failure.code, 'FACTORY_SUBSCRIPTION_FAILED');
  assert.match(failure.message, /probe not seen back/);
  await session.close('failed');
  assert.equal(h.heartbeats.at(-1)!.status, 'failed');
});

test('without probes (poll transport) a completed reconcile is the progress receipt', async () => {
  const h = createHarness({ intake: { transport: 'poll', reconcileIntervalMs: 5_000, debounceMs: 0 } });
  const session = h.newSession();
  await session.open();
  await session.startLive();
  assert.equal(session.intake!.health().state, 'polling');
  h.source.put({ key: 'POLL-1', title: 'found by polling', labels: ['factory'] });
  await h.clock.advance(5_000);
  await settle();
  assert.equal(h.fleet.agents.filter((a) => a.spec.issueKey === 'POLL-1').length, 1);
  assert.equal(session.intake!.health().lastProgressAtMs, h.clock.now());
  await session.close();
});

test('the heartbeat shows a file event and a newly skipped file within a second, not at the next refresh', async () => {
  const h = createHarness({ intake: { debounceMs: 10, reconcileIntervalMs: 60_000 }, loop: { heartbeatIntervalMs: 15_000, heartbeatStaleMs: 60_000 } });
  const session = h.newSession();
  await session.open();
  await session.startLive();
  await h.clock.advance(5_000);
  const before = h.heartbeats.length;
  const eventAt = h.clock.now();
  h.source.put({ key: 'SEEN-1', title: 'starts a team', labels: ['factory'] });
  h.source.putUnreadable('issues/broken.md', 'front matter is not valid YAML');
  await h.settle();
  await h.clock.advance(1_000);
  assert.ok(h.heartbeats.length > before, 'written before the 15 s refresh');
  const latest = h.heartbeats.at(-1)!;
  assert.equal(latest.subscription.lastEventAtMs, eventAt);
  assert.deepEqual(
    latest.skippedFiles?.map((f) => f.path),
    ['issues/broken.md'],
  );
  assert.equal(latest.inFlightTeams, 1);
  await session.close();
});
