import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClaudeCodeParser } from '../../src/domain/agent-events/claude-code-parser.js';
import { CodexParser } from '../../src/domain/agent-events/codex-parser.js';
import { JsonLinesReader } from '../../src/domain/agent-events/json-lines.js';
import type { AgentEventParser, AgentRunEvent } from '../../src/domain/agent-events/run-events.js';
import { judgeAgentRun, type AgentRunVerdict } from '../../src/domain/agent-events/run-verdict.js';
import { agentClisRequired, ensureAgentCli, type AgentCliName } from '../support/agent-clis.js';
import { FAKE_API_KEY, runAgentCli, SCRIPTED_CODEX_MODEL, SCRIPTED_MODEL, scriptedCodexProvider, type AgentCliRunResult } from '../support/agent-cli-runs.js';
import { claudeCodeArgv, codexArgv } from '../../src/adapters/agent-drivers/agent-argv.js';
import type { TokenUsage } from '../../src/domain/agent-events/usage-ledger.js';
import { createScratchRepo, git } from '../support/sandbox.js';
import { startScriptedModelServer, type ScriptedModelServer, type ScriptedTurn } from '../support/scripted-model-server.js';

/**
 * The real Claude Code and Codex CLIs (pinned, from the test cache) against the
 * scripted model server, in a temp git repo: a real tool call commits, the
 * parser reads the live stdout, and the parser's verdict and usage must match
 * what really happened and what the server really sent. Skipped, with the
 * reason, when the CLIs cannot be installed; failed instead when
 * FACTORY_REQUIRE_AGENT_CLIS=1 (CI installed them up front).
 */

const COMMIT = 'printf "hello\\n" > hello.txt && git add hello.txt && git commit -q -m "Add hello"';
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

interface LiveRun {
  readonly run: AgentCliRunResult;
  readonly server: ScriptedModelServer;
  readonly dir: string;
  readonly repo: string;
  readonly parser: AgentEventParser;
  readonly events: AgentRunEvent[];
  readonly verdict: AgentRunVerdict;
}

async function binFor(t: TestContext, cli: AgentCliName): Promise<string | undefined> {
  const resolved = await ensureAgentCli(cli, (line) => t.diagnostic(line));
  if (resolved.ok) return resolved.bin;
  if (agentClisRequired()) assert.fail(`FACTORY_REQUIRE_AGENT_CLIS=1 but ${cli} is unavailable: ${resolved.reason}`);
  t.skip(`${cli} CLI unavailable: ${resolved.reason}`);
  return undefined;
}

interface LiveOptions {
  readonly permissions?: 'bypass' | 'ask';
  readonly streamIdleTimeoutMs?: number;
  /** Run again in the same server, repo and HOME (a resume), with this argv. */
  readonly reuse?: LiveRun;
  readonly argv?: (server: ScriptedModelServer) => readonly string[];
  readonly usageBaseline?: TokenUsage;
}

async function runLive(t: TestContext, cli: AgentCliName, bin: string, script: readonly ScriptedTurn[], options: LiveOptions = {}): Promise<LiveRun> {
  let server: ScriptedModelServer;
  let dir: string;
  if (options.reuse) {
    server = options.reuse.server;
    dir = options.reuse.dir;
  } else {
    const started = await startScriptedModelServer(script);
    const made = mkdtempSync(join(tmpdir(), `factory-real-${cli}-`));
    server = started;
    dir = made;
    cleanups.push(async () => {
      await started.close();
      rmSync(made, { recursive: true, force: true });
    });
  }
  const repo = join(dir, 'repo');
  if (!options.reuse) {
    createScratchRepo(repo);
    git(repo, 'config', 'user.name', 'Agent');
    git(repo, 'config', 'user.email', 'agent@factory.invalid');
  }
  const parser: AgentEventParser =
    cli === 'codex' ? new CodexParser({ nowMs: () => Date.now(), utcOffsetMinutes: -new Date().getTimezoneOffset(), usageBaseline: options.usageBaseline }) : new ClaudeCodeParser();
  const reader = new JsonLinesReader();
  const events: AgentRunEvent[] = [];
  // Parsed as the bytes arrive, the way a driver follows the growing run log.
  const run = await runAgentCli({
    cli,
    bin,
    server,
    cwd: repo,
    home: join(dir, 'home'),
    prompt: 'Add hello.txt and commit it.',
    timeoutMs: 60_000,
    permissions: options.permissions,
    streamIdleTimeoutMs: options.streamIdleTimeoutMs,
    argv: options.argv?.(server),
    onStdout: (chunk) => {
      for (const line of reader.push(chunk).lines) events.push(...parser.parseLine(line));
    },
  });
  for (const line of reader.flush().lines) events.push(...parser.parseLine(line));
  t.diagnostic(`${cli}: exit ${run.exitCode}, ${run.durationMs} ms, ${events.length} events, ${server.modelRequests().length} model requests`);
  assert.equal(run.timedOut, false, `${cli} did not finish:\n${run.stderr}`);
  return { run, server, dir, repo, parser, events, verdict: judgeAgentRun(parser.snapshot(), { code: run.exitCode, signal: run.signal }) };
}

const commitScript: readonly ScriptedTurn[] = [
  { kind: 'shell', text: 'I will add hello.txt and commit it.', command: COMMIT, usage: { input: 1200, output: 40, cacheRead: 300, cacheWrite: 100 } },
  { kind: 'text', text: 'Committed hello.txt.', usage: { input: 1500, output: 12, cacheRead: 1200, cacheWrite: 0 } },
];

describe('Claude Code 2.1.332 against the scripted model server', () => {
  test('a Bash tool call commits for real; usage equals what the server sent; the result is success', { timeout: 120_000 }, async (t) => {
    const bin = await binFor(t, 'claude-code');
    if (!bin) return;
    const live = await runLive(t, 'claude-code', bin, commitScript);
    assert.equal(live.run.exitCode, 0, live.run.stderr);
    assert.equal(git(live.repo, 'log', '-1', '--format=%s').trim(), 'Add hello');
    assert.equal(git(live.repo, 'show', 'HEAD:hello.txt'), 'hello\n');

    assert.deepEqual(live.verdict, { verdict: 'succeeded' });
    const snapshot = live.parser.snapshot();
    assert.deepEqual(snapshot.usage, live.server.usageSent());
    assert.deepEqual(snapshot.usage, { input: 2700, output: 52, cacheRead: 1500, cacheWrite: 100 });
    assert.equal(snapshot.turns, 2);
    assert.ok(snapshot.sessionId);
    assert.deepEqual(
      live.events.filter((e) => e.kind === 'tool-call').map((e) => (e.kind === 'tool-call' ? [e.tool, e.summary] : [])),
      [['Bash', COMMIT]],
    );

    // What the CLI sent: two streamed model calls with our model and fake key, the second carrying the tool's result.
    assert.deepEqual(live.server.unknownRequests(), []);
    assert.deepEqual(live.server.overrunRequests(), []);
    const calls = live.server.modelRequests();
    assert.equal(calls.length, 2);
    assert.equal(calls[0]!.url, '/v1/messages?beta=true');
    assert.equal(calls[0]!.headers['x-api-key'], FAKE_API_KEY);
    const first = calls[0]!.body as { model: string; stream: boolean; tools: { name: string }[] };
    assert.equal(first.model, SCRIPTED_MODEL);
    assert.equal(first.stream, true);
    assert.ok(first.tools.some((tool) => tool.name === 'Bash'));
    const second = JSON.stringify(calls[1]!.body);
    assert.ok(second.includes('"tool_use_id":"toolu_scripted_1"'), 'the second call returns the tool result');
    assert.ok(second.includes(live.parser.snapshot().sessionId!), 'the session id travels in the request metadata');
  });

  test('an error result is a failure whatever the exit code; a denied tool call is a failure though the CLI exits 0', { timeout: 120_000 }, async (t) => {
    const bin = await binFor(t, 'claude-code');
    if (!bin) return;
    const failed = await runLive(t, 'claude-code', bin, [{ kind: 'api-error', status: 500, errorType: 'api_error', message: 'Internal server error' }]);
    assert.equal(failed.verdict.verdict, 'failed');
    assert.equal(failed.parser.snapshot().result?.failure?.apiErrorStatus, 500);
    // This CLI version exits 1 here; an earlier or later one exiting 0 must not turn it into a success.
    assert.equal(judgeAgentRun(failed.parser.snapshot(), { code: 0, signal: null }).verdict, 'failed');

    const denied = await runLive(t, 'claude-code', bin, commitScript, { permissions: 'ask' });
    assert.equal(denied.run.exitCode, 0, 'the CLI itself calls this a success');
    assert.equal(denied.parser.snapshot().result?.ok, true);
    assert.equal(git(denied.repo, 'rev-list', '--count', 'HEAD').trim(), '1', 'nothing was committed');
    assert.equal(denied.verdict.verdict, 'needs-approval');
  });
});

describe('Codex 0.171.0 against the scripted model server', () => {
  test('an exec_command call commits for real; usage equals what the server sent; the turn completes', { timeout: 120_000 }, async (t) => {
    const bin = await binFor(t, 'codex');
    if (!bin) return;
    const live = await runLive(t, 'codex', bin, commitScript);
    assert.equal(live.run.exitCode, 0, live.run.stderr);
    assert.equal(git(live.repo, 'log', '-1', '--format=%s').trim(), 'Add hello');
    assert.deepEqual(live.verdict, { verdict: 'succeeded' });
    const sent = live.server.usageSent();
    // The Responses API has no cache-write figure; everything else must match to the token.
    assert.deepEqual(live.parser.snapshot().usage, { ...sent, cacheWrite: 0 });
    assert.deepEqual(sent, { input: 2700, output: 52, cacheRead: 1500, cacheWrite: 0 });
    assert.deepEqual(
      live.events.filter((e) => e.kind === 'tool-call').map((e) => (e.kind === 'tool-call' ? [e.tool, e.summary] : [])),
      [['shell', COMMIT]],
    );

    assert.deepEqual(live.server.unknownRequests(), []);
    assert.deepEqual(live.server.overrunRequests(), []);
    const calls = live.server.modelRequests();
    assert.equal(calls.length, 2);
    assert.equal(calls[0]!.url, '/v1/responses');
    assert.equal(calls[0]!.headers.authorization, `Bearer ${FAKE_API_KEY}`);
    const first = calls[0]!.body as { model: string; stream: boolean; tools: { name?: string }[] };
    assert.equal(first.model, SCRIPTED_CODEX_MODEL);
    assert.equal(first.stream, true);
    assert.ok(first.tools.some((tool) => tool.name === 'exec_command'));
    const output = (calls[1]!.body as { input: { type: string; call_id?: string; output?: string }[] }).input.find((item) => item.type === 'function_call_output');
    assert.equal(output?.call_id, 'call_scripted_1');
    assert.match(output?.output ?? '', /exited with code 0/);
  });

  test('a failed turn is a failure; a usage limit parks with its reset time; a stalled stream fails instead of hanging', { timeout: 120_000 }, async (t) => {
    const bin = await binFor(t, 'codex');
    if (!bin) return;
    const failed = await runLive(t, 'codex', bin, [{ kind: 'api-error', status: 400, errorType: 'invalid_request_error', message: 'prompt is too long' }]);
    assert.equal(failed.verdict.verdict, 'failed');
    assert.equal(judgeAgentRun(failed.parser.snapshot(), { code: 0, signal: null }).verdict, 'failed');

    const resetAt = (Math.floor(Date.now() / 60_000) + 90) * 60; // 90 minutes out, on a whole minute
    const limited = await runLive(t, 'codex', bin, [{ kind: 'rate-limit', resetAtEpochSeconds: resetAt }]);
    assert.equal(limited.verdict.verdict, 'rate-limited');
    assert.equal(limited.verdict.verdict === 'rate-limited' ? limited.verdict.resetAtMs : undefined, resetAt * 1000);

    const stalled = await runLive(t, 'codex', bin, [{ kind: 'stall' }], { streamIdleTimeoutMs: 1_000 });
    assert.equal(stalled.verdict.verdict, 'failed');
    assert.equal(stalled.server.modelRequests().length, 1);
    assert.ok(stalled.run.durationMs < 30_000, `gave up after ${stalled.run.durationMs} ms`);
  });
});

describe('resuming a session with the driver argv builders', () => {
  const script: readonly ScriptedTurn[] = [
    { kind: 'text', text: 'first answer', usage: { input: 100, output: 7, cacheRead: 10 } },
    { kind: 'text', text: 'second answer', usage: { input: 200, output: 9, cacheRead: 20 } },
  ];
  const FIRST_PROMPT = '-first prompt, starting with a dash';

  test('Claude Code: --resume continues the same session with its history; the resumed run reports its own usage', { timeout: 120_000 }, async (t) => {
    const bin = await binFor(t, 'claude-code');
    if (!bin) return;
    const first = await runLive(t, 'claude-code', bin, script, {
      argv: () => claudeCodeArgv({ prompt: FIRST_PROMPT, model: SCRIPTED_MODEL, permissionMode: 'bypassPermissions', maxTurns: 5, allowedTools: ['Bash(git commit:*)', 'Edit'] }),
    });
    assert.deepEqual(first.verdict, { verdict: 'succeeded' });
    const sessionId = first.parser.snapshot().sessionId!;
    const second = await runLive(t, 'claude-code', bin, script, {
      reuse: first,
      argv: () => claudeCodeArgv({ prompt: 'second prompt', model: SCRIPTED_MODEL, permissionMode: 'bypassPermissions', resumeSessionId: sessionId }),
    });
    assert.deepEqual(second.verdict, { verdict: 'succeeded' });
    assert.equal(second.parser.snapshot().sessionId, sessionId);
    assert.ok(JSON.stringify(first.server.modelRequests()[1]!.body).includes(FIRST_PROMPT), 'the resumed call carries the first exchange');
    assert.deepEqual(second.parser.snapshot().usage, { input: 200, output: 9, cacheRead: 20, cacheWrite: 0 });
  });

  test('Codex: exec resume continues the same thread; its thread-cumulative usage is cut back to the resumed run', { timeout: 120_000 }, async (t) => {
    const bin = await binFor(t, 'codex');
    if (!bin) return;
    const config = (server: ScriptedModelServer) =>
      [
        ['model_providers.scripted', scriptedCodexProvider(server)],
        ['model_provider', '"scripted"'],
      ] as const;
    const first = await runLive(t, 'codex', bin, script, {
      argv: (server) => codexArgv({ prompt: FIRST_PROMPT, model: SCRIPTED_CODEX_MODEL, config: config(server), bypassApprovalsAndSandbox: true }),
    });
    assert.deepEqual(first.verdict, { verdict: 'succeeded' });
    const threadId = first.parser.snapshot().sessionId!;
    const second = await runLive(t, 'codex', bin, script, {
      reuse: first,
      usageBaseline: first.parser.snapshot().usage,
      argv: (server) => codexArgv({ prompt: 'second prompt', model: SCRIPTED_CODEX_MODEL, config: config(server), sandbox: 'workspace-write', approvalPolicy: 'never', resumeThreadId: threadId }),
    });
    assert.deepEqual(second.verdict, { verdict: 'succeeded' });
    assert.equal(second.parser.snapshot().sessionId, threadId);
    assert.ok(JSON.stringify(first.server.modelRequests()[1]!.body).includes(FIRST_PROMPT), 'the resumed call carries the first exchange');
    assert.deepEqual(second.parser.snapshot().usage, { input: 200, output: 9, cacheRead: 20, cacheWrite: 0 });
  });
});
