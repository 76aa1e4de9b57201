/**
 * Fleet throughput and pickup latency: R team runs (agents that sleep 2 s) on
 * 1, 2 and 4 `factory worker` processes with S slots each, all on one test
 * Redis, queued by an in-process BullmqTeamExecutor (the control plane's side).
 * Prints runs/s per worker count, the 4-worker / 1-worker ratio, and pickup
 * p50/p95 (enqueue to a worker's `picked` event).
 *
 *   node --import tsx bench/fleet-bench.ts [runs=24] [slots=4]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SystemClock } from '../src/adapters/clock/system-clock.js';
import { DEFAULT_FLEET_QUEUE_SETTINGS } from '../src/adapters/bullmq/queue-settings.js';
import { teamRunKeys } from '../src/adapters/bullmq/team-run-keys.js';
import { BullmqTeamExecutor } from '../src/adapters/team-executor/bullmq-team-executor.js';
import type { Logger } from '../src/ports/logger.js';
import type { TeamPlan } from '../src/ports/team-executor.js';
import { startTestRedis } from '../test/support/redis-server.js';
import { createScratchProject, REPO_ROOT, waitFor } from '../test/support/sandbox.js';
import { median, percentile } from './bench-support.js';

const runs = Number(process.argv[2] ?? 24);
const slots = Number(process.argv[3] ?? 4);
const AGENT = join(REPO_ROOT, 'test', 'fixtures', 'fleet', 'sleepy-agent.mjs');
const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent } as unknown as Logger;

const redis = await startTestRedis();
const project = createScratchProject('fleet-bench', {});
const fleetConfig = { backend: 'bullmq', redis: { url: redis.url }, pool: 'bench', worker: { slots } };

async function startWorker(name: string): Promise<ChildProcess> {
  const dir = join(project.dir, `worker-${name}`);
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'factory.config.json');
  writeFileSync(configPath, JSON.stringify({ mount: { root: '../issues' }, agents: { implementer: { command: ['true'] } }, http: { enabled: false }, fleet: { ...fleetConfig, worker: { slots, node: name, repoCacheDir: './repos' } } }));
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'worker', '--config', configPath], { cwd: REPO_ROOT, env: { ...process.env, FACTORY_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  await waitFor(`worker ${name}`, () => stderr.includes('consuming pool'), 30_000);
  return child;
}

function plan(round: string, i: number): TeamPlan {
  const key = `B${round}-${i}`;
  return {
    runId: `${key}-e1-a1-${round}`,
    attempt: 1,
    repo: project.repo,
    branch: `factory/${key}`,
    issue: { key, title: key, body: '', labels: ['factory'], state: 'ready', createdAtMs: Date.now(), revision: key, location: key },
    stages: [{ agents: [{ role: 'implementer', slot: 'implementer', agent: { command: ['node', AGENT, '2000'], env: {} } }] }],
  };
}

const results: { workers: number; seconds: number; perSecond: number; pickupP50: number; pickupP95: number; cpuMsPer1000: number }[] = [];
for (const workerCount of [1, 2, 4]) {
  const workers = await Promise.all(Array.from({ length: workerCount }, (_, i) => startWorker(`w${workerCount}-${i}`)));
  const executor = await BullmqTeamExecutor.open({ url: redis.url, keys: teamRunKeys({ keyPrefix: 'factory', pool: 'bench' }), settings: DEFAULT_FLEET_QUEUE_SETTINGS, currentEpoch: () => 1, clock: new SystemClock(), log: silent });
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const outcomes = await Promise.all(Array.from({ length: runs }, (_, i) => executor.start(plan(String(workerCount), i)).outcome));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const failed = outcomes.filter((o) => o.reason !== 'succeeded');
  if (failed.length > 0) throw new Error(`${failed.length} run(s) did not succeed: ${failed[0]!.detail}`);
  const pickups = executor.counters.pickupLatenciesMs;
  results.push({ workers: workerCount, seconds, perSecond: runs / seconds, pickupP50: median(pickups), pickupP95: percentile(pickups, 95), cpuMsPer1000: ((cpu.user + cpu.system) / 1000 / runs) * 1000 });
  await executor.close();
  for (const w of workers) w.kill('SIGTERM');
  await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
}
await redis.stop();
console.log(`fleet bench: ${runs} runs of a 2 s agent, ${slots} slot(s) per worker`);
for (const r of results) console.log(`  ${r.workers} worker(s): ${r.seconds.toFixed(1)} s, ${r.perSecond.toFixed(2)} runs/s, pickup p50 ${r.pickupP50.toFixed(0)} ms p95 ${r.pickupP95.toFixed(0)} ms, control-plane CPU ${r.cpuMsPer1000.toFixed(0)} ms per 1,000 runs`);
console.log(`  ratio 4 workers / 1 worker: ${(results[2]!.perSecond / results[0]!.perSecond).toFixed(2)}`);
process.exit(0);
