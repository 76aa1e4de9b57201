import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileConfig } from '../../src/config/load.js';
import type { Issue } from '../../src/domain/issue.js';
import { agentEnvironment, findPlaceholdersInScripts, renderPrompt, type PromptContext } from '../../src/domain/prompt.js';
import { isFactoryError } from '../../src/errors.js';

/**
 * A placeholder is safe only as a whole argument: inside a shell script (or
 * `python -c` code) the issue's text would be parsed as code. Such configs are
 * refused; the text reaches scripts through FACTORY_* variables instead.
 */

const configWith = (command: string[]): unknown => ({ mount: { root: './issues' }, agents: { implementer: { command } } });
const compile = (command: string[]) => compileConfig(configWith(command), '/srv/factory.config.json');

describe('placeholders inside scripts', () => {
  const refused: string[][] = [
    ['sh', '-c', 'echo {{title}}'],
    ['bash', '-lc', 'claude -p "{{prompt}}"'],
    ['/bin/sh', '-c', 'echo {{ body }}'],
    ['/usr/bin/env', 'bash', '-c', 'echo {{title}}'],
    ['env', '-i', 'FOO=1', '-u', 'BAR', 'zsh', '-c', 'echo {{title}}'],
    ['env', '-S', "sh -c 'echo {{title}}'"],
    ['dash', '-e', '-c', 'echo {{issueKey}} {{title}}'],
    ['ksh', '-o', 'pipefail', '-xc', 'run {{worktree}}'],
    ['bash', '--login', '--rcfile', 'rc', '-c', '--', 'echo {{title}}'],
    ['timeout', '3600', 'sh', '-c', 'echo {{title}}'],
    ['python3', '-c', 'print("{{title}}")'],
    ['node', '--eval', 'console.log(`{{body}}`)'],
    ['perl', '-e', 'print "{{title}}"'],
  ];

  it('are found in the script argument of a known shell or interpreter, however it is reached', () => {
    for (const argv of refused) assert.notDeepEqual(findPlaceholdersInScripts(argv), [], JSON.stringify(argv));
    assert.deepEqual(findPlaceholdersInScripts(['env', 'FOO=1', 'bash', '-c', 'a {{title}} {{ body }} {{title}} {{nope}}', 'bash', '{{title}}']), [
      { index: 4, program: 'bash', placeholders: ['title', 'body'] },
    ]);
  });

  it('are fine as whole arguments, in script files and when unknown', () => {
    const accepted: string[][] = [
      ['claude', '-p', '{{prompt}}'],
      ['sh', '-c', 'echo "$FACTORY_ISSUE_TITLE"'],
      ['sh', '-c', 'printf "%s" "$1"', 'sh', '{{title}}'],
      ['bash', 'agent.sh', '{{title}}'],
      ['node', 'agent.mjs', '--title={{title}}'],
      ['sh', '-c', 'echo {{unknown}}'],
      ['python3', 'agent.py', '-c', '{{title}}'],
    ];
    for (const argv of accepted) assert.deepEqual(findPlaceholdersInScripts(argv), [], JSON.stringify(argv));
  });

  it('are refused by config validation, with the environment variables to use instead', () => {
    for (const argv of refused) {
      assert.throws(
        () => compile(argv),
        (error) => isFactoryError(error, 'FACTORY_CONFIG_INVALID') && /agents\.implementer\.command\.\d+: /.test(error.message),
        JSON.stringify(argv),
      );
    }
    assert.throws(
      () => compile(['sh', '-c', 'echo {{title}}; cat {{body}}']),
      (error) =>
        isFactoryError(error, 'FACTORY_CONFIG_INVALID') &&
        error.message.includes('agents.implementer.command.2: expected no {{title}}, {{body}} inside the sh script') &&
        error.message.includes('"$FACTORY_ISSUE_TITLE"') &&
        error.message.includes('FACTORY_ISSUE_BODY_FILE'),
    );
    // Every role is checked, not just the implementer.
    assert.throws(
      () => compileConfig({ mount: { root: './i' }, agents: { implementer: { command: ['a'] }, reviewer: { command: ['bash', '-c', 'review {{prompt}}'] } } }, '/srv/f.json'),
      (error) => isFactoryError(error, 'FACTORY_CONFIG_INVALID') && error.message.includes('agents.reviewer.command.2') && error.message.includes('FACTORY_PROMPT_FILE'),
    );
    assert.deepEqual(compile(['sh', '-c', 'claude -p "$(cat "$FACTORY_PROMPT_FILE")"']).agents.implementer.command[0], 'sh');
  });
});

describe('agentEnvironment', () => {
  const issue: Issue = {
    key: 'FAC-1',
    title: 'Fix $(touch /tmp/x) `id`',
    body: 'Body with "quotes"\nand $HOME',
    labels: ['factory'],
    state: 'ready',
    createdAtMs: 0,
    revision: 'r',
    location: '/m/FAC-1.json',
  };
  const context: PromptContext = { issue, role: 'implementer', branch: 'factory/FAC-1', worktree: '/state/worktrees/FAC-1', runId: 'run-1', attempt: 2 };

  it('gives the title as a variable and the body and prompt as files in the given folder, never the worktree', () => {
    const environment = agentEnvironment({ context, configEnv: { MODEL: 'x', FACTORY_BRANCH: 'forged' }, filesDir: '/state/logs/FAC-1', fileStem: 'run-1-implementer' });
    assert.deepEqual(environment.env, {
      MODEL: 'x',
      FACTORY_BRANCH: 'factory/FAC-1',
      FACTORY_ATTEMPT: '2',
      FACTORY_ISSUE_TITLE: 'Fix $(touch /tmp/x) `id`',
      FACTORY_ISSUE_BODY_FILE: '/state/logs/FAC-1/run-1-implementer.issue-body.md',
      FACTORY_PROMPT_FILE: '/state/logs/FAC-1/run-1-implementer.prompt.md',
    });
    assert.deepEqual(environment.files, [
      { path: '/state/logs/FAC-1/run-1-implementer.issue-body.md', content: 'Body with "quotes"\nand $HOME\n' },
      { path: '/state/logs/FAC-1/run-1-implementer.prompt.md', content: `${renderPrompt(context)}\n` },
    ]);
  });

  it('refuses a files folder inside the worktree', () => {
    assert.throws(() => agentEnvironment({ context, configEnv: {}, filesDir: '/state/worktrees/FAC-1/.factory', fileStem: 's' }), /inside the worktree/);
  });
});
