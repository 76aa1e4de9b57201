import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runFactoryCli } from '../support/factory-cli.js';
import { git, waitFor } from '../support/sandbox.js';
import { finishedRuns, useFleetPerTest, type TestFleet, type WorkerProcess } from '../fixtures/fleet/harness.js';

/**
 * A fleet worker applies worktree retention to the worktrees it made (real
 * control plane, real `factory worker`, real redis-server, a bare remote the
 * worker clones): an issue with no run on the worker whose worktree nobody
 * touched for `workspace.keepFinishedForMs` loses it, its branch stays in the
 * worker's clone and what was uncommitted goes to a leftover ref; an issue
 * running on the worker and a recent worktree keep theirs. `factory prune` on
 * the worker's config (worker stopped) applies the same rule without Redis.
 */

// The worker's info lines carry the retention pass's summary, which says a whole pass is over.
process.env.FLEET_TEST_LOG_LEVEL = 'info';

const fleets = useFleetPerTest();
const DAY_MS = 86_400_000;

/** The folder of the worker's worktree for `issueKey` (`<state.dir>/worktrees/<clone>-<hash>/<KEY>`), whether or not it still exists. */
function worktreeOf(worker: WorkerProcess, issueKey: string): string {
  const root = join(worker.dir, '.factory', 'worktrees');
  const [cloneFolder] = readdirSync(root);
  return join(root, cloneFolder!, issueKey);
}

/** The worker's clone of the remote (one repo routed). */
function cloneOf(worker: WorkerProcess): string {
  const [clone] = readdirSync(join(worker.dir, 'repos'));
  return join(worker.dir, 'repos', clone!);
}

/** The files retention reads a worktree's last touch from: its folder and git's HEAD, index and HEAD log for it. */
function touchedFiles(worktree: string): string[] {
  const adminDir = git(worktree, 'rev-parse', '--absolute-git-dir').trim();
  return [worktree, join(adminDir, 'HEAD'), join(adminDir, 'index'), join(adminDir, 'logs', 'HEAD')].filter((path) => existsSync(path));
}

/** Makes a worktree look untouched for `days`. */
function age(worktree: string, days: number): void {
  const when = new Date(Date.now() - days * DAY_MS);
  for (const path of touchedFiles(worktree)) utimesSync(path, when, when);
}

async function runToSuccess(f: TestFleet, issueKey: string): Promise<void> {
  f.project.writeIssue(issueKey);
  const finished = await waitFor(`${issueKey} to finish`, () => finishedRuns(f.controlPlane).find((run) => run.run.startsWith(`${issueKey}-`)), 30_000);
  assert.equal(finished.reason, 'succeeded', f.controlPlane.stderr().slice(-1_500));
}

/** Retention passes the worker logged as over (each removed something). */
function passesOver(worker: WorkerProcess): number {
  return worker
    .stderr()
    .split('\n')
    .filter((line) => line.includes('"worktree retention pass"')).length;
}

test("a worker removes an old worktree of an issue it no longer runs, keeping its branch and uncommitted work, and never a running or recent issue's", { timeout: 120_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 200, bareRemote: true, slots: 2, batchSize: 2, extraConfig: { workspace: { keepFinishedForMs: DAY_MS, pruneIntervalMs: 200 } } });
  const w1 = await f.startWorker('w1');
  await runToSuccess(f, 'OLD-1');
  await runToSuccess(f, 'RECENT-1');
  // RUN-1's agent keeps working until the hold file goes.
  const hold = `${f.trace}.hold-RUN-1`;
  writeFileSync(hold, '');
  f.project.writeIssue('RUN-1');
  await waitFor('RUN-1 to start on w1', () => f.traceLines().some((line) => line.what === 'start' && line.runId.startsWith('RUN-1-')), 30_000);

  const old = worktreeOf(w1, 'OLD-1');
  const running = worktreeOf(w1, 'RUN-1');
  const recent = worktreeOf(w1, 'RECENT-1');
  const oldBranchHead = git(cloneOf(w1), 'rev-parse', 'factory/OLD-1').trim();
  writeFileSync(join(old, 'half-done.txt'), 'the agent left this\n');
  const passesBefore = passesOver(w1);
  // RUN-1's first: any pass that lists OLD-1 as old lists RUN-1 as old too.
  age(running, 10);
  age(old, 10);

  await waitFor('the worker to remove the old worktree', () => !existsSync(old), 30_000);
  // The pass that removed it looked at every worktree before it logged its summary.
  await waitFor('that retention pass to be over', () => passesOver(w1) > passesBefore, 30_000);
  assert.equal(existsSync(running), true, 'the worktree of an issue running on the worker stays, however old');
  const runningTouchedMs = Math.max(...touchedFiles(running).map((path) => statSync(path).mtimeMs));
  assert.ok(runningTouchedMs < Date.now() - 9 * DAY_MS, 'it still looked untouched for days: only its run kept it');
  assert.equal(existsSync(recent), true, 'a worktree touched within the period stays');

  const clone = cloneOf(w1);
  assert.equal(git(clone, 'rev-parse', 'factory/OLD-1').trim(), oldBranchHead, 'the branch and its commits stay in the clone');
  assert.doesNotMatch(git(clone, 'worktree', 'list', '--porcelain'), /OLD-1/);
  const [leftover] = git(clone, 'for-each-ref', '--format=%(refname)', 'refs/factory/leftover/').split('\n').filter(Boolean);
  assert.match(leftover ?? '', /^refs\/factory\/leftover\/OLD-1-\d{8}T\d{6}Z$/);
  assert.equal(git(clone, 'show', `${leftover}:half-done.txt`), 'the agent left this\n', 'what was uncommitted is in the leftover ref');
  assert.match(w1.stderr(), /removed the worktree of a finished issue; its branch is kept/);

  // Released, RUN-1 finishes normally in the worktree the pass left alone.
  rmSync(hold);
  await waitFor('RUN-1 to finish', () => finishedRuns(f.controlPlane).find((run) => run.run.startsWith('RUN-1-')), 30_000).then((run) => assert.equal(run.reason, 'succeeded'));
});

test("`factory prune` on a stopped worker's config applies the worker's rule and needs no Redis", { timeout: 120_000 }, async () => {
  // Retention off in the worker, so only the prune below removes anything.
  const f = await fleets.start({ agentWorkMs: 200, bareRemote: true, extraConfig: { workspace: { keepFinishedForMs: 'never' } } });
  const w1 = await f.startWorker('w1');
  await runToSuccess(f, 'OLD-2');
  await runToSuccess(f, 'RECENT-2');
  w1.child.kill('SIGTERM');
  assert.equal((await w1.exited).code, 0, w1.stderr());
  const old = worktreeOf(w1, 'OLD-2');
  const recent = worktreeOf(w1, 'RECENT-2');
  writeFileSync(join(old, 'half-done.txt'), 'the agent left this\n');
  age(old, 10);

  // A worker host cleaned during a Redis outage: the same config, its Redis unreachable.
  const config = JSON.parse(readFileSync(w1.configPath, 'utf8')) as { fleet: { redis: { url: string } } };
  config.fleet.redis.url = 'redis://127.0.0.1:1/0';
  writeFileSync(w1.configPath, JSON.stringify(config, null, 2));
  const result = await runFactoryCli(['prune', '--older-than', '1d', '--config', w1.configPath]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /^removed {2}OLD-2 .* uncommitted work saved at refs\/factory\/leftover\/OLD-2-\d{8}T\d{6}Z$/m);
  assert.match(result.stdout, /^total: 1 worktree\(s\) removed, .*; kept 1 recent$/m);
  assert.equal(existsSync(old), false);
  assert.equal(existsSync(recent), true);
  git(cloneOf(w1), 'rev-parse', '--verify', 'factory/OLD-2');
});
