import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createScratchRepo, REPO_ROOT } from '../support/sandbox.js';

/**
 * Filesystem errors a user causes (a state folder through a regular file, a
 * folder owned by another user, a full disk, a missing parent folder) end
 * every verb with exit 2 and one coded error line naming the path, never an
 * internal error (exit 70) with a stack trace: under systemd, exit 70 on
 * every start is a restart loop nobody can read. Real CLI processes; the
 * permission cases run the CLI as `nobody`, because root ignores mode bits.
 */

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The CLI's environment: ours, minus what would make a child think it is a test runner. */
function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, FACTORY_LOG_FORMAT: 'json' };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return env;
}

/** Runs the CLI from the sources, optionally as `nobody` (setpriv), to completion. */
function runCli(args: readonly string[], options: { asNobody?: boolean } = {}): Promise<CliResult> {
  const node = [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...args];
  const [command, ...argv] = options.asNobody ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', ...node] : node;
  // The service user trusts the root-owned checkout, as git asks (safe.directory): these cases are about the state folder, not the repo.
  const env = options.asNobody ? { ...cliEnv(), GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'safe.directory', GIT_CONFIG_VALUE_0: '*' } : cliEnv();
  const child = spawn(command!, argv, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** Exit 2, the error line naming the code and the path, its hint line, and nothing else: no stack, no internal error. */
function assertCodedPathError(verb: string, result: CliResult, code: 'FACTORY_PATH_UNWRITABLE' | 'FACTORY_PATH_UNREADABLE', path: string): void {
  const context = `factory ${verb}\n--- stderr ---\n${result.stderr}`;
  assert.doesNotMatch(result.stderr, /internal error|^\s+at /m, context);
  assert.equal(result.code, 2, context);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, `one error line and its hint: ${context}`);
  assert.match(lines[0]!, new RegExp(`^factory: .*\\[${code}\\]$`), context);
  assert.ok(lines[0]!.includes(path), `the error line names ${path}: ${context}`);
  assert.match(lines[1]!, /^ {2}hint: /, context);
}

const scratch: string[] = [];
const mounted: string[] = [];
after(() => {
  for (const dir of mounted) execFileSync('umount', [dir]);
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/** A project (repo, issues folder with one ready issue, config) whose state, heartbeat and registry live where `paths` say. */
function makeProject(name: string, paths: (dir: string) => { stateDir: string; heartbeat: string; registry: string }): { dir: string; configPath: string } {
  const dir = mkdtempSync(join(tmpdir(), `factory-fs-${name}-`));
  scratch.push(dir);
  // Readable and traversable by `nobody`, like a project checked out for a service user.
  chmodSync(dir, 0o755);
  createScratchRepo(join(dir, 'repo'));
  mkdirSync(join(dir, 'issues'));
  writeFileSync(join(dir, 'issues', 'FS-1.json'), JSON.stringify({ key: 'FS-1', title: 'Do FS-1', body: 'b', labels: ['factory'], state: 'ready' }));
  const { stateDir, heartbeat, registry } = paths(dir);
  const configPath = join(dir, 'factory.config.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      mount: { root: './issues' },
      repos: { default: './repo' },
      agents: { implementer: { command: [process.execPath, '-e', 'process.exit(0)'] } },
      state: { dir: stateDir },
      loop: { heartbeatPath: heartbeat, registryPath: registry },
      http: { enabled: false },
    }),
  );
  chmodSync(configPath, 0o644);
  return { dir, configPath };
}

const canRunAsNobody = ((): boolean => {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'true']);
    return true;
  } catch {
    return false;
  }
})();

describe('a state folder whose path goes through a regular file (ENOTDIR)', () => {
  const project = makeProject('enotdir', (dir) => {
    writeFileSync(join(dir, 'blocker'), 'a file where a folder should be\n');
    return { stateDir: './blocker/state', heartbeat: './blocker/heartbeat.json', registry: './blocker/registry.json' };
  });
  const blocker = join(project.dir, 'blocker');

  it('start, run-once, loop, dispatch and reap-orphans exit 2 naming the lock they could not take', async () => {
    const verbs = [['start', '--mode', 'live'], ['run-once'], ['loop', '--max-iterations', '1'], ['dispatch', 'FS-1'], ['reap-orphans']];
    const results = await Promise.all(verbs.map((verb) => runCli([...verb, '--config', project.configPath])));
    results.forEach((result, index) => assertCodedPathError(verbs[index]!.join(' '), result, 'FACTORY_PATH_UNWRITABLE', join(blocker, 'state')));
  });

  it('status, loop-status, kill-loop, logs and triage exit 2 naming the file or folder they could not read', async () => {
    const verbs = [['status'], ['status', '--json'], ['loop-status'], ['kill-loop'], ['logs', 'FS-1'], ['triage', 'FS-1']];
    const results = await Promise.all(verbs.map((verb) => runCli([...verb, '--config', project.configPath])));
    results.forEach((result, index) => assertCodedPathError(verbs[index]!.join(' '), result, 'FACTORY_PATH_UNREADABLE', blocker));
    assert.match(results[0]!.stderr, /heartbeat\.json \(loop\.heartbeatPath\)/, 'status names the setting of the path it could not read');
  });

  it('logs with a regular file where the logs folder should be names the logs folder and its setting', async () => {
    const logsBlocked = makeProject('enotdir-logs', (dir) => {
      mkdirSync(join(dir, 'state'));
      writeFileSync(join(dir, 'state', 'logs'), 'a file\n');
      return { stateDir: './state', heartbeat: './state/heartbeat.json', registry: './state/registry.json' };
    });
    const result = await runCli(['logs', 'FS-1', '--config', logsBlocked.configPath]);
    assertCodedPathError('logs', result, 'FACTORY_PATH_UNREADABLE', join(logsBlocked.dir, 'state', 'logs', 'FS-1'));
    assert.match(result.stderr, /\(state\.dir\)/);
  });

  it('start with only the heartbeat path through a file names the heartbeat and its setting', async () => {
    const heartbeatOnly = makeProject('enotdir-heartbeat', (dir) => {
      writeFileSync(join(dir, 'blocker'), 'a file\n');
      return { stateDir: './state', heartbeat: './blocker/heartbeat.json', registry: './state/registry.json' };
    });
    const result = await runCli(['start', '--config', heartbeatOnly.configPath]);
    assertCodedPathError('start', result, 'FACTORY_PATH_UNWRITABLE', join(heartbeatOnly.dir, 'blocker', 'heartbeat.json'));
    assert.match(result.stderr, /\(loop\.heartbeatPath\)/);
  });
});

describe('init where the config folder does not exist (ENOENT of a parent)', () => {
  it('exits 2 naming the file it could not write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'factory-fs-init-'));
    scratch.push(dir);
    const target = join(dir, 'missing', 'deeper', 'factory.config.json');
    assertCodedPathError('init', await runCli(['init', '--config', target]), 'FACTORY_PATH_UNWRITABLE', target);
  });
});

describe('folders owned by root, the CLI running as nobody (EACCES)', { skip: canRunAsNobody ? false : 'needs root and setpriv to run the CLI as nobody' }, () => {
  it('start, run-once, dispatch and reap-orphans on a root-owned 0755 state folder exit 2 naming the lock', async () => {
    const project = makeProject('eacces-write', () => ({ stateDir: './state', heartbeat: './state/heartbeat.json', registry: './state/registry.json' }));
    const state = join(project.dir, 'state');
    mkdirSync(state, { mode: 0o755 });
    const verbs = [['start'], ['run-once'], ['dispatch', 'FS-1'], ['reap-orphans']];
    const results = await Promise.all(verbs.map((verb) => runCli([...verb, '--config', project.configPath], { asNobody: true })));
    results.forEach((result, index) => assertCodedPathError(verbs[index]!.join(' '), result, 'FACTORY_PATH_UNWRITABLE', state));
    assert.match(results[0]!.stderr, /permission denied.*\(EACCES/);
    assert.deepEqual(readdirSync(state), [], 'nothing was left in the folder');
  });

  it('status, loop-status, logs and triage on a root-owned 0700 state folder exit 2 naming what they could not read', async () => {
    const project = makeProject('eacces-read', () => ({ stateDir: './state', heartbeat: './state/heartbeat.json', registry: './state/registry.json' }));
    const state = join(project.dir, 'state');
    mkdirSync(join(state, 'logs', 'FS-1'), { recursive: true });
    chmodSync(state, 0o700);
    const verbs = [['status', '--json'], ['loop-status'], ['logs', 'FS-1'], ['triage', 'FS-1']];
    const results = await Promise.all(verbs.map((verb) => runCli([...verb, '--config', project.configPath], { asNobody: true })));
    results.forEach((result, index) => assertCodedPathError(verbs[index]!.join(' '), result, 'FACTORY_PATH_UNREADABLE', state));
  });

  it('init in a root-owned 0755 folder exits 2 naming the config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'factory-fs-init-eacces-'));
    scratch.push(dir);
    chmodSync(dir, 0o755);
    const target = join(dir, 'factory.config.json');
    assertCodedPathError('init', await runCli(['init', '--config', target], { asNobody: true }), 'FACTORY_PATH_UNWRITABLE', target);
  });
});

/** A 64 KiB tmpfs filled to the last byte, or undefined where this machine cannot mount one. */
function fullDisk(): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'factory-fs-full-'));
  scratch.push(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  mounted.push(dir);
  mkdirSync(join(dir, 'state'));
  try {
    // Whole blocks, then whatever is left; the write that hits ENOSPC is what fills it.
    execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'filler')}`, 'bs=1k', 'count=1024'], { stdio: 'ignore' });
  } catch {
    // dd exits 1 when the disk is full: that is the point.
  }
  return dir;
}

const disk = fullDisk();

describe('a state folder on a full disk (ENOSPC)', { skip: disk ? false : 'needs root and a tmpfs mount' }, () => {
  it('start, run-once and reap-orphans exit 2 naming the lock and leave no temp file behind', async () => {
    const state = join(disk!, 'state');
    const project = makeProject('enospc', () => ({ stateDir: state, heartbeat: join(state, 'heartbeat.json'), registry: join(state, 'registry.json') }));
    for (const verb of [['start'], ['run-once'], ['reap-orphans']]) {
      const result = await runCli([...verb, '--config', project.configPath]);
      assertCodedPathError(verb.join(' '), result, 'FACTORY_PATH_UNWRITABLE', state);
      assert.match(result.stderr, /no space left on the device \(ENOSPC/);
    }
    assert.deepEqual(readdirSync(state), [], 'no lock temp files left on the full disk');
    assert.ok(existsSync(join(disk!, 'filler')));
  });
});
