import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeClock, settle } from '../../src/adapters/clock/fake-clock.js';
import { jobPlanOf, parseTeamRunJob, TEAM_RUN_JOB_VERSION, teamPlanFromJob, type TeamRunJob } from '../../src/adapters/bullmq/team-run-job.js';
import { InMemoryFleet } from '../../src/adapters/fleet/in-memory-fleet.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';
import { InMemoryRegistryStore } from '../../src/adapters/node-state/in-memory-node-state.js';
import { FileRunLogStore } from '../../src/adapters/run-logs/file-run-log-store.js';
import { InMemoryWorkspace } from '../../src/adapters/workspace/in-memory-workspace.js';
import { LocalTeamExecutor } from '../../src/core/execution/local-team-executor.js';
import { RegistryKeeper } from '../../src/core/registry-keeper.js';
import { TeamRunWorker } from '../../src/core/worker/team-run-worker.js';
import type { ParkedRun } from '../../src/domain/budgets.js';
import type { RunOutcome } from '../../src/domain/run.js';
import type { TeamPlan } from '../../src/ports/team-executor.js';
import type { ClaimedTeamRun, WorkerRunEvent } from '../../src/ports/team-run-queue.js';
import { ScriptedStreamHost } from '../support/scripted-stream-host.js';
import { createHarness } from '../support/session-harness.js';
import { InMemoryTeamExecutor } from '../../src/adapters/team-executor/in-memory-team-executor.js';

/**
 * Budgets and parking on a fleet worker: the job's plan carries the control
 * plane's run budget and, for a resumed issue, the park record; both must
 * survive the job's serialization (JSON in Redis, parsed with the zod job
 * schema), and the worker's team run must park over the budget exactly as a
 * local run does, then continue the same session when the resumed job comes.
 * The worker runtime runs here on in-memory ports (fleet, workspace, a
 * scripted Claude Code stream) with the queue replaced by a recording claim.
 */

const scratch = mkdtempSync(join(tmpdir(), 'factory-worker-park-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const CLAUDE = { command: ['claude'], env: {}, driver: { kind: 'claude-code', options: { model: 'claude-scripted-1' } } } as const;

function planFor(runId: string, extra: Partial<TeamPlan> = {}): TeamPlan {
  return {
    runId,
    issue: { key: 'FLT-1', title: 'parks on a worker', body: 'do it', labels: ['factory'], state: 'open', createdAtMs: 1, revision: 'r1', location: 'mem:FLT-1' },
    attempt: 1,
    repo: '/srv/repo',
    branch: 'factory/FLT-1',
    stages: [{ agents: [{ role: 'implementer', slot: 'implementer', agent: CLAUDE }] }],
    ...extra,
  };
}

/** What a worker gets out of Redis: the job as JSON, parsed by the job schema, its roles run as the worker's config (the same Claude Code agent) says. */
function throughTheQueue(plan: TeamPlan): TeamPlan {
  const job: TeamRunJob = { version: TEAM_RUN_JOB_VERSION, epoch: 3, enqueuedAtMs: 1_000, plan: jobPlanOf(plan) };
  const parsed = parseTeamRunJob(JSON.parse(JSON.stringify(job)));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  const runnable = teamPlanFromJob(parsed.job.plan, { implementer: CLAUDE });
  assert.ok(runnable.ok, runnable.ok ? '' : runnable.reason);
  return runnable.plan;
}

const PARK: ParkedRun = {
  runId: 'FLT-1-e3-a1-abcdef',
  ref: 'refs/factory/park/FLT-1-e3-a1-abcdef',
  commit: '0123456789abcdef0123456789abcdef01234567',
  trigger: 'run-budget',
  reason: 'used 150 tokens of budgets.run.maxTokens 100',
  resumeAtMs: null,
  stage: 0,
  sessions: { implementer: 'sess-7' },
};

test("a job's plan keeps its resume plan (park record, sessions) and its run budget through serialization; the worker's config gives the agents' driver", () => {
  const plan = planFor('FLT-1-e3-a2-123456', { resume: PARK, runBudget: { maxTokens: 100, maxCostUsd: 2 } });
  assert.deepEqual(throughTheQueue(plan), plan);
  // The review rounds it parked in and where its work is go with it: a resume counts on, and another worker knows whether it can fetch the work.
  const inReview: ParkedRun = { ...PARK, review: { round: 2, changesRequested: { '1': 1 }, comments: 'fix the test' }, placement: { node: 'worker-1', pushed: false, pushError: 'remote refused' } };
  assert.deepEqual(throughTheQueue(planFor('FLT-1-e3-a2-223456', { resume: inReview })).resume, inReview);
  const pressure: ParkedRun = { ...PARK, trigger: 'memory-pressure', commit: null, reason: "the machine's memory pressure has stayed high" };
  assert.deepEqual(throughTheQueue(planFor('FLT-1-e3-a2-654321', { resume: pressure })).resume, pressure);

  const job = (resume: unknown) => ({ version: TEAM_RUN_JOB_VERSION, epoch: 3, enqueuedAtMs: 1, plan: { ...planFor('FLT-1-e3-a2-1'), resume } });
  const refused = parseTeamRunJob(job({ ...PARK, ref: 'refs/heads/main' }));
  assert.equal(refused.ok, false, 'a park ref that is not under refs/factory/park is refused');
  assert.match(refused.ok ? '' : refused.reason, /^plan\.resume\.ref: /);
  const badTrigger = parseTeamRunJob(job({ ...PARK, trigger: 'because' }));
  assert.match(badTrigger.ok ? '' : badTrigger.reason, /^plan\.resume\.trigger: /);
  const badBudget = parseTeamRunJob({ ...job(undefined), plan: { ...planFor('FLT-1-e3-a2-1'), runBudget: { maxTokens: -5 } } });
  assert.match(badBudget.ok ? '' : badBudget.reason, /^plan\.runBudget\.maxTokens: /);
});

/** The worker's side of one queued run, recording what it publishes; the lock is always ours. */
function claimedRun(plan: TeamPlan): { claimed: ClaimedTeamRun; published: WorkerRunEvent[] } {
  const published: WorkerRunEvent[] = [];
  const run = {
    plan,
    epoch: 3,
    enqueuedAtMs: 1_000,
    take: async () => ({ kind: 'taken', currentEpoch: 3, runEpoch: 3 }) as const,
    publish: async (event: WorkerRunEvent) => {
      published.push(event);
      return true;
    },
    renewLock: async () => true,
    cancelRequest: async () => null,
    handBack: async () => false,
  };
  const claimed: ClaimedTeamRun = run;
  return { claimed, published };
}

test(
  "a worker parks a run over the control plane's run budget (work at the park ref, session kept, reported to the control plane) and continues the same session when the resumed job comes",
  { timeout: 20_000 },
  async () => {
    const clock = new FakeClock(Date.UTC(2026, 4, 10, 9, 0));
    const fleet = new InMemoryFleet({ clock });
    const workspace = new InMemoryWorkspace();
    const host = new ScriptedStreamHost();
    const log = createSilentLogger();
    const registry = new RegistryKeeper({ store: new InMemoryRegistryStore(), owner: { pid: 1, startTime: 1, bootId: 'boot', hostname: 'worker-1', epoch: 3 }, clock });
    // As `factory worker` builds it: the worker's own executor knows no budget and no daily spending.
    const executor = new LocalTeamExecutor({ fleet, workspace, registry, clock, log, runLogs: new FileRunLogStore(scratch), killGraceMs: 1_000, noChanges: { allowNoChanges: true }, agentCli: host });
    let highestEpoch = 0;
    const pushedParks: string[] = [];
    const removedParks: string[] = [];
    const worker = new TeamRunWorker({
      executor,
      epochs: { highest: async () => highestEpoch, raise: async (epoch) => void (highestEpoch = Math.max(highestEpoch, epoch)) },
      clock,
      monotonicNow: () => 0,
      node: 'worker-1',
      lockDurationMs: 60_000,
      log,
      pushPark: async (_plan, park) => void pushedParks.push(park.ref),
      deleteRemotePark: async (_plan, park) => void removedParks.push(park.ref),
    });

    const first = claimedRun(throughTheQueue(planFor('FLT-1-e3-a1-abcdef', { runBudget: { maxTokens: 100 } })));
    const handled = worker.handle(first.claimed);
    for (let turn = 0; turn < 50 && !fleet.find('FLT-1', 'implementer'); turn++) await settle();
    const agent = fleet.find('FLT-1', 'implementer')!;
    assert.ok(agent, 'the agent started on the worker');
    host.emit(
      agent.spec.logPath,
      { type: 'system', subtype: 'init', session_id: 'sess-7', model: 'claude-scripted-1' },
      { type: 'assistant', message: { id: 'msg-1', content: [{ type: 'text', text: 'half done' }], usage: { input_tokens: 120, output_tokens: 30 } }, session_id: 'sess-7' },
    );
    const result = await handled;
    assert.equal(result.kind, 'completed');
    const parked = result.kind === 'completed' ? result.outcome : undefined;
    assert.equal(parked?.reason, 'parked', parked?.detail);
    assert.ok(agent.stopRequests > 0, 'the agent was stopped, not left to spend on');
    assert.equal(parked?.park?.trigger, 'run-budget');
    assert.match(parked?.park?.reason ?? '', /^used 150 tokens of budgets\.run\.maxTokens 100$/);
    assert.equal(parked?.park?.ref, 'refs/factory/park/FLT-1-e3-a1-abcdef');
    assert.ok(workspace.parked.has(parked!.park!.ref), "the worktree was committed to the park ref on the worker's clone");
    assert.deepEqual(parked?.park?.sessions, { implementer: 'sess-7' });
    assert.deepEqual(pushedParks, ['refs/factory/park/FLT-1-e3-a1-abcdef'], 'the park ref went to the remote');
    assert.deepEqual(parked?.park?.placement, { node: 'worker-1', pushed: true });
    // What the control plane reads from the run's stream: the outcome with its park, as JSON.
    const reported = first.published.find((event): event is Extract<WorkerRunEvent, { kind: 'outcome' }> => event.kind === 'outcome');
    assert.deepEqual((JSON.parse(JSON.stringify(reported)) as { outcome: RunOutcome }).outcome.park, parked?.park);

    // `factory resume`: the control plane queues the next attempt with the park; the worker restores the work and resumes the session.
    const second = claimedRun(throughTheQueue(planFor('FLT-1-e3-a1-fedcba', { runBudget: { maxTokens: 100 }, resume: parked!.park! })));
    const resumedRun = worker.handle(second.claimed);
    for (let turn = 0; turn < 50 && fleet.find('FLT-1', 'implementer') === agent; turn++) await settle();
    const resumed = fleet.find('FLT-1', 'implementer')!;
    assert.notEqual(resumed, agent);
    const argv = host.commands.at(-1)!;
    assert.equal(argv[argv.indexOf('--resume') + 1], 'sess-7', 'claude --resume continues the parked session on the worker');
    assert.match(argv.at(-1)!, /^Factory paused this run \(used 150 tokens of budgets\.run\.maxTokens 100\) and resumes it now/);
    // A fresh run budget: 60 tokens are within it.
    host.emit(
      resumed.spec.logPath,
      { type: 'system', subtype: 'init', session_id: 'sess-7', model: 'claude-scripted-1' },
      { type: 'assistant', message: { id: 'msg-2', content: [{ type: 'text', text: 'done' }], usage: { input_tokens: 50, output_tokens: 10 } }, session_id: 'sess-7' },
      { type: 'result', subtype: 'success', is_error: false, result: 'done', num_turns: 1, usage: { input_tokens: 50, output_tokens: 10 }, session_id: 'sess-7' },
    );
    await settle();
    resumed.exit(0);
    const finished = await resumedRun;
    assert.equal(finished.kind === 'completed' ? finished.outcome.reason : finished.kind, 'succeeded');
    assert.deepEqual(removedParks, ['refs/factory/park/FLT-1-e3-a1-abcdef'], 'the resumed run ended: its park ref left the remote');
    assert.deepEqual(pushedParks, ['refs/factory/park/FLT-1-e3-a1-abcdef'], 'nothing else was pushed as a park');
  },
);

test('a control plane whose teams run elsewhere puts its budgets.run into every plan it queues (the daily budget stays in its admission)', async () => {
  const h = createHarness({ budgets: { run: { maxTokens: 5000, maxTurns: 20 }, daily: { maxCostUsd: 10 } } });
  const remote = new InMemoryTeamExecutor({ node: 'fleet', clock: h.clock });
  h.source.put({ key: 'REM-1', title: 'runs on a worker', labels: ['factory'] });
  const session = h.newSession('live', { executor: remote });
  await session.open();
  await session.startLive();
  await h.settle();
  assert.deepEqual(
    remote.started.map((plan) => [plan.issue.key, plan.runBudget]),
    [['REM-1', { maxTokens: 5000, maxTurns: 20 }]],
  );
  await session.close();
});
