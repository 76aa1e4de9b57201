import { execFileSync, spawn } from 'node:child_process';
import { createScratchRepo } from '../test/support/sandbox.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { round, waitUntil } from './bench-support.js';

const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) / 1024;
}

/**
 * The real daemon (bin/factory.js: compiled dist/ when fresh) idling on a mount
 * of `issueCount` issue files that need no work (state `done`), measured after
 * its first reconcile over a window long enough to include one periodic
 * reconcile pass and one probe. Baseline in the same run: the same daemon on
 * an empty mount. Targets: < 1% CPU, RSS < 150 MB with 10,000 files.
 */
async function measureIdle(issueCount: number, windowMs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'factory-bench-idle-'));
  mkdirSync(join(dir, 'issues'));
  for (let i = 0; i < issueCount; i++) {
    writeFileSync(join(dir, 'issues', `I-${i}.json`), JSON.stringify({ key: `I-${i}`, title: `idle ${i}`, body: 'x'.repeat(600), labels: ['factory'], state: 'done' }));
  }
  // Files in a real mount are old; a file changed within 2 s of a read is never
  // cached (coarse timestamps), so let them age before the daemon's first pass.
  await new Promise((r) => setTimeout(r, issueCount > 0 ? 2_500 : 0));
  // A real checkout to route to: start's preflight refuses a repo that is not one.
  createScratchRepo(join(dir, 'repo'));
  writeFileSync(
    join(dir, 'factory.config.json'),
    JSON.stringify({ mount: { root: './issues' }, repos: { default: './repo' }, agents: { implementer: { command: ['true'] } }, http: { enabled: false } }),
  );
  const cli = resolve(import.meta.dirname, '..', 'bin', 'factory.js');
  const daemon = spawn(process.execPath, [cli, 'start', '--mode', 'live', '--config', join(dir, 'factory.config.json')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, FACTORY_LOG_LEVEL: 'warn' },
  });
  let stderr = '';
  daemon.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise((r) => daemon.once('exit', r));
  try {
    const heartbeatPath = join(dir, '.factory', 'heartbeat.json');
    await waitUntil(
      'the first reconcile',
      () => {
        // A daemon that refused to start is the answer, not a 60 s wait.
        if (daemon.exitCode !== null) throw new Error(`the idle daemon exited with ${daemon.exitCode}: ${stderr}`);
        try {
          return JSON.parse(readFileSync(heartbeatPath, 'utf8')).subscription.lastProgressAtMs != null;
        } catch {
          return false;
        }
      },
      60_000,
    );
    const before = cpuTicks(daemon.pid!);
    await new Promise((r) => setTimeout(r, windowMs));
    const cpuPercent = ((cpuTicks(daemon.pid!) - before) / CLOCK_TICKS_PER_SECOND / (windowMs / 1000)) * 100;
    return { cpuPercent, rssMb: rssMb(daemon.pid!) };
  } finally {
    daemon.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchIdleDaemon(windowMs = 61_000) {
  const empty = await measureIdle(0, windowMs);
  const full = await measureIdle(10_000, windowMs);
  return {
    name: `idle live daemon, ${windowMs / 1000}s window (includes a full reconcile pass and two probes)`,
    cpuPercentEmptyMount: round(empty.cpuPercent, 2),
    cpuPercent10kFiles: round(full.cpuPercent, 2),
    rssMbEmptyMount: round(empty.rssMb, 1),
    rssMb10kFiles: round(full.rssMb, 1),
    rssRatio: round(full.rssMb / empty.rssMb, 2),
    target: 'CPU < 1%, RSS < 150 MB with 10,000 files',
    met: full.cpuPercent < 1 && full.rssMb < 150,
  };
}
