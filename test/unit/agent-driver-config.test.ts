import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileConfig } from '../../src/config/load.js';
import { FactoryError } from '../../src/errors.js';
import { CliAgentHost } from '../../src/adapters/agent-drivers/cli-agent-host.js';
import { tomlValue } from '../../src/domain/agent-events/agent-driver.js';

/** `agents.<role>.driver` and its options: validated with the key named, compiled into the command line Factory runs. */

const base = { mount: { root: './issues' } };

function problemsOf(agents: Record<string, unknown>): string[] {
  try {
    compileConfig({ ...base, agents }, '/srv/factory.config.json');
  } catch (error) {
    assert.ok(error instanceof FactoryError);
    assert.equal(error.code, 'FACTORY_CONFIG_INVALID');
    return error.details.problems as string[];
  }
  return assert.fail('expected FACTORY_CONFIG_INVALID');
}

test('driver defaults to command: a command agent without a command is refused, naming what to write', () => {
  const commandAgent = compileConfig({ ...base, agents: { implementer: { command: ['./agent.sh'] } } }, '/srv/factory.config.json').agents.implementer;
  assert.deepEqual(commandAgent.driver, { kind: 'command' });
  assert.deepEqual(commandAgent.command, ['/srv/agent.sh']);
  const [problem] = problemsOf({ implementer: {} });
  assert.match(problem!, /^agents\.implementer\.command: expected a command .* or a driver \("claude-code", "codex"\)/);
});

test('claude-code and codex: command defaults to the CLI, options compile, misplaced or wrong options are refused by key', () => {
  const config = compileConfig(
    {
      ...base,
      agents: {
        implementer: { driver: 'claude-code', claudeCode: { model: 'sonnet', maxTurns: 30, allowedTools: ['Bash(git commit:*)', 'Edit'], permissionMode: 'acceptEdits' } },
        reviewer: {
          driver: 'codex',
          command: ['/opt/codex/bin/codex'],
          codex: {
            model: 'o3',
            config: { model_reasoning_effort: 'high', 'model_providers.local': { name: 'local', base_url: 'http://127.0.0.1:9/v1' } },
            sandbox: 'workspace-write',
            approvalPolicy: 'never',
          },
        },
      },
    },
    '/srv/factory.config.json',
  );
  const host = new CliAgentHost();
  const implementer = config.agents.implementer;
  assert.equal(implementer.driver?.kind, 'claude-code');
  assert.deepEqual(host.commandFor(implementer.command, implementer.driver as never, 'Fix FAC-1'), [
    'claude',
    '-p',
    '--output-format',
    'stream-json',
    '--verbose',
    '--model',
    'sonnet',
    '--max-turns',
    '30',
    '--allowedTools',
    'Bash(git commit:*)',
    'Edit',
    '--permission-mode',
    'acceptEdits',
    '--',
    'Fix FAC-1',
  ]);
  const reviewer = config.agents.reviewer!;
  assert.deepEqual(host.commandFor(reviewer.command, reviewer.driver as never, '-review'), [
    '/opt/codex/bin/codex',
    'exec',
    '--json',
    '-m',
    'o3',
    '-c',
    'model_reasoning_effort="high"',
    '-c',
    'model_providers.local={name="local",base_url="http://127.0.0.1:9/v1"}',
    '-c',
    'sandbox_mode="workspace-write"',
    '-c',
    'approval_policy="never"',
    '--',
    '-review',
  ]);
  assert.deepEqual(host.commandFor(reviewer.command, reviewer.driver as never, 'go on', { resumeSessionId: 'thread-1' }).slice(0, 4), ['/opt/codex/bin/codex', 'exec', 'resume', '--json']);

  assert.deepEqual(
    problemsOf({
      implementer: { driver: 'claude-code', claudeCode: { maxTurns: 0, permissionMode: 'yolo' }, codex: {} },
      reviewer: { driver: 'codex', codex: { sandbox: 'none', config: { 'bad key': 1 } } },
      tester: { driver: 'gemini', command: ['x'] },
    }).map((p) => p.split(':')[0]),
    ['agents.implementer.claudeCode.maxTurns', 'agents.implementer.claudeCode.permissionMode', 'agents.reviewer.codex.config.bad key', 'agents.reviewer.codex.sandbox', 'agents.tester.driver'],
  );
  // Options under the wrong driver are a mistake, not a silent no-op.
  assert.deepEqual(problemsOf({ implementer: { driver: 'claude-code', codex: { model: 'o3' } } }), [
    'agents.implementer.codex: expected codex options only with "driver": "codex" (driver is "claude-code"), got {"model":"o3"}',
  ]);
});

test('codex -c values are written as TOML from JSON', () => {
  assert.equal(tomlValue('o3'), '"o3"');
  assert.equal(tomlValue('say "hi"'), '"say \\"hi\\""');
  assert.equal(tomlValue(3), '3');
  assert.equal(tomlValue(true), 'true');
  assert.equal(tomlValue(['a', 1]), '["a",1]');
  assert.equal(tomlValue({ name: 'x', 'odd key': { deep: false } }), '{name="x","odd key"={deep=false}}');
});
