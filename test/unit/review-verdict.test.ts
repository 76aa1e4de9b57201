import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { teamStagesFor } from '../../src/config/team.js';
import { claimAfterOutcome } from '../../src/domain/claim-lifecycle.js';
import { decideStageReview, parseVerdictText, readReviewerVerdict, reworkStageFor, verdictFromFinalMessage } from '../../src/domain/review.js';
import { claimFor } from '../support/daemon-files.js';

const agent = (reviews?: boolean) => ({ command: ['x'], env: {}, ...(reviews === undefined ? {} : { reviews }) });

describe('review verdicts', () => {
  it('reads approve and request-changes, with comments as text or a list', () => {
    assert.deepEqual(parseVerdictText('{"verdict":"approve"}'), { ok: true, verdict: { verdict: 'approve', comments: '', source: 'file' } });
    assert.deepEqual(parseVerdictText('{"verdict":"request-changes","comments":["add a test","rename x"]}'), {
      ok: true,
      verdict: { verdict: 'request-changes', comments: '- add a test\n- rename x', source: 'file' },
    });
  });

  it('refuses what is not a verdict, saying why', () => {
    const reasons = ['', 'ok', '[1]', '{"verdict":"lgtm"}', '{"verdict":"request-changes"}', '{"verdict":"approve","comments":7}'].map((text) => {
      const reading = parseVerdictText(text);
      return reading.ok ? 'ok' : reading.reason;
    });
    assert.deepEqual(reasons, [
      'not JSON: (empty)',
      'not JSON: ok',
      'not a JSON object',
      '"verdict" must be one of "approve", "request-changes", got "lgtm"',
      '"request-changes" needs "comments" saying what to change',
      '"comments" must be a string or an array of strings',
    ]);
  });

  it('a missing file approves (exit 0), unless the final message holds a verdict; an invalid file names the reviewer', () => {
    assert.deepEqual(readReviewerVerdict({ role: 'reviewer', fileText: undefined }), { ok: true, verdict: { verdict: 'approve', comments: '', source: 'exit-code' } });
    const fromMessage = readReviewerVerdict({ role: 'reviewer', fileText: undefined, finalMessage: 'Done.\n```json\n{"verdict": "request-changes", "comments": "missing test {edge}"}\n```' });
    assert.deepEqual(fromMessage, { ok: true, verdict: { verdict: 'request-changes', comments: 'missing test {edge}', source: 'final-message' } });
    assert.equal(verdictFromFinalMessage('all good {not json}'), undefined);
    assert.deepEqual(readReviewerVerdict({ role: 'security', fileText: 'nope' }), { ok: false, reason: 'security wrote an invalid verdict to FACTORY_REVIEW_FILE: not JSON: nope' });
  });

  it("one request-changes in a review stage sends the work back with every requesting reviewer's comments", () => {
    const ok = (verdict: 'approve' | 'request-changes', comments = '') => ({ ok: true as const, verdict: { verdict, comments, source: 'file' as const } });
    assert.deepEqual(decideStageReview([{ role: 'a', reading: ok('approve') }]), { kind: 'approve' });
    assert.deepEqual(
      decideStageReview([
        { role: 'a', reading: ok('approve') },
        { role: 'b', reading: ok('request-changes', 'fix b') },
      ]),
      { kind: 'request-changes', comments: 'fix b' },
    );
    assert.deepEqual(
      decideStageReview([
        { role: 'a', reading: ok('request-changes', 'fix a') },
        { role: 'b', reading: ok('request-changes', 'fix b') },
      ]),
      { kind: 'request-changes', comments: '## a\n\nfix a\n\n## b\n\nfix b' },
    );
    assert.deepEqual(
      decideStageReview([
        { role: 'a', reading: ok('approve') },
        { role: 'b', reading: { ok: false, reason: 'bad' } },
      ]),
      { kind: 'invalid', reason: 'bad' },
    );
  });
});

describe('review stages from the config', () => {
  it('the reviewer role reviews by default; any role can with reviews: true; rework goes back to the stages after the previous review', () => {
    const stages = teamStagesFor({
      agents: { implementer: agent(), tester: agent(), reviewer: agent(), security: agent(true), docs: agent() },
      dispatch: { teamMode: 'sequential' },
      team: { stages: [['implementer'], ['tester'], ['reviewer', 'security'], ['docs'], ['reviewer']] },
      review: { maxRounds: 3 },
    });
    assert.deepEqual(
      stages.map((s) => s.review),
      [undefined, undefined, { maxRounds: 3, reviewers: ['reviewer', 'security'] }, undefined, { maxRounds: 3, reviewers: ['reviewer-2'] }],
    );
    assert.equal(reworkStageFor(stages, 2), 0);
    assert.equal(reworkStageFor(stages, 4), 3);
  });

  it('a reviewer in the same parallel stage as the implementer has nobody to send back; reviews: false turns the default off', () => {
    const parallel = teamStagesFor({ agents: { implementer: agent(), reviewer: agent() }, dispatch: { teamMode: 'parallel' } });
    assert.equal(reworkStageFor(parallel, 0), undefined);
    const off = teamStagesFor({ agents: { implementer: agent(), reviewer: agent(false) }, dispatch: { teamMode: 'sequential' } });
    assert.deepEqual(
      off.map((s) => s.review),
      [undefined, undefined],
    );
  });

  it('changes-requested ends the claim without a retry, with the reason', () => {
    const claim = claimFor('REV-1', { status: 'running', attempt: 1 });
    const next = claimAfterOutcome(
      claim,
      { reason: 'changes-requested', detail: 'changes requested after 2 review round(s)' },
      { maxAttempts: 3, backoffBaseMs: 1, backoffMaxMs: 1 },
      { epoch: 1, nowMs: 5 },
    );
    assert.equal(next.status, 'gave-up');
    assert.equal(next.lastReason, 'changes-requested: changes requested after 2 review round(s)');
  });
});
