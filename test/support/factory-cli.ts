import { spawn } from 'node:child_process';
import type { RunOutcome } from '../../src/domain/run.js';
import { REPO_ROOT } from './sandbox.js';

/** The real `factory` CLI from the sources, run to completion: for tests that drive it as a user would. */

export interface FactoryCliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Our environment, minus what would make the child think it is a test runner. */
function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, FACTORY_LOG_LEVEL: 'warn' };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return env;
}

/** Runs `factory <args>`; killed (and the result says so in stderr) after `timeoutMs`. */
export function runFactoryCli(args: readonly string[], timeoutMs = 30_000): Promise<FactoryCliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO_ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `factory dispatch KEY --json` and its outcome; throws with the CLI's output when there is none. */
export async function dispatchForOutcome(configPath: string, key: string, timeoutMs?: number): Promise<FactoryCliResult & { outcome: RunOutcome }> {
  const result = await runFactoryCli(['dispatch', key, '--json', '--config', configPath], timeoutMs);
  let parsed: { outcome?: RunOutcome } = {};
  try {
    parsed = JSON.parse(result.stdout) as { outcome?: RunOutcome };
  } catch {
    // reported below
  }
  if (!parsed.outcome) throw new Error(`dispatch ${key} gave no outcome (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
  return { ...result, outcome: parsed.outcome };
}
