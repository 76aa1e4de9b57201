/**
 * Team resource groups (issue 13):
 * - create / join / kill-all / remove of one team's group, median ms, on the
 *   mechanism this machine offers (cgroup v2 or v1; skipped with RSS sampling);
 *   join is the extra time a process takes to start through the join wrapper;
 * - one RSS sample (the fallback's whole-table pass) with 100 marked agents,
 *   and with none (the table walk alone), median ms;
 * - side-by-side teams: how many teams with a 200 MB budget, each holding
 *   150 MB, run at once before memory pressure (PSI) rises, added 5 at a time
 *   up to --max-teams (default 40) or what admission would start, and how many
 *   such teams admission would let start on this machine right now.
 *
 *   node --import tsx bench/resources-bench.ts [--max-teams N] [--step N]
 *   npm run bench -- resources
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LinuxProcessTable } from '../src/adapters/process-table/linux-process-table.js';
import { detectResourceSupport } from '../src/adapters/resources/detect-resources.js';
import { ProcAvailableMemorySource, PsiMemoryPressureSource } from '../src/adapters/resources/memory-sources.js';
import { RssTeamGroups } from '../src/adapters/resources/rss-team-groups.js';
import { createTeamResourceGroups } from '../src/adapters/resources/team-resource-groups.js';
import { AGENT_MARKER_ENV, formatAgentMarker } from '../src/domain/registry.js';
import { decideMemoryAdmission } from '../src/domain/resource-budget.js';
import type { TeamResourceGroup } from '../src/ports/team-resources.js';
import { median, round, waitUntil } from './bench-support.js';

const MB = 2 ** 20;
const GROUP_RUNS = 30;
const RSS_AGENTS = 100;
const RSS_RUNS = 20;
const table = new LinuxProcessTable();

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function spawnArgv(argv: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const [program, ...args] = argv;
  return spawn(program!, args, { detached: true, stdio: 'ignore', ...(env ? { env } : {}) });
}

async function benchGroupLifecycle(instanceId: string): Promise<Record<string, unknown>> {
  const report = detectResourceSupport();
  if (report.mechanism === 'rss-sampling') return { groupLifecycle: `skipped: ${report.summary}` };
  const groups = createTeamResourceGroups(report, { instanceId, processTable: table });
  const create: number[] = [];
  const join: number[] = [];
  const plain: number[] = [];
  const killAll: number[] = [];
  const remove: number[] = [];
  for (let run = 0; run < GROUP_RUNS; run++) {
    let started = performance.now();
    const group = groups.create(`bench-${run}`, { memoryMaxBytes: 200 * MB, pidsMax: 256 });
    create.push(performance.now() - started);

    started = performance.now();
    await exitOf(spawnArgv(['true']));
    plain.push(performance.now() - started);
    started = performance.now();
    await exitOf(spawnArgv(group.joinCommand(['true'])));
    join.push(performance.now() - started);

    // Exit promises are taken at spawn: the exits happen while killAll runs.
    const sleepersGone = Promise.all([0, 1, 2].map(() => exitOf(spawnArgv(group.joinCommand(['sleep', '600'])))));
    await waitUntil('sleepers in the group', () => group.pids().length === 3);
    started = performance.now();
    await group.killAll();
    killAll.push(performance.now() - started);
    await sleepersGone;

    started = performance.now();
    await group.remove();
    remove.push(performance.now() - started);
  }
  return {
    mechanism: report.mechanism,
    killAllMethod: report.killAll,
    createMs: round(median(create)),
    joinOverheadMs: round(median(join) - median(plain)),
    spawnTrueMs: round(median(plain)),
    killAll3ProcessesMs: round(median(killAll)),
    removeMs: round(median(remove)),
  };
}

async function benchRssSampler(instanceId: string): Promise<Record<string, unknown>> {
  const groups = new RssTeamGroups({ instanceId, processTable: table });
  const time = (): number[] => {
    const durations: number[] = [];
    for (let run = 0; run < RSS_RUNS; run++) {
      const started = performance.now();
      groups.sampleTeams();
      durations.push(performance.now() - started);
    }
    return durations;
  };
  const empty = median(time());
  const agents: ChildProcess[] = [];
  for (let agent = 0; agent < RSS_AGENTS; agent++) {
    const runId = `bench-run-${agent % 20}`;
    agents.push(spawnArgv(['sleep', '600'], { ...process.env, [AGENT_MARKER_ENV]: formatAgentMarker(instanceId, runId, `${runId}-agent-${agent}`) }));
  }
  await waitUntil('all agents to exec', () => agents.every((agent) => table.inspect(agent.pid!)?.comm === 'sleep'));
  const processesOnMachine = table.snapshot().processes.size;
  const sampled = [...groups.sampleTeams().values()].reduce((sum, team) => sum + team.members.length, 0);
  const withAgents = median(time());
  const agentsGone = Promise.all(agents.map(exitOf));
  for (const agent of agents) agent.kill('SIGKILL');
  await agentsGone;
  return { rssSamplePer100AgentsMs: round(withAgents), rssSampleNoAgentsMs: round(empty), processesOnMachine, agentsFound: sampled };
}

/** PSI memory "some" as the kernel counts it: avg10 (percent) and total (µs stalled since boot). */
function readPsi(): { avg10: number; totalUs: number } | undefined {
  try {
    const line = readFileSync('/proc/pressure/memory', 'utf8')
      .split('\n')
      .find((entry) => entry.startsWith('some '));
    const avg10 = /avg10=(\d+(?:\.\d+)?)/.exec(line ?? '');
    const total = /total=(\d+)/.exec(line ?? '');
    return avg10 && total ? { avg10: Number(avg10[1]), totalUs: Number(total[1]) } : undefined;
  } catch {
    return undefined;
  }
}

/** Memory stall above this share of a step's hold time counts as pressure rising (PSI's own threshold for admission is 20% avg10). */
const STALL_RISE_SHARE = 0.01;
const HOLD_MS = 3_000;

/**
 * How many 200 MB-budget teams (each holding 150 MB, so inside its budget) run
 * side by side before the machine's memory pressure rises: teams are added in
 * steps, each step held for HOLD_MS, and pressure rises when the memory stall
 * time during the hold (PSI some total) passes STALL_RISE_SHARE of it, or
 * avg10 climbs a point above where it started. The ramp stops there, at what
 * admission would admit, or at `maxTeams` (the machine is shared: 40 teams is
 * 6 GB).
 */
async function benchSideBySide(instanceId: string, options: { maxTeams: number; step: number }): Promise<Record<string, unknown>> {
  const report = detectResourceSupport();
  const budget = 200 * MB;
  const memory = new ProcAvailableMemorySource().read();
  // How many 200 MB teams admission would start now, one after another, each counted at its full budget.
  let admissible = 0;
  while (decideMemoryAdmission({ ...memory, running: Array.from({ length: admissible }, () => ({ budgetBytes: budget })), nextBudgetBytes: budget, reserve: { fraction: 0.1 } }).admit) admissible += 1;

  if (report.mechanism === 'rss-sampling') return { admissible200MbTeams: admissible, sideBySide: `skipped: ${report.summary}` };
  const psiReadable = new PsiMemoryPressureSource().read() !== undefined;
  const groups = createTeamResourceGroups(report, { instanceId, processTable: table });
  const started: { group: TeamResourceGroup; child: ChildProcess; output: string }[] = [];
  const cap = Math.min(options.maxTeams, admissible);
  const baseline = readPsi();
  let withoutPressure = 0;
  let stoppedBecause = cap === admissible ? `admission would start no more (${admissible})` : `the bench's cap (--max-teams ${options.maxTeams})`;
  const steps: { teams: number; stallMs: number; avg10: number | null }[] = [];
  try {
    while (started.length < cap) {
      const target = Math.min(cap, started.length + options.step);
      while (started.length < target) {
        const group = groups.create(`side-${started.length}`, { memoryMaxBytes: budget });
        const child = spawn(
          ...splitArgv(group.joinCommand([process.execPath, join(import.meta.dirname, '..', 'test', 'fixtures', 'agents', 'memory-hog.mjs'), '--step-mb', '10', '--max-mb', '150'])),
          { detached: true, stdio: ['ignore', 'pipe', 'ignore'] },
        );
        const entry = { group, child, output: '' };
        child.stdout!.on('data', (chunk: Buffer) => (entry.output += chunk.toString()));
        started.push(entry);
      }
      await waitUntil(
        'every team to hold 150 MB',
        () => started.every((entry) => entry.output.includes('"allocatedMb":150') || entry.child.exitCode !== null || entry.child.signalCode !== null),
        120_000,
      );
      const before = readPsi();
      await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
      const after = readPsi();
      const stallMs = before && after ? (after.totalUs - before.totalUs) / 1000 : 0;
      steps.push({ teams: started.length, stallMs: round(stallMs), avg10: after?.avg10 ?? null });
      const oomKilled = started.some((entry) => entry.group.memory().oomKills > 0);
      const rose = stallMs > HOLD_MS * STALL_RISE_SHARE || (after !== undefined && baseline !== undefined && after.avg10 > baseline.avg10 + 1);
      if (rose || oomKilled) {
        stoppedBecause = oomKilled
          ? 'a team was OOM-killed inside its budget'
          : `memory pressure rose at ${started.length} teams (${round(stallMs)} ms stalled in ${HOLD_MS} ms, avg10 ${after?.avg10 ?? '?'}%)`;
        break;
      }
      withoutPressure = started.length;
    }
  } finally {
    for (const entry of started) {
      await entry.group.killAll();
      await entry.group.remove();
    }
  }
  return {
    admissible200MbTeams: admissible,
    sideBySide200MbTeamsWithoutPressure: withoutPressure,
    sideBySideStoppedBecause: stoppedBecause,
    sideBySideSteps: steps,
    psiReadable,
    psiSomeAvg10Before: baseline?.avg10 ?? null,
  };
}

function splitArgv(argv: string[]): [string, string[]] {
  const [program, ...args] = argv;
  return [program!, args];
}

export async function benchResources(options: { maxTeams?: number; step?: number } = {}): Promise<Record<string, unknown>> {
  const instanceId = `bench${process.pid}`;
  return {
    name: 'resources',
    ...(await benchGroupLifecycle(instanceId)),
    ...(await benchRssSampler(instanceId)),
    ...(await benchSideBySide(instanceId, { maxTeams: options.maxTeams ?? 40, step: options.step ?? 5 })),
  };
}

if (import.meta.filename === process.argv[1]) {
  const flag = (name: string): number | undefined => {
    const index = process.argv.indexOf(name);
    return index >= 0 ? Number(process.argv[index + 1]) : undefined;
  };
  const maxTeams = flag('--max-teams');
  const step = flag('--step');
  console.log(JSON.stringify(await benchResources({ ...(maxTeams === undefined ? {} : { maxTeams }), ...(step === undefined ? {} : { step }) }), null, 2));
}
