import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, mkdirSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';
import type { AgentActivity, AgentExit, AgentHandle, AgentSpec, Fleet } from '../../ports/fleet.js';
import type { ProcessSnapshot, ProcessTable } from '../../ports/process-table.js';
import { AGENT_MARKER_ENV, formatAgentMarker, LOCAL_NODE, type RegistryEntry } from '../../domain/registry.js';
import { DEFAULT_ENV_PASSTHROUGH, passThroughEnvironment } from '../../domain/env-passthrough.js';
import { collectAgentTree, hasExited, type AgentTree } from '../../domain/process-identity.js';
import type { ProcessTerminator } from '../../ports/process-terminator.js';
import { FactoryError } from '../../errors.js';

/**
 * Runs each agent as a real process tree on this machine.
 *
 * - Every agent leads its own session and process group (`detached: true`
 *   makes the child call setsid), so stopping it is one signal to `-pgid`
 *   and never touches the daemon's own group.
 * - Every agent and all its descendants inherit FACTORY_AGENT_MARKER, unique
 *   per agent, so a process that left the group (setsid, double fork) can
 *   still be proved ours by the reaper and by `stop()`.
 * - stdout and stderr go straight to an append-mode log file: the daemon
 *   holds no pipe, so output survives a daemon crash, costs the daemon no
 *   event-loop work, and an agent never blocks on a full pipe.
 */

/** Environment variables the fleet sets for every agent (and so for its whole tree). */
export const AGENT_ENV = {
  marker: AGENT_MARKER_ENV,
  runId: 'FACTORY_RUN_ID',
  issueKey: 'FACTORY_ISSUE_KEY',
  role: 'FACTORY_AGENT_ROLE',
  agentName: 'FACTORY_AGENT_NAME',
} as const;

export interface LocalProcessFleetOptions {
  /** Identifies this daemon instance inside every marker, so two daemons never claim each other's agents. */
  readonly instanceId: string;
  readonly processTable: ProcessTable;
  readonly clock: Clock;
  /** Ends an agent's tree (TERM, grace, KILL, each signal identity-checked); the reaper uses the same one. */
  readonly terminator: ProcessTerminator;
  /** Where stop() reports a step that failed (it carries on with the next); silent when absent. */
  readonly logger?: Logger;
  /** The daemon's environment, of which agents get only the allowlisted part (spec.envPassthrough); default process.env. */
  readonly daemonEnv?: Readonly<Record<string, string | undefined>>;
}

/** A snapshot taken less than this long ago is reused by activity(): stall checks of teams whose rounds fall together share it. */
const ACTIVITY_SNAPSHOT_MAX_AGE_MS = 100;

export class LocalProcessFleet implements Fleet {
  #lastActivitySnapshot: { atMs: number; snapshot: ProcessSnapshot; sameTurn: boolean } | undefined;
  readonly node = LOCAL_NODE;
  readonly #instanceId: string;
  readonly #processTable: ProcessTable;
  readonly #clock: Clock;
  readonly #terminator: ProcessTerminator;
  readonly #logger: Logger | undefined;
  readonly #daemonEnv: Readonly<Record<string, string | undefined>>;

  constructor(options: LocalProcessFleetOptions) {
    this.#daemonEnv = options.daemonEnv ?? process.env;
    this.#instanceId = options.instanceId;
    this.#processTable = options.processTable;
    this.#clock = options.clock;
    this.#terminator = options.terminator;
    this.#logger = options.logger;
  }

  async spawn(spec: AgentSpec): Promise<AgentHandle> {
    const [command] = spec.command;
    if (command === undefined || command === '') {
      throw spawnFailed(spec, 'its command is empty');
    }
    assertDirectory(spec);

    const marker = formatAgentMarker(this.#instanceId, spec.runId, spec.agentName);
    const childEnv: Record<string, string | undefined> = {
      // Only the allowlisted part of the daemon's environment: its secrets and GIT_DIR-like variables stay behind.
      ...passThroughEnvironment(this.#daemonEnv, spec.envPassthrough ?? DEFAULT_ENV_PASSTHROUGH),
      ...spec.env,
      // Last, so nothing in spec.env can forge or drop the identity of the tree.
      [AGENT_ENV.marker]: marker,
      [AGENT_ENV.runId]: spec.runId,
      [AGENT_ENV.issueKey]: spec.issueKey,
      [AGENT_ENV.role]: spec.role,
      [AGENT_ENV.agentName]: spec.agentName,
    };
    // Inside a team's group the wrapper shell is what gets exec'd; a missing agent command
    // would surface as the shell's exit 127, so it is looked up first and refused as before.
    if (spec.resourceGroup) assertExecutable(spec, command, childEnv.PATH);
    const { fd: logFd, initialSize } = openAgentLog(spec);
    writeAgentFiles(spec, logFd);

    const [program, ...programArgs] = spec.resourceGroup ? spec.resourceGroup.joinCommand(spec.command) : spec.command;

    let child: ChildProcess;
    try {
      child = spawnChild(program!, programArgs, {
        cwd: spec.cwd,
        detached: true,
        env: childEnv,
        stdio: ['ignore', logFd, logFd],
      });
    } catch (error) {
      // Synchronous failures: invalid arguments such as a NUL byte in argv.
      closeSync(logFd);
      throw spawnFailed(spec, `could not be started (${(error as Error).message})`, error);
    }
    // The child holds its own copies of the descriptor; the daemon keeps none.
    closeSync(logFd);

    const pid = child.pid;
    if (pid === undefined) {
      // libuv reports exec failures (ENOENT, EACCES) as an 'error' event on the next tick.
      const error = await new Promise<NodeJS.ErrnoException>((resolve) => child.once('error', resolve));
      throw spawnFailed(spec, describeSpawnErrno(command, error), error);
    }

    // Read /proc now, before returning to the event loop: until Node reaps the
    // child it is at least a zombie, so its start time is always readable here,
    // even for an agent that exits at once.
    const info = this.#processTable.inspect(pid);
    if (info === undefined) {
      throw spawnFailed(spec, `started as pid ${pid} but /proc has no entry for it`);
    }

    const identity: RegistryEntry = {
      issueKey: spec.issueKey,
      runId: spec.runId,
      role: spec.role,
      agentName: spec.agentName,
      node: LOCAL_NODE,
      pid,
      // setsid() made the agent the leader of a group named after itself.
      pgid: pid,
      startTime: info.startTime,
      bootId: this.#processTable.bootId(),
      marker,
      logPath: spec.logPath,
      worktree: spec.worktree,
      startedAtMs: this.#clock.now(),
    };
    return new LocalAgentHandle({
      identity,
      child,
      initialLogSize: initialSize,
      processTable: this.#processTable,
      clock: this.#clock,
      terminator: this.#terminator,
      logger: this.#logger,
      activitySnapshot: () => this.#activitySnapshot(),
    });
  }

  /**
   * Stall checks of every agent in one supervision round share one snapshot
   * (and so one read of every process's environment), instead of one each.
   */
  #activitySnapshot(): ProcessSnapshot {
    const last = this.#lastActivitySnapshot;
    // A round's checks run in one synchronous turn (a team asks all its agents at once), and they share
    // its snapshot however long reading /proc and the agents' trees took: on a loaded host with many
    // processes that alone can outlast the age limit, which then bought a snapshot per agent.
    if (last && (last.sameTurn || this.#clock.now() - last.atMs <= ACTIVITY_SNAPSHOT_MAX_AGE_MS)) return last.snapshot;
    const snapshot = this.#processTable.snapshot();
    // Age counts from when the snapshot was complete, not from when reading it began.
    const entry = { atMs: this.#clock.now(), snapshot, sameTurn: true };
    setImmediate(() => (entry.sameTurn = false));
    this.#lastActivitySnapshot = entry;
    return entry.snapshot;
  }
}

class LocalAgentHandle implements AgentHandle {
  readonly identity: RegistryEntry;
  readonly exited: Promise<AgentExit>;
  readonly #processTable: ProcessTable;
  readonly #clock: Clock;
  readonly #terminator: ProcessTerminator;
  readonly #initialLogSize: number;
  readonly #logger: Logger | undefined;
  /**
   * Set synchronously in the 'exit' handler, i.e. the moment Node has reaped
   * the leader. Before that the leader's pid (and so its group id) cannot be
   * reused by anyone; after it, they can.
   */
  #leaderReaped = false;
  #lastOutputBytes = 0;
  #stopping: Promise<AgentExit> | undefined;

  readonly #activitySnapshotSource: () => ProcessSnapshot;

  constructor(options: {
    identity: RegistryEntry;
    child: ChildProcess;
    initialLogSize: number;
    processTable: ProcessTable;
    clock: Clock;
    terminator: ProcessTerminator;
    logger: Logger | undefined;
    activitySnapshot: () => ProcessSnapshot;
  }) {
    this.#activitySnapshotSource = options.activitySnapshot;
    this.identity = options.identity;
    this.#processTable = options.processTable;
    this.#clock = options.clock;
    this.#terminator = options.terminator;
    this.#logger = options.logger;
    this.#initialLogSize = options.initialLogSize;
    const { child } = options;
    this.exited = new Promise<AgentExit>((resolve) => {
      child.once('exit', (exitCode, signal) => {
        this.#leaderReaped = true;
        resolve({ exitCode, signal, endedAtMs: this.#clock.now() });
      });
    });
    // We never call child.kill(), so no 'error' is expected after a successful
    // spawn; a listener still keeps a surprise from crashing the daemon.
    child.on('error', () => undefined);
  }

  stop(graceMs: number): Promise<AgentExit> {
    this.#stopping ??= this.#terminateTree(graceMs);
    return this.#stopping;
  }

  /**
   * Cheap on output (one stat), not on CPU: the tree's CPU time costs one
   * process-table snapshot plus one environment read per process (to find
   * escaped descendants by their marker). Stall checks call this once per
   * check interval per run, never on a hot path.
   *
   * The sum covers live processes only: CPU of descendants that already exited
   * is not in it, so a tree of short-lived processes can show a sum that goes
   * down. Treat any change, not only growth, as a sign of work.
   */
  async activity(): Promise<AgentActivity> {
    return { outputBytes: this.#outputBytes(), ...this.#treeFigures() };
  }

  /**
   * The whole tree goes: SIGTERM to the group, a grace period while any group
   * member still runs, then SIGKILL to the group and to every escapee that
   * still carries the agent's marker. The shared terminator guards each step,
   * so one failure (an unreadable /proc) never skips the SIGKILL.
   */
  async #terminateTree(graceMs: number): Promise<AgentExit> {
    const { issueKey, runId, agentName, pid } = this.identity;
    // The tree seen for the SIGKILL round: the group proof and the escapees come from one snapshot.
    let killRoundTree: AgentTree | null | undefined;
    await this.#terminator.terminate({
      graceMs,
      group: {
        pgid: this.identity.pgid,
        isOurs: () => this.#groupIsOurs(() => (killRoundTree === undefined ? this.#collectTree() : killRoundTree)),
        mayStillRun: () => this.#treeMayStillRun(),
        markedMembers: () => {
          killRoundTree = null;
          killRoundTree = this.#collectTree();
          return killRoundTree.members;
        },
      },
      ...(this.#logger ? { log: this.#logger.child({ issue: issueKey, run: runId, agent: agentName, pid }) } : {}),
    });
    return this.exited;
  }

  /**
   * Whether waiting longer could let the tree finish on its own. Only ever used
   * to decide how long to wait, never whom to signal.
   */
  #treeMayStillRun(): boolean {
    if (!this.#leaderReaped) return true;
    if (!groupExists(this.identity.pgid)) return false;
    // Zombies count as dead: in a container whose pid 1 reaps lazily, orphaned
    // members can linger as zombies for seconds and would eat the whole grace.
    for (const info of this.#processTable.snapshot().processes.values()) {
      if (info.pgid === this.identity.pgid && !hasExited(info)) return true;
    }
    return false;
  }

  /**
   * Whether the agent's group id still provably names the agent's group:
   * before the leader is reaped its pid pins the group id, and no lookup is
   * needed (so none can fail); afterwards the id may have been reused, so a
   * member must still carry our exact marker.
   */
  #groupIsOurs(findTree: () => AgentTree | null): boolean {
    return !this.#leaderReaped || (findTree()?.members.some((member) => member.via === 'group') ?? false);
  }

  /** The agent's processes, found by its exact marker, from one snapshot. */
  #collectTree(snapshot = this.#processTable.snapshot()): AgentTree {
    return collectAgentTree(this.identity, snapshot, this.#processTable);
  }

  #outputBytes(): number {
    try {
      this.#lastOutputBytes = Math.max(0, statSync(this.identity.logPath).size - this.#initialLogSize);
    } catch {
      // The log was moved or deleted by hand: report what we last saw rather than fail a stall check.
    }
    return this.#lastOutputBytes;
  }

  /** CPU ticks and resident memory of the tree, summed over one shared snapshot (stat carries both: no extra read per process). */
  #treeFigures(): Pick<AgentActivity, 'treeCpuTicks' | 'treeRssBytes'> {
    try {
      const snapshot = this.#activitySnapshotSource();
      const tree = this.#collectTree(snapshot);
      // While the leader is unreaped its group id is pinned, so members that
      // dropped the marker from their environment still count as the agent's.
      const pids = this.#leaderReaped ? tree.members.map((member) => member.pid) : [...tree.members.map((member) => member.pid), ...tree.unmarkedGroupMembers];
      let treeCpuTicks = 0;
      let treeRssBytes: number | null = 0;
      for (const pid of pids) {
        const info = snapshot.processes.get(pid);
        treeCpuTicks += info?.cpuTicks ?? 0;
        if (info && treeRssBytes !== null) treeRssBytes = info.rssBytes === undefined ? null : treeRssBytes + info.rssBytes;
      }
      return { treeCpuTicks, treeRssBytes };
    } catch {
      return { treeCpuTicks: null, treeRssBytes: null };
    }
  }
}

/**
 * Whether any process (zombies included) is in the group. Signal 0 checks
 * existence without delivering anything: one syscall, so the common case of
 * an emptied group costs no /proc scan. EPERM means the id now names someone
 * else's group: the caller only waits on this answer, it never signals on it.
 */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function openAgentLog(spec: AgentSpec): { fd: number; initialSize: number } {
  try {
    mkdirSync(dirname(spec.logPath), { recursive: true });
    const fd = openSync(spec.logPath, 'a');
    // A header separates attempts in a log that a retry appends to.
    writeSync(fd, `--- factory: ${spec.role} ${spec.agentName} for ${spec.issueKey} (run ${spec.runId}), started ${new Date().toISOString()}\n`);
    // Measured after the header so outputBytes counts only what the agent wrote.
    return { fd, initialSize: statSync(spec.logPath).size };
  } catch (error) {
    throw spawnFailed(spec, `could not open its log file ${spec.logPath} (${(error as Error).message})`, error, 'Check that the log folder is writable.');
  }
}

/** The spec's files (issue body, prompt), readable by the daemon's user only: they hold issue text. */
function writeAgentFiles(spec: AgentSpec, logFd: number): void {
  try {
    for (const file of spec.files ?? []) {
      mkdirSync(dirname(file.path), { recursive: true });
      writeFileSync(file.path, file.content, { mode: 0o600 });
    }
  } catch (error) {
    closeSync(logFd);
    throw spawnFailed(spec, `could not write its input files (${(error as Error).message})`, error, 'Check that the log folder is writable.');
  }
}

function assertDirectory(spec: AgentSpec): void {
  let isDirectory = false;
  try {
    isDirectory = statSync(spec.cwd).isDirectory();
  } catch {
    // reported below
  }
  // Checked here because spawn() reports a missing cwd as ENOENT of the command, which misleads.
  if (!isDirectory) {
    throw spawnFailed(
      spec,
      `its working directory ${spec.cwd} does not exist or is not a directory`,
      undefined,
      'The worktree was removed or never prepared; check the workspace settings and retry the issue.',
    );
  }
}

/**
 * What spawn() would report as ENOENT or EACCES for `command`, checked by hand
 * for a command started through a wrapper (whose own spawn always succeeds):
 * a path is checked as given (against the agent's cwd), a bare name on PATH.
 */
function assertExecutable(spec: AgentSpec, command: string, path: string | undefined): void {
  const found = lookUpExecutable(command, spec.cwd, path);
  if (found === 'found') return;
  throw spawnFailed(spec, describeSpawnErrno(command, Object.assign(new Error(found), { code: found })));
}

/**
 * How spawn() would find `command`: a path (anything with a `/`) as given,
 * against `cwd`; a bare name in each PATH folder. `EACCES` when a candidate
 * exists but is not executable, `ENOENT` when none exists.
 */
export function lookUpExecutable(command: string, cwd: string, path: string | undefined): 'found' | 'ENOENT' | 'EACCES' {
  const candidates = command.includes('/')
    ? [resolvePath(cwd, command)]
    : (path ?? '')
        .split(':')
        .filter(Boolean)
        .map((dir) => join(dir, command));
  let sawNotExecutable = false;
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, fsConstants.X_OK);
      return 'found';
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EACCES') sawNotExecutable = true;
    }
  }
  return sawNotExecutable ? 'EACCES' : 'ENOENT';
}

export function describeSpawnErrno(command: string, error: NodeJS.ErrnoException): string {
  switch (error.code ?? 'unknown') {
    case 'ENOENT':
      return `command "${command}" was not found (ENOENT): it is not on PATH or the path does not exist`;
    case 'EACCES':
      return `command "${command}" is not executable (EACCES)`;
    default:
      return `command "${command}" could not be started (${error.code ?? error.message})`;
  }
}

function spawnFailed(spec: AgentSpec, what: string, cause?: unknown, hint?: string): FactoryError {
  return new FactoryError('FACTORY_AGENT_SPAWN_FAILED', `the ${spec.role} agent ${spec.agentName} for ${spec.issueKey}: ${what}`, {
    ...(hint === undefined ? {} : { hint }),
    cause,
    details: { issueKey: spec.issueKey, runId: spec.runId, agentName: spec.agentName, command: spec.command[0] ?? '', cwd: spec.cwd },
  });
}
