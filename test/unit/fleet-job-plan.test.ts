import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jobPlanOf, parseTeamRunJob, TEAM_RUN_JOB_VERSION, teamPlanFromJob } from '../../src/adapters/bullmq/team-run-job.js';
import type { TeamPlan } from '../../src/ports/team-executor.js';

/**
 * A fleet job names roles, never how they run: the control plane's agents
 * (commands, env with API keys, passthrough names, instructions, driver
 * options) stay out of the payload, and the worker runs each role from its own
 * config or refuses the run with the role it lacks.
 */

const SECRET = 'sk-unit-7f3a9c';
const controlPlaneAgents = {
  implementer: {
    command: ['claude'],
    env: { ANTHROPIC_API_KEY: SECRET },
    envPassthrough: ['GH_TOKEN'],
    instruction: `use ${SECRET}`,
    driver: { kind: 'codex' as const, options: { config: [['k', SECRET] as const] } },
  },
  reviewer: { command: ['review'], env: { TOKEN: SECRET } },
};

const plan: TeamPlan = {
  runId: 'FLT-2-e1-a1-abcdef',
  issue: { key: 'FLT-2', title: 't', body: 'b', labels: [], state: 'open', createdAtMs: 1, revision: 'r', location: 'mem:FLT-2' },
  attempt: 1,
  repo: '/srv/repo',
  branch: 'factory/FLT-2',
  stages: [
    { agents: [{ role: 'implementer', slot: 'implementer', agent: controlPlaneAgents.implementer }] },
    { agents: [{ role: 'reviewer', slot: 'reviewer', agent: controlPlaneAgents.reviewer }], review: { maxRounds: 2, reviewers: ['reviewer'] } },
  ],
  runBudget: { maxTokens: 1_000 },
};

test("a job's plan carries the stages by role and slot, the review rule and the budget, and nothing of the agents' config", () => {
  const wire = JSON.stringify({ version: TEAM_RUN_JOB_VERSION, epoch: 1, enqueuedAtMs: 1, plan: jobPlanOf(plan) });
  assert.equal(wire.includes(SECRET), false, 'no env value, instruction or driver option in the payload');
  assert.equal(wire.includes('GH_TOKEN'), false, 'no passthrough name either');
  const parsed = parseTeamRunJob(JSON.parse(wire));
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.job.plan.stages, [
    { agents: [{ role: 'implementer', slot: 'implementer' }] },
    { agents: [{ role: 'reviewer', slot: 'reviewer' }], review: { maxRounds: 2, reviewers: ['reviewer'] } },
  ]);
  assert.deepEqual(parsed.job.plan.runBudget, { maxTokens: 1_000 });
});

test('the worker runs each role as its own config says, and refuses a run naming a role it does not configure', () => {
  const parsed = parseTeamRunJob(JSON.parse(JSON.stringify({ version: TEAM_RUN_JOB_VERSION, epoch: 1, enqueuedAtMs: 1, plan: jobPlanOf(plan) })));
  assert.ok(parsed.ok);
  const workerImplementer = { command: ['claude', '--worker'], env: { ANTHROPIC_API_KEY: 'worker-key' } };
  const workerReviewer = { command: ['review'], env: {} };
  const runnable = teamPlanFromJob(parsed.job.plan, { implementer: workerImplementer, reviewer: workerReviewer });
  assert.ok(runnable.ok);
  assert.deepEqual(
    runnable.plan.stages.map((stage) => stage.agents.map((a) => a.agent)),
    [[workerImplementer], [workerReviewer]],
  );

  const lacking = teamPlanFromJob(parsed.job.plan, { implementer: workerImplementer });
  assert.equal(lacking.ok, false);
  assert.match(lacking.ok ? '' : lacking.reason, /role\(s\) "reviewer", which this config has no agents\.<role> for/);

  // A role named after an Object.prototype member finds nothing there.
  const odd = teamPlanFromJob({ ...parsed.job.plan, stages: [{ agents: [{ role: 'constructor', slot: 'constructor' }] }] }, { implementer: workerImplementer });
  assert.match(odd.ok ? '' : odd.reason, /"constructor"/);
});
