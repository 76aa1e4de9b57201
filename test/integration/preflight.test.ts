import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createScratchProject, git, REPO_ROOT, type ScratchProject } from '../support/sandbox.js';

/**
 * The preflight through the real CLI: a routed repo that is not a git checkout
 * with a commit, or an agent program that is not installed, refuses `start`,
 * `run-once`, `loop` and `dispatch` (exit 2, nothing started), and `triage`,
 * the dry runs and `init` say so as warnings instead of "would dispatch".
 */

const projects: ScratchProject[] = [];
after(() => {
  for (const project of projects) rmSync(project.dir, { recursive: true, force: true });
});

function project(name: string, config: Record<string, unknown> = {}): ScratchProject {
  const created = createScratchProject(`preflight-${name}`, { agents: { implementer: { command: ['true'] } }, http: { enabled: false }, ...config });
  projects.push(created);
  created.writeIssue('PF-1');
  return created;
}

function factory(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, ...options.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs'), join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...args],
      { cwd: options.cwd ?? REPO_ROOT, env, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

describe('preflight: problems every team would trip over are found before anything starts', () => {
  it('run-once, loop, dispatch and start refuse a repos.default that does not exist, naming the key and the fix; nothing is claimed or spawned', async () => {
    const p = project('missing-repo', { repos: { default: './no-such-repo' } });
    for (const args of [['run-once'], ['loop', '--max-iterations', '1'], ['dispatch', 'PF-1'], ['start']]) {
      const result = await factory([...args, '--config', p.configPath]);
      assert.equal(result.code, 2, `${args[0]}: ${result.stderr}`);
      assert.match(result.stderr, /FACTORY_PREFLIGHT_FAILED/);
      assert.match(result.stderr, /repos\.default: repo .*no-such-repo does not exist/);
    }
    assert.equal(existsSync(join(p.dir, '.factory', 'state.db')), false, 'no state was written');
  });

  it('refuses a routed repo that is a plain folder, or a git repo with no commit, under the key that routes to it', async () => {
    const p = project('not-git', { repos: { default: './repo', byLabel: { docs: './plain' }, rules: [{ keyword: 'empty', repo: './empty' }] } });
    mkdirSync(join(p.dir, 'plain'));
    mkdirSync(join(p.dir, 'empty'));
    git(join(p.dir, 'empty'), 'init', '--quiet');
    const result = await factory(['run-once', '--config', p.configPath]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /repos\.byLabel\.docs: repo .*plain is not a git checkout/);
    assert.match(result.stderr, /repos\.rules\[0\]\.repo: repo .*empty has no commits yet/);
    assert.doesNotMatch(result.stderr, /repos\.default:/, 'the good repo is not listed');
  });

  it('refuses an agent program that is not on PATH, a missing path, and a file that is not executable; a CLI driver names its default program', async () => {
    const notExecutable = join(REPO_ROOT, 'package.json');
    const p = project('agents', {
      agents: {
        implementer: { command: ['factory-no-such-agent-cli', '{{prompt}}'] },
        reviewer: { driver: 'codex', env: { PATH: '/nonexistent' } },
        tester: { command: ['./bin/missing-agent.sh'] },
        linter: { command: [notExecutable] },
      },
      team: { stages: [['implementer'], ['reviewer'], ['tester'], ['linter']] },
    });
    const result = await factory(['run-once', '--config', p.configPath]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /agents\.implementer\.command\[0\]: command "factory-no-such-agent-cli" was not found .*; fix: install it, add its folder to PATH/);
    assert.match(result.stderr, /agents\.reviewer\.command\[0\]: command "codex" was not found .*; fix: install Codex/);
    assert.match(result.stderr, /agents\.tester\.command\[0\]: command ".*bin\/missing-agent\.sh" was not found/);
    assert.match(result.stderr, /agents\.linter\.command\[0\]: command ".*package\.json" is not executable \(EACCES\); fix: make it executable/);
  });

  it('triage and run-once --dry-run still answer, with the same problems as warnings', async () => {
    const p = project('warnings', { agents: { implementer: { command: ['factory-no-such-agent-cli'] } } });
    const dry = await factory(['run-once', '--dry-run', '--json', '--config', p.configPath]);
    assert.equal(dry.code, 0, dry.stderr);
    const report = JSON.parse(dry.stdout) as { decisions: { action: string }[]; warnings: { key: string; problem: string; fix: string }[] };
    assert.equal(report.decisions[0]?.action, 'queued');
    assert.deepEqual(
      report.warnings.map((w) => w.key),
      ['agents.implementer.command[0]'],
    );
    const text = await factory(['run-once', '--dry-run', '--config', p.configPath]);
    assert.match(text.stdout, /would dispatch[\s\S]*warning: every team would fail to start[\s\S]*agents\.implementer\.command\[0\]/);
    const triage = await factory(['triage', 'PF-1', '--config', p.configPath]);
    assert.equal(triage.code, 0, triage.stderr);
    assert.match(triage.stdout, /in scope: dispatch to[\s\S]*warning: every team would fail to start[\s\S]*factory-no-such-agent-cli/);
  });

  it('a sound config (a git repo with a commit, programs on PATH or by path) passes and runs', async () => {
    const p = project('sound', { agents: { implementer: { command: ['./agent.sh'] } }, runs: { allowNoChanges: true } });
    writeFileSync(join(p.dir, 'agent.sh'), '#!/bin/sh\nexit 0\n');
    chmodSync(join(p.dir, 'agent.sh'), 0o755);
    const dry = await factory(['run-once', '--dry-run', '--json', '--config', p.configPath]);
    assert.deepEqual((JSON.parse(dry.stdout) as { warnings: unknown[] }).warnings, []);
    const run = await factory(['run-once', '--config', p.configPath]);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  });

  it('with fleet.backend "bullmq" the control plane leaves agent programs to the workers, and a worker refuses a program it does not have before it connects to Redis', async () => {
    const p = project('fleet', {
      agents: { implementer: { command: ['factory-no-such-agent-cli'] } },
      fleet: { backend: 'bullmq', redis: { url: 'redis://127.0.0.1:1' } },
    });
    const worker = await factory(['worker', '--config', p.configPath]);
    assert.equal(worker.code, 2, worker.stderr);
    assert.match(worker.stderr, /FACTORY_PREFLIGHT_FAILED/);
    assert.match(worker.stderr, /agents\.implementer\.command\[0\]: command "factory-no-such-agent-cli" was not found/);
    // The control plane runs no agent itself: it goes on to Redis (unreachable here) instead of refusing the program.
    const controlPlane = await factory(['run-once', '--config', p.configPath]);
    assert.doesNotMatch(controlPlane.stderr, /FACTORY_PREFLIGHT_FAILED/);
    assert.match(controlPlane.stderr, /FACTORY_REDIS_UNREACHABLE/);
  });

  it('a worker refuses a config whose fleet.backend is not "bullmq" before it connects to Redis: no control plane queues runs for it', async () => {
    const p = project('worker-local', { fleet: { redis: { url: 'redis://127.0.0.1:1' } } });
    const worker = await factory(['worker', '--config', p.configPath]);
    assert.equal(worker.code, 2, worker.stderr);
    assert.match(worker.stderr, /factory worker needs fleet\.backend "bullmq", got "local"/);
    assert.match(worker.stderr, /FACTORY_CONFIG_INVALID/);
    assert.doesNotMatch(worker.stderr, /FACTORY_REDIS_UNREACHABLE/);
  });

  it('factory init warns when claude or codex is not on PATH and the folder is not a git checkout, and still writes the config', async () => {
    const p = project('init');
    const folder = join(p.dir, 'fresh');
    mkdirSync(folder);
    // A PATH with git alone: whatever agent CLIs this machine has installed stay out of sight.
    const bin = join(p.dir, 'bin-git-only');
    mkdirSync(bin);
    symlinkSync(execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim(), join(bin, 'git'));
    const result = await factory(['init'], { cwd: folder, env: { PATH: bin } });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(readFileSync(join(folder, 'factory.config.json'), 'utf8').includes('implementer'));
    assert.match(result.stdout, /repos\.default: repo .*fresh is not a git checkout/);
    assert.match(result.stdout, /agents\.implementer\.command\[0\]: command "claude" was not found/);
    assert.match(result.stdout, /agents\.reviewer\.command\[0\]: command "codex" was not found/);
  });
});
