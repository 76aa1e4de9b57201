import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { CliAgentHost } from '../../src/adapters/agent-drivers/cli-agent-host.js';
import { BullmqRunConsumer } from '../../src/adapters/bullmq/bullmq-run-consumer.js';
import { DEFAULT_FLEET_QUEUE_SETTINGS, type FleetQueueSettings } from '../../src/adapters/bullmq/queue-settings.js';
import { teamRunKeys } from '../../src/adapters/bullmq/team-run-keys.js';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { InMemoryFleet } from '../../src/adapters/fleet/in-memory-fleet.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';
import { InMemoryRegistryStore } from '../../src/adapters/node-state/in-memory-node-state.js';
import { fleetKeys } from '../../src/adapters/redis/keys.js';
import { FileRunLogStore } from '../../src/adapters/run-logs/file-run-log-store.js';
import { InMemoryWorkspace } from '../../src/adapters/workspace/in-memory-workspace.js';
import { LocalTeamExecutor } from '../../src/core/execution/local-team-executor.js';
import { RegistryKeeper } from '../../src/core/registry-keeper.js';
import { TeamRunWorker } from '../../src/core/worker/team-run-worker.js';
import { waitFor } from '../support/sandbox.js';
import { useFleetPerTest } from '../fixtures/fleet/harness.js';

/**
 * Issue 12, test 7: Redis stays bounded by the retention settings, not by the
 * number of runs, and a control-plane restart loses no terminal state.
 *
 * A real control plane (`factory start`, fleet.backend "bullmq", Redis state
 * store) dispatches RUNS issues, in three waves, to two workers of four slots
 * on a real redis-server. The workers run in this process (the real queue
 * consumer and worker runtime, with agents that commit and exit at once), so
 * the test measures Redis, not process starts. After each wave has been idle
 * past `finishedRetentionMs`, Redis is sampled: keys, each key's MEMORY USAGE,
 * stream lengths, used_memory. The queue's side must be the same size after
 * 450 runs as after 150 (keys) and as after 300 (memory, once BullMQ's capped
 * event stream is full); only the durable state (one claim per issue, the
 * bounded outcome history) may grow. Then the control plane is SIGKILLed and
 * a new one leads: every outcome and every issue's claim is still there, and
 * nothing runs again.
 */

// Three waves of 150: BullMQ's event stream (about 4 entries a run) reaches its cap in the second, so the third shows the flat top.
const RUNS = 450;
const WAVES = 3;
const RETENTION_MS = 1_500;
const JOBS_KEPT = 20;
const EVENTS_MAX_LEN = 1_000;
const SLOTS = 4;

const cleanups: (() => Promise<unknown>)[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'factory-fleet-bounded-'));
// Registered before the fleet's hooks, so it runs before Redis stops: the in-process consumers close while it still answers.
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
});
const fleets = useFleetPerTest();

const settings: FleetQueueSettings = {
  ...DEFAULT_FLEET_QUEUE_SETTINGS,
  lockDurationMs: 3_000,
  stalledIntervalMs: 1_000,
  eventsMaxLen: EVENTS_MAX_LEN,
  finishedRetentionMs: RETENTION_MS,
  finishedJobsKept: JOBS_KEPT,
};

/** A worker as `factory worker` wires it, minus processes and git: agents exit 0 at once, having committed. */
async function startInProcessWorker(node: string): Promise<TeamRunWorker> {
  const clock = new SystemClock();
  const log = createSilentLogger();
  const workspace = new InMemoryWorkspace();
  const agents = new InMemoryFleet({ clock, onExit: (spec, exitCode) => exitCode === 0 && workspace.commit({ path: spec.cwd, branch: spec.env.FACTORY_BRANCH ?? '' }) });
  agents.autoSucceed = true;
  const registry = new RegistryKeeper({ store: new InMemoryRegistryStore(), owner: { pid: process.pid, startTime: 1, bootId: 'bounded', hostname: node, epoch: 0 }, clock });
  const executor = new LocalTeamExecutor({ fleet: agents, workspace, registry, clock, log, runLogs: new FileRunLogStore(join(scratch, node)), killGraceMs: 1_000, agentCli: new CliAgentHost() });
  let highest = 0;
  const worker = new TeamRunWorker({
    executor,
    epochs: { highest: async () => highest, raise: async (epoch) => void (highest = Math.max(highest, epoch)) },
    clock,
    monotonicNow: () => performance.now(),
    node,
    lockDurationMs: settings.lockDurationMs,
    log,
  });
  const consumer = await BullmqRunConsumer.open({
    url: fleets.redis().url,
    keys: teamRunKeys({ keyPrefix: 'factory', pool: 'test' }),
    node,
    slots: SLOTS,
    settings,
    agents: { implementer: { command: ['agent'], env: {} } },
    handle: (claimed) => worker.handle(claimed),
    onCancel: (request) => void worker.cancel(request),
    log,
  });
  cleanups.push(() => consumer.close());
  return worker;
}

interface Sample {
  readonly runs: number;
  readonly keys: number;
  readonly usedMemory: number;
  /** MEMORY USAGE summed over the durable state's keys (claims, outcomes, ...) and over everything else (queue, streams). */
  readonly stateBytes: number;
  readonly queueBytes: number;
  readonly queueKeys: number;
  readonly runEventStreams: number;
  readonly longestStream: number;
}

async function sample(client: Redis, runs: number): Promise<Sample> {
  const stateKeyPrefix = `${fleetKeys('factory', 'test').base}state:`;
  let stateBytes = 0;
  let queueBytes = 0;
  let queueKeys = 0;
  let runEventStreams = 0;
  let longestStream = 0;
  const keys = await client.keys('*');
  for (const key of keys) {
    const bytes = Number((await client.memory('USAGE', key)) ?? 0);
    if (key.startsWith(stateKeyPrefix)) stateBytes += bytes;
    else {
      queueBytes += bytes;
      queueKeys += 1;
    }
    if (key.includes(':run-events:')) runEventStreams += 1;
    if ((await client.type(key)) === 'stream') longestStream = Math.max(longestStream, await client.xlen(key));
  }
  const usedMemory = Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1] ?? 0);
  return { runs, keys: keys.length, usedMemory, stateBytes, queueBytes, queueKeys, runEventStreams, longestStream };
}

test(`${RUNS} runs keep Redis bounded by the retention settings, and a control-plane restart loses no terminal outcome`, { timeout: 120_000 }, async () => {
  const fleet = await fleets.start({
    agentWorkMs: 0,
    batchSize: 2 * SLOTS,
    queue: { finishedRetentionMs: RETENTION_MS, finishedJobsKept: JOBS_KEPT, eventsMaxLen: EVENTS_MAX_LEN },
    extraConfig: { intake: { transport: 'poll', reconcileIntervalMs: 200, probeIntervalMs: 60_000 } },
  });
  const workers = [await startInProcessWorker('w1'), await startInProcessWorker('w2')];
  const client = new Redis(fleets.redis().url);
  cleanups.push(async () => client.disconnect());
  const state = fleetKeys('factory', 'test');
  const outcomesRecorded = async (): Promise<number> => Number((await client.get(state.outcomeTotal)) ?? 0);

  const samples: Sample[] = [await sample(client, 0)];
  const perWave = RUNS / WAVES;
  const started = performance.now();
  for (let wave = 1; wave <= WAVES; wave++) {
    for (let i = (wave - 1) * perWave; i < wave * perWave; i++) fleet.project.writeIssue(`B-${i}`);
    await waitFor(`${wave * perWave} outcomes recorded`, async () => (await outcomesRecorded()) >= wave * perWave, 60_000, 100);
    // Idle past the retention: what is left is what Redis keeps for good, not the runs in flight.
    await new Promise((resolve) => setTimeout(resolve, RETENTION_MS + 1_000));
    samples.push(await sample(client, wave * perWave));
  }
  const seconds = (performance.now() - started) / 1_000;
  const [, first, second, last] = samples as [Sample, Sample, Sample, Sample];
  const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(2);
  console.log(
    `${RUNS} runs in ${seconds.toFixed(1)} s (retention ${RETENTION_MS} ms, ${JOBS_KEPT} jobs kept, streams capped at ${EVENTS_MAX_LEN}):\n` +
      samples
        .map(
          (s) =>
            `  after ${String(s.runs).padStart(3)} runs: ${s.keys} keys (${s.queueKeys} queue, ${s.runEventStreams} run event streams), queue ${mb(s.queueBytes)} MB, state ${mb(s.stateBytes)} MB, used_memory ${mb(s.usedMemory)} MB, longest stream ${s.longestStream}`,
        )
        .join('\n'),
  );
  assert.equal(await outcomesRecorded(), RUNS, 'every run recorded exactly one outcome');
  assert.equal(
    workers.reduce((sum, worker) => sum + worker.counters.completed, 0),
    RUNS,
    'the workers reported each run once',
  );

  // The queue's side is bounded by the retention, not the run count: as many keys after 450 runs as after 150.
  for (const s of [first, second, last]) {
    assert.equal(s.runEventStreams, 0, `run event streams expire ${RETENTION_MS} ms after their outcome (after ${s.runs} runs)`);
    // BullMQ's fixed keys (wait, active, completed, events, meta, id, marker, ...) plus the kept jobs, the lease, the workers.
    assert.ok(s.queueKeys <= JOBS_KEPT + 20, `queue keys ${s.queueKeys} after ${s.runs} runs exceed ${JOBS_KEPT} kept jobs + 20 fixed keys`);
    assert.ok(s.longestStream <= EVENTS_MAX_LEN + 200, `longest stream ${s.longestStream} after ${s.runs} runs exceeds the cap of about ${EVENTS_MAX_LEN}`);
  }
  assert.ok(last.queueKeys <= first.queueKeys + 2, `queue keys grew with the run count: ${first.queueKeys} -> ${last.queueKeys}`);
  // BullMQ's event stream is capped near EVENTS_MAX_LEN: once it is full (by the second wave) the queue's memory stops growing.
  assert.ok(second.longestStream >= EVENTS_MAX_LEN, `the event stream reached its cap by ${second.runs} runs (${second.longestStream} entries)`);
  assert.ok(last.queueBytes <= second.queueBytes + 32 * 1024, `queue memory grew from ${second.queueBytes} to ${last.queueBytes} bytes between ${second.runs} and ${last.runs} runs`);
  // Only the durable state may grow with the issues (one claim each, the bounded outcome history); used_memory follows it.
  const usedGrowth = last.usedMemory - first.usedMemory;
  const stateGrowth = last.stateBytes - first.stateBytes;
  const queueGrowth = last.queueBytes - first.queueBytes;
  assert.ok(usedGrowth <= stateGrowth + queueGrowth + 1024 * 1024, `used_memory grew ${usedGrowth} bytes, more than the state (${stateGrowth}) and queue (${queueGrowth}) growth plus 1 MB`);
  assert.ok(stateGrowth / (last.runs - first.runs) <= 4 * 1024, `the durable state costs ${Math.round(stateGrowth / (last.runs - first.runs))} bytes per run`);

  // A control-plane restart (SIGKILL, then a new leader on the same pool) loses no terminal outcome and runs nothing again.
  fleet.controlPlane.child.kill('SIGKILL');
  await fleet.controlPlane.exited;
  const successor = await fleet.startControlPlane('cp1', 'leading');
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  assert.equal(await outcomesRecorded(), RUNS, 'the outcome count survived the restart, with no run added');
  const claims = Object.values(await client.hgetall(state.claims)).map((json) => JSON.parse(json) as { issueKey: string; status: string });
  assert.equal(claims.length, RUNS, 'one claim per issue');
  assert.deepEqual(
    claims.filter((claim) => claim.status !== 'succeeded').map((claim) => `${claim.issueKey}: ${claim.status}`),
    [],
    "every issue's claim is still succeeded",
  );
  assert.equal(
    workers.reduce((sum, worker) => sum + worker.counters.completed, 0),
    RUNS,
    'nothing ran again after the restart',
  );
  assert.equal(successor.stderr().includes('"team dispatched"'), false, 'the new leader dispatched nothing');
});
