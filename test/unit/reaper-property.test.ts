import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { InMemoryProcessTable, type InMemoryProcess } from '../../src/adapters/process-table/in-memory-process-table.js';
import { reapOrphans, type ReapReport } from '../../src/main.js';
import { isHeartbeatStale, parseHeartbeat } from '../../src/domain/heartbeat.js';
import { AGENT_MARKER_ENV, LOCAL_NODE, parseRegistry } from '../../src/domain/registry.js';
import { ERROR_CATALOG } from '../../src/errors.js';
import type { ProcessTable } from '../../src/ports/process-table.js';
import { isRunning, ReaperWorld, RecordingProcessTable, type SpawnedAgent } from '../fixtures/reaper/harness.js';

/**
 * Property tests: torn, empty, truncated, hand-edited and hostile heartbeat and
 * registry files (pid 0, 1, -1, our own pid, our parent, huge numbers, future
 * timestamps, duplicates, markers of our ancestors). Whatever the files say,
 * the reaper must not crash and must signal only processes that pass the
 * identity rules, judged by an oracle written independently of the reaper:
 *
 * - no signal at all when the heartbeat is fresh, when any recorded daemon
 *   identity is alive, or in a dry run;
 * - every target is > 1, is not this process or an ancestor, is not a zombie,
 *   and carries a marker of a local, same-boot registry entry (or, when a
 *   sweep prefix is given, this instance's prefix);
 * - after a real (non-dry) reap of a dead daemon, no such marked process is
 *   left alive unless it is protected.
 *
 * Files are generated as abstract descriptions ("the agent's leader pid with a
 * wrong start time") and materialised against a world, so the same generator
 * drives an in-memory world (many runs) and a world of real processes (a
 * sampled subset, signals recorded and guarded).
 */

const STALE_MS = 10_000;
const INSTANCE_PREFIX = 'factory:inst:';

// ---------------------------------------------------------------------------
// Abstract file descriptions
// ---------------------------------------------------------------------------

const PID_REFS = [
  'zero',
  'one',
  'minus-one',
  'self',
  'parent',
  'grandparent',
  'bystander',
  'daemon',
  'agent-leader',
  'agent-child',
  'agent-escapee',
  'agent2-leader',
  'dead',
  'huge',
  'beyond-safe',
  'float',
] as const;
type PidRef = (typeof PID_REFS)[number];
const MARKER_REFS = ['agent', 'agent2', 'ghost', 'other-instance', 'not-a-marker'] as const;
type MarkerRef = (typeof MARKER_REFS)[number];
type StartTimeMode = 'true' | 'wrong' | 'negative' | 'huge';
type BootMode = 'this' | 'other' | 'empty';
type TimeMode = 'fresh' | 'stale' | 'future' | 'huge' | 'negative' | 'string' | 'missing';
type TextMode = { kind: 'whole' } | { kind: 'truncated'; at: number } | { kind: 'empty' } | { kind: 'missing' } | { kind: 'garbage'; text: string } | { kind: 'json-scalar' };

interface IdentityDescription {
  readonly pid: PidRef;
  readonly startTime: StartTimeMode;
  readonly boot: BootMode;
}
interface HeartbeatDescription extends IdentityDescription {
  readonly updatedAt: TimeMode;
  readonly status: string;
  readonly text: TextMode;
}
interface EntryDescription extends IdentityDescription {
  readonly pgid: PidRef;
  readonly marker: MarkerRef;
  readonly node: string | null;
  readonly role: string;
  readonly issueKey: string;
}
interface RegistryDescription {
  readonly owner: IdentityDescription | null;
  readonly entries: readonly EntryDescription[];
  readonly duplicate: number | null;
  readonly text: TextMode;
}
interface Scenario {
  readonly heartbeat: HeartbeatDescription;
  readonly registry: RegistryDescription;
  readonly dryRun: boolean;
  readonly sweep: boolean;
}

const identityArb = fc.record({
  pid: fc.constantFrom(...PID_REFS),
  startTime: fc.constantFrom<StartTimeMode>('true', 'true', 'wrong', 'negative', 'huge'),
  boot: fc.constantFrom<BootMode>('this', 'this', 'other', 'empty'),
});
const textArb: fc.Arbitrary<TextMode> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<TextMode>({ kind: 'whole' }) },
  { weight: 2, arbitrary: fc.nat(400).map<TextMode>((at) => ({ kind: 'truncated', at })) },
  { weight: 1, arbitrary: fc.constant<TextMode>({ kind: 'empty' }) },
  { weight: 1, arbitrary: fc.constant<TextMode>({ kind: 'missing' }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map<TextMode>((text) => ({ kind: 'garbage', text })) },
  { weight: 1, arbitrary: fc.constant<TextMode>({ kind: 'json-scalar' }) },
);
const heartbeatArb: fc.Arbitrary<HeartbeatDescription> = fc.record({
  pid: fc.constantFrom(...PID_REFS),
  startTime: fc.constantFrom<StartTimeMode>('true', 'true', 'wrong', 'negative', 'huge'),
  boot: fc.constantFrom<BootMode>('this', 'this', 'other', 'empty'),
  updatedAt: fc.constantFrom<TimeMode>('fresh', 'stale', 'stale', 'stale', 'future', 'huge', 'negative', 'string', 'missing'),
  status: fc.constantFrom('running', 'idle', 'stopping', 'stopped', 'failed', 'starting', 'bogus'),
  text: textArb,
});
const entryArb: fc.Arbitrary<EntryDescription> = fc.record({
  pid: fc.constantFrom(...PID_REFS),
  startTime: fc.constantFrom<StartTimeMode>('true', 'true', 'true', 'wrong', 'negative', 'huge'),
  boot: fc.constantFrom<BootMode>('this', 'this', 'this', 'other', 'empty'),
  pgid: fc.constantFrom<PidRef>('agent-leader', 'agent-leader', 'self', 'parent', 'one', 'bystander', 'zero', 'huge'),
  marker: fc.constantFrom(...MARKER_REFS),
  node: fc.constantFrom<string | null>(LOCAL_NODE, LOCAL_NODE, LOCAL_NODE, null, 'remote-1'),
  role: fc.constantFrom('implementer', 'reviewer', 'boss'),
  issueKey: fc.constantFrom('FAC-1', 'FAC-2', ''),
});
const registryArb: fc.Arbitrary<RegistryDescription> = fc.record({
  owner: fc.option(identityArb, { nil: null }),
  entries: fc.array(entryArb, { maxLength: 6 }),
  duplicate: fc.option(fc.nat(5), { nil: null }),
  text: textArb,
});
const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  heartbeat: heartbeatArb,
  registry: registryArb,
  dryRun: fc.boolean(),
  sweep: fc.boolean(),
});
/**
 * For the few real-process runs: mostly files that get past the staleness and
 * parsing gates (stale, whole, entries whose bookkeeping fields are valid), so
 * most runs reach the signalling path, while pid, start time, boot, group,
 * marker and node stay hostile. Wholly invalid files are covered above.
 */
const parseableEntryArb: fc.Arbitrary<EntryDescription> = entryArb.chain((entry) =>
  fc
    .record({
      pid: fc.constantFrom<PidRef>('self', 'parent', 'grandparent', 'one', 'bystander', 'daemon', 'agent-leader', 'agent-child', 'agent-escapee', 'agent2-leader', 'dead', 'huge'),
      startTime: fc.constantFrom<StartTimeMode>('true', 'true', 'wrong'),
      boot: fc.constantFrom<BootMode>('this', 'this', 'other'),
    })
    .map((identity) => ({ ...entry, ...identity, role: 'implementer', issueKey: 'FAC-1' })),
);
const reachingScenarioArb: fc.Arbitrary<Scenario> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      heartbeat: heartbeatArb.map((heartbeat) => ({ ...heartbeat, updatedAt: 'stale' as const, text: { kind: 'whole' as const } })),
      registry: fc.record({
        owner: fc.option(identityArb, { nil: null }),
        entries: fc.array(parseableEntryArb, { minLength: 1, maxLength: 6 }),
        duplicate: fc.option(fc.nat(5), { nil: null }),
        text: fc.constant<TextMode>({ kind: 'whole' }),
      }),
      dryRun: fc.constant(false),
      sweep: fc.constant(false),
    }),
  },
  { weight: 1, arbitrary: scenarioArb },
);

/** A daemon that crashed, and one genuine registry entry for the agent's tree. */
const PLAIN_CRASH: Scenario = {
  heartbeat: { pid: 'dead', startTime: 'true', boot: 'this', updatedAt: 'stale', status: 'running', text: { kind: 'whole' } },
  registry: {
    owner: null,
    entries: [{ pid: 'agent-leader', startTime: 'true', boot: 'this', pgid: 'agent-leader', marker: 'agent', node: LOCAL_NODE, role: 'implementer', issueKey: 'FAC-1' }],
    duplicate: null,
    text: { kind: 'whole' },
  },
  dryRun: false,
  sweep: false,
};

// ---------------------------------------------------------------------------
// Materialising descriptions against a world
// ---------------------------------------------------------------------------

interface WorldView {
  readonly table: ProcessTable;
  readonly bootId: string;
  readonly protectedPids: ReadonlySet<number>;
  pid(ref: PidRef): number;
  marker(ref: MarkerRef): string;
}

function startTimeFor(world: WorldView, pid: number, mode: StartTimeMode): number {
  const actual = Number.isSafeInteger(pid) && pid > 0 ? world.table.inspect(pid)?.startTime : undefined;
  if (mode === 'negative') return -1;
  if (mode === 'huge') return 1e20;
  if (actual === undefined) return 4242;
  return mode === 'true' ? actual : actual + 1;
}

function bootFor(world: WorldView, mode: BootMode): string {
  return mode === 'this' ? world.bootId : mode === 'other' ? 'a-previous-boot' : '';
}

function identityJson(world: WorldView, description: IdentityDescription): Record<string, unknown> {
  const pid = world.pid(description.pid);
  return { pid, startTime: startTimeFor(world, pid, description.startTime), bootId: bootFor(world, description.boot) };
}

function updatedAtFor(mode: TimeMode, nowMs: number): unknown {
  switch (mode) {
    case 'fresh':
      return nowMs - 10;
    case 'stale':
      return nowMs - STALE_MS - 60_000;
    case 'future':
      return nowMs + 365 * 24 * 3600 * 1000;
    case 'huge':
      return 1e300;
    case 'negative':
      return -1;
    case 'string':
      return String(nowMs);
    case 'missing':
      return undefined;
  }
}

function render(json: unknown, mode: TextMode): string | null {
  const text = JSON.stringify(json, null, 2);
  switch (mode.kind) {
    case 'whole':
      return text;
    case 'truncated':
      return text.slice(0, mode.at % (text.length + 1));
    case 'empty':
      return '';
    case 'missing':
      return null;
    case 'garbage':
      return mode.text;
    case 'json-scalar':
      return '42';
  }
}

function materialise(world: WorldView, scenario: Scenario, nowMs: number): { heartbeat: string | null; registry: string | null } {
  const hb = scenario.heartbeat;
  const heartbeat = render({ version: 1, ...identityJson(world, hb), status: hb.status, mode: 'live', updatedAtMs: updatedAtFor(hb.updatedAt, nowMs) }, hb.text);
  const agents = scenario.registry.entries.map((entry) => ({
    ...identityJson(world, entry),
    issueKey: entry.issueKey,
    runId: 'run',
    role: entry.role,
    agentName: `${entry.pid}-${entry.marker}`,
    ...(entry.node === null ? {} : { node: entry.node }),
    pgid: world.pid(entry.pgid),
    marker: world.marker(entry.marker),
    logPath: '',
    worktree: '',
  }));
  const duplicate = scenario.registry.duplicate;
  if (duplicate !== null && agents.length > 0) agents.push({ ...agents[duplicate % agents.length]! });
  const owner = scenario.registry.owner ? identityJson(world, scenario.registry.owner) : null;
  const registry = render({ version: 1, owner, updatedAtMs: nowMs, agents }, scenario.registry.text);
  return { heartbeat, registry };
}

// ---------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------

interface Expectations {
  /** When false, no signal may be sent at all. */
  readonly mayReap: boolean;
  /** Markers whose carriers may be signalled. */
  readonly markerAllowed: (marker: string | undefined) => boolean;
  readonly localMarkers: ReadonlySet<string>;
  /**
   * Each process's start time and marker before the reap. A real target can
   * start exiting (environment gone, then a zombie) between the reaper's last
   * check and the signal: the same process dying is no violation.
   */
  readonly before: ReadonlyMap<number, { readonly startTime: number; readonly marker: string | undefined }>;
}

function isAliveIdentity(world: WorldView, value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const { pid, startTime, bootId } = value as Record<string, unknown>;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0 || bootId !== world.bootId) return false;
  const info = world.table.inspect(pid);
  return info !== undefined && info.state !== 'Z' && info.startTime === startTime;
}

function expectationsFor(world: WorldView, files: { heartbeat: string | null; registry: string | null }, scenario: Scenario, nowMs: number): Expectations {
  const heartbeat = files.heartbeat === null ? null : parseHeartbeat(files.heartbeat);
  const registry = files.registry === null ? null : parseRegistry(files.registry);
  const fresh = heartbeat?.ok === true && !isHeartbeatStale(heartbeat.value, nowMs, STALE_MS);
  let rawOwner: unknown;
  try {
    rawOwner = files.registry === null ? null : (JSON.parse(files.registry) as { owner?: unknown } | null)?.owner;
  } catch {
    rawOwner = null;
  }
  const daemonAlive = (heartbeat?.ok === true && isAliveIdentity(world, heartbeat.value)) || isAliveIdentity(world, rawOwner);
  const localMarkers = new Set(registry?.ok ? registry.value.file.agents.filter((entry) => entry.node === LOCAL_NODE && entry.bootId === world.bootId).map((entry) => entry.marker) : []);
  const before = new Map<number, { startTime: number; marker: string | undefined }>();
  for (const info of world.table.snapshot().processes.values()) {
    before.set(info.pid, { startTime: info.startTime, marker: world.table.readEnvironmentVariable(info.pid, AGENT_MARKER_ENV) });
  }
  return {
    mayReap: !fresh && !daemonAlive && !scenario.dryRun,
    localMarkers,
    before,
    markerAllowed: (marker) => marker !== undefined && (localMarkers.has(marker) || (scenario.sweep && marker.startsWith(INSTANCE_PREFIX))),
  };
}

/** Why signalling `target` now breaks the rules, or undefined when it is allowed. */
function judgeSignal(world: WorldView, expectations: Expectations, target: number): string | undefined {
  if (!expectations.mayReap) return 'no signal is allowed in this scenario';
  if (target <= 1) return `target ${target} ≤ 1`;
  if (world.protectedPids.has(target)) return `target ${target} is the reaper or its ancestor`;
  const info = world.table.inspect(target);
  const marker = info && info.state !== 'Z' ? world.table.readEnvironmentVariable(target, AGENT_MARKER_ENV) : undefined;
  if (expectations.markerAllowed(marker)) return undefined;
  const earlier = expectations.before.get(target);
  const sameProcessDying = marker === undefined && earlier !== undefined && (info === undefined || info.startTime === earlier.startTime);
  if (sameProcessDying && expectations.markerAllowed(earlier.marker)) return undefined;
  return `target ${target} carries ${JSON.stringify(marker)}, not a marker of a local registry entry`;
}

/**
 * Writes the scenario's files and runs the reaper once. `judge` receives the
 * oracle's expectations, computed from the files and the world before the
 * reap, so signal hooks can check each signal as it happens.
 */
async function runScenario(
  world: WorldView,
  table: ProcessTable,
  scenario: Scenario,
  dir: string,
  judge: (expectations: Expectations) => void,
): Promise<{ report: ReapReport; expectations: Expectations }> {
  const nowMs = Date.now();
  const files = materialise(world, scenario, nowMs);
  const heartbeatPath = join(dir, 'heartbeat.json');
  const registryPath = join(dir, 'registry.json');
  await rm(heartbeatPath, { force: true });
  await rm(registryPath, { force: true });
  if (files.heartbeat !== null) await writeFile(heartbeatPath, files.heartbeat);
  if (files.registry !== null) await writeFile(registryPath, files.registry);
  const expectations = expectationsFor(world, files, scenario, nowMs);
  judge(expectations);
  const report = await reapOrphans({
    heartbeatPath,
    registryPath,
    lockPath: join(dir, 'reaper.lock'),
    staleMs: STALE_MS,
    graceMs: 0,
    dryRun: scenario.dryRun,
    processTable: table,
    clock: new SystemClock(),
    ...(scenario.sweep ? { markerPrefix: INSTANCE_PREFIX } : {}),
  });
  return { report, expectations };
}

function assertReportShape(report: ReapReport): void {
  assert.deepEqual(JSON.parse(JSON.stringify(report)), report, 'the report is plain JSON');
  const allowed: number[] = [0, ERROR_CATALOG.FACTORY_REAPER_SURVIVORS.exitCode, ERROR_CATALOG.FACTORY_DAEMON_WEDGED.exitCode, ERROR_CATALOG.FACTORY_REGISTRY_UNREADABLE.exitCode];
  assert.ok(allowed.includes(report.exitCode), `exit code ${report.exitCode}`);
}

// ---------------------------------------------------------------------------
// In-memory world: many runs
// ---------------------------------------------------------------------------

const FAKE_BOOT = 'boot-this';
const GRANDPARENT = 900_001;

function fakeWorld(variant: { ancestorsMarked: boolean; leaderDead: boolean; ignoresTerm: boolean; daemonAlive: boolean }) {
  const agentMarker = `${INSTANCE_PREFIX}run:agent`;
  const agent2Marker = `${INSTANCE_PREFIX}run:agent2`;
  const env = (marker: string) => ({ [AGENT_MARKER_ENV]: marker });
  const ancestorEnv = variant.ancestorsMarked ? env(agentMarker) : {};
  const processes: InMemoryProcess[] = [
    { pid: 1, ppid: 0, startTime: 1, env: variant.ancestorsMarked ? env(agentMarker) : {} },
    { pid: GRANDPARENT, ppid: 1, startTime: 5, env: ancestorEnv },
    { pid: process.ppid, ppid: GRANDPARENT, startTime: 6, env: ancestorEnv },
    { pid: process.pid, ppid: process.ppid, startTime: 7, env: ancestorEnv },
    { pid: 2000, startTime: 2000 },
    { pid: 1001, ppid: 1000, pgid: 1000, startTime: 1001, env: env(agentMarker), ignoresTerm: variant.ignoresTerm },
    { pid: 1002, ppid: 1000, pgid: 1000, startTime: 1002 }, // unmarked member of the agent's group
    { pid: 1003, ppid: 1000, pgid: 1000, startTime: 1003, state: 'Z', env: env(agentMarker) },
    { pid: 1005, ppid: 1, pgid: 1005, sid: 1005, startTime: 1005, env: env(agentMarker) }, // setsid escapee
    { pid: 1100, pgid: 1100, startTime: 1100, env: env(agent2Marker) },
    { pid: 1200, pgid: 1200, startTime: 1200, env: env(`${INSTANCE_PREFIX}run:unlisted`) },
    { pid: 1300, pgid: 1300, startTime: 1300, env: env('factory:other:run:agent') },
  ];
  if (!variant.leaderDead) processes.push({ pid: 1000, pgid: 1000, startTime: 1000, env: env(agentMarker), ignoresTerm: variant.ignoresTerm });
  if (variant.daemonAlive) processes.push({ pid: 3000, startTime: 3000 });
  const table = new InMemoryProcessTable({ bootId: FAKE_BOOT, processes });
  const pids: Record<PidRef, number> = {
    zero: 0,
    one: 1,
    'minus-one': -1,
    self: process.pid,
    parent: process.ppid,
    grandparent: GRANDPARENT,
    bystander: 2000,
    daemon: 3000,
    'agent-leader': 1000,
    'agent-child': 1001,
    'agent-escapee': 1005,
    'agent2-leader': 1100,
    dead: 4000,
    huge: 2 ** 31,
    'beyond-safe': 2 ** 53 + 2,
    float: 1.5,
  };
  const markers: Record<MarkerRef, string> = { agent: agentMarker, agent2: agent2Marker, ghost: `${INSTANCE_PREFIX}run:ghost`, 'other-instance': 'factory:other:run:agent', 'not-a-marker': 'hello' };
  const view: WorldView = {
    table,
    bootId: FAKE_BOOT,
    protectedPids: new Set([process.pid, process.ppid, GRANDPARENT]),
    pid: (ref) => pids[ref],
    marker: (ref) => markers[ref],
  };
  return { table, view };
}

describe('reaper properties over hostile files', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'factory-reaper-prop-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('in-memory worlds: never crashes, never signals a process that fails the identity rules, reaps every proven orphan', async () => {
    const variantArb = fc.record({ ancestorsMarked: fc.boolean(), leaderDead: fc.boolean(), ignoresTerm: fc.boolean(), daemonAlive: fc.boolean() });
    let runsThatSignalled = 0;
    await fc.assert(
      fc.asyncProperty(variantArb, scenarioArb, async (variant, scenario) => {
        const { table, view } = fakeWorld(variant);
        const violations: string[] = [];
        const { report, expectations } = await runScenario(view, table, scenario, dir, (judged) => {
          table.onSignal = (target) => {
            const why = judgeSignal(view, judged, target);
            if (why) violations.push(why);
          };
        });
        assert.deepEqual(violations, []);
        assertReportShape(report);
        if (table.signals.length > 0) runsThatSignalled += 1;
        if (!expectations.mayReap) assert.equal(table.signals.length, 0);
        if (expectations.mayReap && report.registry.file === 'ok') {
          // Every orphan proven by the registry is gone, unless protected (an ancestor carrying its marker).
          for (const info of table.snapshot().processes.values()) {
            const marker = table.readEnvironmentVariable(info.pid, AGENT_MARKER_ENV);
            if (info.state === 'Z' || marker === undefined || !expectations.localMarkers.has(marker)) continue;
            assert.ok(info.pid <= 1 || view.protectedPids.has(info.pid), `pid ${info.pid} (${marker}) survived the reap`);
          }
        }
      }),
      { numRuns: 300 },
    );
    // A property that never reaches a signal proves nothing about signals.
    console.log(`# in-memory runs that signalled: ${runsThatSignalled} of 300`);
    assert.ok(runsThatSignalled >= 30, `only ${runsThatSignalled} of 300 runs signalled anything`);
  });

  // -------------------------------------------------------------------------
  // A sampled subset against real processes
  // -------------------------------------------------------------------------

  test('real processes, sampled: hostile files never turn into a signal to anything but a proven agent', async () => {
    const world = await ReaperWorld.create();
    try {
      const bystander = world.spawnBystander();
      const daemon = world.spawnBystander();
      const dead = await world.deadIdentity();
      let agent: SpawnedAgent = await world.spawnAgent('setsid', { agentName: 'agent' });
      let agent2: SpawnedAgent = await world.spawnAgent('plain', { agentName: 'agent2' });
      const grandparent = world.table.inspect(process.ppid)?.ppid ?? 1;
      const protectedPids = new Set([process.pid, process.ppid, grandparent]);
      const view: WorldView = {
        table: world.table,
        bootId: world.table.bootId(),
        protectedPids,
        pid: (ref) => {
          const pids: Record<PidRef, number> = {
            zero: 0,
            one: 1,
            'minus-one': -1,
            self: process.pid,
            parent: process.ppid,
            grandparent,
            bystander: bystander.identity.pid,
            daemon: daemon.identity.pid,
            'agent-leader': agent.entry.pid,
            'agent-child': agent.processes.find((p) => p.pid !== agent.entry.pid)?.pid ?? dead.pid,
            'agent-escapee': agent.processes.find((p) => p.pgid !== agent.entry.pgid)?.pid ?? dead.pid,
            'agent2-leader': agent2.entry.pid,
            dead: dead.pid,
            huge: 2 ** 31,
            'beyond-safe': 2 ** 53 + 2,
            float: 1.5,
          };
          return pids[ref];
        },
        marker: (ref) => ({ agent: agent.entry.marker, agent2: agent2.entry.marker, ghost: world.marker('ghost'), 'other-instance': 'factory:other:run:agent', 'not-a-marker': 'hello' })[ref],
      };
      let runs = 0;
      let runsThatSignalled = 0;
      await fc.assert(
        fc.asyncProperty(reachingScenarioArb, async (scenario) => {
          runs += 1;
          // Refill the world: a previous run may have reaped the agents.
          if (!agent.processes.every((p) => isRunning(world.table, p))) agent = await world.spawnAgent('setsid', { agentName: `agent-r${runs}` });
          if (!agent2.processes.every((p) => isRunning(world.table, p))) agent2 = await world.spawnAgent('plain', { agentName: `agent2-r${runs}` });
          let judged: Expectations | undefined;
          const recorder = new RecordingProcessTable(world.table, (attempt) => judged !== undefined && judgeSignal(view, judged, attempt.target) === undefined);
          // No sweep here: the oracle's instance prefix is the in-memory world's, not this one's.
          const { report } = await runScenario(view, recorder, { ...scenario, sweep: false }, world.dir, (expectations) => (judged = expectations));
          assert.deepEqual(recorder.violations, []);
          assertReportShape(report);
          if (recorder.attempts.length > 0) runsThatSignalled += 1;
          assert.ok(world.table.inspect(bystander.identity.pid)?.startTime === bystander.identity.startTime, 'the bystander lives');
        }),
        // The example first: a plain crash with one genuine entry, so at least one run must reap.
        { numRuns: 25, examples: [[PLAIN_CRASH]] },
      );
      console.log(`# real-process runs that signalled: ${runsThatSignalled} of 25`);
      assert.ok(runsThatSignalled >= 1, 'no real run signalled anything: not even the plain crash was reaped');
    } finally {
      await world.cleanup();
    }
  });
});
