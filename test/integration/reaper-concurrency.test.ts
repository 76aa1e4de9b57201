import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { reapOrphans, type ReapOrphansOptions, type ReapReport } from '../../src/main.js';
import { AGENT_MARKER_ENV, parseRegistry } from '../../src/domain/registry.js';
import { ERROR_CATALOG } from '../../src/errors.js';
import { waitFor } from './agent-process-support.js';
import { isRunning, liveMarkedProcesses, onlyMarkedBy, REAPER_FIXTURES, ReaperWorld, RecordingProcessTable, STALE_AGE_MS, STALE_MS } from '../fixtures/reaper/harness.js';

/**
 * Reapers as separate processes: two at once (overlapping cron runs), one
 * SIGKILLed in the middle of its grace period, one started from inside an
 * agent's own tree. The final state must converge, with nothing signalled in
 * error and nothing that is the reaper or its ancestor signalled at all.
 */

interface ReaperProcess {
  readonly child: ChildProcess;
  readonly stderrLines: string[];
  /** Resolves with the exit code and the parsed stdout line (a report, or {error}). */
  readonly done: Promise<{ code: number | null; output: (ReapReport & { error?: undefined }) | { error: string } | null }>;
}

const worlds: ReaperWorld[] = [];
const reapers: ChildProcess[] = [];
async function newWorld(): Promise<ReaperWorld> {
  const world = await ReaperWorld.create();
  worlds.push(world);
  return world;
}
after(async () => {
  for (const reaper of reapers) if (reaper.exitCode === null && reaper.signalCode === null) reaper.kill('SIGKILL');
  await Promise.all(worlds.map((world) => world.cleanup()));
});

function startReaper(world: ReaperWorld, overrides: Partial<ReapOrphansOptions>, launcher: { env?: Record<string, string>; viaShell?: boolean } = {}): ReaperProcess {
  const fileOptions = {
    heartbeatPath: world.heartbeatPath,
    registryPath: world.registryPath,
    lockPath: world.lockPath,
    staleMs: STALE_MS,
    graceMs: 200,
    dryRun: false,
    ...overrides,
  };
  const argv = ['--import', 'tsx', join(REAPER_FIXTURES, 'run-reaper.ts'), JSON.stringify(fileOptions)];
  const env = { ...process.env, ...launcher.env };
  // Through `sh -c`, the reaper has a marked ancestor of its own (the shell) besides the test runner.
  const child = launcher.viaShell
    ? spawn('sh', ['-c', `"${process.execPath}" "$@"; exit $?`, 'sh', ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  reapers.push(child);
  const stderrLines: string[] = [];
  let stdout = '';
  let stderrRest = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => {
    const lines = (stderrRest + chunk.toString()).split('\n');
    stderrRest = lines.pop() ?? '';
    stderrLines.push(...lines);
  });
  const done = new Promise<{ code: number | null; output: never }>((resolve) => {
    child.once('close', (code) => {
      const lastLine = stdout.trim().split('\n').pop();
      resolve({ code, output: (lastLine ? JSON.parse(lastLine) : null) as never });
    });
  });
  return { child, stderrLines, done };
}

async function registryAgentNames(world: ReaperWorld): Promise<string[]> {
  const parsed = parseRegistry(await readFile(world.registryPath, 'utf8'));
  assert.ok(parsed.ok);
  return parsed.value.file.agents.map((entry) => entry.agentName);
}

describe('reapers that overlap, crash, or run inside an agent', () => {
  test('two reapers at once: one reaps, the other is turned away by the lock; each process is signalled once per signal', async () => {
    const world = await newWorld();
    const agents = [await world.spawnAgent('plain'), await world.spawnAgent('setsid'), await world.spawnAgent('ignore-term')];
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry(agents.map((agent) => agent.entry));

    // The SIGTERM-ignoring tree keeps the winner inside its grace period for a second, so the runs overlap.
    const [first, second] = [startReaper(world, { graceMs: 1_500 }), startReaper(world, { graceMs: 1_500 })];
    const results = await Promise.all([first.done, second.done]);

    const reports = results.map((result) => result.output).filter((output): output is ReapReport => output !== null && output.error === undefined);
    const turnedAway = results.filter((result) => result.output?.error === 'FACTORY_REAPER_LOCKED');
    assert.equal(reports.length + turnedAway.length, 2, `outputs: ${JSON.stringify(results)}`);
    for (const result of turnedAway) assert.equal(result.code, ERROR_CATALOG.FACTORY_REAPER_LOCKED.exitCode);
    const winners = reports.filter((report) => report.reaped.some((item) => item.signals.length > 0));
    assert.equal(winners.length, 1, 'exactly one reaper signalled anything');
    // Whoever lost either met the lock or, starting after the winner, found an empty registry.
    for (const report of reports) if (!winners.includes(report)) assert.deepEqual(report.reaped, []);

    const sent = reports.flatMap((report) => report.reaped.flatMap((item) => item.signals.map((s) => `${s.pid}:${s.signal}`)));
    assert.equal(new Set(sent).size, sent.length, `no (pid, signal) twice: ${sent.join(' ')}`);
    for (const agent of agents) assert.deepEqual(liveMarkedProcesses(world.table, agent.entry.marker), []);
    assert.deepEqual(await registryAgentNames(world), []);
    await assert.rejects(access(world.lockPath), 'the lock is released');
  });

  test('a reaper SIGKILLed in its grace period leaves a lock that the next reaper reclaims; the state converges', async () => {
    const world = await newWorld();
    const gentle = await world.spawnAgent('plain');
    const stubborn = await world.spawnAgent('ignore-term');
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry([gentle.entry, stubborn.entry]);

    const doomed = startReaper(world, { graceMs: 30_000 });
    const expectedSigterms = gentle.processes.length + stubborn.processes.length;
    await waitFor('the first reaper to send every SIGTERM', () => doomed.stderrLines.filter((l) => l.includes('"signal":"SIGTERM"') && l.includes('signal sent')).length === expectedSigterms, 10_000);
    await waitFor('the gentle tree to exit', () => liveMarkedProcesses(world.table, gentle.entry.marker).length === 0);
    doomed.child.kill('SIGKILL');
    await doomed.done;
    await access(world.lockPath); // the crashed reaper's lock is still there
    assert.deepEqual(await registryAgentNames(world), [gentle.entry.agentName, stubborn.entry.agentName], 'registry not yet rewritten');

    const table = new RecordingProcessTable(world.table, onlyMarkedBy(world));
    const report = await reapOrphans(world.reaperOptions(table, { graceMs: 200 }));

    assert.equal(report.exitCode, 0, report.reason);
    assert.deepEqual(table.violations, []);
    // The already-dead tree is not signalled again; the live one gets the full sequence once more, by identity.
    for (const info of gentle.processes) assert.deepEqual(table.signalled(info.pid), []);
    for (const info of stubborn.processes) assert.deepEqual(table.signalled(info.pid), ['SIGTERM', 'SIGKILL']);
    assert.deepEqual(
      report.reaped.map((item) => [item.agentName, item.outcome]),
      [
        [gentle.entry.agentName, 'already-gone'],
        [stubborn.entry.agentName, 'killed'],
      ],
    );
    assert.deepEqual(liveMarkedProcesses(world.table, stubborn.entry.marker), []);
    assert.deepEqual(await registryAgentNames(world), []);
    await assert.rejects(access(world.lockPath));
  });

  test('a reaper started inside an agent tree (it and its shell carry the marker) never signals itself or its ancestors', async () => {
    const world = await newWorld();
    const agent = await world.spawnAgent('plain');
    await world.writeHeartbeat(await world.deadIdentity(), { updatedAtMs: Date.now() - STALE_AGE_MS });
    await world.writeRegistry([agent.entry]);

    const inside = startReaper(world, {}, { env: { [AGENT_MARKER_ENV]: agent.entry.marker }, viaShell: true });
    const { code, output } = await inside.done;

    assert.ok(output && output.error === undefined, JSON.stringify(output));
    const report = output as ReapReport;
    const reaperPid = inside.child.pid ?? 0; // the shell; the reaper itself is its child
    const withheld = report.survivors.map((item) => item.pid);
    assert.ok(withheld.includes(reaperPid), `the marked shell ${reaperPid} is withheld: ${JSON.stringify(report.survivors)}`);
    assert.equal(withheld.length, 2, 'the shell and the reaper itself');
    assert.equal(code, ERROR_CATALOG.FACTORY_REAPER_SURVIVORS.exitCode, 'an orphan it may not touch still counts as a survivor');
    for (const info of agent.processes) assert.ok(!isRunning(world.table, info), `agent process ${info.pid} reaped`);
    assert.deepEqual(await registryAgentNames(world), [agent.entry.agentName], 'the entry stays: part of its tree is still alive');
  });
});
