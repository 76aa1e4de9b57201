import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/sandbox.js';

/**
 * `factory --help` starts in well under the 150 ms budget (DESIGN.md) because it loads only the
 * verbs' help, never what a verb does: each verb's implementation is imported when it runs. This
 * checks what loads, not how long it takes, so it holds on a busy machine and fails as soon as a
 * verb's help file imports its implementation (or the composition root) eagerly again.
 */

const RECORD_LOADS = join(REPO_ROOT, 'test', 'fixtures', 'module-trace', 'record-loads.mjs');
/** Packages and modules that cost tens of milliseconds each to load, and the composition root that pulls them all in. */
const HEAVY = /\/node_modules\/(?:better-sqlite3|pino|bullmq|ioredis|prom-client|zod|@octokit\/[^/]+)\/|\/src\/main\.ts$|\/src\/(?:adapters|core|config)\//;

const scratch = mkdtempSync(join(tmpdir(), 'factory-cli-loads-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

let runs = 0;
/** Runs the CLI from the sources and returns its exit code and every module it loaded. */
function loadsOf(args: readonly string[]): { code: number | null; stderr: string; loaded: string[] } {
  const file = join(scratch, `loads-${++runs}.txt`);
  const env: NodeJS.ProcessEnv = { ...process.env, FACTORY_TEST_LOADS_FILE: file };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--import', RECORD_LOADS, 'src/cli/main.ts', ...args], { cwd: REPO_ROOT, env, encoding: 'utf8' });
  return { code: result.status, stderr: result.stderr, loaded: readFileSync(file, 'utf8').split('\n').filter(Boolean) };
}

test('help and version load no verb implementation: no config schema, logger, SQLite, Redis or GitHub client', () => {
  for (const args of [['--help'], ['--version'], ['help', 'start'], ['status', '--help'], ['worker', '-h'], ['frobnicate']]) {
    const { code, stderr, loaded } = loadsOf(args);
    assert.equal(code, args[0] === 'frobnicate' ? 2 : 0, `factory ${args.join(' ')}: ${stderr}`);
    assert.ok(
      loaded.some((url) => url.endsWith('/src/cli/main.ts')),
      'the recorder saw the CLI load',
    );
    assert.deepEqual(
      loaded.filter((url) => HEAVY.test(url)),
      [],
      `factory ${args.join(' ')} loaded a verb's implementation`,
    );
  }
});

test('a verb that runs loads its implementation (the recorder sees the heavy modules when they do load)', () => {
  const { code, loaded } = loadsOf(['loop-status', '--config', join(scratch, 'missing.config.json')]);
  assert.equal(code, 2, 'a missing config is a usage error');
  for (const module of ['/src/main.ts', '/node_modules/pino/', '/node_modules/better-sqlite3/']) {
    assert.ok(
      loaded.some((url) => url.includes(module)),
      `loop-status loaded ${module}`,
    );
  }
});
