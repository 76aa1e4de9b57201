import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { runFactoryCli } from '../support/factory-cli.js';
import { waitFor } from '../support/sandbox.js';
import { useFleetPerTest, type TestFleet, type WorkerProcess } from '../fixtures/fleet/harness.js';

/**
 * Parked runs on a fleet: a worker that parks a run pushes its park ref to
 * the repo's remote (a local bare repo here), so the resume may run on
 * another worker, which fetches the ref and continues on top of it; the
 * remote ref goes once the resumed run ended. A park ref the remote refuses
 * stays in the parking worker's clone: a resume there still works, a resume
 * elsewhere ends parked again with FACTORY_PARK_UNAVAILABLE instead of
 * starting over. Real control plane, real workers, real redis-server, real git.
 */

const fleets = useFleetPerTest();

const remoteGit = (f: TestFleet, ...args: string[]): string => execFileSync('git', ['--git-dir', join(f.project.dir, 'remote.git'), ...args], { encoding: 'utf8' });
const remoteParkRefs = (f: TestFleet): string[] => remoteGit(f, 'for-each-ref', '--format=%(refname)', 'refs/factory/park').split('\n').filter(Boolean);

/** The control plane's recorded outcomes of `issueKey`, oldest first, with their detail. */
function outcomes(f: TestFleet, issueKey: string): { run: string; reason: string; detail: string }[] {
  return f.controlPlane
    .stderr()
    .split('\n')
    .filter((line) => line.includes('"team finished'))
    .map((line) => JSON.parse(line) as { issue: string; run: string; reason: string; msg: string })
    .filter((entry) => entry.issue === issueKey)
    .map((entry) => ({ run: entry.run, reason: entry.reason, detail: entry.msg.replace(/^team finished: /, '') }));
}

async function stopWorker(worker: WorkerProcess): Promise<void> {
  worker.child.kill('SIGTERM');
  const exited = await worker.exited;
  assert.equal(exited.code, 0, worker.stderr().slice(-1_000));
}

async function resume(f: TestFleet, issueKey: string): Promise<void> {
  const result = await runFactoryCli(['resume', issueKey, '--config', f.project.configPath], 60_000);
  assert.equal(result.code, 0, result.stderr);
}

test(
  'a run parked on one worker resumes on another: the park ref goes through the remote, the resumed agent sees the parked change, and the remote ref is removed once the run ended',
  { timeout: 120_000 },
  async () => {
    const f = await fleets.start({ agentWorkMs: 0, bareRemote: true, parkingAgent: true });
    const w1 = await f.startWorker('w1');
    f.project.writeIssue('FP-1');
    const parked = await waitFor('the run to park on w1', () => outcomes(f, 'FP-1')[0], 60_000);
    assert.equal(parked.reason, 'parked', parked.detail);
    assert.deepEqual(remoteParkRefs(f), [`refs/factory/park/${parked.run}`], 'the park ref reached the remote');
    assert.match(remoteGit(f, 'show', `refs/factory/park/${parked.run}:parked-work.txt`), new RegExp(`^half done by ${parked.run}\\n$`));

    // w1 leaves; only w2 can take the resume.
    await stopWorker(w1);
    await f.startWorker('w2');
    await resume(f, 'FP-1');
    const finished = await waitFor('the resumed run to end', () => outcomes(f, 'FP-1')[1], 60_000);
    assert.equal(finished.reason, 'succeeded', finished.detail);
    const resumedLine = f.traceLines().find((line) => line.runId === finished.run && line.what.startsWith('resumed-'));
    // The session stayed on w1's machine: w2's agent starts a new one, on top of the parked work.
    assert.equal(resumedLine?.what, `resumed-saw:new-session:half_done_by_${parked.run}`, 'the resumed agent works on top of the parked change');
    const branch = remoteGit(f, 'for-each-ref', '--format=%(refname:short)', 'refs/heads')
      .split('\n')
      .find((name) => name.includes('FP-1'))!;
    assert.equal(remoteGit(f, 'show', `${branch}:parked-work.txt`), `half done by ${parked.run}\nfinished by ${finished.run}\n`, 'the pushed branch holds the parked and the resumed work');
    await waitFor('the remote park ref to be removed', () => remoteParkRefs(f).length === 0, 20_000);
  },
);

test(
  "a park ref the remote refuses stays in the parking worker's clone: a resume on another worker ends parked with FACTORY_PARK_UNAVAILABLE, a resume on the parking worker continues the work",
  { timeout: 150_000 },
  async () => {
    const f = await fleets.start({ agentWorkMs: 0, bareRemote: true, parkingAgent: true });
    // The remote takes branches but no park refs (a protected namespace, say).
    const hook = join(f.project.dir, 'remote.git', 'hooks', 'pre-receive');
    writeFileSync(hook, '#!/bin/sh\nwhile read old new ref; do case "$ref" in refs/factory/park/*) echo "park refs are not allowed here" >&2; exit 1;; esac; done\n');
    chmodSync(hook, 0o755);
    let w1 = await f.startWorker('w1');
    f.project.writeIssue('FP-2');
    const parked = await waitFor('the run to park on w1', () => outcomes(f, 'FP-2')[0], 60_000);
    assert.equal(parked.reason, 'parked', parked.detail);
    assert.deepEqual(remoteParkRefs(f), []);
    await waitFor('w1 to log the failed push', () => /could not push the park ref/.test(w1.stderr()), 10_000);
    const status = (await runFactoryCli(['status', '--config', f.project.configPath])).stdout;
    assert.match(status, /the work is only on worker w1 \(its park ref could not be pushed: .*park refs are not allowed here/);

    // Resumed on w2 alone: the work is not there, and the run does not start over.
    await stopWorker(w1);
    const w2 = await f.startWorker('w2');
    await resume(f, 'FP-2');
    const unavailable = await waitFor('the resume on w2 to end', () => outcomes(f, 'FP-2')[1], 60_000);
    assert.equal(unavailable.reason, 'parked', unavailable.detail);
    assert.match(
      unavailable.detail,
      /^FACTORY_PARK_UNAVAILABLE: the work run \S+ parked at refs\/factory\/park\/\S+ is neither on the remote nor in this worker's clone: worker w1 parked it and could not push it/,
    );
    assert.equal(
      f.traceLines().some((line) => line.runId === unavailable.run),
      false,
      'no agent started from scratch',
    );

    // Back on w1, whose clone kept the ref: the work continues.
    await stopWorker(w2);
    w1 = await f.startWorker('w1');
    await resume(f, 'FP-2');
    const finished = await waitFor('the resume on w1 to end', () => outcomes(f, 'FP-2')[2], 60_000);
    assert.equal(finished.reason, 'succeeded', finished.detail);
    const resumedLine = f.traceLines().find((line) => line.runId === finished.run && line.what.startsWith('resumed-'));
    // On the machine that parked it, the agent's own session continues too.
    assert.equal(resumedLine?.what, `resumed-saw:sess-fleet-park:half_done_by_${parked.run}`);
  },
);
