import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { LocalProcessFleet } from '../../src/adapters/fleet/local-process-fleet.js';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { VerifiedProcessTerminator } from '../../src/adapters/process-table/verified-process-terminator.js';
import { compileConfig } from '../../src/config/load.js';
import type { Issue } from '../../src/domain/issue.js';
import { agentEnvironment, placeholderValues, renderArgument, type PromptContext } from '../../src/domain/prompt.js';
import { AGENT_MARKER_ENV } from '../../src/domain/registry.js';

/**
 * Real agent processes, spawned by the local fleet the way a team spawns them:
 * what reaches their environment, and what issue text can (not) do there.
 */

const scratch = mkdtempSync(join(tmpdir(), 'factory-agent-env-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const clock = new SystemClock();
const processTable = new LinuxProcessTable();

/** A fleet whose "daemon" environment is `daemonEnv`, as the composition root would hand it in. */
function fleetWith(daemonEnv: Record<string, string>): LocalProcessFleet {
  return new LocalProcessFleet({ instanceId: 'envtest', processTable, clock, terminator: new VerifiedProcessTerminator({ processTable, clock }), daemonEnv });
}

const DAEMON_ENV = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: '/home/factory',
  LANG: 'C.UTF-8',
  LC_TIME: 'C',
  SECRET_TOKEN: 'sk-daemon-secret',
  GIT_DIR: '/srv/other/.git',
  GIT_WORK_TREE: '/srv/other',
  ANTHROPIC_API_KEY: 'sk-ant-passed-on-purpose',
  OPENAI_ORG: 'org-1',
};

function issueTitled(title: string): Issue {
  return { key: 'ENV-1', title, body: 'line one\n$(touch body-ran)\n', labels: ['factory'], state: 'ready', createdAtMs: 0, revision: 'r', location: '/m/ENV-1.json' };
}

/** Spawns one agent with `command` (placeholders rendered as a team renders them) and waits for it. */
async function runAgent(name: string, command: string[], issue: Issue, options: { daemonEnv?: Record<string, string>; envPassthrough?: string[]; configEnv?: Record<string, string> } = {}) {
  const worktree = mkdtempSync(join(scratch, `${name}-worktree-`));
  const logsDir = join(scratch, 'logs', issue.key);
  const context: PromptContext = { issue, role: 'implementer', branch: `factory/${issue.key}`, worktree, runId: `run-${name}`, attempt: 1 };
  const environment = agentEnvironment({ context, configEnv: options.configEnv ?? {}, configEnvPassthrough: options.envPassthrough ?? [], filesDir: logsDir, fileStem: `run-${name}-implementer` });
  const values = placeholderValues(context);
  const logPath = join(logsDir, `run-${name}-implementer.log`);
  const handle = await fleetWith(options.daemonEnv ?? DAEMON_ENV).spawn({
    issueKey: issue.key,
    runId: `run-${name}`,
    role: 'implementer',
    agentName: `${issue.key}-${name}`,
    command: command.map((arg) => renderArgument(arg, values)),
    cwd: worktree,
    env: environment.env,
    envPassthrough: environment.envPassthrough,
    files: environment.files,
    logPath,
    worktree,
  });
  const exit = await handle.exited;
  await handle.stop(1000);
  return { exit, log: readFileSync(logPath, 'utf8'), worktree, environment };
}

/** `NAME=value` lines of `env -0` output in the log, after the fleet's header line. */
function parseEnv(log: string): Map<string, string> {
  const body = log.slice(log.indexOf('\n') + 1);
  return new Map(
    body
      .split('\0')
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

describe('agent environment', () => {
  it('passes only the allowlisted part of the daemon environment, plus config env and Factory variables', async () => {
    const { exit, log } = await runAgent('allow', ['env', '-0'], issueTitled('Env check'), { envPassthrough: ['ANTHROPIC_API_KEY', 'OPENAI_*'], configEnv: { MODEL: 'opus' } });
    assert.equal(exit.exitCode, 0);
    const env = parseEnv(log);
    for (const name of ['SECRET_TOKEN', 'GIT_DIR', 'GIT_WORK_TREE']) assert.equal(env.has(name), false, `${name} must not reach the agent`);
    assert.equal(env.get('PATH'), DAEMON_ENV.PATH);
    assert.equal(env.get('HOME'), '/home/factory');
    assert.equal(env.get('LC_TIME'), 'C', 'LC_* is a default prefix');
    assert.equal(env.get('ANTHROPIC_API_KEY'), 'sk-ant-passed-on-purpose', 'a name the config lists passes');
    assert.equal(env.get('OPENAI_ORG'), 'org-1', 'a prefix glob the config lists passes');
    assert.equal(env.get('MODEL'), 'opus');
    assert.equal(env.get('FACTORY_ISSUE_TITLE'), 'Env check');
    assert.equal(env.get('FACTORY_ISSUE_KEY'), 'ENV-1');
    assert.ok(env.get(AGENT_MARKER_ENV), 'the marker is still set');
    const allowed = new Set(['PATH', 'HOME', 'LANG', 'LC_TIME', 'ANTHROPIC_API_KEY', 'OPENAI_ORG', 'MODEL', 'PWD', 'SHLVL', '_']);
    const unexpected = [...env.keys()].filter((name) => !allowed.has(name) && !name.startsWith('FACTORY_'));
    assert.deepEqual(unexpected, [], 'nothing else from the daemon');
  });

  it('an issue title that is a command substitution stays text in a script that quotes the variable', async () => {
    const witness = join(scratch, 'title-ran');
    const title = `$(touch ${witness}) \`touch ${witness}\`; touch ${witness}`;
    const { exit, log, worktree, environment } = await runAgent(
      'inject',
      ['sh', '-c', 'printf "title=%s\\n" "$FACTORY_ISSUE_TITLE"; cat "$FACTORY_ISSUE_BODY_FILE"; head -1 "$FACTORY_PROMPT_FILE"'],
      issueTitled(title),
    );
    assert.equal(exit.exitCode, 0, log);
    assert.equal(existsSync(witness), false, 'the title must not run');
    assert.equal(existsSync(join(worktree, 'body-ran')), false, 'the body must not run');
    assert.ok(log.includes(`title=${title}\n`), log);
    assert.ok(log.includes('line one\n$(touch body-ran)\n'), 'the body file holds the body');
    assert.ok(log.includes(`Issue ENV-1: ${title}\n`), 'the prompt file holds the prompt');
    // The files live beside the logs, readable by the daemon's user only, and never in the worktree.
    for (const file of environment.files) {
      assert.ok(!file.path.startsWith(worktree), file.path);
      assert.equal(statSync(file.path).mode & 0o777, 0o600, file.path);
    }
  });

  it('the config that would have run the title is refused before any agent starts', () => {
    assert.throws(() => compileConfig({ mount: { root: './i' }, agents: { implementer: { command: ['sh', '-c', 'echo {{title}}'] } } }, join(scratch, 'f.json')), /FACTORY_ISSUE_TITLE/);
  });
});
