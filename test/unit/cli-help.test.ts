import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, VERBS } from '../../src/cli/main.js';

async function helpOf(...argv: string[]): Promise<string> {
  let text = '';
  const code = await runCli(argv, { out: (line) => (text += `${line}\n`), err: (line) => (text += `${line}\n`) });
  assert.equal(code, 0, text);
  return text;
}

test('help names what each flag takes, as the usage line does (--config PATH, --tail N), never a bare VALUE', async () => {
  const general = await helpOf('--help');
  assert.match(general, /--config PATH {2}config file/);
  assert.doesNotMatch(general, /\bVALUE\b/);
  for (const verb of VERBS) {
    const help = await helpOf(verb.name, '--help');
    assert.doesNotMatch(help, /\bVALUE\b/, `factory ${verb.name} --help`);
    for (const flag of verb.flags) {
      if (!flag.takesValue) continue;
      const named = new RegExp(`--${flag.name} ([A-Z]+)\\b`).exec(verb.usage)?.[1];
      if (named !== undefined) assert.equal(flag.valueName, named, `factory ${verb.name}: --${flag.name} is shown as ${named} in the usage line`);
      assert.ok(help.includes(`  --${flag.name} ${flag.valueName}  `), `factory ${verb.name} --help shows --${flag.name} ${flag.valueName}`);
    }
  }
  assert.match(await helpOf('logs', '--help'), /--tail N {2}only the last N lines/);
});
