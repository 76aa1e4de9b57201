import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  claimAfterCancel,
  claimAfterCrash,
  claimAfterIntake,
  claimAfterOutcome,
  claimAfterPublish,
  claimAfterPullClosed,
  claimAfterReorder,
  claimAfterRequeue,
  claimAfterResume,
  claimForFixRound,
  claimOnOpen,
  claimOnStart,
  compareClaimsForDispatch,
  describeWait,
  isDueForStart,
  type WaitContext,
} from '../../src/domain/claim-lifecycle.js';
import { ACTIVE_CLAIM_STATUSES, CLAIM_STATUSES, type ClaimStatus, type IssueClaim } from '../../src/domain/claim.js';
import type { Issue } from '../../src/domain/issue.js';
import { RUN_OUTCOME_REASONS, type RunOutcomeReason } from '../../src/domain/run.js';

const T0 = Date.UTC(2026, 0, 1);
const stamp = { epoch: 7, nowMs: T0 + 1_000 };
const retry = { maxAttempts: 3, backoffBaseMs: 1_000, backoffMaxMs: 60_000 };

function claim(overrides: Partial<IssueClaim> = {}): IssueClaim {
  return {
    issueKey: 'FAC-1',
    revision: 'rev-1',
    status: 'running',
    attempt: 1,
    nextAttemptAtMs: null,
    runId: 'FAC-1-e6-a1-abc',
    repo: '/repos/main',
    priority: 2,
    createdAtMs: T0 - 50_000,
    updatedAtMs: T0 - 10_000,
    lastReason: null,
    epoch: 6,
    interruptions: 1,
    node: 'local',
    ...overrides,
  };
}

test('every outcome reason leads to exactly one next status, by attempt', () => {
  // [reason, attempt, expected status, expected attempt, retry due at, lastReason pattern]
  const table: [RunOutcomeReason, number, ClaimStatus, number, number | null, RegExp][] = [
    ['succeeded', 1, 'succeeded', 1, null, /^all good$/],
    ['released', 2, 'queued', 1, null, /^released by daemon stop$/],
    ['released', 0, 'queued', 0, null, /released/],
    ['cancelled', 1, 'cancelled', 1, null, /^all good$/],
    ['failed', 1, 'retry-wait', 1, stamp.nowMs + 1_000, /^failed: all good$/],
    ['timed-out', 2, 'retry-wait', 2, stamp.nowMs + 2_000, /^timed-out: /],
    ['stalled', 2, 'retry-wait', 2, stamp.nowMs + 2_000, /^stalled: /],
    ['spawn-failed', 1, 'retry-wait', 1, stamp.nowMs + 1_000, /^spawn-failed: /],
    ['failed', 3, 'gave-up', 3, null, /^failed on attempt 3 of 3: all good$/],
    ['stalled', 3, 'gave-up', 3, null, /^stalled on attempt 3 of 3/],
    ['spawn-failed', 4, 'gave-up', 4, null, /^spawn-failed on attempt 4 of 3/],
    ['no-changes', 1, 'gave-up', 1, null, /^no-changes: all good$/],
    ['no-changes', 3, 'gave-up', 3, null, /^no-changes: /],
    ['oom', 1, 'gave-up', 1, null, /^oom: all good$/],
    ['changes-requested', 1, 'gave-up', 1, null, /^changes-requested: all good$/],
    ['parked', 2, 'parked', 1, null, /^parked: all good$/],
  ];
  for (const reason of RUN_OUTCOME_REASONS)
    assert.ok(
      table.some(([covered]) => covered === reason),
      `the table covers ${reason}`,
    );
  for (const [reason, attempt, status, nextAttempt, dueAt, lastReason] of table) {
    const next = claimAfterOutcome(claim({ attempt }), { reason, detail: 'all good' }, retry, stamp);
    const label = `${reason} on attempt ${attempt}`;
    assert.equal(next.status, status, label);
    assert.equal(next.attempt, nextAttempt, label);
    assert.equal(next.status === 'retry-wait' ? next.nextAttemptAtMs : null, dueAt, label);
    assert.match(next.lastReason ?? '', lastReason, label);
    assert.equal(next.interruptions, 0, `${label}: a run that ended breaks the crash streak`);
    assert.equal(next.node, null, `${label}: an ended run has no placement`);
    assert.equal(next.epoch, 7, label);
    assert.equal(next.updatedAtMs, stamp.nowMs, label);
    assert.equal(next.runId, 'FAC-1-e6-a1-abc', `${label}: the run id names the last run`);
  }
});

test('backoff doubles per attempt and is capped', () => {
  const dueIn = (attempt: number) =>
    claimAfterOutcome(claim({ attempt }), { reason: 'failed', detail: 'x' }, { maxAttempts: 100, backoffBaseMs: 1_000, backoffMaxMs: 5_000 }, stamp).nextAttemptAtMs! - stamp.nowMs;
  assert.deepEqual([1, 2, 3, 4, 10].map(dueIn), [1_000, 2_000, 4_000, 5_000, 5_000]);
});

test('a crash requeues the claim with its attempt given back, until maxCrashInterruptions in a row give it up', () => {
  const table: [number, ClaimStatus, number, number][] = [
    // [interruptions before, status after, attempt after, interruptions after]
    [0, 'queued', 1, 1],
    [1, 'queued', 1, 2],
    [2, 'gave-up', 2, 3],
    [5, 'gave-up', 2, 6],
  ];
  for (const [before, status, attempt, after] of table) {
    const next = claimAfterCrash(claim({ attempt: 2, interruptions: before }), { maxCrashInterruptions: 3 }, stamp);
    assert.equal(next.status, status, `after ${before} interruptions`);
    assert.equal(next.attempt, attempt, `after ${before} interruptions`);
    assert.equal(next.interruptions, after);
    assert.equal(next.runId, null);
    assert.equal(next.node, null);
    assert.equal(next.epoch, 7);
  }
  assert.match(claimAfterCrash(claim({ interruptions: 2 }), { maxCrashInterruptions: 3 }, stamp).lastReason!, /interrupted by 3 daemon crashes in a row.*factory dispatch FAC-1 --force/);
  assert.equal(claimAfterCrash(claim({ interruptions: undefined }), { maxCrashInterruptions: 3 }, stamp).interruptions, 1, 'an old claim without a count starts at 0');
});

test('intake, start, cancel and requeue', () => {
  const issue = { key: 'FAC-9', revision: 'rev-9', priority: 4, createdAtMs: T0 - 5 } as Issue;
  const queued = claimAfterIntake(issue, { repo: '/repos/api', routedBy: 'label "api"' }, stamp);
  assert.deepEqual(queued, {
    issueKey: 'FAC-9',
    revision: 'rev-9',
    status: 'queued',
    attempt: 0,
    nextAttemptAtMs: null,
    runId: null,
    repo: '/repos/api',
    priority: 4,
    createdAtMs: T0 - 5,
    updatedAtMs: stamp.nowMs,
    lastReason: 'routed by label "api"',
    epoch: 7,
    interruptions: 0,
    node: null,
  });
  const running = claimOnStart({ ...queued, status: 'retry-wait', nextAttemptAtMs: T0, attempt: 1, interruptions: 2 }, { runId: 'run-2', node: 'worker-a' }, stamp);
  assert.equal(running.status, 'running');
  assert.equal(running.attempt, 2);
  assert.equal(running.runId, 'run-2');
  assert.equal(running.node, 'worker-a');
  assert.equal(running.nextAttemptAtMs, null);
  assert.equal(running.lastReason, null);
  assert.equal(running.interruptions, 2, 'a start does not break a crash streak; only an ended run does');

  const cancelled = claimAfterCancel(claim({ status: 'retry-wait', nextAttemptAtMs: T0, epoch: 3 }), 'left scope: closed', stamp);
  assert.equal(cancelled.status, 'cancelled');
  assert.equal(cancelled.nextAttemptAtMs, null);
  assert.equal(cancelled.lastReason, 'left scope: closed');
  assert.equal(cancelled.epoch, 7, 'a claim of an earlier epoch is written under the current one');

  const requeued = claimAfterRequeue(claim({ status: 'gave-up', attempt: 3 }), stamp);
  assert.equal(requeued.status, 'queued');
  assert.equal(requeued.attempt, 0);
  assert.equal(requeued.lastReason, 'requeued by hand');
});

test('transitions never change the claim they are given', () => {
  const original = claim();
  const frozen = Object.freeze({ ...original });
  claimAfterOutcome(frozen, { reason: 'failed', detail: 'x' }, retry, stamp);
  claimAfterCrash(frozen, { maxCrashInterruptions: 3 }, stamp);
  claimAfterCancel(frozen, 'x', stamp);
  claimAfterRequeue(frozen, stamp);
  claimOnStart(frozen, { runId: 'r', node: 'local' }, stamp);
  assert.deepEqual(frozen, original);
});

test('on open: only running claims of an earlier epoch are resolved; local ones as crashes, others attached', () => {
  for (const status of CLAIM_STATUSES) {
    const expected = status === 'running' ? 'resolve-local-crash' : 'keep';
    assert.equal(claimOnOpen(claim({ status, epoch: 6 }), 7, 'local'), expected, status);
  }
  assert.equal(claimOnOpen(claim({ status: 'running', epoch: 7 }), 7, 'local'), 'keep', 'this epoch’s own claim');
  assert.equal(claimOnOpen(claim({ status: 'running', node: 'worker-a' }), 7, 'local'), 'attach');
  assert.equal(claimOnOpen(claim({ status: 'running', node: null }), 7, 'local'), 'resolve-local-crash', 'claims from before placements were local');
});

test('which claims wait for a slot', () => {
  const due = CLAIM_STATUSES.filter((status) => isDueForStart(claim({ status, nextAttemptAtMs: stamp.nowMs }), stamp.nowMs));
  assert.deepEqual(due, ['queued', 'retry-wait']);
  assert.equal(isDueForStart(claim({ status: 'retry-wait', nextAttemptAtMs: stamp.nowMs + 1 }), stamp.nowMs), false, 'not before its deadline');
  assert.deepEqual([...ACTIVE_CLAIM_STATUSES], ['queued', 'running', 'retry-wait', 'parked', 'shepherding'], 'a claim whose pull request is followed is still in play');
});

test('a run over its budget parks the claim with its work and sessions; a resume queues it with the park; any other outcome or a forced requeue drops the park', () => {
  const park = {
    runId: 'FAC-1-e6-a2-abc',
    ref: 'refs/factory/park/FAC-1-e6-a2-abc',
    commit: 'c0ffee',
    trigger: 'usage-limit' as const,
    reason: 'usage limit reached',
    resumeAtMs: Date.UTC(2026, 0, 1, 15),
    stage: 0,
    sessions: { implementer: 'sess-1' },
  };
  const parked = claimAfterOutcome(claim({ attempt: 2 }), { reason: 'parked', detail: 'x', park }, retry, stamp);
  assert.equal(parked.status, 'parked');
  assert.equal(parked.attempt, 1, 'a park is not a failed attempt');
  assert.deepEqual(parked.park, park);
  assert.equal(parked.lastReason, 'parked (usage-limit): usage limit reached; resumes by itself at 2026-01-01T15:00:00.000Z (or `factory resume FAC-1` now)');
  assert.equal(describeWait(parked, { nowMs: stamp.nowMs, slots: null, noDaemon: '', position: 0, maxAttempts: 3 }), parked.lastReason);
  assert.equal(isDueForStart(parked, stamp.nowMs + 10 ** 9), false, 'a parked claim never starts by itself: a resume queues it');
  const byHand = claimAfterOutcome(claim(), { reason: 'parked', detail: 'x', park: { ...park, trigger: 'run-budget', resumeAtMs: null } }, retry, stamp);
  assert.match(byHand.lastReason!, /resume it with `factory resume FAC-1`$/);

  const resumed = claimAfterResume(parked, 'resumed by hand', stamp);
  assert.equal(resumed.status, 'queued');
  assert.deepEqual(resumed.park, park, 'the next start continues the parked run');
  assert.equal(resumed.lastReason, 'resumed by hand');
  const running = claimOnStart(resumed, { runId: 'FAC-1-e7-a2-def', node: 'local' }, stamp);
  assert.deepEqual(running.park, park, 'kept while it runs: a crash mid-resume resumes again');
  assert.deepEqual(claimAfterOutcome(running, { reason: 'released', detail: 'x' }, retry, stamp).park, park);
  assert.equal(claimAfterOutcome(running, { reason: 'succeeded', detail: 'x' }, retry, stamp).park, null);
  assert.equal(claimAfterOutcome(running, { reason: 'failed', detail: 'x' }, retry, stamp).park, null);
  assert.equal(claimAfterRequeue(parked, stamp).park, null, '--force starts over');
  assert.throws(() => claimAfterResume(claim({ status: 'queued' }), 'x', stamp), /only a parked claim resumes/);
});

test('dispatch order: priority (none last), then age, then key; and why a waiting claim has not started', () => {
  const waiting = [
    claim({ issueKey: 'NOPRIO', priority: null, createdAtMs: T0 - 9_000 }),
    claim({ issueKey: 'P2-NEW', priority: 2, createdAtMs: T0 - 1_000 }),
    claim({ issueKey: 'P2-OLD-B', priority: 2, createdAtMs: T0 - 5_000 }),
    claim({ issueKey: 'P2-OLD-A', priority: 2, createdAtMs: T0 - 5_000 }),
    claim({ issueKey: 'P0', priority: 0, createdAtMs: T0 }),
  ];
  assert.deepEqual(
    [...waiting].sort(compareClaimsForDispatch).map((c) => c.issueKey),
    ['P0', 'P2-OLD-A', 'P2-OLD-B', 'P2-NEW', 'NOPRIO'],
  );

  const context: WaitContext = { nowMs: stamp.nowMs, slots: { busy: 3, total: 4 }, noDaemon: 'the daemon is stale', position: 0, maxAttempts: 3 };
  const queued = claim({ status: 'queued', attempt: 0 });
  const table: [IssueClaim, Partial<WaitContext>, string][] = [
    [queued, {}, 'next to start: 3 of 4 slots busy'],
    [queued, { position: 1 }, 'waiting for a slot: 3 of 4 busy'],
    [queued, { slots: { busy: 4, total: 4 } }, 'waiting for a slot: 4 of 4 busy'],
    [queued, { slots: null }, 'waiting for a daemon: the daemon is stale'],
    [claim({ status: 'retry-wait', attempt: 1, nextAttemptAtMs: Date.UTC(2026, 0, 1, 12) }), {}, 'retrying at 2026-01-01T12:00:00.000Z (attempt 2 of 3)'],
    [claim({ status: 'retry-wait', attempt: 2, nextAttemptAtMs: stamp.nowMs }), { slots: { busy: 4, total: 4 } }, 'waiting for a slot: 4 of 4 busy (attempt 3 of 3)'],
  ];
  for (const [subject, overrides, expected] of table) assert.equal(describeWait(subject, { ...context, ...overrides }), expected);

  const moved = claimAfterReorder(claim({ status: 'queued', priority: 5 }), { priority: 0, createdAtMs: T0 - 1 }, stamp);
  assert.equal(moved.priority, 0);
  assert.equal(moved.createdAtMs, T0 - 1);
  assert.equal(moved.status, 'queued');
  assert.equal(moved.revision, 'rev-1', 'the same revision: a priority edit is not new work');
});

test('shepherding: a published claim follows its pull request; a fix round queues it with the round; every fix outcome leads back to the shepherd, a cancel or the stop', () => {
  const fix = {
    round: 2,
    trigger: 'ci-failed',
    onSha: 'abcdef1234567',
    failures: ['check test: failure'],
    fingerprints: ['test\nerror'],
    branch: 'factory/fac-1',
    feedback: '## Pull request feedback',
  };
  const succeeded = claimAfterOutcome(claim({ attempt: 1 }), { reason: 'succeeded', detail: 'done' }, retry, stamp);
  const shepherding = claimAfterPublish(succeeded, 'https://github.test/acme/api/pull/2', stamp);
  assert.equal(shepherding.status, 'shepherding');
  assert.equal(shepherding.lastReason, 'pull request open: https://github.test/acme/api/pull/2');
  assert.equal(claimAfterPublish(shepherding, 'u', stamp).status, 'shepherding', 'a publish again after a restart changes nothing');
  assert.throws(() => claimAfterPublish(claim({ status: 'queued' }), 'u', stamp), /only a succeeded claim is published/);
  assert.equal(isDueForStart(shepherding, stamp.nowMs + 10 ** 9), false, 'no team starts for a pull request by itself');
  assert.equal(claimOnOpen({ ...shepherding, epoch: 1 }, 7, 'local'), 'keep', 'a restart keeps following it');

  const queued = claimForFixRound(shepherding, fix, stamp);
  assert.equal(queued.status, 'queued');
  assert.deepEqual(queued.fix, fix);
  assert.equal(queued.attempt, 0);
  assert.equal(isDueForStart(queued, stamp.nowMs), true, 'the round waits for a slot like any run');
  assert.match(queued.lastReason!, /^fix round 2 \(ci-failed on abcdef1\)$/);
  assert.throws(() => claimForFixRound(claim({ status: 'running' }), fix, stamp), /only a shepherding claim starts a fix round/);
  assert.throws(() => claimForFixRound(succeeded, fix, stamp), /only a shepherding claim/);
  const running = claimOnStart(queued, { runId: 'FAC-1-e7-f2-abc', node: 'local' }, stamp);
  assert.equal(running.status, 'running');
  assert.deepEqual(running.fix, fix, 'kept while it runs');
  const crashed = claimAfterCrash(running, { maxCrashInterruptions: 3 }, stamp);
  assert.equal(crashed.status, 'queued');
  assert.deepEqual(crashed.fix, fix, 'a crash runs the same round again, once');

  // [reason, status, keeps the round]
  const table: [RunOutcomeReason, ClaimStatus, boolean][] = [
    ['succeeded', 'shepherding', false],
    ['failed', 'shepherding', false],
    ['timed-out', 'shepherding', false],
    ['stalled', 'shepherding', false],
    ['spawn-failed', 'shepherding', false],
    ['oom', 'shepherding', false],
    ['no-changes', 'shepherding', false],
    ['changes-requested', 'shepherding', false],
    ['cancelled', 'cancelled', false],
    ['released', 'queued', true],
    ['parked', 'parked', true],
  ];
  for (const reason of RUN_OUTCOME_REASONS)
    assert.ok(
      table.some(([covered]) => covered === reason),
      `the fix table covers ${reason}`,
    );
  for (const [reason, status, keeps] of table) {
    const next = claimAfterOutcome(running, { reason, detail: 'why' }, { ...retry, maxAttempts: 1 }, stamp);
    assert.equal(next.status, status, `fix round ${reason}`);
    assert.equal(next.fix ?? null, keeps ? fix : null, `fix round ${reason}: the round ${keeps ? 'is kept' : 'is cleared'}`);
    if (status === 'shepherding') assert.equal(next.lastReason, `fix round 2 ${reason}: why`, 'not retried and never given up: the shepherd judges the next head');
  }

  assert.equal(claimAfterPullClosed(shepherding, true, 'u', stamp)?.status, 'succeeded');
  assert.equal(claimAfterPullClosed(shepherding, false, 'u', stamp)?.status, 'gave-up', 'closed by a person: this revision is not run again');
  assert.equal(claimAfterPullClosed(claimAfterCancel(shepherding, 'left scope: closed', stamp), true, 'u', stamp)?.status, 'succeeded', 'the issue closing with the merge may be seen first');
  assert.equal(claimAfterPullClosed(running, true, 'u', stamp), undefined, 'a running round ends first');
  assert.equal(claimAfterCancel(queued, 'left scope', stamp).fix, null);
  assert.equal(claimAfterRequeue(queued, stamp).fix, null);
});
