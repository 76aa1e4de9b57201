import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failureFingerprint, judgePull, type PullCheck, type PullObservation, type ShepherdRecord, type ShepherdRound } from '../../src/domain/shepherd.js';

/** The shepherd's pure rules for a head commit that already had a fix round. */

const HEAD = 'a'.repeat(40);
const POLICY = { maxRounds: 3 };
const FAILING: PullCheck = { name: 'test', state: 'failed', conclusion: 'failure', output: 'Error: expected "hello" got "helo"' };

function observed(checks: readonly PullCheck[]): PullObservation {
  return { number: 7, state: 'open', draft: false, headSha: HEAD, checks, reviews: [] };
}

function roundOn(sha: string, result: string, fields: Partial<ShepherdRound> = {}): ShepherdRound {
  return {
    round: 1,
    trigger: 'ci-failed',
    onSha: sha,
    failures: ['check test: failure'],
    fingerprints: [failureFingerprint(FAILING.name, FAILING.output)],
    result,
    pushedSha: null,
    atMs: 0,
    ...fields,
  };
}

function recordWith(...rounds: ShepherdRound[]): ShepherdRecord {
  return {
    pullNumber: 7,
    pullUrl: 'https://code.test/pull/7',
    branch: 'factory/A',
    rounds: rounds.map((round, index) => ({ ...round, round: index + 1 })),
    escalated: null,
    lastVerdict: '',
    merged: false,
  };
}

test('a round that ended without pushing, on a head that still fails, asks a person with its result and reason', () => {
  for (const result of ['failed', 'no-changes', 'oom', 'spawn-failed']) {
    const verdict = judgePull(observed([FAILING]), recordWith(roundOn(HEAD, result, { detail: 'implementer exited 1' })), POLICY);
    assert.deepEqual(verdict, { kind: 'escalate', onSha: HEAD, reason: `fix round 1 ended without pushing a commit on aaaaaaa (${result}: implementer exited 1)` }, result);
  }
});

test('a round that "succeeded" but pushed its own head again pushed nothing: escalated too', () => {
  const verdict = judgePull(observed([FAILING]), recordWith(roundOn(HEAD, 'succeeded', { pushedSha: HEAD })), POLICY);
  assert.equal(verdict.kind, 'escalate');
  assert.match((verdict as { reason: string }).reason, /^fix round 1 ended without pushing a commit on aaaaaaa \(succeeded\)$/);
});

test('a round cut short (stalled, timed out) is retried on the same failure while rounds remain, then escalated', () => {
  for (const result of ['stalled', 'timed-out']) {
    const retried = judgePull(observed([FAILING]), recordWith(roundOn(HEAD, result)), POLICY);
    assert.equal(retried.kind, 'fix', `${result}: not "the same failure came back": the round never pushed a fix`);
    assert.match((retried as { feedback: string }).feedback, /fix round 2 of 3/);
    const last = judgePull(observed([FAILING]), recordWith(roundOn('b'.repeat(40), 'succeeded', { pushedSha: HEAD }), roundOn(HEAD, result), roundOn(HEAD, result, { detail: 'no output' })), POLICY);
    assert.deepEqual(last, { kind: 'escalate', onSha: HEAD, reason: `fix round 3 ended without pushing a commit on aaaaaaa (${result}: no output), and all 3 fix round(s) are used` });
  }
});

test('the head of an unpushed round is judged on its checks first (still running waits, green is green); a round pending, cancelled by a person, or that pushed leaves it answered', () => {
  const record = recordWith(roundOn(HEAD, 'failed'));
  assert.equal(judgePull(observed([{ ...FAILING, state: 'pending', conclusion: 'in_progress' }]), record, POLICY).kind, 'wait');
  assert.deepEqual(judgePull(observed([{ ...FAILING, state: 'passed', conclusion: 'success' }]), record, POLICY), { kind: 'green', onSha: HEAD, approved: false });
  for (const round of [roundOn(HEAD, 'queued'), roundOn(HEAD, 'running'), roundOn(HEAD, 'cancelled'), roundOn(HEAD, 'succeeded', { pushedSha: 'c'.repeat(40) })]) {
    assert.equal(judgePull(observed([FAILING]), recordWith(round), POLICY).kind, 'wait', round.result);
  }
});

test('a round that never ran to its end (interrupted, superseded) answered nothing: the head gets a round', () => {
  for (const result of ['interrupted', 'superseded']) {
    assert.equal(judgePull(observed([FAILING]), recordWith(roundOn(HEAD, result)), POLICY).kind, 'fix', result);
  }
});
