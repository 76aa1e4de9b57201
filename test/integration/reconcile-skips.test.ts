import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createScratchProject, REPO_ROOT, spawnDaemon, waitFor, type DaemonProcess } from '../support/sandbox.js';

/**
 * A malformed issue file that is already in the mount when `factory start`
 * runs is found by the startup reconcile, not by an event: it must still be
 * reported. It is logged at warn once per version of the file however many
 * periodic reconciles see it (not once per pass, not never), and `status
 * --json` lists it under `.skipped` with its reason until it is fixed.
 */

const run = promisify(execFile);

interface SkippedEntry {
  readonly issueKey: string | null;
  readonly path?: string;
  readonly reason: string;
}

const project = createScratchProject('reconcile-skips', {
  agents: { implementer: { command: [process.execPath, '-e', 'process.exit(0)'] } },
  intake: { reconcileIntervalMs: 150 },
  loop: { heartbeatIntervalMs: 100, heartbeatStaleMs: 5_000 },
  http: { enabled: false },
});
let daemon: DaemonProcess | undefined;

after(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGTERM');
    await daemon.exited;
  }
  rmSync(project.dir, { recursive: true, force: true });
});

async function statusSkipped(): Promise<SkippedEntry[]> {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'status', '--json', '--config', project.configPath], { cwd: REPO_ROOT, env });
  return (JSON.parse(stdout) as { skipped: SkippedEntry[] }).skipped;
}

/** The daemon's warn lines about `path` being skipped, from its piped (pure JSON) log. */
function skipWarnings(path: string): { msg: string }[] {
  return daemon!
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string; path?: string })
    .filter((record) => record.level === 40 && record.path === path && record.msg.startsWith('issue file skipped'));
}

/** Waits until the daemon has completed `count` more reconcile passes (each one moves the heartbeat's subscription.lastProgressAtMs). */
async function reconcilePasses(count: number): Promise<void> {
  const heartbeatPath = join(project.dir, '.factory', 'heartbeat.json');
  const seen = new Set<number>();
  await waitFor(
    `${count} reconcile passes`,
    () => {
      try {
        const progress = (JSON.parse(readFileSync(heartbeatPath, 'utf8')) as { subscription: { lastProgressAtMs: number | null } }).subscription.lastProgressAtMs;
        if (progress !== null) seen.add(progress);
      } catch {
        // mid-replace: read it on the next poll
      }
      return seen.size > count;
    },
    20_000,
  );
}

it('a malformed file present before start is in status .skipped with its reason and warned about once per file version', async () => {
  const badPath = join(project.issuesDir, 'BAD-1.json');
  writeFileSync(badPath, '{"key": "BAD-1", "title": ');
  daemon = spawnDaemon(project.configPath, { FACTORY_LOG_FORMAT: 'json' });

  const listed = await waitFor(
    'BAD-1.json in status --json .skipped',
    async () => {
      if (daemon!.child.exitCode !== null) throw new Error(`the daemon exited early (${daemon!.child.exitCode}): ${daemon!.stderr()}`);
      return (await statusSkipped()).find((entry) => entry.path === badPath);
    },
    30_000,
    200,
  );
  assert.equal(listed.issueKey, null, 'a file that is not an issue has no key');
  assert.match(listed.reason, /^BAD-1\.json: not valid JSON at line 1 column \d+/);

  await reconcilePasses(5);
  assert.equal(skipWarnings(badPath).length, 1, `one warn line across the startup reconcile and 5 periodic ones:\n${daemon.stderr()}`);
  assert.match(skipWarnings(badPath)[0]!.msg, /not valid JSON at line 1/);

  // A new version of the file (still malformed) is reported again, once.
  writeFileSync(badPath, '{"key": "BAD-1",\n "title": "x",,}');
  await waitFor('a warn line for the new version', () => skipWarnings(badPath).length >= 2, 10_000);
  await reconcilePasses(5);
  assert.equal(skipWarnings(badPath).length, 2, `one more warn line for the edited file, however many passes saw it:\n${daemon.stderr()}`);
  assert.match(skipWarnings(badPath)[1]!.msg, /not valid JSON at line 2/);
  assert.match((await statusSkipped()).find((entry) => entry.path === badPath)?.reason ?? '', /line 2/, 'status shows the reason for the current version');

  // Fixed, it leaves the list.
  writeFileSync(badPath, JSON.stringify({ key: 'BAD-1', title: 'fixed', body: '', labels: [], state: 'draft' }));
  await waitFor('BAD-1.json gone from status .skipped', async () => !(await statusSkipped()).some((entry) => entry.path === badPath), 15_000, 200);

  daemon.child.kill('SIGTERM');
  assert.equal((await daemon.exited).code, 0);
  assert.equal(skipWarnings(badPath).length, 2);
});
