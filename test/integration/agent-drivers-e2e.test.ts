import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import type { StatusSnapshot } from '../../src/core/status-snapshot.js';
import type { RunOutcome } from '../../src/domain/run.js';
import { agentClisRequired, ensureAgentCli, type AgentCliName } from '../support/agent-clis.js';
import { FAKE_API_KEY, SCRIPTED_CODEX_MODEL, SCRIPTED_MODEL } from '../support/agent-cli-runs.js';
import { createScratchProject, git, REPO_ROOT, spawnDaemon, waitFor, type ScratchProject } from '../support/sandbox.js';
import type { StateDocument } from '../../src/http/state-document.js';
import type { AgentActivitySummary } from '../../src/domain/agent-events/agent-driver.js';
import { startScriptedModelServer, type ScriptedModelServer, type ScriptedTurn } from '../support/scripted-model-server.js';

/**
 * The CLI drivers end to end: `factory dispatch` (a daemon session) runs the
 * REAL Claude Code and Codex CLIs (pinned, from the test cache) against the
 * scripted model server, in a real worktree. Factory builds their command
 * lines from `agents.implementer.driver` and its options, reads their streams
 * from the run log as they grow, judges the run by what the agent reported,
 * and puts its usage in the ledger that `factory status --json` reads.
 */

const COMMIT = 'printf "hello\\n" > hello.txt && git add hello.txt && git commit -q -m "Add hello"';
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function cliBin(t: TestContext, cli: AgentCliName): Promise<string | undefined> {
  const resolved = await ensureAgentCli(cli, (line) => t.diagnostic(line));
  if (resolved.ok) return resolved.bin;
  if (agentClisRequired()) assert.fail(`FACTORY_REQUIRE_AGENT_CLIS=1 but ${cli} is unavailable: ${resolved.reason}`);
  t.skip(`${cli} CLI unavailable: ${resolved.reason}`);
  return undefined;
}

function runFactory(args: readonly string[], timeoutMs = 90_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, FACTORY_LOG_LEVEL: 'warn' };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Scenario {
  readonly project: ScratchProject;
  readonly server: ScriptedModelServer;
}

/** A project whose implementer is the real CLI, with a private HOME and only the fake key, against a fresh scripted server. */
async function scenario(
  name: string,
  cli: AgentCliName,
  bin: string,
  script: readonly ScriptedTurn[],
  driverOptions: Record<string, unknown> = {},
  extraConfig: Record<string, unknown> = {},
): Promise<Scenario> {
  const server = await startScriptedModelServer(script);
  const gitIdentity = { GIT_AUTHOR_NAME: 'Agent', GIT_AUTHOR_EMAIL: 'agent@factory.invalid', GIT_COMMITTER_NAME: 'Agent', GIT_COMMITTER_EMAIL: 'agent@factory.invalid' };
  const home = mkdtempSync(join(tmpdir(), `factory-${name}-home-`));
  mkdirSync(join(home, '.codex'));
  const implementer =
    cli === 'claude-code'
      ? {
          driver: 'claude-code',
          command: [bin],
          claudeCode: { model: SCRIPTED_MODEL, ...driverOptions },
          env: { ...gitIdentity, HOME: home, ANTHROPIC_BASE_URL: server.url, ANTHROPIC_API_KEY: FAKE_API_KEY, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' },
        }
      : {
          driver: 'codex',
          command: [bin],
          codex: {
            model: SCRIPTED_CODEX_MODEL,
            config: {
              'model_providers.scripted': {
                name: 'scripted',
                base_url: `${server.url}/v1`,
                env_key: 'OPENAI_API_KEY',
                wire_api: 'responses',
                request_max_retries: 0,
                stream_max_retries: 0,
                stream_idle_timeout_ms: 5000,
              },
              model_provider: 'scripted',
            },
            bypassApprovalsAndSandbox: true,
            ...driverOptions,
          },
          env: { ...gitIdentity, HOME: home, CODEX_HOME: join(home, '.codex'), OPENAI_API_KEY: FAKE_API_KEY },
        };
  const project = createScratchProject(name, { agents: { implementer }, runs: { killGraceMs: 1_000 }, http: { enabled: false }, ...extraConfig });
  cleanups.push(async () => {
    await server.close();
    rmSync(project.dir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });
  return { project, server };
}

async function dispatch(project: ScratchProject, key: string): Promise<{ code: number | null; outcome: RunOutcome; stderr: string }> {
  project.writeIssue(key, { title: 'Add hello.txt', body: 'Add a hello.txt file and commit it.' });
  const result = await runFactory(['dispatch', key, '--json', '--config', project.configPath]);
  let parsed: { outcome?: RunOutcome };
  try {
    parsed = JSON.parse(result.stdout) as { outcome?: RunOutcome };
  } catch {
    throw new Error(`dispatch printed no JSON (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
  }
  assert.ok(parsed.outcome, `no outcome: ${result.stdout}\n${result.stderr}`);
  return { code: result.code, outcome: parsed.outcome, stderr: result.stderr };
}

async function status(project: ScratchProject): Promise<StatusSnapshot> {
  const result = await runFactory(['status', '--json', '--config', project.configPath]);
  return JSON.parse(result.stdout) as StatusSnapshot;
}

const commitScript: readonly ScriptedTurn[] = [
  { kind: 'shell', text: 'I will add hello.txt and commit it.', command: COMMIT, usage: { input: 1200, output: 40, cacheRead: 300, cacheWrite: 100 } },
  { kind: 'text', text: 'Committed hello.txt.', usage: { input: 1500, output: 12, cacheRead: 1200, cacheWrite: 0 } },
];

describe('CLI drivers through the daemon, real CLIs against the scripted model server', { timeout: 300_000 }, () => {
  test('claude-code: the implementer commits through a real Bash tool call; the run succeeds; the ledger holds exactly what the server sent', async (t) => {
    const bin = await cliBin(t, 'claude-code');
    if (!bin) return;
    const { project, server } = await scenario('drv-claude', 'claude-code', bin, commitScript, { allowedTools: ['Bash'], maxTurns: 5 });
    const { code, outcome } = await dispatch(project, 'CC-1');
    assert.equal(outcome.reason, 'succeeded', outcome.detail);
    assert.equal(code, 0);
    assert.equal(git(project.repo, 'log', '-1', '--format=%s', 'factory/CC-1').trim(), 'Add hello');
    assert.equal(git(project.repo, 'show', 'factory/CC-1:hello.txt'), 'hello\n');

    // What Factory ran: its own argv from the driver options (the server saw the model and the fake key, and Bash ran).
    const first = server.modelRequests()[0]!;
    assert.equal((first.body as { model: string }).model, SCRIPTED_MODEL);
    assert.equal(first.headers['x-api-key'], FAKE_API_KEY);
    assert.deepEqual(server.overrunRequests(), []);

    const report = outcome.agents[0]!.report!;
    assert.equal(report.driver, 'claude-code');
    assert.equal(report.verdict, 'succeeded');
    assert.deepEqual(report.usage, server.usageSent());
    assert.equal(report.turns, 2);
    assert.ok(report.sessionId, 'the session id is kept (to resume it)');
    assert.ok(typeof report.costUsd === 'number', 'Claude Code reports a cost');
    // The raw stream stays in the run log, JSON lines as the CLI wrote them.
    assert.match(readFileSync(outcome.agents[0]!.logPath, 'utf8'), /"type":"result"/);
    // `factory logs` renders it readably; --raw gives the JSON lines.
    const readable = await runFactory(['logs', 'CC-1', '--config', project.configPath]);
    assert.equal(readable.code, 0, readable.stderr);
    assert.match(readable.stdout, /^● session \S+ \(claude-scripted-1\)$/m);
    assert.match(readable.stdout, /^» I will add hello\.txt and commit it\.$/m);
    assert.ok(readable.stdout.includes(`$ Bash: ${COMMIT}`), readable.stdout);
    assert.match(readable.stdout, /^ {2}↳ ok: /m);
    assert.match(readable.stdout, /^✔ done: 2 turn\(s\), 4352 tokens, \$\d/m);
    assert.doesNotMatch(readable.stdout, /"type":/);
    const raw = await runFactory(['logs', 'CC-1', '--raw', '--config', project.configPath]);
    assert.match(raw.stdout, /^\{.*"type":"result"/m);

    const snapshot = await status(project);
    assert.deepEqual(
      snapshot.usage.today.rows.map((r) => [r.role, r.driver, r.runs, r.turns]),
      [['implementer', 'claude-code', 1, 2]],
    );
    assert.deepEqual(snapshot.usage.today.total.usage, server.usageSent());
    assert.equal(snapshot.usage.today.total.costUsd, report.costUsd);
    assert.deepEqual(snapshot.usage.allTime.total.usage, server.usageSent());
  });

  test('claude-code: a tool call nobody may approve fails the run with the reason, though the CLI would exit 0 and claim success', async (t) => {
    const bin = await cliBin(t, 'claude-code');
    if (!bin) return;
    // No allowedTools: Bash needs an approval a non-interactive run cannot give.
    const { project } = await scenario('drv-claude-denied', 'claude-code', bin, [commitScript[0]!, { kind: 'text', text: 'Done, all committed.', usage: { input: 900, output: 8 } }]);
    const { code, outcome } = await dispatch(project, 'CC-2');
    assert.equal(outcome.reason, 'failed');
    assert.equal(code, 1);
    const agent = outcome.agents[0]!;
    assert.equal(agent.report?.verdict, 'needs-approval');
    assert.match(outcome.detail, /needed approval for Bash \(printf "hello\\n" > hello\.txt/);
    assert.match(outcome.detail, /allow the tool/);
    assert.equal(git(project.repo, 'rev-list', '--count', 'main..factory/CC-2').trim(), '0', 'nothing was committed');
  });

  test('codex: the implementer commits through exec_command with stdin closed; the run succeeds; the ledger holds what the server sent', async (t) => {
    const bin = await cliBin(t, 'codex');
    if (!bin) return;
    const { project, server } = await scenario('drv-codex', 'codex', bin, commitScript);
    const { code, outcome } = await dispatch(project, 'CX-1');
    assert.equal(outcome.reason, 'succeeded', outcome.detail);
    assert.equal(code, 0);
    assert.equal(git(project.repo, 'show', 'factory/CX-1:hello.txt'), 'hello\n');
    const report = outcome.agents[0]!.report!;
    assert.equal(report.driver, 'codex');
    assert.equal(report.verdict, 'succeeded');
    assert.ok(report.sessionId, 'the thread id is kept');
    assert.equal(report.costUsd, undefined, 'Codex reports no cost');
    // Codex has no cache-write figure; everything else is what the server sent.
    assert.deepEqual(report.usage, { ...server.usageSent(), cacheWrite: 0 });

    const snapshot = await status(project);
    assert.deepEqual(
      snapshot.usage.today.rows.map((r) => [r.role, r.driver, r.runs, r.costUsd]),
      [['implementer', 'codex', 1, null]],
    );
    assert.deepEqual(snapshot.usage.today.total.usage, report.usage);
  });

  test('codex: a failed turn is a failure with the agent’s own reason', async (t) => {
    const bin = await cliBin(t, 'codex');
    if (!bin) return;
    const { project } = await scenario('drv-codex-error', 'codex', bin, [{ kind: 'api-error', status: 400, errorType: 'invalid_request_error', message: 'The scripted model refuses this request.' }]);
    const { code, outcome } = await dispatch(project, 'CX-2');
    assert.equal(outcome.reason, 'failed');
    assert.equal(code, 1);
    assert.equal(outcome.agents[0]!.report?.verdict, 'failed');
    assert.match(outcome.detail, /codex reported turn-failed.*scripted model refuses/);
  });

  test('through the live daemon: the state API shows the running agent’s last tool call, turns and tokens; /metrics counts the usage', async (t) => {
    const bin = await cliBin(t, 'claude-code');
    if (!bin) return;
    const slowCommit = `sleep 3 && ${COMMIT}`;
    const { project, server } = await scenario(
      'drv-daemon',
      'claude-code',
      bin,
      [{ kind: 'shell', text: 'I will add hello.txt and commit it.', command: slowCommit, usage: { input: 1200, output: 40, cacheRead: 300, cacheWrite: 100 } }, commitScript[1]!],
      { allowedTools: ['Bash'] },
      { http: { enabled: true, port: 0 } },
    );
    const daemon = spawnDaemon(project.configPath);
    cleanups.push(async () => {
      if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
      await daemon.exited;
    });
    const heartbeatPath = join(project.dir, '.factory', 'heartbeat.json');
    const url = await waitFor(
      'the daemon serving http',
      () => {
        try {
          return (JSON.parse(readFileSync(heartbeatPath, 'utf8')) as { http?: { url: string } }).http?.url;
        } catch {
          return undefined;
        }
      },
      30_000,
    );
    project.writeIssue('CC-3', { title: 'Add hello.txt', body: 'Add a hello.txt file and commit it.' });
    // While Bash sleeps: the agent's activity, from its stream, is in the state document.
    const running = await waitFor(
      'the running agent’s activity in /api/v1/state',
      async () => {
        const state = (await (await fetch(`${url}/api/v1/state`)).json()) as StateDocument;
        const agent = state.teams[0]?.agents[0] as { activity?: AgentActivitySummary | null } | undefined;
        return agent?.activity?.lastActivity?.kind === 'tool-call' ? agent.activity : undefined;
      },
      30_000,
      100,
    );
    assert.equal(running.driver, 'claude-code');
    assert.equal(running.lastActivity?.summary, `Bash: ${slowCommit}`);
    assert.equal(running.turns, 1);
    assert.equal(running.usage.input, 1200, 'the first turn’s input, counted once though the CLI repeats it');
    assert.ok(running.sessionId);

    const done = await waitFor('the run’s outcome', async () => (await status(project)).recentOutcomes.find((o) => o.issueKey === 'CC-3'), 60_000, 200);
    assert.equal(done.reason, 'succeeded', done.detail);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const sent = server.usageSent();
    for (const [kind, value] of [
      ['input', sent.input],
      ['output', sent.output],
      ['cacheRead', sent.cacheRead],
      ['cacheWrite', sent.cacheWrite],
    ] as const) {
      assert.match(metrics, new RegExp(`^factory_agent_tokens_total\\{role="implementer",driver="claude-code",kind="${kind}"\\} ${value}$`, 'm'));
    }
    assert.match(metrics, /^factory_agent_turns_total\{role="implementer",driver="claude-code"\} 2$/m);
    assert.match(metrics, /^factory_agent_cost_usd_total\{role="implementer",driver="claude-code"\} \d/m);
    const state = (await (await fetch(`${url}/api/v1/state`)).json()) as StateDocument;
    assert.deepEqual(state.usage.today.total.usage, sent);
    daemon.child.kill('SIGTERM');
    assert.equal((await daemon.exited).code, 0, daemon.stderr());
  });
});
