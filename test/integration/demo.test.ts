import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/sandbox.js';

/** `npm run demo` as a new user runs it: it finishes on its own, and says honestly what it shows. */

const work = mkdtempSync(join(tmpdir(), 'factory-demo-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('npm run demo runs the bundled story to the end and does not invite the user to watch a dashboard that closes seconds later', { timeout: 120_000 }, async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, FACTORY_DEMO_DIR: work };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  delete env.FACTORY_DEMO_KEEP;
  const demo = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, ['--import', 'tsx', join('examples', 'demo', 'run-demo.ts')], { cwd: REPO_ROOT, env, timeout: 100_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    ),
  );
  assert.equal(demo.code, 0, `${demo.stdout}\n${demo.stderr}`);
  assert.ok(existsSync(join(work, 'issues', 'DEMO-5.outcome.md')), 'the issue dropped in live was handled');
  assert.doesNotMatch(demo.stdout, /open it now/);
  assert.match(demo.stdout, /dashboard: http:\/\/\S+ \(the demo ends in a few seconds and the dashboard closes with the daemon; `FACTORY_DEMO_KEEP=1 npm run demo` keeps both up to explore\)/);
  assert.match(demo.stdout, /daemon exited with code 0/);
});
