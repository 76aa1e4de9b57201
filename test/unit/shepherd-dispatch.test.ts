import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FactorySession } from '../../src/core/factory-session.js';
import type { Logger, LogFields } from '../../src/ports/logger.js';
import type { TeamExecution } from '../../src/ports/team-executor.js';
import { createHarness, type Harness } from '../support/session-harness.js';
import { InMemoryCodeHost } from '../support/in-memory-code-host.js';

/**
 * Fix rounds are runs of the dispatcher: a session on fakes with a code host
 * in memory, where the test decides when agents exit, when CI fails and when
 * time passes. Every team start is checked against the slots and the issue's
 * other teams, and the live agents are sampled after every step.
 */

const POLL_MS = 1_000;
const FAILING_TEST = { name: 'test', state: 'failed', conclusion: 'failure', output: 'FAIL src/greet.test.ts\nError: expected "hello" got "helo"' } as const;

interface Watched {
  readonly h: Harness;
  readonly host: InMemoryCodeHost;
  readonly session: FactorySession;
  /** Every team started, in order. */
  readonly starts: TeamExecution[];
  /** Checks the invariants now: at most `batchSize` teams, at most one per issue, live agents of one team per issue. */
  sample(): void;
  /** settle + sample; `ms`: let fake time pass first, one poll at a time. */
  step(ms?: number): Promise<void>;
}

/** A logger that keeps every warning (with its bindings), for assertions on what a person is told. */
class WarningLog implements Logger {
  constructor(
    readonly warnings: { fields: LogFields; message: string }[] = [],
    private readonly bindings: LogFields = {},
  ) {}
  debug(): void {}
  info(): void {}
  error(): void {}
  warn(fields: LogFields, message = ''): void {
    this.warnings.push({ fields: { ...this.bindings, ...fields }, message });
  }
  child(bindings: LogFields): Logger {
    return new WarningLog(this.warnings, { ...this.bindings, ...bindings });
  }
}

async function openWatched(batchSize: number, overrides: Record<string, unknown> = {}): Promise<Watched> {
  const h = createHarness({ dispatch: { batchSize, maxAttempts: 1 }, shepherd: { pollIntervalMs: POLL_MS, maxRounds: 3 }, ...overrides });
  const host = new InMemoryCodeHost();
  const session = h.newSession('live', { codeHost: host, progress: host });
  const starts: TeamExecution[] = [];
  const sample = (): void => {
    const teams = session.dispatcher.teams();
    assert.ok(session.dispatcher.runningTeamCount <= batchSize, `at most ${batchSize} team(s): ${teams.map((team) => team.plan.runId).join(', ')}`);
    const keys = teams.map((team) => team.plan.issue.key);
    assert.equal(new Set(keys).size, keys.length, `one team per issue: ${keys.join(', ')}`);
    // The agents really alive, not only the dispatcher's books: never agents of two runs of one issue.
    const runsByIssue = new Map<string, Set<string>>();
    for (const agent of h.fleet.running()) runsByIssue.set(agent.spec.issueKey, (runsByIssue.get(agent.spec.issueKey) ?? new Set()).add(agent.spec.runId));
    for (const [issueKey, runs] of runsByIssue) assert.equal(runs.size, 1, `live agents of one run for ${issueKey}: ${[...runs].join(', ')}`);
    assert.ok(runsByIssue.size <= batchSize, `live agents of at most ${batchSize} team(s)`);
  };
  await session.open();
  session.dispatcher.observeStarts((team) => {
    starts.push(team);
    sample();
  });
  await session.startLive();
  await h.settle();
  const step = async (ms = 0): Promise<void> => {
    for (let passed = 0; passed < ms; passed += POLL_MS) {
      await h.clock.advance(Math.min(POLL_MS, ms - passed));
      sample();
    }
    await h.settle();
    sample();
  };
  return { h, host, session, starts, sample, step };
}

/** Ends the running team of `key` with success (implementer, then reviewer). */
async function finishTeam(w: Watched, key: string): Promise<void> {
  const implementer = w.h.fleet.find(key, 'implementer');
  assert.ok(implementer && !implementer.ended, `the implementer of ${key} runs`);
  implementer.exit(0);
  await w.step();
  const reviewer = w.h.fleet.find(key, 'reviewer');
  assert.ok(reviewer && !reviewer.ended, `the reviewer of ${key} runs`);
  reviewer.exit(0);
  await w.step();
}

const startsOf = (w: Watched, key: string): string[] => w.starts.filter((team) => team.plan.issue.key === key).map((team) => team.plan.runId);

test('with one slot, a fix round waits for it like any run: never two teams at once, and the round runs once the slot frees', async () => {
  const w = await openWatched(1);
  w.h.source.put({ key: 'A', title: 'first', labels: ['factory'], createdAtMs: w.h.clock.now() - 10_000 });
  await w.step(POLL_MS);
  w.h.source.put({ key: 'B', title: 'second', labels: ['factory'] });
  await w.step(POLL_MS);
  await finishTeam(w, 'A');
  assert.equal(w.session.dispatcher.claim('A')?.status, 'shepherding', 'the pull request is open and followed');
  assert.deepEqual(
    w.session.dispatcher.teams().map((team) => team.plan.issue.key),
    ['B'],
    'B took the slot A freed',
  );

  // CI fails on A's pull request while B holds the only slot: the round is queued on A's claim, and waits.
  w.host.setCheck('A', FAILING_TEST);
  await w.step(2 * POLL_MS);
  const waiting = w.session.dispatcher.claim('A')!;
  assert.equal(waiting.status, 'queued');
  assert.equal(waiting.fix?.round, 1);
  assert.equal(w.session.dispatcher.runningTeamCount, 1);
  assert.equal(startsOf(w, 'A').length, 1, 'no fix round started beside B');
  assert.equal(w.host.record('A')?.rounds[0]?.result, 'queued');
  const api = w.session.shepherd!.snapshot().find((watch) => watch.issueKey === 'A')!;
  assert.equal(api.fixing, true);
  assert.equal(api.rounds[0]!.result, 'queued', 'the API shows the round waiting for a slot');
  await w.step(5 * POLL_MS);
  assert.equal(startsOf(w, 'A').length, 1, 'still waiting while B runs');

  await finishTeam(w, 'B');
  const fix = w.starts.at(-1)!;
  assert.equal(fix.plan.issue.key, 'A', 'the round took the freed slot');
  assert.match(fix.plan.runId, /^A-e\d+-f1-/);
  assert.match(fix.plan.issue.body, /Pull request feedback \(fix round 1 of 3\)[\s\S]*expected "hello" got "helo"/, 'the implementer is told what failed');
  assert.equal(fix.plan.branch, w.host.record('A')!.branch, "on the pull request's branch");
  assert.equal(w.session.shepherd!.snapshot().find((watch) => watch.issueKey === 'A')!.rounds[0]!.result, 'running');
  assert.ok(
    w.h.registries.at(-1)!.agents.some((agent) => agent.runId === fix.plan.runId),
    'its agents are in the registry',
  );

  await finishTeam(w, 'A');
  assert.equal(w.session.dispatcher.claim('A')?.status, 'shepherding');
  const round = w.host.record('A')!.rounds[0]!;
  assert.equal(round.result, 'succeeded');
  assert.equal(round.pushedSha, w.host.head('A'), "the round's commits were pushed to the pull request");
  assert.deepEqual(
    w.host.publishes.map((publish) => [publish.issueKey, publish.fixRound]),
    [
      ['A', null],
      ['B', null],
      ['A', 1],
    ],
  );
  await w.step(3 * POLL_MS);
  assert.equal(startsOf(w, 'A').length, 2, 'the answered commit gets no second round');
  await w.session.close();
});

test('an issue edited while its fix round runs does not start a second team: the new revision waits for the round, then runs', async () => {
  const w = await openWatched(3);
  w.h.source.put({ key: 'A', title: 'first', body: 'Say hello.', labels: ['factory'] });
  await w.step(POLL_MS);
  await finishTeam(w, 'A');
  w.host.setCheck('A', FAILING_TEST);
  await w.step(2 * POLL_MS);
  assert.equal(startsOf(w, 'A').length, 2, 'the fix round runs');
  const fixRun = w.starts.at(-1)!;

  // The issue is edited (a new revision) while the round runs, with slots to spare.
  w.h.source.put({ key: 'A', title: 'first', body: 'Say hello, loudly.', labels: ['factory'] });
  await w.step(POLL_MS);
  await w.h.clock.advance(w.h.config.intake.reconcileIntervalMs);
  await w.step(5 * POLL_MS);
  assert.equal(startsOf(w, 'A').length, 2, 'no second team for the new revision while the round runs');
  assert.equal(w.session.dispatcher.claim('A')?.status, 'running');
  assert.equal(w.session.dispatcher.claim('A')?.runId, fixRun.plan.runId);

  await finishTeam(w, 'A');
  // The round ended: only now the new revision runs, as for an edit during any run.
  const next = w.starts.at(-1)!;
  assert.equal(startsOf(w, 'A').length, 3);
  assert.ok(fixRun.stopReason === undefined, 'the round was not cut short');
  assert.match(next.plan.runId, /^A-e\d+-a1-/, 'a run of the issue itself');
  assert.match(next.plan.issue.body, /loudly/);
  assert.doesNotMatch(next.plan.issue.body, /Pull request feedback/);
  assert.equal(w.host.record('A')!.rounds[0]!.result, 'succeeded');
  await w.session.close();
});

test('a fix round that goes silent is stopped as stalled and tried again on the same failure; when the last round stalls too, a person is asked', async () => {
  const w = await openWatched(2, { runs: { superviseIntervalMs: 1_000, stallLimitMs: 10_000, maxRuntimeMs: 3_600_000 }, shepherd: { pollIntervalMs: POLL_MS, maxRounds: 2 } });
  w.h.source.put({ key: 'A', title: 'first', labels: ['factory'] });
  await w.step(POLL_MS);
  await finishTeam(w, 'A');
  const failingHead = w.host.head('A');
  w.host.setCheck('A', FAILING_TEST);
  await w.step(2 * POLL_MS);
  const fix = w.starts.at(-1)!;
  assert.match(fix.plan.runId, /-f1-/);
  const implementer = w.h.fleet.find('A', 'implementer')!;
  await w.step(8_000);
  assert.equal(implementer.ended, false, 'not stalled before runs.stallLimitMs');
  await w.step(5_000);
  assert.equal(implementer.ended, true, 'stopped after runs.stallLimitMs without output or CPU');
  assert.equal((await fix.outcome).reason, 'stalled');
  const round = w.host.record('A')!.rounds[0]!;
  assert.equal(round.result, 'stalled');
  assert.equal(round.pushedSha, null, 'nothing pushed');
  assert.match(round.detail ?? '', /.+/, "the round keeps the run's reason");
  assert.equal(w.host.publishes.length, 1);

  // Nothing was pushed and the head still fails: a stall is not the fix being wrong, so the same failure goes out again as round 2.
  await w.step(POLL_MS);
  const retry = w.starts.at(-1)!;
  assert.match(retry.plan.runId, /-f2-/, 'the same failure is tried again as the next round');
  assert.match(retry.plan.issue.body, /fix round 2 of 2[\s\S]*expected "hello" got "helo"/);
  assert.equal(w.host.record('A')!.rounds[1]!.onSha, failingHead, 'on the same head');
  assert.equal(w.host.escalations.length, 0);

  // The last round stalls too: no round is left, so a person is asked, told what happened.
  await w.step(13_000);
  assert.equal((await retry.outcome).reason, 'stalled');
  await w.step(POLL_MS);
  assert.equal(w.host.escalations.length, 1, 'escalated once');
  assert.match(w.host.escalations[0]!.text, new RegExp(`^fix round 2 ended without pushing a commit on ${failingHead.slice(0, 7)} \\(stalled: .+\\), and all 2 fix round\\(s\\) are used\\.`));
  assert.match(w.host.escalations[0]!.text, /Round 1 \(ci-failed on `[0-9a-f]{7}`\): check test: failure; result stalled \(.+\)/);
  assert.equal(w.host.stages.filter((entry) => entry.issueKey === 'A').at(-1)?.stage, 'needs-human');
  assert.match(w.session.shepherd!.snapshot().find((watch) => watch.issueKey === 'A')!.escalated ?? '', /fix round 2 ended without pushing/, 'the API shows why');
  await w.step(5 * POLL_MS);
  assert.equal(startsOf(w, 'A').length, 3, 'no round after escalating');
  assert.equal(w.host.escalations.length, 1);
  await w.session.close();
});

test('a fix round that fails without pushing asks a person at the next poll, with the round and its reason, instead of leaving the failing head answered', async () => {
  const w = await openWatched(2);
  w.h.source.put({ key: 'A', title: 'first', labels: ['factory'] });
  await w.step(POLL_MS);
  await finishTeam(w, 'A');
  const failingHead = w.host.head('A');
  w.host.setCheck('A', FAILING_TEST);
  await w.step(2 * POLL_MS);
  const fix = w.starts.at(-1)!;
  assert.match(fix.plan.runId, /-f1-/);
  w.h.fleet.find('A', 'implementer')!.exit(1);
  await w.step(POLL_MS);
  assert.equal((await fix.outcome).reason, 'failed');
  assert.equal(w.host.head('A'), failingHead, 'nothing pushed');

  await w.step(POLL_MS);
  assert.equal(w.host.escalations.length, 1, 'a person is asked');
  assert.match(w.host.escalations[0]!.text, new RegExp(`^fix round 1 ended without pushing a commit on ${failingHead.slice(0, 7)} \\(failed: .+\\)\\.`));
  const record = w.host.record('A')!;
  assert.equal(record.rounds.length, 1, 'a round that failed is not retried');
  assert.equal(record.rounds[0]!.result, 'failed');
  assert.match(record.escalated ?? '', /fix round 1 ended without pushing/);
  assert.equal(w.host.stages.filter((entry) => entry.issueKey === 'A').at(-1)?.stage, 'needs-human');
  assert.equal(w.session.dispatcher.claim('A')?.status, 'shepherding', 'the pull request is still followed (a merge by a person ends it)');
  await w.step(5 * POLL_MS);
  assert.equal(startsOf(w, 'A').length, 2, 'no further round');
  assert.equal(w.host.escalations.length, 1);
  await w.session.close();
});

test('a restart while a fix round waits runs it once, and the shepherd resumes watching without queuing it again', async () => {
  const w = await openWatched(1);
  w.h.source.put({ key: 'A', title: 'first', labels: ['factory'], createdAtMs: w.h.clock.now() - 10_000 });
  await w.step(POLL_MS);
  w.h.source.put({ key: 'B', title: 'second', labels: ['factory'] });
  await w.step(POLL_MS);
  await finishTeam(w, 'A');
  w.host.setCheck('A', FAILING_TEST);
  await w.step(2 * POLL_MS);
  assert.equal(w.session.dispatcher.claim('A')?.fix?.round, 1, 'queued behind B');
  await w.session.close();

  const session = w.h.newSession('live', { codeHost: w.host, progress: w.host });
  await session.open();
  const restarts: TeamExecution[] = [];
  session.dispatcher.observeStarts((team) => restarts.push(team));
  await session.startLive();
  await w.h.settle();
  for (let i = 0; i < 5; i++) await w.h.clock.advance(POLL_MS);
  await w.h.settle();
  // A is the older issue: its round starts first, from the durable claim; B waits.
  assert.deepEqual(
    restarts.map((team) => team.plan.runId.replace(/-e\d+-/, '-').replace(/-[0-9a-f]{6}$/, '')),
    ['A-f1'],
  );
  assert.equal(w.host.record('A')!.rounds.length, 1, 'one round in the record');
  assert.equal(session.dispatcher.runningTeamCount, 1);
  await session.close();
});

test("a poll while a fix round's push is still being recorded waits for it: the comment never shows green beside a round still queued", async () => {
  const w = await openWatched(2);
  w.h.source.put({ key: 'A', title: 'first', labels: ['factory'] });
  await w.step(POLL_MS);
  await finishTeam(w, 'A');
  w.host.setCheck('A', FAILING_TEST);
  await w.step(2 * POLL_MS);
  assert.match(w.starts.at(-1)!.plan.runId, /-f1-/, 'the fix round runs');

  // The round's push lands on the pull request, but the publish call has not returned yet; CI turns green on the new head meanwhile, and polls come.
  const release = w.host.holdPublishes();
  await finishTeam(w, 'A');
  const pushed = w.host.head('A');
  w.host.setCheck('A', { name: 'test', state: 'passed', conclusion: 'success', output: '' });
  await w.step(3 * POLL_MS);
  assert.equal(w.host.record('A')!.rounds[0]!.result, 'queued', 'the round is not recorded before its push returns');
  assert.doesNotMatch(w.host.record('A')!.lastVerdict, /green/, 'no verdict on the new head before the round that pushed it is recorded');

  release();
  await w.step(POLL_MS);
  const record = w.host.record('A')!;
  assert.equal(record.rounds[0]!.result, 'succeeded');
  assert.equal(record.rounds[0]!.pushedSha, pushed);
  assert.equal(record.lastVerdict, `green on ${pushed.slice(0, 7)}; waiting for review`);
  for (const { record: saved } of w.host.savedRecords.filter((entry) => entry.issueKey === 'A')) {
    if (/green/.test(saved.lastVerdict)) assert.equal(saved.rounds[0]?.result, 'succeeded', `a saved record said "${saved.lastVerdict}" with round 1 ${saved.rounds[0]?.result}`);
  }
  await w.session.close();
});

test('pull requests merged or closed while the daemon was down end their claims at the next start; one that cannot be looked up stays shepherding, warned at most once per poll, until it can', async () => {
  const w = await openWatched(3);
  for (const key of ['A', 'B', 'C']) w.h.source.put({ key, title: `issue ${key}`, labels: ['factory'] });
  await w.step(POLL_MS);
  for (const key of ['A', 'B', 'C']) await finishTeam(w, key);
  for (const key of ['A', 'B', 'C']) assert.equal(w.session.dispatcher.claim(key)?.status, 'shepherding');
  await w.session.close();

  // While no daemon runs: A is merged, B closed without merging, C merged but the code host answers errors for it.
  w.host.closeByHand('A', true);
  w.host.closeByHand('B', false);
  w.host.closeByHand('C', true);
  w.host.loadRecordErrors.set('C', new Error('HTTP 502 reading the status comment'));
  w.host.observeErrors.set('C', new Error('HTTP 502 reading the pull request'));
  const log = new WarningLog();
  const session = w.h.newSession('live', { codeHost: w.host, progress: w.host, log });
  await session.open();
  const urlOf = (key: string): string => w.host.record(key)!.pullUrl;
  assert.equal(session.dispatcher.claim('A')?.status, 'succeeded', 'merged: the issue is done');
  assert.equal(session.dispatcher.claim('A')?.lastReason, `pull request merged: ${urlOf('A')}`);
  assert.equal(w.host.stages.filter((entry) => entry.issueKey === 'A').at(-1)?.stage, 'done');
  assert.equal(w.host.record('A')!.merged, true);
  assert.equal(session.dispatcher.claim('B')?.status, 'gave-up', "closed without merging: a person's decision, this revision is not run again");
  assert.equal(session.dispatcher.claim('B')?.lastReason, `pull request closed without merging: ${urlOf('B')}`);
  assert.equal(session.dispatcher.claim('C')?.status, 'shepherding', 'not looked up: still shepherding');
  const warningsForC = () => log.warnings.filter((entry) => entry.fields.issue === 'C' && /could not (find|look at) the pull request/.test(entry.message)).map((entry) => String(entry.fields.err));
  assert.deepEqual(warningsForC(), ['HTTP 502 reading the status comment'], 'the failed lookup is told');

  const restarts: TeamExecution[] = [];
  session.dispatcher.observeStarts((team) => restarts.push(team));
  await session.startLive();
  await w.h.settle();
  // Webhooks make polls more often than the interval: still one warning per interval.
  w.host.loadRecordErrors.delete('C');
  for (let i = 0; i < 3; i++) await session.shepherd!.tick();
  assert.equal(warningsForC().length, 1, 'at most one warning per poll interval');
  assert.equal(session.dispatcher.claim('C')?.status, 'shepherding');
  await w.h.clock.advance(POLL_MS);
  await w.h.settle();
  assert.deepEqual(warningsForC(), ['HTTP 502 reading the status comment', 'HTTP 502 reading the pull request'], 'warned again at the next poll, not silently forever');
  assert.equal(session.dispatcher.claim('C')?.status, 'shepherding');
  assert.deepEqual(
    session.shepherd!.snapshot().map((watch) => [watch.issueKey, watch.lookError]),
    [['C', 'HTTP 502 reading the pull request']],
    'the pull requests that ended are no longer shown; the one not looked at is, with why',
  );

  // The code host answers again: the next poll ends C's claim as merged.
  w.host.observeErrors.delete('C');
  await w.h.clock.advance(POLL_MS);
  await w.h.settle();
  assert.equal(session.dispatcher.claim('C')?.status, 'succeeded');
  assert.equal(w.host.stages.filter((entry) => entry.issueKey === 'C').at(-1)?.stage, 'done');
  await w.h.clock.advance(3 * POLL_MS);
  await w.h.settle();
  assert.equal(warningsForC().length, 2, 'no warning once resolved');
  assert.deepEqual(session.shepherd!.snapshot(), [], 'no longer followed');
  // B's issue is still open and labelled: a reconcile does not run it again (no second pull request for a closed one).
  await w.h.clock.advance(w.h.config.intake.reconcileIntervalMs);
  await w.h.settle();
  assert.deepEqual(
    restarts.map((team) => team.plan.issue.key),
    [],
    'no run started for the ended issues',
  );
  assert.equal(session.dispatcher.claim('B')?.status, 'gave-up');
  await session.close();
});

test('shepherd.trustedReviewers reaches the shepherd: with only owners trusted, a member neither merges nor starts a round; an owner merges', async () => {
  const w = await openWatched(1, { publish: { merge: 'squash' }, shepherd: { pollIntervalMs: POLL_MS, maxRounds: 3, trustedReviewers: { associations: ['OWNER'] } } });
  w.h.source.put({ key: 'A', title: 'first', labels: ['factory'] });
  await w.step(POLL_MS);
  await finishTeam(w, 'A');
  w.host.setCheck('A', { name: 'test', state: 'passed', conclusion: 'success', output: '' });
  w.host.addReview('A', { author: 'alice', association: 'MEMBER', state: 'CHANGES_REQUESTED', body: 'rename it' });
  w.host.addReview('A', { author: 'bob', association: 'MEMBER', state: 'APPROVED', body: 'ship it' });
  await w.step(3 * POLL_MS);
  assert.equal(startsOf(w, 'A').length, 1, "a member's change request starts no round");
  assert.equal(w.session.dispatcher.claim('A')?.status, 'shepherding');
  assert.match(w.host.record('A')!.lastVerdict, /waiting for review/, "a member's approval does not merge");

  w.host.addReview('A', { author: 'olivia', association: 'OWNER', state: 'APPROVED', body: 'ok' });
  await w.step(2 * POLL_MS);
  assert.equal(w.host.record('A')!.merged, true, "the owner's approval merges");
  await w.session.close();
});
