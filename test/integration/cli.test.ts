import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { VERBS } from '../../src/cli/main.js';
import { markerPrefixFor } from '../../src/main.js';
import { killProcessesWithMarkerPrefix } from './agent-process-support.js';
import { createScratchRepo, git, waitFor } from '../support/sandbox.js';

/**
 * The real CLI, end to end: each test spawns `node --import tsx src/cli/main.ts`
 * against a temp folder holding a real git repo, an issues folder and a config,
 * with the scripted demo agent or the fixture agents as the team.
 */

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEMO_AGENT = join(REPO_ROOT, 'examples', 'agents', 'demo-agent.mjs');
const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'agents');
const table = new LinuxProcessTable();

const demoAgent = (): string[] => [process.execPath, DEMO_AGENT, '{{prompt}}'];
const fixtureAgent = (name: string, ...args: string[]): string[] => [process.execPath, join(FIXTURES, name), ...args];

/** The CLI's environment: ours, minus what would make a child think it is a test runner. */
function cliEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return env;
}

interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const daemons = new Set<ChildProcess>();
const sandboxes: Sandbox[] = [];

/** Spawns the CLI; the caller waits with `finished`. */
function spawnCli(args: readonly string[]): { child: ChildProcess; finished: Promise<CliResult>; stderr: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO_ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  daemons.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const finished = new Promise<CliResult>((resolve) =>
    child.once('close', (code, signal) => {
      daemons.delete(child);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { child, finished, stderr: () => stderr };
}

/** Runs the CLI to completion, failing the test if it takes longer than `timeoutMs`. */
async function runCli(args: readonly string[], timeoutMs = 20_000): Promise<CliResult> {
  const { child, finished } = spawnCli(args);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const result = await finished;
  clearTimeout(timer);
  assert.notEqual(result.signal, 'SIGKILL', `factory ${args.join(' ')} did not finish within ${timeoutMs} ms\n${result.stderr}`);
  return result;
}

/** A heartbeat as a daemon writes it, naming whatever identity a forger (or a test) chooses. */
function writeForgedHeartbeat(s: Sandbox, identity: { pid: number; startTime: number; bootId: string }): void {
  const nowMs = Date.now();
  mkdirSync(s.stateDir, { recursive: true });
  writeFileSync(
    s.heartbeatPath,
    JSON.stringify({
      version: 1,
      ...identity,
      hostname: 'test',
      status: 'running',
      mode: 'live',
      iteration: 0,
      maxIterations: 0,
      startedAtMs: nowMs,
      updatedAt: new Date(nowMs).toISOString(),
      updatedAtMs: nowMs,
      registryPath: s.registryPath,
      statePath: join(s.stateDir, 'state.db'),
      configPath: s.configPath,
      epoch: 1,
      inFlightTeams: 0,
      queuedIssues: 0,
      subscription: { state: 'subscribed', transport: 'subscribe', lastEventAtMs: null, lastProgressAtMs: null, reconcileStartedAtMs: null, lastError: null },
    }),
  );
}

function readJson<T = Record<string, unknown>>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

interface Sandbox {
  readonly dir: string;
  readonly repo: string;
  readonly issues: string;
  readonly configPath: string;
  readonly heartbeatPath: string;
  readonly registryPath: string;
  readonly stateDir: string;
  writeIssue(key: string, fields?: Record<string, unknown>): string;
  heartbeat(): Record<string, unknown> | undefined;
  gitLog(branch: string): string[];
}

/** A temp folder: a git repo with one commit, an issues folder and a config naming both. */
function makeSandbox(name: string, agents: { implementer: string[]; reviewer?: string[] }, overrides: Record<string, Record<string, unknown>> = {}): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), `factory-cli-${name}-`));
  const repo = join(dir, 'repo');
  const issues = join(dir, 'issues');
  createScratchRepo(repo);
  mkdirSync(issues);
  const raw = {
    mount: { root: './issues' },
    repos: { default: './repo' },
    agents: { implementer: { command: agents.implementer }, ...(agents.reviewer ? { reviewer: { command: agents.reviewer } } : {}) },
    ...overrides,
    runs: { killGraceMs: 500, superviseIntervalMs: 200, ...overrides.runs },
    intake: { reconcileIntervalMs: 1_000, ...overrides.intake },
    loop: { heartbeatIntervalMs: 200, heartbeatStaleMs: 5_000, iterationDelayMs: 50, ...overrides.loop },
    http: { port: 0, ...overrides.http },
  };
  const configPath = join(dir, 'factory.config.json');
  writeFileSync(configPath, JSON.stringify(raw, null, 2));
  const sandbox: Sandbox = {
    dir,
    repo,
    issues,
    configPath,
    heartbeatPath: join(dir, '.factory', 'heartbeat.json'),
    registryPath: join(dir, '.factory', 'registry.json'),
    stateDir: join(dir, '.factory'),
    writeIssue(key, fields = {}) {
      const path = join(issues, `${key}.json`);
      writeFileSync(path, JSON.stringify({ key, title: `Do ${key}`, body: `The body of ${key}.`, labels: ['factory'], state: 'ready', ...fields }));
      return path;
    },
    heartbeat: () => readJson(sandbox.heartbeatPath),
    gitLog: (branch) => {
      try {
        return git(repo, 'log', '--format=%s', branch).split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
  };
  sandboxes.push(sandbox);
  return sandbox;
}

/** Starts `factory start --mode live` and waits until its subscription is up. */
async function startDaemon(sandbox: Sandbox): Promise<ReturnType<typeof spawnCli>> {
  const daemon = spawnCli(['start', '--mode', 'live', '--config', sandbox.configPath]);
  await waitFor(
    `a running heartbeat from pid ${daemon.child.pid}`,
    () => {
      if (daemon.child.exitCode !== null) throw new Error(`the daemon exited early (${daemon.child.exitCode}): ${daemon.stderr()}`);
      const hb = sandbox.heartbeat() as { pid?: number; status?: string; subscription?: { state?: string } } | undefined;
      return hb?.pid === daemon.child.pid && hb?.status === 'running' && hb?.subscription?.state === 'subscribed';
    },
    15_000,
  );
  return daemon;
}

/** Live processes (zombies excluded) whose FACTORY_AGENT_MARKER starts with `prefix`, read from /proc/<pid>/environ. */
function processesWithMarker(prefix: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (environ.some((entry) => entry.startsWith(`FACTORY_AGENT_MARKER=${prefix}`))) found.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

after(async () => {
  for (const child of daemons) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const sandbox of sandboxes) killProcessesWithMarkerPrefix(table, markerPrefixFor({ configPath: sandbox.configPath }));
});

describe('factory CLI, end to end', () => {
  it('live: an issue file dropped into the mount becomes a commit on its branch and an outcome file; SIGTERM stops in order', async () => {
    const s = makeSandbox('live', { implementer: demoAgent(), reviewer: demoAgent() });
    const daemon = await startDaemon(s);
    assert.equal((await runCli(['loop-status', '--config', s.configPath])).code, 0, 'healthy while running');

    s.writeIssue('LIVE-1');
    const outcomePath = join(s.issues, 'LIVE-1.outcome.md');
    const report = await waitFor('the outcome file', () => existsSync(outcomePath) && readFileSync(outcomePath, 'utf8'), 15_000);
    assert.match(report, /succeeded/);
    assert.ok(s.gitLog('factory/LIVE-1').includes('LIVE-1: demo change by the implementer'), `the agent's commit is on factory/LIVE-1: ${s.gitLog('factory/LIVE-1').join(' | ')}`);
    assert.deepEqual(s.gitLog('main'), ['initial commit'], "the checkout's own branch is untouched");

    const status = await runCli(['status', '--json', '--config', s.configPath]);
    assert.equal(status.code, 0);
    const snapshot = JSON.parse(status.stdout) as { liveness: { verdict: string; heartbeat: { pid: number } }; recentOutcomes: { issueKey: string; reason: string }[] };
    assert.equal(snapshot.liveness.verdict, 'healthy');
    assert.equal(snapshot.liveness.heartbeat.pid, daemon.child.pid);
    assert.ok(
      snapshot.recentOutcomes.some((o) => o.issueKey === 'LIVE-1' && o.reason === 'succeeded'),
      status.stdout,
    );
    assert.equal((await runCli(['loop-status', '--config', s.configPath])).code, 0);

    daemon.child.kill('SIGTERM');
    const exit = await daemon.finished;
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(s.heartbeat()?.status, 'stopped');
    assert.deepEqual(readJson<{ agents: unknown[] }>(s.registryPath)?.agents, []);
    const after = await runCli(['loop-status', '--config', s.configPath]);
    assert.equal(after.code, 1, 'a stopped daemon is not healthy');
    assert.match(after.stdout, /^stopped/);
  });

  it('run-once: prints the report and exits 0 on success, 1 when the agent fails; --dry-run changes nothing', async () => {
    const ok = makeSandbox('once-ok', { implementer: demoAgent(), reviewer: demoAgent() });
    ok.writeIssue('ONE-1');
    ok.writeIssue('SKIP-1', { labels: ['other'] });
    const good = await runCli(['run-once', '--config', ok.configPath]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /pulled 2 issue\(s\)/);
    assert.match(good.stdout, /SKIP-1 +skipped +missing the required label "factory"/);
    assert.match(good.stdout, /ONE-1 +ONE-1-\S+ +succeeded/);
    assert.ok(ok.gitLog('factory/ONE-1').includes('ONE-1: demo change by the implementer'));

    const bad = makeSandbox('once-bad', { implementer: fixtureAgent('fail-exit-3.mjs') }, { dispatch: { maxAttempts: 1 } });
    bad.writeIssue('BAD-1');
    const failed = await runCli(['run-once', '--json', '--config', bad.configPath]);
    assert.equal(failed.code, 1, failed.stderr);
    const report = JSON.parse(failed.stdout) as { outcomes: { issueKey: string; reason: string; detail: string }[] };
    assert.deepEqual(
      report.outcomes.map((o) => [o.issueKey, o.reason, o.detail]),
      [['BAD-1', 'failed', 'implementer exited with code 3']],
    );
    assert.match(readFileSync(join(bad.issues, 'BAD-1.outcome.md'), 'utf8'), /failed/);

    const dry = makeSandbox('once-dry', { implementer: demoAgent() });
    dry.writeIssue('DRY-1');
    const planned = await runCli(['run-once', '--dry-run', '--config', dry.configPath]);
    assert.equal(planned.code, 0, planned.stderr);
    assert.match(planned.stdout, /Dry run/);
    assert.match(planned.stdout, /DRY-1 +queued +would dispatch/);
    assert.equal(existsSync(dry.stateDir), false, 'no state folder');
    assert.deepEqual(readdirSync(dry.issues), ['DRY-1.json'], 'no outcome file');
    assert.deepEqual(dry.gitLog('factory/DRY-1'), [], 'no branch');
  });

  it('loop: --max-iterations 3 ends `idle`; repeated failures stop it early with exit 1', async () => {
    const ok = makeSandbox('loop-ok', { implementer: demoAgent(), reviewer: demoAgent() });
    ok.writeIssue('LOOP-1');
    const good = await runCli(['loop', '--max-iterations', '3', '--config', ok.configPath]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /loop ended: max-iterations after 3 iteration\(s\)/);
    assert.equal(ok.heartbeat()?.status, 'idle');
    assert.equal(ok.heartbeat()?.iteration, 3);
    assert.ok(ok.gitLog('factory/LOOP-1').includes('LOOP-1: demo change by the implementer'));

    const bad = makeSandbox('loop-bad', { implementer: fixtureAgent('fail-exit-3.mjs') }, { dispatch: { maxAttempts: 20, backoffBaseMs: 20, backoffMaxMs: 20 }, loop: { maxConsecutiveFailures: 2 } });
    bad.writeIssue('LOOP-BAD');
    const failed = await runCli(['loop', '--max-iterations', '6', '--config', bad.configPath]);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    assert.match(failed.stdout, /loop ended: consecutive-failures after 2 iteration\(s\)/);
    assert.equal(bad.heartbeat()?.status, 'failed');
  });

  it('a config with several errors: exit 2, each listed on stderr, no stack trace', async () => {
    const s = makeSandbox('bad-config', { implementer: demoAgent() });
    writeFileSync(s.configPath, JSON.stringify({ mount: { root: 7 }, agents: { implementer: { command: [] } }, dispatch: { batchSize: 0, teamMode: 'both' }, extra: 1 }));
    for (const verb of [['run-once'], ['start', '--mode', 'live'], ['status']]) {
      const result = await runCli([...verb, '--config', s.configPath]);
      assert.equal(result.code, 2, `${verb[0]}: ${result.stderr}`);
      assert.ok(result.stderr.includes(s.configPath), 'names the file');
      for (const problem of [
        'mount.root: expected string, got 7',
        'agents.implementer.command: expected',
        'dispatch.batchSize: expected',
        'dispatch.teamMode: expected one of "sequential", "parallel", got "both"',
        '(top level): unknown key "extra"',
      ]) {
        assert.ok(result.stderr.includes(problem), `${verb[0]} lists "${problem}":\n${result.stderr}`);
      }
      assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
      assert.doesNotMatch(result.stderr, /internal error/);
      assert.match(result.stderr, /FACTORY_CONFIG_INVALID/);
    }
    const missing = await runCli(['run-once', '--config', join(s.dir, 'nope.json')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /FACTORY_CONFIG_NOT_FOUND/);
  });

  it("kill-loop signals nothing without a daemon, or when the heartbeat's process identity does not match", async () => {
    const s = makeSandbox('kill-loop', { implementer: demoAgent() });
    const none = await runCli(['kill-loop', '--config', s.configPath]);
    assert.equal(none.code, 3, none.stderr);
    assert.match(none.stderr, /FACTORY_DAEMON_NOT_RUNNING/);

    // A heartbeat naming this very test process, with a start time that is not ours.
    const self = table.inspect(process.pid)!;
    writeForgedHeartbeat(s, { pid: process.pid, startTime: self.startTime + 12_345, bootId: table.bootId() });
    let signalled = false;
    const onSignal = (): void => void (signalled = true);
    process.on('SIGTERM', onSignal);
    try {
      const mismatch = await runCli(['kill-loop', '--config', s.configPath]);
      assert.equal(mismatch.code, 3, mismatch.stdout + mismatch.stderr);
      assert.match(mismatch.stderr, /nothing was signalled/);
      assert.match(mismatch.stderr, /FACTORY_DAEMON_IDENTITY_MISMATCH/);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(signalled, false, 'this test process got no SIGTERM');
    } finally {
      process.off('SIGTERM', onSignal);
    }
  });

  it('kill-loop refuses a forged heartbeat naming an unrelated live process (real pid, start time and boot id): it survives', async () => {
    const s = makeSandbox('kill-loop-forged', { implementer: demoAgent() });
    const bystander = spawn('sleep', ['60'], { stdio: 'ignore' });
    daemons.add(bystander);
    try {
      const pid = bystander.pid!;
      const info = await waitFor('the bystander in /proc', () => table.inspect(pid));
      writeForgedHeartbeat(s, { pid, startTime: info.startTime, bootId: table.bootId() });
      const result = await runCli(['kill-loop', '--config', s.configPath]);
      assert.equal(result.code, 3, result.stdout + result.stderr);
      assert.match(result.stderr, /FACTORY_DAEMON_IDENTITY_MISMATCH/);
      assert.match(result.stderr, /does not hold the daemon lock .* open.*nothing was signalled/);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(bystander.exitCode, null, 'the bystander is still running');
      assert.equal(bystander.signalCode, null, 'the bystander got no signal');
      assert.equal(table.inspect(pid)?.startTime, info.startTime);
    } finally {
      bystander.kill('SIGKILL');
      daemons.delete(bystander);
    }
  });

  it('kill-loop stops a live daemon whose identity matches', async () => {
    const s = makeSandbox('kill-loop-live', { implementer: demoAgent() });
    const daemon = await startDaemon(s);
    const result = await runCli(['kill-loop', '--config', s.configPath]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`daemon pid ${daemon.child.pid} stopped`));
    assert.equal((await daemon.finished).code, 0);
    assert.equal(s.heartbeat()?.status, 'stopped');
  });

  it("a second `start` on the same config exits 3 naming the first daemon's pid, and leaves it running", async () => {
    const s = makeSandbox('two-daemons', { implementer: demoAgent() });
    const first = await startDaemon(s);
    const second = await runCli(['start', '--mode', 'live', '--config', s.configPath]);
    assert.equal(second.code, 3, second.stderr);
    assert.match(second.stderr, new RegExp(`pid ${first.child.pid}\\b`));
    assert.match(second.stderr, /FACTORY_DAEMON_ALREADY_RUNNING/);
    assert.equal(first.child.exitCode, null, 'the first daemon still runs');
    assert.equal(s.heartbeat()?.pid, first.child.pid, 'its heartbeat was not taken over');
    assert.equal((await runCli(['loop-status', '--config', s.configPath])).code, 0);
    first.child.kill('SIGTERM');
    assert.equal((await first.finished).code, 0);
  });

  it('init writes a config that run-once --dry-run accepts; --help works for every verb; unknown verbs and flags exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'factory-cli-init-'));
    const configPath = join(dir, 'factory.config.json');
    const init = await runCli(['init', '--config', configPath]);
    assert.equal(init.code, 0, init.stderr);
    assert.ok(existsSync(configPath));
    assert.ok(existsSync(join(dir, 'issues', 'EXAMPLE-1.json')));
    // The daemon's environment reaches agents only by allowlist: the starter config names each CLI's API key.
    const written = JSON.parse(readFileSync(configPath, 'utf8')) as { agents: Record<string, { envPassthrough?: string[] }> };
    assert.deepEqual(written.agents.implementer?.envPassthrough, ['ANTHROPIC_API_KEY']);
    assert.deepEqual(written.agents.reviewer?.envPassthrough, ['OPENAI_API_KEY']);
    const dry = await runCli(['run-once', '--dry-run', '--config', configPath]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /EXAMPLE-1 +skipped +state is "draft"/);
    const again = await runCli(['init', '--config', configPath]);
    assert.equal(again.code, 2, 'init does not overwrite a config');

    const helps = await Promise.all(VERBS.map(async (verb) => [verb.name, await runCli([verb.name, '--help'])] as const));
    for (const [name, result] of helps) {
      assert.equal(result.code, 0, `${name} --help: ${result.stderr}`);
      assert.match(result.stdout, new RegExp(`usage: factory ${name}`));
    }
    const general = await runCli(['--help']);
    assert.equal(general.code, 0);
    for (const verb of VERBS) assert.ok(general.stdout.includes(verb.name));

    const unknownVerb = await runCli(['frobnicate']);
    assert.equal(unknownVerb.code, 2);
    assert.match(unknownVerb.stderr, /unknown verb "frobnicate"/);
    const unknownFlag = await runCli(['status', '--frobnicate', '--config', configPath]);
    assert.equal(unknownFlag.code, 2);
    assert.match(unknownFlag.stderr, /unknown flag --frobnicate/);
    assert.equal((await runCli([])).code, 2, 'no verb is a usage error');
  });

  it("--version and version print the package version; unknown flags (with the flag a near miss meant), bad values and extra arguments exit 2 pointing at the verb's --help; start documents live as its default", async () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const args of [['--version'], ['version']]) {
      const result = await runCli(args);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), `factory ${version}`);
    }
    const s = makeSandbox('usage', { implementer: demoAgent() });
    const usageErrors: [string[], RegExp][] = [
      [['status', '-x', '--config', s.configPath], /unknown flag -x for `factory status`/],
      [['status', 'extra', '--config', s.configPath], /`factory status` takes no arguments, got "extra"/],
      [['logs', 'A-1', 'B-2', '--config', s.configPath], /`factory logs` takes at most 1 argument\(s\), got "B-2"/],
      [['reap-orphans', 'now', '--config', s.configPath], /`factory reap-orphans` takes no arguments/],
      [['logs', 'A-1', '--tail', '--config', s.configPath], /--tail needs a value/],
      // A near miss names the flag meant.
      [['worker', '--slot', '3', '--config', s.configPath], /unknown flag --slot for `factory worker`; did you mean --slots\?/],
      [['prune', '--dryrun', '--config', s.configPath], /unknown flag --dryrun for `factory prune`; did you mean --dry-run\?/],
      // A verb's own checks of its values point at its help too.
      [['start', '--mode', 'bounded', '--config', s.configPath], /--mode: expected "live", got "bounded"/],
      [['logs', 'not a key', '--config', s.configPath], /`factory logs` takes an issue key/],
    ];
    for (const [args, expected] of usageErrors) {
      const result = await runCli(args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, expected);
      assert.match(result.stderr, new RegExp(`hint: Run \`factory ${args[0]} --help\``), `${args.join(' ')} points at its own help`);
      assert.doesNotMatch(result.stderr, /internal error|\n\s+at /, 'no stack trace');
    }
    const startHelp = await runCli(['start', '--help']);
    assert.match(startHelp.stdout, /usage: factory start \[--mode live\]/);
    assert.match(startHelp.stdout, /--mode MODE +`live`, the default/);
  });

  it("a piped `start` writes pure JSON log lines: the ready and stopped lines included, each with the daemon's pid and hostname, agents under agentPid", async () => {
    const s = makeSandbox('json-logs', { implementer: demoAgent() });
    const daemon = await startDaemon(s);
    s.writeIssue('JSONLOG-1');
    await waitFor('the outcome file', () => existsSync(join(s.issues, 'JSONLOG-1.outcome.md')), 15_000);
    daemon.child.kill('SIGTERM');
    const result = await daemon.finished;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '', 'nothing but logs, and logs go to stderr');
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    const records = lines.map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        assert.fail(`not a JSON line: ${line}`);
      }
    });
    for (const record of records) {
      assert.equal(record.pid, daemon.child.pid, `every line names the daemon's pid: ${JSON.stringify(record)}`);
      assert.equal(record.hostname, hostname(), `every line names the host: ${JSON.stringify(record)}`);
    }
    assert.ok(
      records.some((r) => typeof r.msg === 'string' && r.msg.startsWith('live daemon running') && r.heartbeat === s.heartbeatPath),
      'the ready line is a log record',
    );
    assert.ok(
      records.some((r) => r.msg === 'stopped'),
      'the stopped line is a log record',
    );
    const started = records.find((r) => r.msg === 'implementer started');
    assert.ok(started && typeof started.agentPid === 'number' && started.agentPid !== daemon.child.pid, `the agent's pid is agentPid: ${JSON.stringify(started)}`);
  });

  it('a closed output pipe ends a printing verb quietly: `factory logs KEY | head -1` prints no stack trace', async () => {
    const s = makeSandbox('epipe', { implementer: demoAgent() });
    const runId = 'PIPE-1-e1-a1-abc';
    mkdirSync(join(s.stateDir, 'logs', 'PIPE-1'), { recursive: true });
    // Far more than a pipe buffer, so the writer is still writing when head has gone.
    writeFileSync(join(s.stateDir, 'logs', 'PIPE-1', `${runId}-implementer.log`), 'a line of agent output\n'.repeat(200_000));
    const cli = `"${process.execPath}" --import tsx src/cli/main.ts`;
    for (const verb of [`logs PIPE-1 --config "${s.configPath}"`, `--help`, `status --config "${s.configPath}"`]) {
      const child = spawn('/bin/sh', ['-c', `${cli} ${verb} | head -1`], { cwd: REPO_ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      await new Promise((resolve) => child.once('close', resolve));
      assert.ok(stdout.length > 0, `${verb}: head printed the first line`);
      assert.equal(stderr, '', `${verb}: nothing on stderr, got:\n${stderr}`);
    }
  });

  it('stopping the daemon kills every process of a running team, including what an exited agent left behind', async () => {
    // The implementer's leader exits 0 once its child and grandchild are up, leaving them in
    // its group; the reviewer keeps its whole tree running until it is stopped.
    const s = makeSandbox('process-groups', { implementer: fixtureAgent('spawn-tree.mjs'), reviewer: fixtureAgent('spawn-tree.mjs', '--stay') });
    const daemon = await startDaemon(s);
    s.writeIssue('TREE-1');
    const reviewer = await waitFor(
      'the reviewer in the registry',
      () => readJson<{ agents: { role: string; runId: string; logPath: string }[] }>(s.registryPath)?.agents.find((a) => a.role === 'reviewer'),
      15_000,
    );
    await waitFor("the reviewer's grandchild", () => existsSync(reviewer.logPath) && readFileSync(reviewer.logPath, 'utf8').includes('"role":"grandchild"'));
    const runMarker = `${markerPrefixFor({ configPath: s.configPath })}${reviewer.runId}:`;
    const reviewerTree = processesWithMarker(`${runMarker}TREE-1-reviewer`);
    assert.equal(reviewerTree.length, 3, "the reviewer's leader, child and grandchild run");
    assert.deepEqual(processesWithMarker(`${runMarker}TREE-1-implementer`), [], 'nothing the exited implementer left behind outlives it');

    daemon.child.kill('SIGTERM');
    const exit = await daemon.finished;
    assert.equal(exit.code, 0, exit.stderr);
    assert.deepEqual(processesWithMarker(runMarker), [], 'no process of the run survives the stop');
    assert.deepEqual(readJson<{ agents: unknown[] }>(s.registryPath)?.agents, []);
  });

  it('after a daemon is SIGKILLed, the next start takes over its lock, reaps its orphaned agent and runs the issue again', async () => {
    // Hangs on its first run, succeeds on the next: the interrupted attempt must be run again.
    const flag = join(tmpdir(), `factory-cli-crash-flag-${process.pid}-${Date.now()}`);
    const script = `const fs = require('node:fs'); if (fs.existsSync(${JSON.stringify(flag)})) process.exit(0); fs.writeFileSync(${JSON.stringify(flag)}, ''); setInterval(() => {}, 1 << 30);`;
    const s = makeSandbox('crash', { implementer: [process.execPath, '-e', script] });
    const first = await startDaemon(s);
    s.writeIssue('CRASH-1');
    const orphan = await waitFor('the agent in the registry', () => readJson<{ agents: { pid: number; marker: string }[] }>(s.registryPath)?.agents[0], 15_000);
    first.child.kill('SIGKILL');
    await first.finished;
    assert.deepEqual(processesWithMarker(orphan.marker), [orphan.pid], 'the agent outlived its daemon');

    const second = await startDaemon(s);
    assert.deepEqual(processesWithMarker(orphan.marker), [], "the predecessor's agent was reaped before anything was dispatched");
    const outcomePath = join(s.issues, 'CRASH-1.outcome.md');
    const report = await waitFor('the outcome of the second run', () => existsSync(outcomePath) && readFileSync(outcomePath, 'utf8'), 15_000);
    assert.match(report, /succeeded/);
    assert.match(report, /-e2-a1-/, 'run again by the new daemon as attempt 1 (the interrupted attempt was given back)');
    second.child.kill('SIGTERM');
    assert.equal((await second.finished).code, 0);
    rmSync(flag, { force: true });
  });

  it('SIGINT or SIGTERM during run-once releases its running agents instead of orphaning them', async () => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const s = makeSandbox(`once-${signal}`, { implementer: fixtureAgent('spawn-tree.mjs', '--stay') });
      s.writeIssue('ONCE-1');
      const run = spawnCli(['run-once', '--config', s.configPath]);
      const agent = await waitFor('the agent in the registry', () => readJson<{ agents: { marker: string; logPath: string }[] }>(s.registryPath)?.agents[0], 15_000);
      await waitFor('its grandchild', () => existsSync(agent.logPath) && readFileSync(agent.logPath, 'utf8').includes('"role":"grandchild"'));
      assert.equal(processesWithMarker(agent.marker).length, 3);
      run.child.kill(signal);
      const exit = await run.finished;
      assert.equal(exit.signal, null, `${signal}: run-once stops in order instead of dying on the signal`);
      assert.deepEqual(processesWithMarker(agent.marker), [], `${signal}: no agent process survives`);
      assert.deepEqual(readJson<{ agents: unknown[] }>(s.registryPath)?.agents, []);
      assert.equal(s.heartbeat()?.status, 'stopped');
    }
  });

  it('a hanging agent is stopped with its group when the daemon stops', async () => {
    const s = makeSandbox('hang', { implementer: fixtureAgent('hang.mjs') });
    const daemon = await startDaemon(s);
    s.writeIssue('HANG-1');
    const agent = await waitFor('the agent in the registry', () => readJson<{ agents: { runId: string; marker: string; pid: number }[] }>(s.registryPath)?.agents[0], 15_000);
    assert.deepEqual(processesWithMarker(agent.marker), [agent.pid]);
    daemon.child.kill('SIGTERM');
    assert.equal((await daemon.finished).code, 0);
    assert.deepEqual(processesWithMarker(agent.marker), []);
  });
});
