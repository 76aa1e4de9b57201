import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { waitFor } from '../support/sandbox.js';
import { finishedRuns, useFleetPerTest, type TestFleet } from '../fixtures/fleet/harness.js';

/**
 * A worker pushes a succeeded run's branch to the repo's remote (a local bare
 * repo here), and only while it holds the run's lock: a worker that lost it
 * pushes nothing, even when its agents finished the work.
 */

const fleets = useFleetPerTest();

/** The commit subjects on `branch` in the bare remote, newest first; empty when the branch is not there. */
function remoteSubjects(f: TestFleet, branch: string): string[] {
  try {
    return execFileSync('git', ['--git-dir', join(f.project.dir, 'remote.git'), 'log', '--format=%s', `refs/heads/${branch}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter(Boolean);
  } catch {
    return [];
  }
}

test("a succeeded run's branch is pushed to the remote by its worker", { timeout: 60_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 300, bareRemote: true });
  await f.startWorker('w1');
  f.project.writeIssue('PUSH-1');
  const finished = await waitFor('the run to finish', () => finishedRuns(f.controlPlane)[0], 30_000);
  assert.equal(finished.reason, 'succeeded', f.controlPlane.stderr().slice(-1_500));
  const branches = execFileSync('git', ['--git-dir', join(f.project.dir, 'remote.git'), 'for-each-ref', '--format=%(refname:short)', 'refs/heads'], { encoding: 'utf8' });
  const runBranch = branches.split('\n').find((b) => b.includes('PUSH-1'));
  assert.ok(runBranch, `the run's branch is on the remote: ${branches}`);
  assert.equal(remoteSubjects(f, runBranch)[0], `work of ${finished.run}`);
});

test('a worker that lost its lock pushes nothing, even though its agents finished their work', { timeout: 90_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 3_000, lockDurationMs: 2_000, stalledIntervalMs: 500, bareRemote: true });
  const w1 = await f.startWorker('w1');
  f.project.writeIssue('PUSH-2');
  const first = await waitFor('the first run to start on w1', () => f.traceLines().find((l) => l.what === 'start'), 30_000);
  w1.child.kill('SIGSTOP');
  await f.startWorker('w2');
  // The frozen worker's agent keeps going and commits its work; the run moves to w2 meanwhile.
  await waitFor('the first agent to finish its work', () => f.traceLines().some((l) => l.what === 'end' && l.runId === first.runId), 30_000);
  const second = await waitFor('another worker to run it', () => f.traceLines().find((l) => l.what === 'start' && l.runId !== first.runId), 30_000);
  w1.child.kill('SIGCONT');
  const finished = await waitFor('the second run to succeed', () => finishedRuns(f.controlPlane).find((r) => r.run === second.runId), 60_000);
  assert.equal(finished.reason, 'succeeded');
  await waitFor('the woken worker to fence itself', () => /self-fenced/.test(w1.stderr()), 10_000);
  // Give a wrongful push every chance to land before looking.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const refs = execFileSync('git', ['--git-dir', join(f.project.dir, 'remote.git'), 'for-each-ref', '--format=%(refname:short)', 'refs/heads'], { encoding: 'utf8' })
    .split('\n')
    .filter((b) => b.includes('PUSH-2'));
  const subjects = refs.flatMap((branch) => remoteSubjects(f, branch));
  assert.ok(subjects.includes(`work of ${second.runId}`), `the run that held the lock pushed: ${subjects.join(' | ')}`);
  assert.ok(!subjects.includes(`work of ${first.runId}`), `the fenced run pushed nothing: ${subjects.join(' | ')}`);
  assert.doesNotMatch(w1.stderr(), /branch pushed/);
});
