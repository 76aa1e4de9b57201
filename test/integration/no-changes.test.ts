import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createScratchProject, git, REPO_ROOT, type ScratchProject } from '../support/sandbox.js';

/**
 * A real agent process that exits 0 without a commit, through the real CLI on
 * a scratch git project: the run is `no-changes` (exit 1, not retried, its own
 * reason everywhere) unless the config or the issue's label allows it.
 */

const WORK_BRIEFLY = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'work-briefly.mjs');
const projects: ScratchProject[] = [];
after(() => {
  for (const project of projects) rmSync(project.dir, { recursive: true, force: true });
});

function project(name: string, runs: Record<string, unknown> = {}): ScratchProject {
  // One stage only: an agent that does not commit, so the branch keeps no commit of its own.
  const created = createScratchProject(name, { agents: { implementer: { command: [process.execPath, WORK_BRIEFLY, '40'] } }, team: { stages: [['implementer']] }, runs });
  projects.push(created);
  return created;
}

interface Outcome {
  readonly issueKey: string;
  readonly reason: string;
  readonly detail: string;
}

function factory(args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO_ROOT, env, encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function runOnce(p: ScratchProject): { code: number | null; outcomes: Outcome[]; decisions: { issueKey: string; action: string }[] } {
  const result = factory(['run-once', '--json', '--config', p.configPath]);
  assert.ok(result.stdout.trim().startsWith('{'), `run-once printed a report (exit ${result.code}): ${result.stderr}`);
  const report = JSON.parse(result.stdout) as { outcomes: Outcome[]; decisions: { issueKey: string; action: string }[] };
  return { code: result.code, outcomes: report.outcomes, decisions: report.decisions };
}

test('an agent that exits 0 without a commit ends no-changes: exit 1, not retried, its own reason in the report, status and outcome file', () => {
  const p = project('no-changes');
  p.writeIssue('IDLE-1');
  const first = runOnce(p);
  assert.equal(first.code, 1, 'run-once exits 1 when a team ended without changes');
  assert.deepEqual(
    first.outcomes.map((o) => [o.issueKey, o.reason]),
    [['IDLE-1', 'no-changes']],
  );
  assert.match(first.outcomes[0]!.detail, /exited 0 but left no commit on factory\/IDLE-1/);
  assert.equal(git(p.repo, 'rev-list', '--count', 'main..factory/IDLE-1').trim(), '0', 'the branch really has no commit of its own');

  const outcomeFile = readFileSync(join(p.issuesDir, 'IDLE-1.outcome.md'), 'utf8');
  assert.match(outcomeFile, /^# IDLE-1: no-changes$/m);
  assert.match(outcomeFile, /\*\*Outcome:\*\* no-changes/);

  const status = factory(['status', '--json', '--config', p.configPath]);
  assert.equal(status.code, 0, status.stderr);
  const snapshot = JSON.parse(status.stdout) as { recentOutcomes: Outcome[]; queue: unknown[]; retries: unknown[] };
  assert.deepEqual(
    snapshot.recentOutcomes.map((o) => [o.issueKey, o.reason]),
    [['IDLE-1', 'no-changes']],
  );
  assert.deepEqual([snapshot.queue.length, snapshot.retries.length], [0, 0], 'not queued for a retry');
  assert.match(factory(['status', '--config', p.configPath]).stdout, /IDLE-1 +no-changes/);

  const second = runOnce(p);
  assert.equal(second.code, 0);
  assert.deepEqual(second.outcomes, [], 'the same revision is not run again');
  assert.deepEqual(
    second.decisions.map((d) => [d.issueKey, d.action]),
    [['IDLE-1', 'already-handled']],
  );
});

test('runs.allowNoChanges, or the runs.allowNoChangesLabel on the issue, lets such a run succeed', () => {
  const allowed = project('no-changes-allowed', { allowNoChanges: true });
  allowed.writeIssue('IDLE-2');
  const all = runOnce(allowed);
  assert.equal(all.code, 0);
  assert.deepEqual(
    all.outcomes.map((o) => [o.issueKey, o.reason]),
    [['IDLE-2', 'succeeded']],
  );
  assert.match(all.outcomes[0]!.detail, /0 commit\(s\) this run on factory\/IDLE-2/);

  const byLabel = project('no-changes-label', { allowNoChangesLabel: 'no-code' });
  byLabel.writeIssue('CHECK-1', { labels: ['factory', 'No-Code'] });
  byLabel.writeIssue('IDLE-3');
  const labelled = runOnce(byLabel);
  assert.equal(labelled.code, 1, 'the unlabelled issue still fails the run');
  assert.deepEqual(labelled.outcomes.map((o) => [o.issueKey, o.reason]).sort(), [
    ['CHECK-1', 'succeeded'],
    ['IDLE-3', 'no-changes'],
  ]);
});
