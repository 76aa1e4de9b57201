import { test } from 'node:test';
import assert from 'node:assert/strict';
import { claudeCodeArgv, codexArgv } from '../../src/adapters/agent-drivers/agent-argv.js';

/** The driver command lines; test/integration/real-agent-clis.test.ts runs them against the real CLIs. */

test('claude-code: stream-json flags, options from config, the prompt last after --', () => {
  assert.deepEqual(claudeCodeArgv({ prompt: 'fix it' }), ['-p', '--output-format', 'stream-json', '--verbose', '--', 'fix it']);
  assert.deepEqual(
    claudeCodeArgv({ prompt: '-x', model: 'sonnet', maxTurns: 20, allowedTools: ['Bash(git commit:*)', 'Edit'], permissionMode: 'acceptEdits', resumeSessionId: 's-1', includePartialMessages: true }),
    [
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--model',
      'sonnet',
      '--max-turns',
      '20',
      '--allowedTools',
      'Bash(git commit:*)',
      'Edit',
      '--permission-mode',
      'acceptEdits',
      '--resume',
      's-1',
      '--include-partial-messages',
      '--',
      '-x',
    ],
  );
  assert.throws(() => claudeCodeArgv({ prompt: 'p', maxTurns: 0 }), RangeError);
  assert.throws(() => claudeCodeArgv({ prompt: 'p', maxTurns: 1.5 }), RangeError);
});

test('codex: exec --json, -c overrides in order, sandbox and approvals as config keys, resume before the prompt', () => {
  assert.deepEqual(codexArgv({ prompt: 'fix it' }), ['exec', '--json', '--', 'fix it']);
  assert.deepEqual(codexArgv({ prompt: 'go on', model: 'o3', config: [['model_reasoning_effort', '"high"']], sandbox: 'workspace-write', approvalPolicy: 'never', resumeThreadId: 't-1' }), [
    'exec',
    'resume',
    '--json',
    '-m',
    'o3',
    '-c',
    'model_reasoning_effort="high"',
    '-c',
    'sandbox_mode="workspace-write"',
    '-c',
    'approval_policy="never"',
    't-1',
    '--',
    'go on',
  ]);
  assert.deepEqual(codexArgv({ prompt: 'p', bypassApprovalsAndSandbox: true }), ['exec', '--json', '--dangerously-bypass-approvals-and-sandbox', '--', 'p']);
  assert.throws(() => codexArgv({ prompt: 'p', config: [['a=b', '1']] }), RangeError);
});
