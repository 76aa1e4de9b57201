import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentCliName } from './agent-clis.js';
import { FAKE_API_KEY, SCRIPTED_CODEX_MODEL, SCRIPTED_MODEL, type ScriptedModelServer } from './scripted-model-server.js';

/**
 * Runs a real agent CLI once against the scripted model server, the way the
 * tests and the transcript recorder both need it: a private HOME (and
 * CODEX_HOME) so the machine's own agent config, credentials and history play no
 * part, an environment built from scratch so no real API key can leak to the
 * fake server, stdin closed (Codex otherwise waits on it), and stdout kept
 * whole as the JSON-lines transcript.
 */

export interface AgentCliRunOptions {
  readonly cli: AgentCliName;
  readonly bin: string;
  readonly server: ScriptedModelServer;
  readonly cwd: string;
  /** A folder for the agent's HOME (created when missing); keep it per test. */
  readonly home: string;
  readonly prompt: string;
  readonly extraArgs?: readonly string[];
  readonly timeoutMs?: number;
  /** 'bypass' (default) lets tools run unasked; 'ask' leaves the CLI's own approval rules in force, so a tool call needs an approval nobody can give. */
  readonly permissions?: 'bypass' | 'ask';
  /** Codex gives up on a silent model stream after this long (default 5 s). */
  readonly streamIdleTimeoutMs?: number;
  /** The argv to run instead of the test default (e.g. from the driver argv builders); env and HOME stay the harness's. */
  readonly argv?: readonly string[];
  /** Each stdout chunk as it arrives, for parsing the stream live. */
  readonly onStdout?: (chunk: Buffer) => void;
}

export interface AgentCliRunResult {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
  readonly timedOut: boolean;
  readonly argv: readonly string[];
}

export { FAKE_API_KEY, SCRIPTED_CODEX_MODEL, SCRIPTED_MODEL };

/** Codex's `model_providers.scripted` table pointing at the server; exported for tests that build their own argv. */
export function scriptedCodexProvider(server: ScriptedModelServer, streamIdleTimeoutMs = 5000): string {
  return `{name="scripted",base_url="${server.url}/v1",env_key="OPENAI_API_KEY",wire_api="responses",request_max_retries=0,stream_max_retries=0,stream_idle_timeout_ms=${streamIdleTimeoutMs}}`;
}

export function agentCliArgv(options: Pick<AgentCliRunOptions, 'cli' | 'server' | 'prompt' | 'extraArgs' | 'permissions' | 'streamIdleTimeoutMs'>): string[] {
  const bypass = (options.permissions ?? 'bypass') === 'bypass';
  if (options.cli === 'claude-code') {
    return ['-p', options.prompt, '--output-format', 'stream-json', '--verbose', '--model', SCRIPTED_MODEL, ...(bypass ? ['--dangerously-skip-permissions'] : []), ...(options.extraArgs ?? [])];
  }
  const provider = `model_providers.scripted=${scriptedCodexProvider(options.server, options.streamIdleTimeoutMs)}`;
  return [
    'exec',
    '--json',
    '-c',
    provider,
    '-c',
    'model_provider=scripted',
    '-m',
    SCRIPTED_CODEX_MODEL,
    ...(bypass ? ['--dangerously-bypass-approvals-and-sandbox'] : []),
    ...(options.extraArgs ?? []),
    options.prompt,
  ];
}

export function agentCliEnv(cli: AgentCliName, server: ScriptedModelServer, home: string): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', TERM: 'dumb', NO_COLOR: '1' };
  if (cli === 'claude-code') {
    return {
      ...base,
      ANTHROPIC_BASE_URL: server.url,
      ANTHROPIC_API_KEY: FAKE_API_KEY,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      // Root may only skip permission prompts inside a declared sandbox; the test's temp repo is one.
      IS_SANDBOX: '1',
    };
  }
  const codexHome = join(home, '.codex');
  mkdirSync(codexHome, { recursive: true });
  return { ...base, OPENAI_API_KEY: FAKE_API_KEY, CODEX_HOME: codexHome };
}

export function runAgentCli(options: AgentCliRunOptions): Promise<AgentCliRunResult> {
  mkdirSync(options.home, { recursive: true });
  const argv = options.argv ? [...options.argv] : agentCliArgv(options);
  const env = agentCliEnv(options.cli, options.server, options.home);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(options.bin, argv, { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let timedOut = false;
    const stdoutChunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      stdoutChunks.push(chunk);
      options.onStdout?.(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ exitCode, signal, stdout: Buffer.concat(stdoutChunks).toString('utf8'), stderr, durationMs: Date.now() - started, timedOut, argv });
    });
  });
}
