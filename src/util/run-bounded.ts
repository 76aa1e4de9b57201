import { spawn } from 'node:child_process';
import { formatDuration } from '../domain/duration.js';

export interface BoundedRunOptions {
  readonly env: NodeJS.ProcessEnv;
  /** 0: no limit. */
  readonly timeoutMs: number;
  readonly maxOutputBytes?: number;
}

/** Why a bounded run failed: its exit code, or that it ran out of time; `stderr` as the program wrote it (the caller redacts). */
export interface BoundedRunError extends Error {
  readonly stderr: string;
  readonly exitCode: number | null;
  readonly timedOut: boolean;
}

/**
 * Runs a program in a process group of its own and, past `timeoutMs`, kills
 * the whole group. Killing only the program would leave what it started
 * running: git hands the network to helpers (git-remote-https, ssh) that a
 * stalled connection keeps alive long after git itself is gone.
 */
export function runBounded(file: string, args: readonly string[], options: BoundedRunOptions): Promise<string> {
  const maxOutputBytes = options.maxOutputBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], { env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < maxOutputBytes) stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < maxOutputBytes) stderr += chunk.toString();
    });
    const timer =
      options.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            killGroup(child.pid);
          }, options.timeoutMs)
        : undefined;
    const fail = (message: string, exitCode: number | null): void => reject(Object.assign(new Error(message), { stderr, exitCode, timedOut }) as BoundedRunError);
    child.once('error', (error) => {
      clearTimeout(timer);
      fail(error.message, null);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (timedOut) fail(`timed out after ${formatDuration(options.timeoutMs)}${stderr.trim() ? `: ${stderr.trim()}` : ''}`, code);
      else if (code !== 0) fail(stderr.trim() || `${file} exited with code ${String(code)}`, code);
      else resolve(stdout);
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    // The group leads with the child's pid (detached: a new session), so every helper it started goes too.
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
