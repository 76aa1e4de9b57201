import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FactorySession } from '../../src/core/factory-session.js';
import { isFactoryError } from '../../src/errors.js';
import { createHarness, createRecordingLogger, type Harness } from '../support/session-harness.js';

/**
 * The dispatcher driven through a whole FactorySession on fakes: the test
 * decides when each agent exits and when time passes.
 */

async function openLive(h: Harness): Promise<FactorySession> {
  const session = h.newSession();
  await session.open();
  await session.startLive();
  await h.settle();
  return session;
}

/** Keys of the implementers spawned so far, in spawn order. */
function implementerSpawns(h: Harness): string[] {
  return h.fleet.agents.filter((a) => a.spec.role === 'implementer').map((a) => a.spec.issueKey);
}

function runningAgent(h: Harness, key: string, role: 'implementer' | 'reviewer') {
  const agent = h.fleet.find(key, role);
  assert.ok(agent, `${role} of ${key} was spawned`);
  assert.equal(agent.ended, false, `${role} of ${key} is still running`);
  return agent;
}

/** Ends the running implementer of `key` with `code`; on 0 the reviewer too (sequential mode). */
async function finishTeam(h: Harness, key: string, code = 0): Promise<void> {
  runningAgent(h, key, 'implementer').exit(code);
  await h.settle();
  if (code !== 0) return;
  runningAgent(h, key, 'reviewer').exit(0);
  await h.settle();
}

function claimStatus(session: FactorySession, key: string): string | undefined {
  return session.dispatcher.claim(key)?.status;
}

test('batchSize teams run at once; the rest wait and start in priority-then-age order', async () => {
  const h = createHarness({ dispatch: { batchSize: 2 } });
  const t0 = h.clock.now();
  h.source.put({ key: 'NOPRIO-OLDEST', title: 'no priority', labels: ['factory'], createdAtMs: t0 - 10_000 });
  h.source.put({ key: 'P3-OLD', title: 'p3 old', labels: ['factory'], priority: 3, createdAtMs: t0 - 5_000 });
  h.source.put({ key: 'P3-NEW', title: 'p3 new', labels: ['factory'], priority: 3, createdAtMs: t0 - 1_000 });
  h.source.put({ key: 'P1-NEW', title: 'p1 new', labels: ['factory'], priority: 1, createdAtMs: t0 - 2_000 });
  h.source.put({ key: 'P1-OLD', title: 'p1 old', labels: ['factory'], priority: 1, createdAtMs: t0 - 3_000 });
  const session = await openLive(h);

  assert.deepEqual(implementerSpawns(h), ['P1-OLD', 'P1-NEW']);
  assert.equal(session.dispatcher.runningTeamCount, 2);
  assert.equal(session.dispatcher.queuedCount, 3);
  for (const key of ['P3-OLD', 'P3-NEW', 'NOPRIO-OLDEST']) assert.equal(claimStatus(session, key), 'queued', key);

  // Each finished team frees one slot; never more than batchSize teams at once.
  for (const key of ['P1-OLD', 'P1-NEW', 'P3-OLD', 'P3-NEW', 'NOPRIO-OLDEST']) {
    assert.ok(session.dispatcher.runningTeamCount <= 2);
    assert.ok(new Set(h.fleet.running().map((a) => a.spec.issueKey)).size <= 2);
    await finishTeam(h, key);
  }
  assert.deepEqual(implementerSpawns(h), ['P1-OLD', 'P1-NEW', 'P3-OLD', 'P3-NEW', 'NOPRIO-OLDEST']);
  assert.equal(session.dispatcher.runningTeamCount, 0);
  assert.equal(session.dispatcher.queuedCount, 0);
  await session.close();
});

test('the same issue announced 100 times is dispatched exactly once', async () => {
  const h = createHarness();
  const session = await openLive(h);
  for (let i = 0; i < 100; i++) h.source.put({ key: 'FAC-1', title: 'same', body: 'unchanged', labels: ['factory'] });
  await h.settle();
  await h.clock.advance(9);
  assert.deepEqual(implementerSpawns(h), [], 'nothing happens before the debounce window closes');
  await h.clock.advance(1);
  assert.deepEqual(implementerSpawns(h), ['FAC-1'], 'a burst of events is one intake pass and one team');

  // More announcements spread over many debounce windows and reconciles, while it runs…
  for (let i = 0; i < 100; i++) {
    h.source.put({ key: 'FAC-1', title: 'same', body: 'unchanged', labels: ['factory'] });
    await h.clock.advance(400);
  }
  assert.deepEqual(implementerSpawns(h), ['FAC-1'], 'still one team while it runs');
  await finishTeam(h, 'FAC-1');
  // …and after it succeeded.
  for (let i = 0; i < 100; i++) h.source.put({ key: 'FAC-1', title: 'same', body: 'unchanged', labels: ['factory'] });
  await h.clock.advance(60_000);
  assert.deepEqual(implementerSpawns(h), ['FAC-1'], 'an unchanged issue that already succeeded is not run again');
  assert.equal(h.source.writeBacks.length, 1);
  assert.equal(claimStatus(session, 'FAC-1'), 'succeeded');
  await session.close();
});

test('a change no event announced is still found by the periodic full reconcile', async () => {
  const h = createHarness({ intake: { transport: 'poll', reconcileIntervalMs: 5_000, debounceMs: 10 } });
  const session = await openLive(h);
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  await h.clock.advance(4_999);
  assert.deepEqual(implementerSpawns(h), [], 'no subscription: nothing until the reconcile');
  await h.clock.advance(1);
  assert.deepEqual(implementerSpawns(h), ['FAC-1']);
  await h.clock.advance(50_000);
  assert.deepEqual(implementerSpawns(h), ['FAC-1'], 'later reconciles do not dispatch it again');
  await session.close();
});

test('a failed implementer is retried after its backoff, not before, up to maxAttempts, then gave-up', async () => {
  const h = createHarness({ dispatch: { maxAttempts: 3, backoffBaseMs: 1_000, backoffMaxMs: 60_000 } });
  h.source.put({ key: 'FAC-1', title: 'flaky', labels: ['factory'] });
  const session = await openLive(h);
  assert.equal(implementerSpawns(h).length, 1);

  await finishTeam(h, 'FAC-1', 1);
  let claim = session.dispatcher.claim('FAC-1')!;
  assert.equal(claim.status, 'retry-wait');
  assert.equal(claim.nextAttemptAtMs, h.clock.now() + 1_000, 'first backoff is backoffBaseMs');
  assert.equal(h.fleet.find('FAC-1', 'reviewer'), undefined, 'no reviewer after a failed implementer');
  await h.clock.advance(999);
  assert.equal(implementerSpawns(h).length, 1, 'not retried before the backoff');
  await h.clock.advance(1);
  assert.equal(implementerSpawns(h).length, 2, 'retried when the backoff is due');
  assert.equal(session.dispatcher.claim('FAC-1')!.attempt, 2);
  assert.equal(h.fleet.find('FAC-1', 'implementer')!.spec.env.FACTORY_ATTEMPT, '2');

  await finishTeam(h, 'FAC-1', 1);
  claim = session.dispatcher.claim('FAC-1')!;
  assert.equal(claim.nextAttemptAtMs, h.clock.now() + 2_000, 'the backoff doubles');
  await h.clock.advance(1_999);
  assert.equal(implementerSpawns(h).length, 2);
  await h.clock.advance(1);
  assert.equal(implementerSpawns(h).length, 3);

  await finishTeam(h, 'FAC-1', 1);
  claim = session.dispatcher.claim('FAC-1')!;
  assert.equal(claim.status, 'gave-up');
  assert.match(claim.lastReason ?? '', /attempt 3 of 3/);
  await h.clock.advance(600_000);
  assert.equal(implementerSpawns(h).length, 3, 'no attempt after maxAttempts');
  assert.deepEqual(
    h.source.writeBacks.map((w) => [w.outcome.attempt, w.outcome.reason]),
    [
      [1, 'failed'],
      [2, 'failed'],
      [3, 'failed'],
    ],
  );
  await session.close();
});

test('sequential mode: the reviewer starts only after the implementer succeeded, on its branch and worktree', async () => {
  const h = createHarness();
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  const session = await openLive(h);
  const implementer = runningAgent(h, 'FAC-1', 'implementer');
  await h.clock.advance(5_000);
  assert.equal(h.fleet.find('FAC-1', 'reviewer'), undefined, 'no reviewer while the implementer works');
  implementer.exit(0);
  await h.settle();
  const reviewer = runningAgent(h, 'FAC-1', 'reviewer');
  assert.equal(reviewer.spec.cwd, implementer.spec.cwd);
  assert.equal(reviewer.spec.env.FACTORY_BRANCH, 'factory/FAC-1');
  assert.equal(implementer.spec.env.FACTORY_BRANCH, 'factory/FAC-1');
  assert.deepEqual(reviewer.spec.command, ['review', 'FAC-1'], 'placeholders rendered');
  assert.equal(h.source.writeBacks.length, 0, 'the team is not done before its reviewer');
  reviewer.exit(0);
  await h.settle();
  assert.deepEqual(
    h.source.writeBacks.map((w) => w.outcome.reason),
    ['succeeded'],
  );
  assert.deepEqual(
    h.source.writeBacks[0]!.outcome.agents.map((a) => [a.role, a.exitCode]),
    [
      ['implementer', 0],
      ['reviewer', 0],
    ],
  );
  await session.close();
});

test('sequential mode: a failing reviewer fails the team with a reason naming it', async () => {
  const h = createHarness({ dispatch: { maxAttempts: 1 } });
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  const session = await openLive(h);
  runningAgent(h, 'FAC-1', 'implementer').exit(0);
  await h.settle();
  runningAgent(h, 'FAC-1', 'reviewer').exit(4);
  await h.settle();
  const outcome = h.source.writeBacks[0]!.outcome;
  assert.equal(outcome.reason, 'failed');
  assert.equal(outcome.detail, 'reviewer exited with code 4');
  assert.equal(claimStatus(session, 'FAC-1'), 'gave-up');
  await session.close();
});

test('parallel mode: implementer and reviewer start together', async () => {
  const h = createHarness({ dispatch: { teamMode: 'parallel' } });
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  const session = await openLive(h);
  const implementer = runningAgent(h, 'FAC-1', 'implementer');
  const reviewer = runningAgent(h, 'FAC-1', 'reviewer');
  reviewer.exit(0);
  await h.settle();
  assert.equal(h.source.writeBacks.length, 0, 'the team waits for both agents');
  implementer.exit(0);
  await h.settle();
  assert.deepEqual(
    h.source.writeBacks.map((w) => w.outcome.reason),
    ['succeeded'],
  );
  await session.close();
});

test('parallel mode: a failed implementer stops its reviewer, and the team fails naming the implementer', async () => {
  const h = createHarness({ dispatch: { teamMode: 'parallel', maxAttempts: 1 } });
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  const session = await openLive(h);
  const implementer = runningAgent(h, 'FAC-1', 'implementer');
  const reviewer = runningAgent(h, 'FAC-1', 'reviewer');
  implementer.exit(1);
  await h.settle();
  assert.equal(reviewer.ended, true, 'the reviewer was stopped');
  assert.ok(reviewer.stopRequests >= 1);
  assert.equal(h.source.writeBacks.length, 1, 'without waiting for the reviewer to finish on its own');
  assert.equal(h.source.writeBacks[0]!.outcome.reason, 'failed');
  assert.match(h.source.writeBacks[0]!.outcome.detail, /implementer exited with code 1/);
  await session.close();
});

test('an issue that leaves scope while its team runs has the team stopped as cancelled', async () => {
  for (const change of [{ state: 'in-review' }, { labels: [] as string[] }]) {
    const h = createHarness();
    h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
    const session = await openLive(h);
    const implementer = runningAgent(h, 'FAC-1', 'implementer');
    h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'], ...change });
    await h.clock.advance(10);
    assert.ok(implementer.ended, `the agent was stopped (${JSON.stringify(change)})`);
    assert.ok(implementer.stopRequests >= 1);
    assert.equal(claimStatus(session, 'FAC-1'), 'cancelled');
    assert.deepEqual(
      h.source.writeBacks.map((w) => w.outcome.reason),
      ['cancelled'],
    );
    assert.equal(h.fleet.find('FAC-1', 'reviewer'), undefined, 'no reviewer after a cancellation');
    await h.clock.advance(600_000);
    assert.equal(implementerSpawns(h).length, 1, 'a cancelled team is not retried');
    await session.close();
  }
});

test('an issue taken out of scope and put back unchanged is dispatched again (a cancellation is not an outcome of that revision)', async () => {
  const h = createHarness();
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  const session = await openLive(h);
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'], state: 'paused' });
  await h.clock.advance(10);
  assert.equal(claimStatus(session, 'FAC-1'), 'cancelled');
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  await h.clock.advance(10);
  assert.equal(implementerSpawns(h).length, 2, 'back in scope: dispatched again');
  assert.equal(session.dispatcher.claim('FAC-1')!.attempt, 1);

  // Same for a file removed and restored.
  h.source.remove('FAC-1');
  await h.clock.advance(10);
  assert.equal(claimStatus(session, 'FAC-1'), 'cancelled');
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  await h.clock.advance(10);
  assert.equal(implementerSpawns(h).length, 3);
  await session.close();
});

test('an issue removed from the source while its team runs is cancelled', async () => {
  const h = createHarness();
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  const session = await openLive(h);
  const implementer = runningAgent(h, 'FAC-1', 'implementer');
  h.source.remove('FAC-1');
  await h.clock.advance(10);
  assert.ok(implementer.ended);
  assert.equal(claimStatus(session, 'FAC-1'), 'cancelled');
  await session.close();
});

test('skip reasons are recorded: missing label, not ready, no repo', async () => {
  const h = createHarness({ repos: { byLabel: { api: '/repos/api' } } });
  h.source.put({ key: 'NO-LABEL', title: 'x', labels: ['bug'] });
  h.source.put({ key: 'DRAFT', title: 'x', labels: ['factory', 'api'], state: 'draft' });
  h.source.put({ key: 'NO-REPO', title: 'x', labels: ['factory'] });
  h.source.put({ key: 'API', title: 'x', labels: ['factory', 'api'] });
  const session = h.newSession();
  await session.open();
  const pass = await session.startLive();
  await h.settle();
  const decisions = new Map(pass.decisions.map((d) => [d.issueKey, d]));
  assert.equal(decisions.get('NO-LABEL')?.action, 'skipped');
  assert.match(decisions.get('NO-LABEL')!.reason, /missing the required label "factory"/);
  assert.match(decisions.get('DRAFT')!.reason, /state is "draft", not "ready"/);
  assert.match(decisions.get('NO-REPO')!.reason, /no repo matches/);
  assert.deepEqual(decisions.get('API'), { issueKey: 'API', action: 'queued', reason: 'routed by label "api"', repo: '/repos/api' });
  const skips = new Map((await session.deps.store.listSkips()).map((s) => [s.issueKey, s.reason]));
  assert.deepEqual([...skips.keys()].sort(), ['DRAFT', 'NO-LABEL', 'NO-REPO']);
  assert.deepEqual(implementerSpawns(h), ['API']);
  assert.equal(h.workspace.prepared[0]!.repo, '/repos/api');

  // A skipped issue that comes into scope loses its skip record and is dispatched.
  h.source.put({ key: 'DRAFT', title: 'x', labels: ['factory', 'api'], state: 'ready' });
  await h.clock.advance(10);
  await finishTeam(h, 'API');
  assert.deepEqual(implementerSpawns(h), ['API', 'DRAFT']);
  assert.ok(!(await session.deps.store.listSkips()).some((s) => s.issueKey === 'DRAFT'));
  await session.close();
});

test('every finished team has its outcome written back to the source; a release at stop is not', async () => {
  const h = createHarness({ dispatch: { batchSize: 4, maxAttempts: 1 } });
  for (const key of ['OK', 'FAIL', 'GONE', 'HELD']) h.source.put({ key, title: key, labels: ['factory'] });
  const session = await openLive(h);
  await finishTeam(h, 'OK');
  await finishTeam(h, 'FAIL', 2);
  h.source.put({ key: 'GONE', title: 'GONE', labels: ['factory'], state: 'closed' });
  await h.clock.advance(10);
  const written = new Map(h.source.writeBacks.map((w) => [w.issue.key, w.outcome]));
  assert.equal(written.get('OK')?.reason, 'succeeded');
  assert.equal(written.get('FAIL')?.reason, 'failed');
  assert.equal(written.get('FAIL')?.detail, 'implementer exited with code 2');
  assert.equal(written.get('GONE')?.reason, 'cancelled');
  assert.equal(h.source.writeBacks.length, 3);
  await session.close();
  assert.equal(h.source.writeBacks.length, 3, "a team released by the daemon stop is not the issue's outcome");
});

test('a worktree that cannot be prepared, or an agent that cannot start, ends the team as spawn-failed with the reason', async () => {
  const h = createHarness({ dispatch: { maxAttempts: 1, batchSize: 2 } });
  h.workspace.failWith = new Error('not a git repository');
  h.source.put({ key: 'WT', title: 'x', labels: ['factory'] });
  const session = await openLive(h);
  assert.equal(h.source.writeBacks[0]?.outcome.reason, 'spawn-failed');
  assert.match(h.source.writeBacks[0]!.outcome.detail, /could not prepare the worktree: not a git repository/);

  h.workspace.failWith = undefined;
  h.fleet.failSpawnOf = 'impl';
  h.source.put({ key: 'SPAWN', title: 'x', labels: ['factory'] });
  await h.clock.advance(10);
  const outcome = h.source.writeBacks[1]!.outcome;
  assert.equal(outcome.reason, 'spawn-failed');
  assert.match(outcome.detail, /implementer: cannot start agent SPAWN-implementer: impl not found/);
  assert.equal(claimStatus(session, 'SPAWN'), 'gave-up');
  await session.close();
});

test('a team that failed or could not start is logged at warn; a success stays at info', async () => {
  const h = createHarness({ dispatch: { maxAttempts: 1, batchSize: 3 } });
  const log = createRecordingLogger();
  h.fleet.failSpawnOf = 'impl';
  h.source.put({ key: 'SPAWN', title: 'x', labels: ['factory'] });
  const session = h.newSession('live', { log });
  await session.open();
  await session.startLive();
  await h.settle();
  h.fleet.failSpawnOf = undefined;
  h.source.put({ key: 'OK', title: 'x', labels: ['factory'] });
  h.source.put({ key: 'FAIL', title: 'x', labels: ['factory'] });
  await h.clock.advance(10);
  await finishTeam(h, 'OK');
  await finishTeam(h, 'FAIL', 2);
  const finished = new Map(log.records.filter((r) => r.message?.startsWith('team finished')).map((r) => [r.fields.issue, r]));
  assert.deepEqual([...finished].map(([issue, r]) => [issue, r.fields.reason, r.level]).sort(), [
    ['FAIL', 'failed', 'warn'],
    ['OK', 'succeeded', 'info'],
    ['SPAWN', 'spawn-failed', 'warn'],
  ]);
  await session.close();
});

test('an edited issue (new revision) is dispatched again after success; an unchanged one is not', async () => {
  const h = createHarness();
  h.source.put({ key: 'FAC-1', title: 'one', body: 'first', labels: ['factory'] });
  const session = await openLive(h);
  await finishTeam(h, 'FAC-1');
  const firstRevision = session.dispatcher.claim('FAC-1')!.revision;

  h.source.put({ key: 'FAC-1', title: 'one', body: 'first', labels: ['factory'] });
  await h.clock.advance(40_000); // an event pass and a full reconcile
  assert.equal(implementerSpawns(h).length, 1, 'unchanged: not dispatched again');

  h.source.put({ key: 'FAC-1', title: 'one', body: 'second, with more detail', labels: ['factory'] });
  await h.clock.advance(10);
  assert.equal(implementerSpawns(h).length, 2, 'edited: dispatched again');
  const claim = session.dispatcher.claim('FAC-1')!;
  assert.notEqual(claim.revision, firstRevision);
  assert.equal(claim.attempt, 1, 'a new revision starts its attempts over');
  await session.close();
});

test('an edit while a team runs starts no second team; the new revision runs after it', async () => {
  const h = createHarness({ dispatch: { batchSize: 5 } });
  h.source.put({ key: 'FAC-1', title: 'one', body: 'first', labels: ['factory'] });
  const session = await openLive(h);
  h.source.put({ key: 'FAC-1', title: 'one', body: 'edited while running', labels: ['factory'] });
  await h.clock.advance(40_000);
  assert.equal(implementerSpawns(h).length, 1);
  assert.equal(h.fleet.running().length, 1);
  await finishTeam(h, 'FAC-1');
  assert.equal(implementerSpawns(h).length, 2, 'the edited revision is taken up when the first run ends');
  assert.match(h.fleet.find('FAC-1', 'implementer')!.spec.command[1] ?? '', /edited while running/);
  await session.close();
});

test('requeue runs an ended revision again, and is refused while a team runs', async () => {
  const h = createHarness();
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  const session = await openLive(h);
  assert.equal(await session.dispatcher.requeue('FAC-1'), false, 'refused while running');
  await finishTeam(h, 'FAC-1');
  assert.equal(await session.dispatcher.requeue('FAC-1'), true);
  assert.equal((await session.dispatcher.pump()).length, 1);
  await h.settle();
  assert.equal(implementerSpawns(h).length, 2);
  assert.equal(session.dispatcher.claim('FAC-1')!.attempt, 1);
  await session.close();
});

test('supervision: a run past maxRuntimeMs is timed-out; a silent, idle one is stalled; a busy one is left alone', async () => {
  const h = createHarness({ dispatch: { batchSize: 3, maxAttempts: 1 }, runs: { superviseIntervalMs: 1_000, maxRuntimeMs: 60_000, stallLimitMs: 10_000 } });
  for (const key of ['BUSY', 'IDLE']) h.source.put({ key, title: key, labels: ['factory'] });
  const session = await openLive(h);
  const busy = runningAgent(h, 'BUSY', 'implementer');
  const idle = runningAgent(h, 'IDLE', 'implementer');
  for (let second = 1; second <= 65; second++) {
    busy.touch(0, 5); // silent, but burning CPU
    await h.clock.advance(1_000);
    if (second === 9) assert.equal(idle.ended, false, 'not stalled before stallLimitMs');
    if (second === 12) assert.equal(idle.ended, true, 'stalled after stallLimitMs without output or CPU');
    if (second === 59) assert.equal(busy.ended, false, 'busy-but-silent is not a stall');
  }
  assert.equal(busy.ended, true, 'stopped after maxRuntimeMs');
  const reasons = new Map(h.source.writeBacks.map((w) => [w.issue.key, w.outcome.reason]));
  assert.equal(reasons.get('IDLE'), 'stalled');
  assert.equal(reasons.get('BUSY'), 'timed-out');
  await session.close();
});

test('restart: a new session requeues a claim left running by the old epoch and dispatches it once; the old epoch cannot write', async () => {
  const h = createHarness();
  h.source.put({ key: 'FAC-1', title: 'one', labels: ['factory'] });
  const first = await openLive(h);
  const oldAgent = runningAgent(h, 'FAC-1', 'implementer');
  const oldClaim = first.dispatcher.claim('FAC-1')!;
  assert.equal(oldClaim.status, 'running');
  assert.equal(oldClaim.epoch, 1);
  // The first daemon "crashes": it never closes. Its intake stops hearing events.
  await first.intake!.close();

  const second = h.newSession();
  await second.open();
  assert.equal(second.epoch, 2);
  assert.deepEqual(second.predecessor?.requeued, ['FAC-1']);
  const requeued = (await second.deps.store.getClaim('FAC-1'))!;
  assert.equal(requeued.status, 'queued');
  assert.equal(requeued.attempt, 0, 'the interrupted attempt is given back');
  await second.startLive();
  await h.settle();
  assert.equal(implementerSpawns(h).length, 2, 'dispatched again by the new daemon');
  const newClaim = second.dispatcher.claim('FAC-1')!;
  assert.equal(newClaim.status, 'running');
  assert.equal(newClaim.epoch, 2);
  assert.match(newClaim.runId ?? '', /^FAC-1-e2-a1-/);

  // A write from the old epoch is refused…
  await assert.rejects(first.deps.store.apply({ epoch: oldClaim.epoch, claims: [{ ...oldClaim, status: 'succeeded' }] }), (error) => isFactoryError(error, 'FACTORY_STATE_STALE_EPOCH'));
  // …also when the old daemon's team ends (its agent reaped): the new claim stands.
  oldAgent.exit(null, 'SIGKILL');
  await h.settle();
  const stored = (await second.deps.store.getClaim('FAC-1'))!;
  assert.equal(stored.status, 'running');
  assert.equal(stored.runId, newClaim.runId);
  assert.equal(h.fleet.running().filter((a) => a.spec.role === 'implementer').length, 1, 'one team for the issue');

  await finishTeam(h, 'FAC-1');
  assert.equal((await second.deps.store.getClaim('FAC-1'))!.status, 'succeeded');
  await second.close();
  await first.deps.store.close();
});

test('restart: a retry deadline survives a daemon restart, and a team released at stop is requeued without losing an attempt', async () => {
  const h = createHarness({ dispatch: { batchSize: 2, maxAttempts: 2, backoffBaseMs: 5_000 } });
  h.source.put({ key: 'RETRY', title: 'x', labels: ['factory'] });
  h.source.put({ key: 'HELD', title: 'x', labels: ['factory'] });
  const first = await openLive(h);
  await finishTeam(h, 'RETRY', 1);
  const due = first.dispatcher.claim('RETRY')!.nextAttemptAtMs!;
  assert.equal(due, h.clock.now() + 5_000);
  await first.close();

  const second = h.newSession();
  await second.open();
  assert.equal((await second.deps.store.getClaim('HELD'))!.status, 'queued');
  assert.equal((await second.deps.store.getClaim('HELD'))!.attempt, 0);
  assert.equal((await second.deps.store.getClaim('RETRY'))!.nextAttemptAtMs, due);
  await second.startLive();
  await h.settle();
  assert.deepEqual(implementerSpawns(h), ['HELD', 'RETRY', 'HELD'], 'HELD is dispatched again at once; RETRY waits for its backoff');
  await h.clock.advance(due - h.clock.now());
  assert.equal(implementerSpawns(h).filter((k) => k === 'RETRY').length, 2, 'retried on schedule');
  assert.equal(second.dispatcher.claim('RETRY')!.attempt, 2);
  assert.equal(second.dispatcher.claim('HELD')!.attempt, 1);
  await second.close();
});
