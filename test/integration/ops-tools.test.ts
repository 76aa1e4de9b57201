import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { subscriptionHealth, tempConfig, writeHeartbeatAs } from '../support/daemon-files.js';
import { createScratchProject, REPO_ROOT, spawnDaemon, waitFor } from '../support/sandbox.js';

/**
 * What an operator installs from deploy/, checked with the tools they would use:
 * `systemd-analyze verify` on every unit, `promtool check rules` and `promtool
 * test rules` on the alerts, `promtool check metrics` on a live daemon's
 * /metrics, and the health check script's failure threshold against a real
 * HTTP server. A tool that is not installed makes its test report itself
 * skipped with the reason (.ci/run installs promtool).
 */

const SYSTEMD_DIR = join(REPO_ROOT, 'deploy', 'systemd');
const PROMETHEUS_DIR = join(REPO_ROOT, 'deploy', 'prometheus');
const HEALTHCHECK = join(SYSTEMD_DIR, 'factory-healthcheck');
const WORK_BRIEFLY = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'work-briefly.mjs');

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function installed(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function run(command: string, args: readonly string[], options: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, output: `${result.stdout}${result.stderr}` };
}

/** `Key=value` lines of a unit file (comments and sections dropped; the last assignment wins). */
function unitSettings(file: string): Map<string, string> {
  const settings = new Map<string, string>();
  for (const line of readFileSync(join(SYSTEMD_DIR, file), 'utf8').split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) settings.set(match[1]!, match[2]!);
  }
  return settings;
}

function seconds(value: string): number {
  const match = /^(\d+)(ms|s|min)?$/.exec(value);
  assert.ok(match, `a time span systemd and this test both read: ${value}`);
  return Number(match[1]) * ({ ms: 0.001, s: 1, min: 60 }[match[2] ?? 's'] ?? 1);
}

test('every systemd unit passes systemd-analyze verify without a single warning', (t) => {
  if (!installed('systemd-analyze')) return t.skip('systemd-analyze not installed (Debian: systemd)');
  const units = readdirSync(SYSTEMD_DIR).filter((name) => /\.(service|timer)$/.test(name));
  assert.deepEqual(units.sort(), [
    'factory-health.service',
    'factory-health.timer',
    'factory-reaper.service',
    'factory-reaper.timer',
    'factory-worker-reaper.service',
    'factory-worker-reaper.timer',
    'factory-worker.service',
    'factory.service',
  ]);
  for (const unit of units) {
    // verify exits 0 on settings it could not parse ("ignoring"), so any output at all is a failure.
    const result = run('systemd-analyze', ['verify', `./${unit}`], { cwd: SYSTEMD_DIR });
    assert.equal(result.status, 0, `${unit}: ${result.output}`);
    assert.equal(result.output.trim(), '', `${unit} verifies without warnings`);
  }
});

test('the fleet worker unit lets a stop run its grace, and restarts well within the run lock', () => {
  const defaults = tempConfig();
  const worker = unitSettings('factory-worker.service');
  assert.equal(worker.get('KillMode'), 'mixed', 'SIGTERM to the worker alone; it stops and hands back its runs');
  assert.equal(worker.get('Restart'), 'on-failure');
  const stopMs = seconds(worker.get('TimeoutStopSec') ?? '') * 1000;
  assert.ok(
    stopMs >= defaults.fleet.worker.shutdownGraceMs + defaults.runs.killGraceMs + 10_000,
    `TimeoutStopSec ${stopMs} ms covers fleet.worker.shutdownGraceMs, runs.killGraceMs and the hand-back`,
  );
  assert.ok(seconds(worker.get('RestartSec') ?? '') * 1000 * 10 <= defaults.fleet.queue.lockDurationMs, 'a restarted worker reaps its predecessor long before the run lock lapses');
});

test('the units follow the config defaults: an ordered stop fits, a health restart needs a stale-length outage', () => {
  const defaults = tempConfig();
  const daemon = unitSettings('factory.service');
  assert.equal(daemon.get('KillMode'), 'mixed', 'SIGTERM to the daemon alone; agents are its to stop');
  assert.equal(daemon.get('Restart'), 'on-failure');
  const stopSeconds = seconds(daemon.get('TimeoutStopSec') ?? '');
  assert.ok(stopSeconds * 1000 >= 2 * defaults.runs.killGraceMs + 10_000, `TimeoutStopSec ${stopSeconds}s leaves room for runs.killGraceMs ${defaults.runs.killGraceMs} ms and the stop's writes`);

  const health = unitSettings('factory-health.service');
  const failures = Number(/FACTORY_HEALTH_FAILURES=(\d+)/.exec(readFileSync(join(SYSTEMD_DIR, 'factory-health.service'), 'utf8'))?.[1]);
  const everySeconds = seconds(unitSettings('factory-health.timer').get('OnUnitActiveSec') ?? '');
  assert.ok(failures >= 3, 'one slow answer never restarts the daemon');
  assert.ok(failures * everySeconds * 1000 >= defaults.loop.heartbeatStaleMs, `${failures} failures ${everySeconds}s apart cover loop.heartbeatStaleMs`);
  assert.match(health.get('ExecStart') ?? '', /factory-healthcheck$/);

  const rules = readFileSync(join(PROMETHEUS_DIR, 'factory-alerts.yml'), 'utf8');
  assert.match(rules, new RegExp(`factory_heartbeat_age_seconds > ${defaults.loop.heartbeatStaleMs / 1000} or`), 'FactoryHeartbeatStale fires at heartbeatStaleMs');
  assert.match(rules, new RegExp(`factory_heartbeat_age_seconds > ${defaults.loop.heartbeatStaleMs / 2000}\\n`), 'FactoryHeartbeatLate fires at half of it');
});

test('the alert rules pass promtool check rules and their own promtool unit tests', (t) => {
  if (!installed('promtool')) return t.skip('promtool not installed (Debian: apt-get install prometheus)');
  const check = run('promtool', ['check', 'rules', 'factory-alerts.yml'], { cwd: PROMETHEUS_DIR });
  assert.equal(check.status, 0, check.output);
  // The unit tests prove the dead-daemon case: up == 0 fires FactoryDown while the heartbeat rules stay silent.
  const unitTests = run('promtool', ['test', 'rules', 'factory-alerts.test.yml'], { cwd: PROMETHEUS_DIR });
  assert.equal(unitTests.status, 0, unitTests.output);
});

test("a live daemon's /metrics passes promtool check metrics", { timeout: 60_000 }, async (t) => {
  if (!installed('promtool')) return t.skip('promtool not installed (Debian: apt-get install prometheus)');
  const project = createScratchProject('ops-metrics', {
    agents: { implementer: { command: [process.execPath, WORK_BRIEFLY, '200'] } },
    http: { port: 0 },
  });
  const config = loadConfig(project.configPath);
  const daemon = spawnDaemon(project.configPath);
  cleanups.push(() => {
    // Its one agent works for 200 ms and exits by itself.
    if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
    rmSync(project.dir, { recursive: true, force: true });
  });
  const url = await waitFor(
    'the daemon to name its status server in its heartbeat',
    () => {
      if (daemon.child.exitCode !== null) throw new Error(`the daemon exited with ${daemon.child.exitCode}:\n${daemon.stderr()}`);
      try {
        return (JSON.parse(readFileSync(config.loop.heartbeatPath, 'utf8')) as { http?: { url: string } }).http?.url;
      } catch {
        return undefined; // not written yet
      }
    },
    20_000,
    50,
  );
  // One finished run, so the counters, the histogram and the outcome labels all carry samples.
  project.writeIssue('OPS-1');
  await waitFor('a run to finish', async () => ((await (await fetch(`${url}/api/v1/state`)).json()) as { outcomeCount: number }).outcomeCount >= 1, 30_000, 100);

  const exposition = await (await fetch(`${url}/metrics`)).text();
  assert.match(exposition, /^factory_dispatches_total 1$/m);
  assert.match(exposition, /^nodejs_active_handles\{/m, "Node's process metrics are still there");
  const check = run('promtool', ['check', 'metrics'], { input: exposition });
  assert.equal(check.status, 0, `promtool check metrics:\n${check.output}`);
  assert.equal(check.output.trim(), '', 'no lint findings');

  daemon.child.kill('SIGTERM');
  assert.equal((await daemon.exited).code, 0, daemon.stderr());
});

test('the health check restarts the daemon only after FACTORY_HEALTH_FAILURES failures in a row', { timeout: 30_000 }, async (t) => {
  if (!installed('curl')) return t.skip('curl not installed');
  let answer: 'ok' | 'slow' | 'down' = 'ok';
  const server: Server = createServer((request, response) => {
    if (answer === 'ok') return response.end('{"ok":true}');
    if (answer === 'down') return response.writeHead(503).end('{"ok":false}');
    // 'slow': answers after the check's timeout
    setTimeout(() => response.end('{"ok":true}'), 1_500).unref();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as { port: number }).port;
  const scratch = mkdtempSync(join(tmpdir(), 'factory-health-'));
  cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
  const restartMarker = join(scratch, 'restarted');
  const env = {
    ...process.env,
    FACTORY_HEALTH_URL: `http://127.0.0.1:${port}/healthz`,
    FACTORY_HEALTH_FAILURES: '3',
    FACTORY_HEALTH_TIMEOUT_S: '1',
    FACTORY_HEALTH_STATE: join(scratch, 'failures'),
    FACTORY_HEALTH_RESTART: `echo restart >> '${restartMarker}'`,
  };
  const check = async (): Promise<string> => {
    const child = spawn('sh', [HEALTHCHECK], { env });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(status, 0, output);
    return output;
  };
  const restarts = (): number => (existsSync(restartMarker) ? readFileSync(restartMarker, 'utf8').trim().split('\n').length : 0);

  answer = 'slow';
  assert.match(await check(), /failed \(1 of 3 in a row\)/);
  answer = 'down';
  assert.match(await check(), /failed \(2 of 3 in a row\)/);
  answer = 'ok';
  assert.equal(await check(), '', 'a good answer resets the count');
  answer = 'slow';
  await check();
  answer = 'down';
  await check();
  assert.equal(restarts(), 0, 'two failures in a row restart nothing');
  assert.match(await check(), /failed 3 times in a row: restarting factory\.service/);
  assert.equal(restarts(), 1);
  assert.match(await check(), /failed \(1 of 3 in a row\)/, 'the count starts over after a restart');
  assert.equal(restarts(), 1);
});

test('the health check leaves a fleet control plane standing by alone (it serves no HTTP until it leads), and still counts a running daemon that does not answer', { timeout: 60_000 }, async (t) => {
  if (!installed('curl')) return t.skip('curl not installed');
  // Nothing listens on this port, as on a standby's host.
  const silent = createServer();
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as { port: number }).port;
  await new Promise<void>((resolve) => silent.close(() => resolve()));
  const config = tempConfig();
  cleanups.push(() => rmSync(dirname(config.configPath), { recursive: true, force: true }));
  writeFileSync(config.configPath, JSON.stringify({ mount: { root: './issues' }, agents: { implementer: { command: ['true'] } } }));
  const env = {
    ...process.env,
    FACTORY_HEALTH_URL: `http://127.0.0.1:${port}/healthz`,
    FACTORY_HEALTH_FAILURES: '3',
    FACTORY_HEALTH_TIMEOUT_S: '1',
    FACTORY_HEALTH_STATE: join(dirname(config.configPath), 'failures'),
    FACTORY_HEALTH_RESTART: 'true',
    FACTORY_HEALTH_CONFIG: config.configPath,
    // The CLI from this checkout; the heartbeat names this test process, alive, as the daemon.
    FACTORY_HEALTH_CLI: `${process.execPath} --import tsx ${join(REPO_ROOT, 'src', 'cli', 'main.ts')}`,
  };
  const check = async (): Promise<string> => {
    const child = spawn('sh', [HEALTHCHECK], { env, cwd: REPO_ROOT });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    assert.equal(await new Promise<number | null>((resolve) => child.on('close', resolve)), 0, output);
    return output;
  };

  await writeHeartbeatAs(config, { status: 'standby', subscription: subscriptionHealth({ state: 'not-listening', transport: 'standby' }) });
  assert.equal(await check(), '', 'a standby is healthy without HTTP');
  assert.equal(await check(), '');
  assert.equal(existsSync(env.FACTORY_HEALTH_STATE), false, 'nothing counted');

  await writeHeartbeatAs(config, { status: 'running' });
  assert.match(await check(), /failed \(1 of 3 in a row\)/, 'a running daemon that does not answer still counts');
});
