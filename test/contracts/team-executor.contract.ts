import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { settle } from '../../src/adapters/clock/fake-clock.js';
import type { Issue } from '../../src/domain/issue.js';
import { buildTeamStages } from '../../src/domain/team.js';
import type { RunEvent, TeamExecution, TeamExecutor, TeamPlan } from '../../src/ports/team-executor.js';

/**
 * What every TeamExecutor owes the dispatcher, run against the local executor
 * (on the in-memory fleet) and the in-memory executor alike. (Not named
 * *.test.ts: a suite to call.)
 */
export interface TeamExecutorHarness {
  readonly executor: TeamExecutor;
  /** Ends every running agent of the run with `exitCode` (one stage's worth). */
  endStage(run: TeamExecution, exitCode: number): Promise<void>;
  dispose(): Promise<void>;
}

let plans = 0;
export function planFor(issueKey = `TEX-${++plans}`): TeamPlan {
  const issue = { key: issueKey, revision: `rev-${issueKey}`, title: 'contract', body: '', labels: [], state: 'ready', createdAtMs: 0, location: `/issues/${issueKey}.json` } as unknown as Issue;
  return {
    runId: `${issueKey}-e1-a1-abcdef`,
    issue,
    attempt: 1,
    repo: '/repos/main',
    branch: `factory/${issueKey}`,
    stages: buildTeamStages([['implementer']], { implementer: { command: ['impl'], env: {} } }),
  };
}

export function describeTeamExecutorContract(name: string, makeHarness: () => Promise<TeamExecutorHarness>): void {
  describe(`TeamExecutor contract: ${name}`, () => {
    const withHarness = (title: string, body: (h: TeamExecutorHarness) => Promise<void>): void => {
      it(title, async () => {
        const harness = await makeHarness();
        try {
          await body(harness);
        } finally {
          await harness.dispose();
        }
      });
    };

    withHarness('a run is placed on the executor’s node, listed while it goes, and streams stage, agent and outcome events in order', async (h) => {
      const plan = planFor();
      const run = h.executor.start(plan);
      assert.equal(run.placement.node, h.executor.node);
      assert.equal(run.plan.runId, plan.runId);
      await settle();
      assert.deepEqual(
        (await h.executor.listRunning()).map((r) => [r.runId, r.issueKey, r.placement.node]),
        [[plan.runId, plan.issue.key, h.executor.node]],
      );
      const events: RunEvent[] = [];
      run.subscribe((event) => events.push(event));
      assert.deepEqual(
        events.map((e) => e.kind),
        ['stage-started', 'agent-started'],
        'a late subscriber gets the events so far',
      );
      const started = events[1]!;
      assert.ok(started.kind === 'agent-started' && started.agent.role === 'implementer' && started.agent.placement.node === h.executor.node);
      assert.deepEqual(
        run.runningAgents().map((a) => a.role),
        ['implementer'],
      );
      await h.endStage(run, 0);
      const outcome = await run.outcome;
      assert.equal(outcome.reason, 'succeeded');
      assert.equal(outcome.runId, plan.runId);
      assert.deepEqual(
        events.map((e) => e.kind),
        ['stage-started', 'agent-started', 'agent-exited', 'outcome'],
      );
      await settle();
      assert.deepEqual(await h.executor.listRunning(), [], 'an ended run is no longer listed');
    });

    withHarness('cancel ends the run with the first reason given', async (h) => {
      const run = h.executor.start(planFor());
      await settle();
      await run.cancel('stalled');
      await run.cancel('released');
      assert.equal(run.stopReason, 'stalled');
      assert.equal((await run.outcome).reason, 'stalled');
    });

    withHarness('activity is sampled asynchronously and is never before the run started', async (h) => {
      const run = h.executor.start(planFor());
      await settle();
      const sampled = run.sampleActivity();
      assert.ok(sampled instanceof Promise);
      assert.ok((await sampled) >= run.startedAtMs);
      await run.cancel('released');
    });
  });
}
