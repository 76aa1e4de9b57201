import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createScratchProject, REPO_ROOT } from '../support/sandbox.js';

test('factory triage shows the team as configured in team.stages, with the prompt of the agent that starts the work', () => {
  const project = createScratchProject('triage-stages', {
    agents: {
      planner: { command: ['plan', '--role', '{{role}}', '{{prompt}}'], instruction: 'Write the plan into PLAN.md first.' },
      implementer: { command: ['impl', '{{prompt}}'], instruction: 'Follow PLAN.md.' },
    },
    team: { stages: [['planner'], ['implementer']] },
  });
  after(() => rmSync(project.dir, { recursive: true, force: true }));
  project.writeIssue('PLAN-1');
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const run = (json: boolean) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'triage', 'PLAN-1', '--config', project.configPath, ...(json ? ['--json'] : [])], {
      cwd: REPO_ROOT,
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
  const text = run(false);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /planner \(stage 1\): \["plan","--role","planner","<prompt>"\]/);
  assert.match(text.stdout, /implementer \(stage 2\): \["impl","<prompt>"\]/);
  assert.match(text.stdout, /--- planner prompt ---/);
  assert.match(text.stdout, /Write the plan into PLAN\.md first\./);
  assert.doesNotMatch(text.stdout, /Follow PLAN\.md\./, 'the prompt shown is the first agent’s, not the implementer’s');
  const json = JSON.parse(run(true).stdout) as { agents: { stage: number; role: string }[]; prompt: string };
  assert.deepEqual(
    json.agents.map((a) => [a.stage, a.role]),
    [
      [1, 'planner'],
      [2, 'implementer'],
    ],
  );
  assert.match(json.prompt, /Write the plan into PLAN\.md first\./);
});
