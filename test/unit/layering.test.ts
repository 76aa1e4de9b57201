import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ESLint, type Linter } from 'eslint';

// The layer rules of eslint.config.js, exercised with the project's real config on code that never
// touches the disk. Typed linting needs every file in a TypeScript project; these probe paths do not
// exist, so the project service lets them into a default project built from tsconfig.json (the probe
// names must never be real files).
const root = fileURLToPath(new URL('../../', import.meta.url));
const PROBES = {
  core: 'src/core/layering-probe.ts',
  nestedCore: 'src/core/probe/layering-probe.ts',
  domain: 'src/domain/layering-probe.ts',
  ports: 'src/ports/layering-probe.ts',
  adapter: 'src/adapters/probe/layering-probe.ts',
  cli: 'src/cli/layering-probe.ts',
} as const;

const eslint = new ESLint({
  cwd: root,
  overrideConfig: {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: null, projectService: { allowDefaultProject: Object.values(PROBES), defaultProject: 'tsconfig.json' } } },
  },
});

async function lintAt(probe: keyof typeof PROBES, code: string): Promise<Linter.LintMessage[]> {
  const [result] = await eslint.lintText(code, { filePath: join(root, PROBES[probe]) });
  assert.ok(result, 'ESLint returned no result');
  return result.messages;
}

/** Exactly one problem, reported by `ruleId`, whose message says `says`. */
function assertOneProblem(messages: Linter.LintMessage[], ruleId: string, says: RegExp): void {
  assert.equal(messages.length, 1, `expected one problem, got: ${JSON.stringify(messages.map((m) => `${m.ruleId}: ${m.message}`))}`);
  assert.equal(messages[0]!.ruleId, ruleId);
  assert.match(messages[0]!.message, says);
}

const IMPORTS_RULE = '@typescript-eslint/no-restricted-imports';

test('a core file that imports an adapter fails lint, naming the layer rule and where the code goes', async () => {
  const messages = await lintAt('core', "import { SqliteStateStore } from '../adapters/state-store/sqlite-state-store.js';\nexport const store = SqliteStateStore;\n");
  assertOneProblem(messages, IMPORTS_RULE, /core must not import adapters: .*src\/main\.ts/);
});

test('a core file in a subfolder that imports an adapter fails lint too', async () => {
  const messages = await lintAt('nestedCore', "import type { LocalProcessFleet } from '../../adapters/fleet/local-process-fleet.js';\nexport type Fleet = LocalProcessFleet;\n");
  assertOneProblem(messages, IMPORTS_RULE, /core must not import adapters/);
});

test('a core file that uses node:fs or node:fs/promises fails lint: file I/O goes behind a port', async () => {
  for (const source of ['node:fs', 'node:fs/promises', 'fs']) {
    const messages = await lintAt('core', `import { readFile } from '${source}';\nexport const read = readFile;\n`);
    assertOneProblem(messages, IMPORTS_RULE, /core must not do file I\/O: add a port in src\/ports and an adapter/);
  }
});

test('a core file that spawns processes or reads process.env fails lint', async () => {
  assertOneProblem(await lintAt('core', "import { spawn } from 'node:child_process';\nexport const run = spawn;\n"), IMPORTS_RULE, /core must not spawn processes/);
  assertOneProblem(await lintAt('core', 'export const level = process.env.FACTORY_LOG_LEVEL;\n'), 'no-restricted-globals', /core must not read the process/);
});

test('core may import config types but not config values', async () => {
  assert.deepEqual(await lintAt('core', "import type { FactoryConfig } from '../config/load.js';\nexport type Config = FactoryConfig;\n"), []);
  const messages = await lintAt('core', "import { loadConfig } from '../config/load.js';\nexport const load = loadConfig;\n");
  assertOneProblem(messages, IMPORTS_RULE, /core may import only types from src\/config/);
});

test('a domain file that uses node:fs or the process fails lint: domain stays pure', async () => {
  assertOneProblem(
    await lintAt('domain', "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n"),
    IMPORTS_RULE,
    /domain must stay pure: no file, process, host or network access/,
  );
  assertOneProblem(await lintAt('domain', 'export const pid = process.pid;\n'), 'no-restricted-globals', /domain must not read the process/);
  assertOneProblem(
    await lintAt('domain', "import type { Clock } from '../ports/clock.js';\nexport type DomainClock = Clock;\n"),
    IMPORTS_RULE,
    /domain must stay pure: it imports only other domain modules/,
  );
});

test('a domain file may hash with node:crypto but not draw random bytes', async () => {
  assert.deepEqual(await lintAt('domain', "import { createHash } from 'node:crypto';\nexport const digest = (text: string): string => createHash('sha256').update(text).digest('hex');\n"), []);
  const messages = await lintAt('domain', "import { randomBytes } from 'node:crypto';\nexport const token = (): string => randomBytes(4).toString('hex');\n");
  assertOneProblem(messages, IMPORTS_RULE, /domain may use node:crypto only for hashing/);
});

test('an adapter that imports core fails lint', async () => {
  const messages = await lintAt('adapter', "import { isStillRunning } from '../../core/process-identity.js';\nexport const alive = isStillRunning;\n");
  assertOneProblem(messages, IMPORTS_RULE, /adapters must not import core: move the shared rule to src\/domain .* or put it behind a port/);
});

test('a port imports domain types only', async () => {
  assert.deepEqual(await lintAt('ports', "import type { Issue } from '../domain/issue.js';\nexport interface IssueSink {\n  put(issue: Issue): Promise<void>;\n}\n"), []);
  const messages = await lintAt('ports', "import { isValidIssueKey } from '../domain/issue.js';\nexport const valid = isValidIssueKey;\n");
  assertOneProblem(messages, IMPORTS_RULE, /ports are interfaces only: import domain and config with `import type`/);
});

test('a clean core file passes, and the CLI may wire adapters', async () => {
  const core = [
    "import type { Issue } from '../domain/issue.js';",
    "import type { Clock } from '../ports/clock.js';",
    "import type { FactoryConfig } from '../config/load.js';",
    "import { FactoryError } from '../errors.js';",
    '',
    'export function requireIssue(issue: Issue | undefined, clock: Clock, config: FactoryConfig): Issue {',
    "  if (!issue) throw new FactoryError('FACTORY_CONFIG_INVALID', `no issue at ${clock.now()} in ${config.paths.stateDb}`);",
    '  return issue;',
    '}',
    '',
  ].join('\n');
  assert.deepEqual(await lintAt('core', core), []);
  assert.deepEqual(await lintAt('cli', "import { SqliteStateStore } from '../adapters/state-store/sqlite-state-store.js';\nexport const store = SqliteStateStore;\n"), []);
});
