import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../../src/adapters/clock/fake-clock.js';
import { ResumeTimers } from '../../src/core/dispatch/resume-timers.js';
import { automaticResumeAtMs, nextUtcDayStartMs, overDailyBudget, overRunBudget } from '../../src/domain/budgets.js';

const HOUR = 3_600_000;

describe('run and daily budgets', () => {
  it('a run is over its budget at the first limit it reaches; unset limits and unreported cost never trigger', () => {
    assert.equal(overRunBudget({ tokens: 999, costUsd: undefined, turns: 2 }, { maxTokens: 1000, maxTurns: 3, maxCostUsd: 0.01 }), undefined);
    assert.deepEqual(overRunBudget({ tokens: 1000, costUsd: undefined, turns: 2 }, { maxTokens: 1000 }), { kind: 'run-budget', reason: 'used 1000 tokens of budgets.run.maxTokens 1000' });
    assert.deepEqual(overRunBudget({ tokens: 10, costUsd: 0.5, turns: 3 }, { maxTurns: 3 }), { kind: 'run-budget', reason: 'took 3 turns of budgets.run.maxTurns 3' });
    assert.deepEqual(overRunBudget({ tokens: 10, costUsd: 0.25, turns: 1 }, { maxCostUsd: 0.2 }), { kind: 'run-budget', reason: 'cost $0.2500 of budgets.run.maxCostUsd $0.2' });
    assert.equal(overRunBudget({ tokens: 10 ** 9, costUsd: 100, turns: 10 ** 6 }, {}), undefined);
    assert.equal(overDailyBudget(4.99, { maxCostUsd: 5 }), undefined);
    assert.equal(overDailyBudget(5, { maxCostUsd: 5 })?.kind, 'daily-budget');
  });

  it('parked work resumes at the limit reset, at the next UTC day for the daily budget, and only by hand for a run budget', () => {
    const now = Date.UTC(2026, 4, 10, 22, 15);
    assert.equal(nextUtcDayStartMs(now), Date.UTC(2026, 4, 11));
    assert.equal(nextUtcDayStartMs(Date.UTC(2026, 4, 11)), Date.UTC(2026, 4, 12), 'midnight itself is already the new day');
    assert.equal(automaticResumeAtMs({ kind: 'daily-budget', reason: '' }, now), Date.UTC(2026, 4, 11));
    assert.equal(automaticResumeAtMs({ kind: 'usage-limit', reason: '', resetAtMs: now + HOUR }, now), now + HOUR);
    assert.equal(automaticResumeAtMs({ kind: 'usage-limit', reason: '', resetAtMs: now - HOUR }, now), now, 'a reset already past resumes now');
    assert.equal(automaticResumeAtMs({ kind: 'usage-limit', reason: '', resetAtMs: undefined }, now), null);
    assert.equal(automaticResumeAtMs({ kind: 'run-budget', reason: '' }, now), null);
  });
});

describe('resume timers on the fake clock', () => {
  it('resumes each parked issue at its reset time, once, and not at all once disarmed', async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1, 12));
    const resumed: string[] = [];
    const timers = new ResumeTimers(clock, (key) => resumed.push(`${key}@${new Date(clock.now()).toISOString()}`));
    timers.arm('A-1', clock.now() + 2 * HOUR);
    timers.arm('B-2', automaticResumeAtMs({ kind: 'daily-budget', reason: '' }, clock.now())!);
    timers.arm('C-3', clock.now() + HOUR);
    timers.disarm('C-3'); // resumed by hand meanwhile
    timers.arm('A-1', clock.now() + 3 * HOUR); // parked again with a later reset: the earlier timer is gone
    assert.deepEqual([...timers.armed().keys()].sort(), ['A-1', 'B-2']);

    await clock.advance(2 * HOUR + 1);
    assert.deepEqual(resumed, []);
    await clock.advance(HOUR);
    assert.deepEqual(resumed, ['A-1@2026-01-01T15:00:00.000Z']);
    await clock.advance(9 * HOUR);
    assert.deepEqual(resumed, ['A-1@2026-01-01T15:00:00.000Z', 'B-2@2026-01-02T00:00:00.000Z']);
    await clock.advance(48 * HOUR);
    assert.equal(resumed.length, 2, 'each resumes once; C-3 never');
    assert.equal(timers.armed().size, 0);
  });
});
