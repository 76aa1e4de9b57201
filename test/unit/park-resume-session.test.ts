import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import { resolveWallClockTime } from '../../src/domain/agent-events/codex-parser.js';
import type { RunOutcome } from '../../src/domain/run.js';
import { createHarness, type Harness } from '../support/session-harness.js';
import { ScriptedStreamHost } from '../support/scripted-stream-host.js';

/**
 * Parking and resuming on the fake clock, through a live FactorySession: the
 * agent is a CLI driver whose stream the test writes line by line (a fake
 * host in place of the run log), on the in-memory fleet and workspace with a
 * real SQLite state store. Proves the automatic resume at a usage limit's
 * reset time, re-armed by a restarted daemon from the durable parked claim,
 * and the daily budget holding starts until the next UTC day.
 */

const CODEX = { driver: 'codex', command: ['codex'], codex: { model: 'gpt-scripted' } };

/** The issue's latest outcomes, newest first, as the state database has them once the session settled. */
async function outcomeOf(h: Harness, issueKey: string, count: number): Promise<RunOutcome[]> {
  await h.settle();
  const store = new SqliteStateStore(h.stateDb);
  try {
    return (await store.recentOutcomes(50)).filter((outcome) => outcome.issueKey === issueKey).slice(0, count);
  } finally {
    await store.close();
  }
}

test('codex at its usage limit: the run parks with the thread id and resumes by itself at the reset time, as `codex exec resume <thread>`; a restarted daemon re-arms the resume', async () => {
  const h = createHarness({ agents: { implementer: CODEX } });
  await h.clock.advance(Date.UTC(2026, 4, 10, 9, 0) - h.clock.now());
  const host = new ScriptedStreamHost();
  h.source.put({ key: 'LIM-1', title: 'hits the limit', labels: ['factory'] });
  let session = h.newSession('live', { agentCli: host });
  await session.open();
  await session.startLive();
  await h.settle();
  const first = h.fleet.find('LIM-1', 'implementer')!;
  const limitText = "You've hit your usage limit. Upgrade to Pro or try again at 3:00 PM.";
  host.emit(
    first.spec.logPath,
    { type: 'thread.started', thread_id: 'thread-42' },
    { type: 'turn.started' },
    { type: 'item.completed', item: { id: 'i1', type: 'command_execution', command: 'bash -lc "echo half > half.txt"', aggregated_output: '', exit_code: 0, status: 'completed' } },
    { type: 'error', message: limitText },
    { type: 'turn.failed', error: { message: limitText } },
  );
  await h.settle();
  first.exit(1);
  await h.settle();
  const expectedReset = resolveWallClockTime('3:00 PM', h.clock.now(), -new Date(h.clock.now()).getTimezoneOffset())!;
  const [parked] = await outcomeOf(h, 'LIM-1', 1);
  assert.equal(parked?.reason, 'parked', parked?.detail);
  assert.equal(parked.park?.trigger, 'usage-limit');
  assert.equal(parked.park?.resumeAtMs, expectedReset);
  assert.deepEqual(parked.park?.sessions, { implementer: 'thread-42' });
  assert.equal(parked.park?.ref, `refs/factory/park/${parked.runId}`);
  assert.ok(h.workspace.parked.has(parked.park!.ref), 'the work was committed to the park ref');
  const claim = session.dispatcher.claim('LIM-1')!;
  assert.equal(claim.status, 'parked');
  assert.match(claim.lastReason!, /^parked \(usage-limit\): You've hit your usage limit.*resumes by itself at /);

  // The daemon restarts before the reset: the resume is re-armed from the stored claim.
  await session.close();
  session = h.newSession('live', { agentCli: host });
  await session.open();
  await session.startLive();
  await h.settle();
  assert.equal(session.dispatcher.resumeTimes().get('LIM-1'), expectedReset);
  assert.equal(h.fleet.running().length, 0, 'nothing runs before the reset');
  await h.clock.advance(expectedReset - h.clock.now() - 1);
  assert.equal(h.fleet.running().length, 0, 'not a millisecond early');
  await h.clock.advance(1);
  await h.settle();
  const second = h.fleet.find('LIM-1', 'implementer')!;
  assert.notEqual(second, first);
  assert.ok(!second.ended, 'resumed at the reset time');
  const resumedArgv = host.commands.at(-1)!;
  assert.deepEqual(resumedArgv.slice(0, 4), ['codex', 'exec', 'resume', '--json']);
  assert.equal(resumedArgv[resumedArgv.indexOf('--') - 1], 'thread-42', 'the same thread continues');
  assert.match(resumedArgv.at(-1)!, /^Factory paused this run \(.*usage limit.*\) and resumes it now/);
  host.emit(second.spec.logPath, { type: 'thread.started', thread_id: 'thread-42' }, { type: 'turn.started' }, { type: 'turn.completed', usage: { input_tokens: 10, output_tokens: 5 } });
  second.exit(0);
  const [done] = await outcomeOf(h, 'LIM-1', 1);
  assert.equal(done?.reason, 'succeeded', done?.detail);
  assert.equal(session.dispatcher.claim('LIM-1')?.status, 'succeeded');
  assert.equal(session.dispatcher.claim('LIM-1')?.park, null);
  await session.close();
});

test('a run over budgets.daily.maxCostUsd parks until the next UTC day; new starts wait with the reason and go the next day', async () => {
  const h = createHarness({
    agents: { implementer: { driver: 'claude-code', command: ['claude'] } },
    budgets: { daily: { maxCostUsd: 1 } },
    runs: { superviseIntervalMs: 60_000 },
    dispatch: { batchSize: 2 },
  });
  await h.clock.advance(Date.UTC(2026, 4, 10, 22, 0) - h.clock.now());
  const host = new ScriptedStreamHost();
  h.source.put({ key: 'DAY-1', title: 'spends the day', labels: ['factory'] });
  const session = h.newSession('live', { agentCli: host });
  await session.open();
  await session.startLive();
  await h.settle();
  const agent = h.fleet.find('DAY-1', 'implementer')!;
  // Claude Code reports its cost in the result; 1.25 USD is over the day's 1 USD.
  host.emit(
    agent.spec.logPath,
    { type: 'system', subtype: 'init', session_id: 'sess-day', model: 'm' },
    { type: 'assistant', message: { id: 'msg-1', content: [{ type: 'text', text: 'working' }], usage: { input_tokens: 100, output_tokens: 10 } }, session_id: 'sess-day' },
    { type: 'result', subtype: 'success', is_error: false, result: 'partial', num_turns: 1, total_cost_usd: 1.25, usage: { input_tokens: 100, output_tokens: 10 }, session_id: 'sess-day' },
  );
  await h.settle();
  const [parked] = await outcomeOf(h, 'DAY-1', 1);
  assert.equal(parked?.reason, 'parked', parked?.detail);
  assert.equal(parked.park?.trigger, 'daily-budget');
  assert.equal(parked.park?.resumeAtMs, Date.UTC(2026, 4, 11));
  assert.match(parked.park!.reason, /^today's runs cost \$1\.2500 of budgets\.daily\.maxCostUsd \$1$/);
  assert.equal(agent.stopRequests > 0, true, 'the agent was stopped');

  // Today is spent: a new issue waits, with why, and does not start.
  h.source.put({ key: 'DAY-2', title: 'waits for tomorrow', labels: ['factory'] });
  await h.clock.advance(60_000);
  await h.settle();
  assert.equal(h.fleet.find('DAY-2', 'implementer'), undefined);
  assert.match(session.heldReasons().get('DAY-2') ?? '', /^waiting for the daily budget: today's runs cost \$1\.2500 of budgets\.daily\.maxCostUsd \$1; starts again at 2026-05-11T00:00:00\.000Z$/);

  // The next UTC day: the parked run resumes its session, and the waiting one starts.
  await h.clock.advance(Date.UTC(2026, 4, 11) - h.clock.now());
  await h.settle();
  await h.clock.advance(60_000);
  await h.settle();
  const resumed = h.fleet.find('DAY-1', 'implementer')!;
  assert.notEqual(resumed, agent);
  assert.ok(!resumed.ended);
  assert.ok(
    host.commands.some((command) => command.includes('--resume') && command[command.indexOf('--resume') + 1] === 'sess-day'),
    'claude --resume sess-day',
  );
  assert.ok(h.fleet.find('DAY-2', 'implementer'), 'the held issue started on the new day');
  await session.close();
});

test('a run parked in its second review round resumes in that round after a daemon restart: review.maxRounds counts the rounds before the park too', async () => {
  const h = createHarness({
    agents: { implementer: { driver: 'claude-code', command: ['claude'] }, reviewer: { command: ['review', '{{issueKey}}'] } },
    budgets: { run: { maxTokens: 100 } },
    review: { maxRounds: 2 },
    runs: { allowNoChanges: true },
  });
  const host = new ScriptedStreamHost();
  h.source.put({ key: 'REV-1', title: 'reviewed twice', labels: ['factory'] });
  let session = h.newSession('live', { agentCli: host });
  await session.open();
  await session.startLive();
  await h.settle();

  /** The reviewer now running: asks for changes in the round Factory told it, and exits. */
  const reviewerRequestsChanges = async (expectedRound: string): Promise<void> => {
    const reviewer = h.fleet.find('REV-1', 'reviewer')!;
    assert.ok(reviewer && !reviewer.ended, 'the reviewer runs');
    assert.equal(reviewer.spec.env.FACTORY_REVIEW_ROUND, expectedRound);
    // The in-memory fleet makes no folders: the verdict goes beside the logs, as a real agent would write it.
    mkdirSync(dirname(reviewer.spec.env.FACTORY_REVIEW_FILE!), { recursive: true });
    writeFileSync(reviewer.spec.env.FACTORY_REVIEW_FILE!, JSON.stringify({ verdict: 'request-changes', comments: `fix it (round ${expectedRound})` }));
    reviewer.exit(0);
    await h.settle();
  };
  /** The implementer now running reports `tokens` in one turn (and finishes when `finish`). */
  const implementerWorks = async (tokens: number, finish: boolean): Promise<void> => {
    const implementer = h.fleet.find('REV-1', 'implementer')!;
    assert.ok(implementer && !implementer.ended, 'the implementer runs');
    host.emit(
      implementer.spec.logPath,
      { type: 'system', subtype: 'init', session_id: 'sess-rev', model: 'm' },
      { type: 'assistant', message: { id: `msg-${host.commands.length}`, content: [{ type: 'text', text: 'working' }], usage: { input_tokens: tokens, output_tokens: 0 } }, session_id: 'sess-rev' },
      ...(finish ? [{ type: 'result', subtype: 'success', is_error: false, result: 'done', num_turns: 1, usage: { input_tokens: tokens, output_tokens: 0 }, session_id: 'sess-rev' }] : []),
    );
    await h.settle();
    if (finish) implementer.exit(0);
    await h.settle();
  };

  // Round 1: the implementer works (40 tokens of a 100-token run budget), the reviewer asks for changes.
  await implementerWorks(40, true);
  await reviewerRequestsChanges('1');
  // Round 2: the implementer goes over the run budget mid-way: the run parks.
  await implementerWorks(120, false);
  const [parked] = await outcomeOf(h, 'REV-1', 1);
  assert.equal(parked?.reason, 'parked', parked?.detail);
  assert.deepEqual(parked.park?.review, { round: 2, changesRequested: { '1': 1 }, comments: 'fix it (round 1)' });

  // The daemon restarts; the park (with its rounds) comes back from the state database, and a person resumes it.
  await session.close();
  session = h.newSession('live', { agentCli: host });
  await session.open();
  await session.startLive();
  await h.settle();
  assert.deepEqual(session.dispatcher.claim('REV-1')?.park?.review, { round: 2, changesRequested: { '1': 1 }, comments: 'fix it (round 1)' });
  assert.deepEqual(await session.dispatcher.resume('REV-1', 'resumed by hand (factory resume)'), { resumed: true });
  await h.settle();
  const resumedImplementer = h.fleet.find('REV-1', 'implementer')!;
  assert.equal(resumedImplementer.spec.env.FACTORY_REVIEW_ROUND, '2', 'the resumed implementer is still in round 2');
  await implementerWorks(10, true);
  // The second request for changes is the last one review.maxRounds 2 allows: no third round.
  await reviewerRequestsChanges('2');
  const [ended] = await outcomeOf(h, 'REV-1', 1);
  assert.equal(ended?.reason, 'changes-requested', ended?.detail);
  assert.match(ended.detail, /after 2 review round\(s\) \(review\.maxRounds 2\)/);
  assert.equal(h.fleet.agents.filter((a) => a.spec.issueKey === 'REV-1' && a.spec.role === 'implementer').length, 3, 'round 1, round 2 parked, round 2 resumed; never a round 3');
  await session.close();
});
