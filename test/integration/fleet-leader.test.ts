import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { waitFor, type DaemonProcess } from '../support/sandbox.js';
import { runFactoryCli } from '../support/factory-cli.js';
import { finishedRuns, useFleetPerTest, type TestFleet } from '../fixtures/fleet/harness.js';

/**
 * The fleet's control plane across machines: real `factory start` processes
 * on one pool (each with its own config folder, as on two hosts), one holding
 * the leader lease and the others standing by, real workers, a real Redis.
 * The lease here is 3 s (renewed every 0.8 s, 0.5 s margin).
 */

const TTL_MS = 3_000;
/** Process scheduling on a loaded 2-core machine and the standby's polling (TTL / 10). */
const SLACK_MS = 1_500;

const fleets = useFleetPerTest({ flushRedisAfterEach: true });

interface LogLine {
  readonly msg: string;
  readonly time: number;
  readonly [key: string]: unknown;
}

function logLines(plane: Pick<DaemonProcess, 'stderr'>): LogLine[] {
  return plane
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

/** The epoch a control plane leads with, once it leads. */
function leadingEpoch(plane: Pick<DaemonProcess, 'stderr'>): { epoch: number; atMs: number } | undefined {
  const line = logLines(plane).find((l) => l.msg.startsWith('leading:'));
  return line ? { epoch: Number(line.epoch), atMs: line.time } : undefined;
}

/** Claims in Redis written with `epoch` after `sinceMs`: writes a stale leader got accepted (must be none). */
async function claimsWrittenBy(epoch: number, sinceMs: number): Promise<string[]> {
  const client = new Redis(fleets.redis().url);
  try {
    const all = await client.hgetall('factory:{test}:state:claims');
    return Object.values(all)
      .map((json) => JSON.parse(json) as { issueKey: string; epoch: number; updatedAtMs: number })
      .filter((claim) => claim.epoch === epoch && claim.updatedAtMs >= sinceMs)
      .map((claim) => claim.issueKey);
  } finally {
    client.disconnect();
  }
}

function startsOf(f: TestFleet, issueKey: string): string[] {
  return [
    ...new Set(
      f
        .traceLines()
        .filter((l) => l.what === 'start' && l.runId.startsWith(`${issueKey}-`))
        .map((l) => l.runId),
    ),
  ];
}

test('leader SIGKILL mid-run: the standby leads within the lease TTL with a higher epoch and attaches to the run (one execution, one outcome)', { timeout: 90_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 6_000 });
  const standby = await f.startControlPlane('cp1', 'standby');
  const heartbeat = await waitFor('the standby heartbeat', () => {
    try {
      return JSON.parse(readFileSync(join(standby.dir, '.factory', 'heartbeat.json'), 'utf8')) as { status: string; epoch: number };
    } catch {
      return undefined;
    }
  });
  assert.equal(heartbeat.status, 'standby', 'the standby says so in its heartbeat');
  await f.startWorker('w1');
  f.project.writeIssue('LEAD-1');
  const first = await waitFor('the run to start on w1', () => f.traceLines().find((l) => l.what === 'start'), 30_000);
  const before = leadingEpoch(f.controlPlane)!;
  const killedAt = Date.now();
  f.controlPlane.child.kill('SIGKILL');
  const after = await waitFor('the standby to lead', () => leadingEpoch(standby), TTL_MS + 10_000, 20);
  const takeoverMs = after.atMs - killedAt;
  assert.ok(takeoverMs <= TTL_MS + SLACK_MS, `took over ${takeoverMs} ms after the leader died (TTL ${TTL_MS} ms)`);
  assert.ok(after.epoch > before.epoch, `epoch ${after.epoch} > ${before.epoch}`);
  const finished = await waitFor('the run to finish under the new leader', () => finishedRuns(standby)[0], 30_000);
  assert.equal(finished.run, first.runId, 'the new leader recorded the run it attached to');
  assert.equal(finished.reason, 'succeeded', standby.stderr().slice(-2_000));
  assert.deepEqual(startsOf(f, 'LEAD-1'), [first.runId], 'one execution');
  assert.ok(
    logLines(standby).some((l) => l.msg.startsWith('attached to a run')),
    'attached, not restarted',
  );
  console.log(`leader SIGKILL: takeover ${takeoverMs} ms, epoch ${before.epoch} -> ${after.epoch}`);
});

test('leader SIGSTOP: the standby leads within the TTL; the woken leader stops (lease lost, exit 3) and none of its writes is accepted', { timeout: 90_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 4_000, slots: 2, batchSize: 2 });
  const standby = await f.startControlPlane('cp1', 'standby');
  await f.startWorker('w1');
  f.project.writeIssue('FRZ-1');
  const first = await waitFor('the first run to start', () => f.traceLines().find((l) => l.what === 'start'), 30_000);
  const before = leadingEpoch(f.controlPlane)!;
  const frozenAt = Date.now();
  f.controlPlane.child.kill('SIGSTOP');
  // Work that arrives while the leader is frozen: it would dispatch it on waking, if it could.
  f.project.writeIssue('FRZ-2');
  const after = await waitFor('the standby to lead', () => leadingEpoch(standby), TTL_MS + 10_000, 20);
  const takeoverMs = after.atMs - frozenAt;
  assert.ok(takeoverMs <= TTL_MS + SLACK_MS, `took over ${takeoverMs} ms after the leader froze`);
  assert.ok(after.epoch > before.epoch);
  const takeoverAt = after.atMs;
  f.controlPlane.child.kill('SIGCONT');
  const exit = await f.controlPlane.exited;
  assert.equal(exit.code, 3, `the old leader stops with FACTORY_LEASE_LOST: ${f.controlPlane.stderr().slice(-1_500)}`);
  assert.match(f.controlPlane.stderr(), /leader lease lost/);
  const finished = await waitFor(
    'both issues to finish under the new leader',
    () => {
      const runs = finishedRuns(standby);
      return runs.length >= 2 && runs;
    },
    40_000,
  );
  assert.deepEqual(
    finished.map((r) => r.reason),
    ['succeeded', 'succeeded'],
    standby.stderr().slice(-2_000),
  );
  assert.deepEqual(startsOf(f, 'FRZ-1'), [first.runId], "the frozen leader's run was attached, not run again");
  assert.equal(startsOf(f, 'FRZ-2').length, 1, 'the issue that arrived during the freeze ran once');
  const stale = await claimsWrittenBy(before.epoch, takeoverAt);
  assert.deepEqual(stale, [], 'writes of the old epoch accepted after the takeover: 0');
  const refused = logLines(f.controlPlane).filter((l) => JSON.stringify(l).includes('no longer holds the leader lease') || JSON.stringify(l).includes('STALE_EPOCH')).length;
  console.log(`leader SIGSTOP: takeover ${takeoverMs} ms, epoch ${before.epoch} -> ${after.epoch}; old leader: 0 writes accepted, ${refused} refused`);
});

test('graceful stop of the leader leaves the run going on its worker; the standby takes over at once and records it', { timeout: 90_000 }, async () => {
  const f = await fleets.start({ agentWorkMs: 5_000 });
  const standby = await f.startControlPlane('cp1', 'standby');
  await f.startWorker('w1');
  f.project.writeIssue('GRACE-1');
  const first = await waitFor('the run to start', () => f.traceLines().find((l) => l.what === 'start'), 30_000);
  const stoppedAt = Date.now();
  f.controlPlane.child.kill('SIGTERM');
  const exit = await f.controlPlane.exited;
  assert.equal(exit.code, 0);
  const after = await waitFor('the standby to lead', () => leadingEpoch(standby), 10_000, 20);
  assert.ok(after.atMs - stoppedAt < TTL_MS, `a released lease is taken without waiting out the TTL (${after.atMs - stoppedAt} ms)`);
  const finished = await waitFor('the run to finish', () => finishedRuns(standby)[0], 30_000);
  assert.equal(finished.run, first.runId);
  assert.equal(finished.reason, 'succeeded');
  assert.ok(!f.traceLines().some((l) => l.what === 'term'), 'the agents were not stopped');
  assert.deepEqual(startsOf(f, 'GRACE-1'), [first.runId]);
});

test('a standby stopped while standing by leaves a stopped heartbeat, not a standby of a dead pid (read as stale)', { timeout: 60_000 }, async () => {
  const fleet = await fleets.start({ agentWorkMs: 1_000 });
  const standby = await fleet.startControlPlane('cp1', 'standby');
  const heartbeatPath = join(standby.dir, '.factory', 'heartbeat.json');
  const read = (): { status: string; pid: number } => JSON.parse(readFileSync(heartbeatPath, 'utf8')) as { status: string; pid: number };
  await waitFor('the standby heartbeat', () => {
    try {
      return read().status === 'standby';
    } catch {
      return false;
    }
  });
  standby.child.kill('SIGTERM');
  assert.equal((await standby.exited).code, 0, standby.stderr().slice(-1_500));
  assert.deepEqual(read(), { ...read(), status: 'stopped', pid: standby.child.pid });
  const verdict = await runFactoryCli(['loop-status', '--config', join(standby.dir, 'factory.config.json')]);
  assert.match(verdict.stdout, /^stopped: /, verdict.stdout + verdict.stderr);
});

test('no double dispatch over repeated leader SIGKILLs around dispatch (50 trials, warm standbys)', { timeout: 420_000 }, async () => {
  const lease = { ttlMs: 1_000, renewEveryMs: 250, safetyMarginMs: 200 };
  const f = await fleets.start({ agentWorkMs: 200, slots: 4, batchSize: 4, lease });
  await f.startWorker('w1');
  // Standbys are kept warm: replacements start in the background while trials go on, so a trial costs a
  // kill and a takeover, not a process start. A kill waits until at least one standby stands by.
  const WARM = 3;
  const TRIALS = 50;
  let spareIndex = 0;
  const ready: DaemonProcess[] = [];
  let starting = 0;
  const spareFailures: Error[] = [];
  const replenish = (): void => {
    while (ready.length + starting < WARM) {
      starting += 1;
      void f
        .startControlPlane(`s${++spareIndex}`, 'standby')
        .then(
          (plane) => void ready.push(plane),
          (error: Error) => void spareFailures.push(error),
        )
        .finally(() => (starting -= 1));
    }
  };
  replenish();
  let leader: DaemonProcess = f.controlPlane;
  let epoch = leadingEpoch(leader)!.epoch;
  const issues: string[] = [];
  const takeovers: number[] = [];
  const started = Date.now();
  // 50 trials, as the issue asks; the cap only keeps a machine far slower than ours from running on.
  // A trial takes about 3 s on a quiet 2-core machine, closer to 4 s with other test files loading it.
  const LOOP_CAP_MS = 270_000;
  while (issues.length < TRIALS && Date.now() - started < LOOP_CAP_MS) {
    await waitFor('a warm standby', () => (spareFailures[0] ? Promise.reject(spareFailures[0]) : ready.length > 0), 30_000, 20);
    const key = `TRIAL-${issues.length + 1}`;
    issues.push(key);
    f.project.writeIssue(key);
    // Kill the leader somewhere around intake, claim and queueing (intake polls every 300 ms).
    await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 700)));
    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    await leader.exited;
    // Any control plane started so far may win, warm or still starting.
    const next = await waitFor('a standby to lead', () => [...f.controlPlanes.values()].find((plane) => (leadingEpoch(plane)?.epoch ?? 0) > epoch), 20_000, 20);
    const led = leadingEpoch(next)!;
    takeovers.push(led.atMs - killedAt);
    epoch = led.epoch;
    leader = next;
    const index = ready.findIndex((plane) => plane.child === next.child);
    if (index >= 0) ready.splice(index, 1);
    replenish();
  }
  const loopMs = Date.now() - started;
  const client = new Redis(fleets.redis().url);
  try {
    await waitFor(
      'every trial issue to succeed',
      async () => {
        const claims = await client.hgetall('factory:{test}:state:claims');
        return issues.every((key) => claims[key] !== undefined && (JSON.parse(claims[key]) as { status: string }).status === 'succeeded');
      },
      90_000,
      200,
    );
  } finally {
    client.disconnect();
  }
  const doubles = issues.filter((key) => startsOf(f, key).length !== 1);
  const sorted = [...takeovers].sort((a, b) => a - b);
  console.log(
    `${issues.length} trials in ${Math.round(loopMs / 1000)} s: ${doubles.length} double dispatches; takeover after SIGKILL p50 ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms (lease TTL ${lease.ttlMs} ms)`,
  );
  assert.deepEqual(doubles, [], 'every issue ran exactly once');
  assert.equal(issues.length, TRIALS, `the issue asks for ${TRIALS} trials; ${issues.length} fit in ${LOOP_CAP_MS / 1000} s`);
  assert.ok(sorted.at(-1)! <= lease.ttlMs + SLACK_MS, `every takeover within the TTL (+ slack): max ${sorted.at(-1)} ms`);
});
