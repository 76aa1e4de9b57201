import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, waitFor } from '../support/sandbox.js';

/** `npm run demo:github` cleans up after itself: its scratch folder goes unless FACTORY_DEMO_KEEP=1 asks to keep it. */

const scratch = mkdtempSync(join(tmpdir(), 'factory-demo-github-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs the demo in its own process group (as a terminal does) with its temp folder in `tmp`. */
function runDemo(tmp: string, env: Record<string, string> = {}) {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, ...env };
  delete childEnv.NODE_TEST_CONTEXT;
  delete childEnv.NODE_OPTIONS;
  if (!('FACTORY_DEMO_KEEP' in env)) delete childEnv.FACTORY_DEMO_KEEP;
  const child = spawn(process.execPath, ['--import', 'tsx', join('examples', 'demo', 'run-github-demo.ts')], { cwd: REPO_ROOT, env: childEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

const demoFolders = (tmp: string): string[] => readdirSync(tmp).filter((name) => name.startsWith('factory-demo-github-'));

test('npm run demo:github removes its scratch folder when it ends', { timeout: 150_000 }, async () => {
  const tmp = mkdtempSync(join(scratch, 'full-'));
  const demo = runDemo(tmp);
  const code = await demo.exited;
  assert.equal(code, 0, `${demo.stdout()}\n${demo.stderr()}`);
  assert.match(demo.stdout(), /9\. GET \/api\/v1\/pull-requests/);
  assert.deepEqual(demoFolders(tmp), []);
});

test('Ctrl-C stops the demo and its daemon; FACTORY_DEMO_KEEP=1 keeps the folder and says where', { timeout: 120_000 }, async () => {
  const tmp = mkdtempSync(join(scratch, 'interrupted-'));
  const demo = runDemo(tmp, { FACTORY_DEMO_KEEP: '1' });
  await waitFor('the daemon to run', () => demo.stdout().includes('factory start is running'), 75_000);
  process.kill(-demo.child.pid!, 'SIGINT');
  assert.equal(await demo.exited, 130, `${demo.stdout()}\n${demo.stderr()}`);
  const [kept] = demoFolders(tmp);
  assert.ok(kept !== undefined && existsSync(join(tmp, kept, 'factory.config.json')));
  assert.ok(demo.stdout().includes(`kept in ${join(tmp, kept)} (FACTORY_DEMO_KEEP=1)`), demo.stdout());
});
