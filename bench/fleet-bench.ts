/**
 * Fleet benches, all on one test Redis with real `factory worker` processes.
 *
 *   node --import tsx bench/fleet-bench.ts throughput [runs=40] [slots=1]
 *     R team runs of a 2 s agent on 1, 2 and 4 workers with S slots each, in
 *     one process run, queued by an in-process BullmqTeamExecutor (the control
 *     plane's side). Runs/s per worker count, the 4/1 ratio, pickup p50/p95 and
 *     the control plane's CPU per 1,000 runs. With 1 slot per worker and runs a
 *     multiple of 4, every worker count keeps all its slots busy to the end, so
 *     the ratio measures the workers, not the tail of the last wave.
 *
 *   node --import tsx bench/fleet-bench.ts bounded [runs=1000]
 *     R runs of an agent that commits at once, on 4 workers with 4 slots:
 *     Redis memory, key count and the longest stream sampled every quarter.
 *
 *   node --import tsx bench/fleet-bench.ts failover [trials=10]
 *     A leader and a standby `factory start` (3 s lease), one worker: the
 *     leader is SIGKILLed as an issue arrives; time to the new leader's first
 *     dispatch, p50 over the trials.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { SystemClock } from '../src/adapters/clock/system-clock.js';
import { DEFAULT_FLEET_QUEUE_SETTINGS } from '../src/adapters/bullmq/queue-settings.js';
import { teamRunKeys } from '../src/adapters/bullmq/team-run-keys.js';
import { BullmqTeamExecutor } from '../src/adapters/team-executor/bullmq-team-executor.js';
import type { Logger } from '../src/ports/logger.js';
import type { TeamPlan } from '../src/ports/team-executor.js';
import { startTestRedis, type TestRedis } from '../test/support/redis-server.js';
import { createScratchProject, REPO_ROOT, waitFor, type DaemonProcess } from '../test/support/sandbox.js';
import { startFleet } from '../test/fixtures/fleet/harness.js';
import { median, percentile } from './bench-support.js';

const mode = process.argv[2] ?? 'throughput';
const AGENT = join(REPO_ROOT, 'test', 'fixtures', 'fleet', 'sleepy-agent.mjs');
const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent } as unknown as Logger;

const redis = await startTestRedis();
const project = createScratchProject('fleet-bench', {});
const keys = teamRunKeys({ keyPrefix: 'factory', pool: 'bench' });

/** The implementer every bench run uses, in the workers' configs (a job names the role; the worker runs it as configured). */
const implementer = (agentMs: number) => ({ command: ['node', AGENT, String(agentMs)], env: {} });

async function startWorker(name: string, slots: number, agentMs: number): Promise<ChildProcess> {
  const dir = join(project.dir, `worker-${name}`);
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'factory.config.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      mount: { root: '../issues' },
      agents: { implementer: implementer(agentMs) },
      http: { enabled: false },
      fleet: { backend: 'bullmq', redis: { url: redis.url }, pool: 'bench', worker: { slots, node: name, repoCacheDir: './repos' } },
    }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'worker', '--config', configPath], {
    cwd: REPO_ROOT,
    env: { ...process.env, FACTORY_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  await waitFor(`worker ${name}`, () => stderr.includes('consuming pool'), 60_000);
  return child;
}

async function stopWorkers(workers: ChildProcess[]): Promise<void> {
  for (const w of workers) w.kill('SIGTERM');
  await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
}

function plan(round: string, i: number, agentMs: number): TeamPlan {
  const key = `B${round}-${i}`;
  return {
    runId: `${key}-e1-a1-${round}`,
    attempt: 1,
    repo: project.repo,
    branch: `factory/${key}`,
    issue: { key, title: key, body: '', labels: ['factory'], state: 'ready', createdAtMs: Date.now(), revision: key, location: key },
    stages: [{ agents: [{ role: 'implementer', slot: 'implementer', agent: implementer(agentMs) }] }],
  };
}

function openExecutor(agentMs: number): Promise<BullmqTeamExecutor> {
  return BullmqTeamExecutor.open({
    url: redis.url,
    keys,
    settings: DEFAULT_FLEET_QUEUE_SETTINGS,
    agents: { implementer: implementer(agentMs) },
    currentEpoch: () => 1,
    clock: new SystemClock(),
    log: silent,
  });
}

async function throughput(runs: number, slots: number): Promise<void> {
  const results: { workers: number; seconds: number; perSecond: number; pickupP50: number; pickupP95: number; cpuMsPer1000: number }[] = [];
  for (const workerCount of [1, 2, 4]) {
    const workers = await Promise.all(Array.from({ length: workerCount }, (_, i) => startWorker(`w${workerCount}-${i}`, slots, 2_000)));
    const executor = await openExecutor(2_000);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const outcomes = await Promise.all(Array.from({ length: runs }, (_, i) => executor.start(plan(`t${workerCount}`, i, 2_000)).outcome));
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const failed = outcomes.filter((o) => o.reason !== 'succeeded');
    if (failed.length > 0) throw new Error(`${failed.length} run(s) did not succeed: ${failed[0]!.detail}`);
    const pickups = executor.counters.pickupLatenciesMs;
    results.push({
      workers: workerCount,
      seconds,
      perSecond: runs / seconds,
      pickupP50: median(pickups),
      pickupP95: percentile(pickups, 95),
      cpuMsPer1000: ((cpu.user + cpu.system) / 1000 / runs) * 1000,
    });
    await executor.close();
    await stopWorkers(workers);
  }
  console.log(`fleet throughput: ${runs} runs of a 2 s agent, ${slots} slot(s) per worker (ideal: ${(slots * 1) / 2} runs/s per worker)`);
  for (const r of results)
    console.log(
      `  ${r.workers} worker(s): ${r.seconds.toFixed(1)} s, ${r.perSecond.toFixed(2)} runs/s, pickup p50 ${r.pickupP50.toFixed(0)} ms p95 ${r.pickupP95.toFixed(0)} ms, control-plane CPU ${r.cpuMsPer1000.toFixed(0)} ms per 1,000 runs`,
    );
  console.log(`  ratio 4 workers / 1 worker: ${(results[2]!.perSecond / results[0]!.perSecond).toFixed(2)}`);
}

async function bounded(runs: number): Promise<void> {
  const workers = await Promise.all(Array.from({ length: 4 }, (_, i) => startWorker(`b${i}`, 4, 0)));
  const executor = await openExecutor(0);
  const client = new Redis(redis.url);
  const sample = async (done: number): Promise<string> => {
    const memory = Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1] ?? 0);
    const keyCount = await client.dbsize();
    const streamKeys = await client.keys('factory:{bench}:*');
    const lengths = await Promise.all(streamKeys.map(async (key) => ((await client.type(key)) === 'stream' ? client.xlen(key) : 0)));
    const runStreams = streamKeys.filter((key) => key.includes(':run-events:')).length;
    return `  after ${String(done).padStart(4)} runs: Redis used_memory ${(memory / 2 ** 20).toFixed(1)} MB, ${keyCount} keys (${runStreams} run event streams, each expiring 1 h after its outcome), longest stream ${Math.max(0, ...lengths)} entries`;
  };
  const lines = [await sample(0)];
  const started = performance.now();
  const quarter = Math.ceil(runs / 4);
  for (let done = 0; done < runs; done += quarter) {
    const batch = Array.from({ length: Math.min(quarter, runs - done) }, (_, i) => executor.start(plan('bounded', done + i, 0)).outcome);
    const outcomes = await Promise.all(batch);
    const failed = outcomes.filter((o) => o.reason !== 'succeeded');
    if (failed.length > 0) throw new Error(`${failed.length} run(s) did not succeed: ${failed[0]!.detail}`);
    lines.push(await sample(done + batch.length));
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`fleet boundedness: ${runs} runs (agent commits at once) on 4 workers x 4 slots in ${seconds.toFixed(0)} s`);
  for (const line of lines) console.log(line);
  client.disconnect();
  await executor.close();
  await stopWorkers(workers);
}

async function failover(trials: number): Promise<void> {
  const fleet = await startFleet({ redis: redis as TestRedis, agentWorkMs: 200, batchSize: 4, slots: 4 });
  await fleet.startWorker('w1');
  let spare = 0;
  let standby: DaemonProcess = await fleet.startControlPlane(`s${++spare}`, 'standby');
  let leader: DaemonProcess = fleet.controlPlane;
  const timesMs: number[] = [];
  const dispatchedAt = (plane: DaemonProcess, key: string): number | undefined => {
    const line = plane
      .stderr()
      .split('\n')
      .find((l) => l.includes('"team dispatched"') && l.includes(`"issue":"${key}"`));
    return line ? (JSON.parse(line) as { time: number }).time : undefined;
  };
  for (let trial = 1; trial <= trials; trial++) {
    const key = `FAIL-${trial}`;
    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    fleet.project.writeIssue(key);
    const at = await waitFor(`the standby to dispatch ${key}`, () => dispatchedAt(standby, key), 60_000, 20);
    timesMs.push(at - killedAt);
    leader = standby;
    standby = await fleet.startControlPlane(`s${++spare}`, 'standby');
  }
  const sorted = [...timesMs].sort((a, b) => a - b);
  console.log(
    `fleet failover (3 s lease, renewed every 0.8 s, 0.5 s margin; leader SIGKILLed as an issue arrives): ${trials} trials, leader killed -> first dispatch by the new leader p50 ${median(sorted).toFixed(0)} ms, min ${sorted[0]} ms, max ${sorted.at(-1)} ms`,
  );
  await fleet.stop();
}

if (mode === 'throughput') await throughput(Number(process.argv[3] ?? 40), Number(process.argv[4] ?? 1));
else if (mode === 'bounded') await bounded(Number(process.argv[3] ?? 1_000));
else if (mode === 'failover') await failover(Number(process.argv[3] ?? 10));
else throw new Error(`unknown mode ${mode}: throughput, bounded or failover`);
await redis.stop();
process.exit(0);
