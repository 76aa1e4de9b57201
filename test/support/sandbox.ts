import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** Shared by tests and benches that run real daemons, repos and files. */

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

/** Polls `probe` until it returns something other than undefined/false; fails naming `what` at the deadline. No fixed sleeps. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** git with a fixed identity and no user hooks or signing, whatever the machine's git config says. */
export function git(repo: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Factory test', '-c', 'user.email=test@factory.invalid', '-c', 'commit.gpgsign=false', '-c', 'core.hooksPath=/dev/null', '-C', repo, ...args], {
    encoding: 'utf8',
  });
}

/** Every file under `dir` (clones, `.git/config`, worktrees, logs) whose bytes contain `text`: for secret scans. */
export function filesContaining(dir: string, text: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .filter((path) => readFileSync(path).includes(text));
}

/** A git repository with one commit on `main`. */
export function createScratchRepo(repo: string): void {
  mkdirSync(repo, { recursive: true });
  git(repo, 'init', '--quiet', '--initial-branch=main');
  writeFileSync(join(repo, 'README.md'), '# scratch repo\n');
  git(repo, 'add', 'README.md');
  git(repo, 'commit', '--quiet', '-m', 'initial commit');
}

export interface ScratchProject {
  readonly dir: string;
  readonly repo: string;
  readonly issuesDir: string;
  readonly configPath: string;
  writeIssue(key: string, fields?: Record<string, unknown>): string;
}

/**
 * A temp folder with a scratch repo, an issues folder and a config whose mount
 * and default repo point at them; `config` is merged over that (top-level keys).
 */
export function createScratchProject(name: string, config: Record<string, unknown>): ScratchProject {
  const dir = mkdtempSync(join(tmpdir(), `factory-${name}-`));
  const repo = join(dir, 'repo');
  const issuesDir = join(dir, 'issues');
  createScratchRepo(repo);
  mkdirSync(issuesDir);
  const configPath = join(dir, 'factory.config.json');
  writeFileSync(configPath, JSON.stringify({ mount: { root: './issues' }, repos: { default: './repo' }, ...config }, null, 2));
  return {
    dir,
    repo,
    issuesDir,
    configPath,
    writeIssue(key, fields = {}) {
      const path = join(issuesDir, `${key}.json`);
      writeFileSync(path, JSON.stringify({ key, title: key, body: '', labels: ['factory'], state: 'ready', ...fields }));
      return path;
    },
  };
}

export interface DaemonProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
}

/** `factory start --mode live` from the sources, as a real child process. */
export function spawnDaemon(configPath: string, env: Record<string, string> = {}): DaemonProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'start', '--mode', 'live', '--config', configPath], {
    cwd: REPO_ROOT,
    env: { ...process.env, FACTORY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return { child, exited, stderr: () => stderr };
}
