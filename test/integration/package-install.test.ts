import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installTarball, packCheckout } from '../support/installed-package.js';
import { createScratchRepo, REPO_ROOT, waitFor } from '../support/sandbox.js';

/**
 * The package as a user gets it: `npm pack` of this checkout, then a global
 * install of the tarball into a temporary prefix without devDependencies, then
 * `factory` run from another folder. It must run compiled code only: the
 * package holds dist/ (with the dashboard page), no src/ and no source maps,
 * and tsx (a devDependency) is not installed at all, so running sources could
 * not even start. The install compiles better-sqlite3 from source when no
 * prebuilt binary downloads (about 100 s on two busy cores), hence the timeout.
 */

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

test('the installed package runs compiled code from another folder, without tsx', { timeout: 400_000 }, async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'factory-package-'));
  cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));

  const pack = packCheckout(scratch);
  const files = pack.files.map((file) => file.path);
  assert.ok(files.includes('dist/cli/main.js'), 'the compiled CLI is in the package');
  assert.ok(files.includes('dist/http/dashboard.html'), 'the dashboard page sits next to its compiled server');
  assert.ok(files.includes('deploy/systemd/factory.service'), 'the systemd units ship with it');
  assert.deepEqual(
    files.filter((path) => path.startsWith('src/')),
    [],
    'no TypeScript sources',
  );
  assert.deepEqual(
    files.filter((path) => path.endsWith('.map')),
    [],
    'no source maps',
  );
  assert.deepEqual(
    files.filter((path) => /^(test|bench)\//.test(path)),
    [],
    'no tests or benches',
  );
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
  assert.equal(manifest.dependencies.tsx, undefined, 'tsx is not a runtime dependency');
  assert.ok(manifest.devDependencies.tsx, 'tsx is a devDependency');

  const { prefix, packageDir, installMs } = installTarball(scratch, pack);
  t.diagnostic(
    `package: ${files.length} files, ${(pack.size / 1024).toFixed(0)} KiB packed, ${(pack.unpackedSize / 1024).toFixed(0)} KiB unpacked; npm install of the tarball took ${(installMs / 1000).toFixed(1)} s`,
  );
  assert.ok(existsSync(join(packageDir, 'dist', 'cli', 'main.js')));
  for (const devOnly of ['tsx', 'esbuild', 'typescript']) assert.ok(!existsSync(join(packageDir, 'node_modules', devOnly)), `${devOnly} is not installed`);

  // Another folder: a user's repository, with the installed `factory` on PATH.
  const work = join(scratch, 'my-repo');
  createScratchRepo(work);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH}`, FACTORY_LOG_FORMAT: 'json' };
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  const factory = (...args: string[]) => {
    const result = spawnSync('factory', args, { cwd: work, env, encoding: 'utf8' });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr, output: `${result.stdout}${result.stderr}` };
  };

  const version = factory('--version');
  assert.equal(version.status, 0, version.output);
  assert.equal(version.stdout.trim(), `factory ${manifest.version}`);

  const init = factory('init');
  assert.equal(init.status, 0, init.output);
  assert.ok(existsSync(join(work, 'factory.config.json')));
  const examplePath = join(work, 'issues', 'EXAMPLE-1.json');
  writeFileSync(examplePath, JSON.stringify({ ...JSON.parse(readFileSync(examplePath, 'utf8')), state: 'ready' }));

  const dryRun = factory('run-once', '--dry-run');
  assert.equal(dryRun.status, 0, dryRun.output);
  assert.match(dryRun.stdout, /EXAMPLE-1/);
  assert.doesNotMatch(dryRun.output, /\.ts\b|tsx/, 'no TypeScript anywhere in what ran');

  // The daemon serves the dashboard page from dist/http/ of the installed package.
  const configPath = join(work, 'factory.config.json');
  // An agent program every machine has: `start` refuses a config whose agents (claude, codex) are not installed.
  writeFileSync(configPath, JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), agents: { implementer: { command: ['true'] } }, http: { port: 0 }, mount: { root: './no-issues' } }));
  mkdirSync(join(work, 'no-issues'));
  const daemon = spawn('factory', ['start', '--mode', 'live'], { cwd: work, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let daemonLog = '';
  daemon.stderr.setEncoding('utf8').on('data', (chunk: string) => (daemonLog += chunk));
  const exited = new Promise<number | null>((resolve) => daemon.once('close', resolve));
  cleanups.push(() => {
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  });
  const url = await waitFor(
    'the installed daemon to name its dashboard',
    () => {
      if (daemon.exitCode !== null) throw new Error(`the daemon exited with ${daemon.exitCode}:\n${daemonLog}`);
      return /dashboard (http:\/\/\S+?);/.exec(daemonLog)?.[1];
    },
    20_000,
    50,
  );
  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>Factory<\/title>/);
  daemon.kill('SIGTERM');
  assert.equal(await exited, 0, daemonLog);
});
