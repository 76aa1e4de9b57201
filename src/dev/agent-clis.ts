import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The checkout this module sits in (src/dev/ → the repo root): the cache folder is the checkout's own. */
const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

/**
 * The real Claude Code and Codex CLIs for tests and `npm run demo:claude`,
 * pinned, installed on first use into a cache folder outside package.json
 * (together ~800 MB on disk), so a user's `npm ci` for the demo never
 * downloads them. One folder per
 * package@version; an install goes to a temp folder renamed into place when it
 * is complete and verified, under a lock file so concurrent test files install
 * once. When the install is impossible (offline, no npm) callers get a reason to
 * skip with, never a silent pass; FACTORY_REQUIRE_AGENT_CLIS=1 (set by .ci/run)
 * turns that skip into a failure.
 */

export type AgentCliName = 'claude-code' | 'codex';

export interface AgentCliPin {
  readonly packageName: string;
  readonly version: string;
  /** The executable under node_modules/.bin. */
  readonly binName: string;
  /** npm lifecycle scripts this package needs (claude-code's postinstall puts the native binary in place). */
  readonly allowScripts: boolean;
}

/** Bump together with the recorded transcripts (test/fixtures/transcripts), which are tied to these versions. */
export const AGENT_CLI_PINS: Readonly<Record<AgentCliName, AgentCliPin>> = {
  'claude-code': { packageName: '@anthropic-ai/claude-code', version: '2.1.332', binName: 'claude', allowScripts: true },
  codex: { packageName: '@openai/codex', version: '0.171.0', binName: 'codex', allowScripts: false },
};

export type AgentCliResolution =
  | { readonly ok: true; readonly name: AgentCliName; readonly version: string; readonly bin: string; readonly dir: string; readonly installedNow: boolean; readonly installMs: number }
  | { readonly ok: false; readonly name: AgentCliName; readonly reason: string };

const INSTALL_TIMEOUT_MS = 15 * 60_000;
const LOCK_POLL_MS = 250;
const INSTALL_PROGRESS_MS = 5_000;

export function agentCliCacheRoot(): string {
  return process.env.FACTORY_TEST_CACHE ? join(process.env.FACTORY_TEST_CACHE, 'agent-clis') : join(REPO_ROOT, '.cache', 'agent-clis');
}

export function agentCliDir(name: AgentCliName): string {
  const pin = AGENT_CLI_PINS[name];
  return join(agentCliCacheRoot(), `${name}@${pin.version}`);
}

/** True when a missing CLI must fail the test rather than skip it (CI installed them up front). */
export function agentClisRequired(): boolean {
  return process.env.FACTORY_REQUIRE_AGENT_CLIS === '1';
}

const inProcess = new Map<AgentCliName, Promise<AgentCliResolution>>();

/** The installed CLI, installing it first when the cache does not have it. Never throws: a failure is a reason. */
export function ensureAgentCli(name: AgentCliName, log: (line: string) => void = () => {}): Promise<AgentCliResolution> {
  let pending = inProcess.get(name);
  if (!pending) {
    pending = resolveOrInstall(name, log).catch((error: unknown) => ({ ok: false as const, name, reason: `installing ${name} failed: ${error instanceof Error ? error.message : String(error)}` }));
    inProcess.set(name, pending);
  }
  return pending;
}

async function resolveOrInstall(name: AgentCliName, log: (line: string) => void): Promise<AgentCliResolution> {
  const pin = AGENT_CLI_PINS[name];
  const dir = agentCliDir(name);
  const started = Date.now();
  const ready = verifiedInstall(name, dir);
  if (ready.ok) return { ok: true, name, version: pin.version, bin: ready.bin, dir, installedNow: false, installMs: 0 };

  mkdirSync(agentCliCacheRoot(), { recursive: true });
  const lockPath = `${dir}.lock`;
  const deadline = Date.now() + INSTALL_TIMEOUT_MS;
  for (;;) {
    if (tryTakeLock(lockPath)) break;
    // Someone else installs: wait for their result instead of downloading 400 MB twice.
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    const theirs = verifiedInstall(name, dir);
    if (theirs.ok) return { ok: true, name, version: pin.version, bin: theirs.bin, dir, installedNow: false, installMs: Date.now() - started };
    if (Date.now() > deadline) return { ok: false, name, reason: `timed out waiting for another process to install ${pin.packageName}@${pin.version} (lock ${lockPath})` };
  }
  try {
    const again = verifiedInstall(name, dir);
    if (again.ok) return { ok: true, name, version: pin.version, bin: again.bin, dir, installedNow: false, installMs: Date.now() - started };
    log(`installing ${pin.packageName}@${pin.version} into ${dir} (first use; later runs reuse it)`);
    const staging = `${dir}.staging-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    // A package.json of its own keeps the install out of any project and lists which scripts may run.
    writeFileSync(join(staging, 'package.json'), JSON.stringify({ name: 'factory-agent-cli-cache', private: true, allowScripts: pin.allowScripts ? { [pin.packageName]: true } : {} }, null, 2));
    // npm prints nothing until it is done (a minute or more on a slow link): say that it is still at it.
    const progress = setInterval(() => log(`still installing ${pin.packageName}@${pin.version} (${Math.round((Date.now() - started) / 1000)} s)`), INSTALL_PROGRESS_MS);
    const npm = await runNpmInstall(staging, `${pin.packageName}@${pin.version}`).finally(() => clearInterval(progress));
    if (npm.code !== 0) {
      rmSync(staging, { recursive: true, force: true });
      return { ok: false, name, reason: `npm install ${pin.packageName}@${pin.version} failed (exit ${npm.code}): ${npmErrorSummary(npm.stderr)}` };
    }
    const installed = verifiedInstall(name, staging);
    if (!installed.ok) {
      rmSync(staging, { recursive: true, force: true });
      return { ok: false, name, reason: installed.reason };
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    const installMs = Date.now() - started;
    log(`installed ${pin.packageName}@${pin.version} in ${(installMs / 1000).toFixed(1)} s`);
    const final = verifiedInstall(name, dir);
    if (!final.ok) return { ok: false, name, reason: final.reason };
    return { ok: true, name, version: pin.version, bin: final.bin, dir, installedNow: true, installMs };
  } finally {
    rmSync(lockPath, { force: true });
  }
}

/** The binary runs and reports the pinned version; a placeholder or a half-written install fails here. */
function verifiedInstall(name: AgentCliName, dir: string): { ok: true; bin: string } | { ok: false; reason: string } {
  const pin = AGENT_CLI_PINS[name];
  const bin = join(dir, 'node_modules', '.bin', pin.binName);
  if (!existsSync(bin)) return { ok: false, reason: `${bin} does not exist` };
  const probe = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (probe.status !== 0 || !probe.stdout.includes(pin.version)) {
    return { ok: false, reason: `${pin.binName} --version in ${dir} exited ${probe.status ?? probe.signal} with "${(probe.stdout + probe.stderr).trim().slice(0, 300)}", expected ${pin.version}` };
  }
  return { ok: true, bin };
}

/** An exclusive lock file holding our pid; one left by a dead process is taken over. */
function tryTakeLock(lockPath: string): boolean {
  try {
    const fd = openSync(lockPath, 'wx');
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  let holder: number;
  try {
    holder = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
  } catch {
    return false; // released between our open and our read: try again next poll
  }
  if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) return false;
  rmSync(lockPath, { force: true });
  return false;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function runNpmInstall(prefix: string, spec: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    // engine-strict off: claude-code declares node>=22 but ships a native binary that runs on Node 20.
    const child = spawn('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--no-save', '--no-package-lock', '--engine-strict=false', '--loglevel=error', spec], {
      cwd: prefix,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, npm_config_update_notifier: 'false' },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGTERM'), INSTALL_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: -1, stderr: `${stderr}\n${error.message}` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** npm's error code and message lines, without its object dumps and log-file pointer. */
function npmErrorSummary(text: string): string {
  const lines = text
    .split('\n')
    .map((line) => line.replace(/^npm (?:error|ERR!)\s*/, '').trim())
    .filter((line) => line.length > 0 && !/^[{}]|^\w+: |complete log of this run/.test(line));
  return lines.slice(0, 3).join(' | ') || '(no output)';
}
