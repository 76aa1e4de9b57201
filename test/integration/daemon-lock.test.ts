import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { createScratchProject, REPO_ROOT, spawnDaemon, waitFor } from '../support/sandbox.js';

test('a live daemon holds its lock file open, which proves it is the daemon; the lock is gone after a clean stop', async () => {
  const project = createScratchProject('daemon-lock', { agents: { implementer: { command: ['true'] } }, loop: { heartbeatIntervalMs: 100 }, http: { enabled: false } });
  const lockPath = join(project.dir, '.factory', 'daemon.lock');
  const table = new LinuxProcessTable();
  const daemon = spawnDaemon(project.configPath);
  try {
    const heartbeat = await waitFor(
      'the running heartbeat',
      () => {
        try {
          const parsed = JSON.parse(readFileSync(join(project.dir, '.factory', 'heartbeat.json'), 'utf8')) as { pid: number; status: string };
          return parsed.status === 'running' && parsed;
        } catch {
          return undefined;
        }
      },
      20_000,
    );
    assert.equal(heartbeat.pid, daemon.child.pid);
    assert.equal(table.holdsOpen(heartbeat.pid, lockPath), true, 'the daemon has its lock open');
    assert.equal(table.holdsOpen(process.pid, lockPath), false, 'another process does not');
    daemon.child.kill('SIGTERM');
    assert.equal((await daemon.exited).code, 0);
    assert.throws(() => readFileSync(lockPath), /ENOENT/, 'the lock is released');
  } finally {
    daemon.child.kill('SIGKILL');
    rmSync(project.dir, { recursive: true, force: true });
  }
});

test(
  "two configs with their own state.dir keep their own heartbeat and registry: the second daemon never reaps the first one's live agent, and a config pointing its registry at the first one's is refused",
  { timeout: 90_000 },
  async () => {
    const hang = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'hang.mjs');
    const project = createScratchProject('two-configs', { agents: { implementer: { command: [process.execPath, hang] } }, http: { enabled: false } });
    const configFor = (name: string, extra: Record<string, unknown> = {}): string => {
      mkdirSync(join(project.dir, `issues-${name}`), { recursive: true });
      const path = join(project.dir, `${name}.json`);
      const base = JSON.parse(readFileSync(project.configPath, 'utf8')) as Record<string, unknown>;
      writeFileSync(path, JSON.stringify({ ...base, mount: { root: `./issues-${name}` }, state: { dir: `.s${name}` }, ...extra }));
      return path;
    };
    const readJson = (path: string): Record<string, unknown> | undefined => {
      try {
        return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    };
    const table = new LinuxProcessTable();
    const first = spawnDaemon(configFor('a'));
    const daemons = [first];
    try {
      writeFileSync(join(project.dir, 'issues-a', 'A-1.json'), JSON.stringify({ key: 'A-1', title: 'A-1', labels: ['factory'], state: 'ready' }));
      const agent = await waitFor("the first daemon's agent in its registry", () => (readJson(join(project.dir, '.sa', 'registry.json'))?.agents as { pid: number }[] | undefined)?.[0], 30_000);

      // A second config beside it, with its own state.dir: its own files, the first daemon's agent untouched.
      const second = spawnDaemon(configFor('b'));
      daemons.push(second);
      await waitFor("the second daemon's heartbeat in its own state.dir", () => readJson(join(project.dir, '.sb', 'heartbeat.json'))?.status === 'running', 30_000);
      assert.equal(readJson(join(project.dir, '.sa', 'heartbeat.json'))?.pid, first.child.pid, "the first daemon's heartbeat is its own");
      assert.ok(table.inspect(agent.pid) !== undefined, "the first daemon's agent is alive");

      // A config that moves its registry onto the first daemon's: refused before anything is signalled.
      const third = spawnDaemon(configFor('c', { loop: { registryPath: '.sa/registry.json' } }));
      daemons.push(third);
      assert.equal((await third.exited).code, 3, third.stderr());
      assert.match(third.stderr(), /FACTORY_DAEMON_ALREADY_RUNNING/);
      assert.match(third.stderr(), new RegExp(`pid ${first.child.pid}\\) is alive and writes .*\\.sa/registry\\.json \\(loop\\.registryPath\\)`));
      assert.ok(table.inspect(agent.pid) !== undefined, "the first daemon's agent is still alive");
      assert.equal((readJson(join(project.dir, '.sa', 'registry.json'))?.agents as unknown[]).length, 1, "the first daemon's registry still lists it");
    } finally {
      for (const daemon of daemons) daemon.child.kill('SIGTERM');
      await Promise.all(daemons.map((daemon) => daemon.exited));
      rmSync(project.dir, { recursive: true, force: true });
    }
  },
);

test('SIGHUP (the terminal of a foreground `factory start` closing) stops the daemon in order: its agent is released, the final heartbeat says stopped', { timeout: 60_000 }, async () => {
  const hang = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'hang.mjs');
  const project = createScratchProject('daemon-sighup', { agents: { implementer: { command: [process.execPath, hang] } }, loop: { heartbeatIntervalMs: 100 }, http: { enabled: false } });
  const table = new LinuxProcessTable();
  const daemon = spawnDaemon(project.configPath, { FACTORY_LOG_LEVEL: 'info' });
  const readJson = (name: string): Record<string, unknown> | undefined => {
    try {
      return JSON.parse(readFileSync(join(project.dir, '.factory', name), 'utf8')) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  };
  let agentPid: number | undefined;
  try {
    project.writeIssue('HUP-1');
    const agent = await waitFor('the agent in the registry', () => (readJson('registry.json')?.agents as { pid: number }[] | undefined)?.[0], 30_000);
    agentPid = agent.pid;
    assert.ok(table.inspect(agent.pid) !== undefined, 'the agent runs');
    daemon.child.kill('SIGHUP');
    const exit = await daemon.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, daemon.stderr());
    assert.equal(readJson('heartbeat.json')?.status, 'stopped');
    assert.match(daemon.stderr(), /SIGHUP/);
    assert.equal(table.inspect(agent.pid), undefined, 'the agent was released with the daemon, not left working unsupervised');
  } finally {
    daemon.child.kill('SIGKILL');
    // Without the ordered stop the agent's process group outlives the daemon; never leave it running.
    if (agentPid !== undefined && table.inspect(agentPid) !== undefined) process.kill(-agentPid, 'SIGKILL');
    rmSync(project.dir, { recursive: true, force: true });
  }
});
