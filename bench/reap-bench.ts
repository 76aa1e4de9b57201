import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SystemClock } from '../src/adapters/clock/system-clock.js';
import { LinuxProcessTable } from '../src/adapters/process-table/linux-process-table.js';
import { reapOrphans } from '../src/main.js';
import { FileHeartbeatStore, FileRegistryStore } from '../src/adapters/node-state/file-node-state.js';
import { buildHeartbeat } from '../test/fixtures/reaper/harness.js';
import { AGENT_MARKER_ENV, formatAgentMarker, LOCAL_NODE, type RegistryEntry } from '../src/domain/registry.js';
import type { ProcessSnapshot } from '../src/ports/process-table.js';
import { median, round, waitUntil } from './bench-support.js';

/**
 * Reaping 100 orphan trees of 3 processes each: wall time of one reap apart
 * from the grace period it waited (the design target is under 1 s), and how
 * many process-table snapshots it took (one per pass). Median of 3 runs, each
 * with freshly spawned trees.
 */

const TREES = 100;
const PROCESSES_PER_TREE = 3;
const RUNS = 3;
const GRACE_MS = 200;
/** A leader and two children in one process group, all carrying the marker. */
const TREE_SCRIPT = 'sleep 1000 & sleep 1000 & exec sleep 1000';

/** The real table, counting snapshots. */
class CountingProcessTable extends LinuxProcessTable {
  snapshots = 0;
  override snapshot(): ProcessSnapshot {
    this.snapshots += 1;
    return super.snapshot();
  }
}

function countMarked(table: LinuxProcessTable, prefix: string): number {
  let count = 0;
  for (const info of table.snapshot().processes.values()) {
    if (info.state !== 'Z' && info.comm === 'sleep' && table.readEnvironmentVariable(info.pid, AGENT_MARKER_ENV)?.startsWith(prefix)) count += 1;
  }
  return count;
}

function killMarked(table: LinuxProcessTable, prefix: string): void {
  for (const info of table.snapshot().processes.values()) {
    if (!table.readEnvironmentVariable(info.pid, AGENT_MARKER_ENV)?.startsWith(prefix)) continue;
    try {
      process.kill(info.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function reapOnce(): Promise<{ msExcludingGrace: number; snapshots: number }> {
  const table = new CountingProcessTable(); // the reaper's: only its snapshots are counted
  const setupTable = new LinuxProcessTable();
  const dir = await mkdtemp(join(tmpdir(), 'factory-reap-bench-'));
  const instance = `bench${randomBytes(4).toString('hex')}`;
  const prefix = `factory:${instance}:`;
  try {
    const entries: RegistryEntry[] = [];
    for (let i = 0; i < TREES; i++) {
      const marker = formatAgentMarker(instance, 'run-1', `agent-${i}`);
      const child = spawn('sh', ['-c', TREE_SCRIPT], { detached: true, stdio: 'ignore', env: { ...process.env, [AGENT_MARKER_ENV]: marker } });
      const pid = child.pid;
      const info = pid === undefined ? undefined : table.inspect(pid);
      if (pid === undefined || !info) throw new Error('bench: could not spawn an orphan tree');
      entries.push({
        issueKey: `BENCH-${i}`,
        runId: 'run-1',
        role: 'implementer',
        agentName: `agent-${i}`,
        node: LOCAL_NODE,
        pid,
        pgid: pid,
        startTime: info.startTime,
        bootId: table.bootId(),
        marker,
        logPath: '',
        worktree: '',
        startedAtMs: Date.now(),
      });
    }
    await waitUntil(`${TREES * PROCESSES_PER_TREE} marked processes`, () => countMarked(setupTable, prefix) === TREES * PROCESSES_PER_TREE);

    // The daemon: a process that ran and is gone, with a heartbeat long past stale.
    const daemon = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const daemonInfo = table.inspect(daemon.pid ?? 0);
    const daemonExited = new Promise((resolve) => daemon.once('exit', resolve));
    daemon.kill('SIGKILL');
    await daemonExited;
    const heartbeatPath = join(dir, 'heartbeat.json');
    const registryPath = join(dir, 'registry.json');
    const updatedAtMs = Date.now() - 3_600_000;
    const daemonIdentity = { pid: daemon.pid ?? 0, startTime: daemonInfo?.startTime ?? 0, bootId: table.bootId() };
    await new FileHeartbeatStore(heartbeatPath).write(buildHeartbeat(daemonIdentity, { updatedAtMs, registryPath }));
    await new FileRegistryStore(registryPath).write({ version: 1, owner: null, updatedAtMs, agents: entries });

    const startedAt = performance.now();
    const report = await reapOrphans({
      heartbeatPath,
      registryPath,
      lockPath: join(dir, 'reaper.lock'),
      staleMs: 60_000,
      graceMs: GRACE_MS,
      dryRun: false,
      processTable: table,
      clock: new SystemClock(),
    });
    const elapsedMs = performance.now() - startedAt;
    const reaped = report.reaped.filter((agent) => agent.outcome === 'terminated' || agent.outcome === 'killed').length;
    if (report.exitCode !== 0 || reaped !== TREES) throw new Error(`bench: reaped ${reaped} of ${TREES} trees (exit ${report.exitCode}): ${report.reason}`);
    return { msExcludingGrace: elapsedMs - report.graceWaitedMs, snapshots: table.snapshots };
  } finally {
    killMarked(setupTable, prefix);
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchReap(): Promise<{ name: string; trees: number; processesPerTree: number; medianMsExcludingGrace: number; snapshots: number }> {
  const runs: { msExcludingGrace: number; snapshots: number }[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await reapOnce());
  return {
    name: 'reap 100 orphan trees',
    trees: TREES,
    processesPerTree: PROCESSES_PER_TREE,
    medianMsExcludingGrace: round(median(runs.map((run) => run.msExcludingGrace)), 1),
    // Every run takes the same number: one for the reaping pass, one to verify nothing marked is left.
    snapshots: Math.max(...runs.map((run) => run.snapshots)),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${JSON.stringify(await benchReap())}\n`);
}
