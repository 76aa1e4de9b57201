import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cpuQuotaUs, CPU_PERIOD_US, type TeamBudget } from '../../domain/resource-budget.js';
import type { GroupMemory, KillAllResult, LeftoverGroup, TeamResourceGroup, TeamResourceGroups } from '../../ports/team-resources.js';
import {
  groupFailed,
  groupNameFor,
  joinCommandFor,
  killListedUntilEmpty,
  listChildGroups,
  makeGroupDirectory,
  readKeyedNumbers,
  readNumber,
  readText,
  removeGroupDirectories,
  signallablePids,
  unionPids,
  waitUntilEmpty,
  writeControl,
  writeOptionalControl,
  type CgroupIo,
} from './cgroup-files.js';

/**
 * Team groups on cgroup v2: one folder per team inside a delegated subtree
 * (the daemon's own group; under systemd, a unit with `Delegate=yes`).
 *
 * v2 forbids processes in a group whose children use controllers ("no
 * internal processes"), so when enabling the controllers for the children is
 * refused with EBUSY, the daemon moves itself into a leaf `<prefix>daemon`
 * and tries again: the documented systemd pattern for delegated services.
 */

const FREEZE_WAIT_MS = 1_000;
/** Controllers team groups use, in the order they are enabled. */
const TEAM_CONTROLLERS = ['memory', 'pids', 'cpu'] as const;

export interface CgroupV2TeamGroupsOptions {
  /** The delegated folder team groups are created in (the daemon's own v2 group). */
  readonly parentPath: string;
  readonly namePrefix: string;
  readonly io: CgroupIo;
}

export class CgroupV2TeamGroups implements TeamResourceGroups {
  readonly mechanism = 'cgroup-v2' as const;
  readonly #options: CgroupV2TeamGroupsOptions;
  #controllersEnabled = false;

  constructor(options: CgroupV2TeamGroupsOptions) {
    this.#options = options;
  }

  create(teamId: string, budget: TeamBudget): TeamResourceGroup {
    this.#enableControllers(teamId);
    const name = groupNameFor(this.#options.namePrefix, teamId);
    const directory = join(this.#options.parentPath, name);
    makeGroupDirectory(directory, teamId);
    try {
      applyV2Budget(directory, budget, teamId);
    } catch (error) {
      try {
        this.#options.io.removeDirectory(directory);
      } catch {
        // left for the reaper's leftover sweep
      }
      throw error;
    }
    return new CgroupV2TeamGroup(teamId, name, budget, directory, this.#options.io);
  }

  listLeftovers(): LeftoverGroup[] {
    return listChildGroups(this.#options.parentPath, this.#options.namePrefix)
      .filter((name) => name !== this.#daemonLeafName)
      .sort()
      .map((name) => ({ name, teamId: name.slice(this.#options.namePrefix.length), pids: unionPids([join(this.#options.parentPath, name, 'cgroup.procs')]) }));
  }

  adopt(leftover: LeftoverGroup): TeamResourceGroup {
    return new CgroupV2TeamGroup(leftover.teamId, leftover.name, {}, join(this.#options.parentPath, leftover.name), this.#options.io);
  }

  get #daemonLeafName(): string {
    return `${this.#options.namePrefix}daemon`;
  }

  /** Turns on, for the children of the parent, every team controller the parent itself has. */
  #enableControllers(teamId: string): void {
    if (this.#controllersEnabled) return;
    const parent = this.#options.parentPath;
    const available = new Set((readText(join(parent, 'cgroup.controllers')) ?? '').trim().split(/\s+/));
    const enabled = new Set((readText(join(parent, 'cgroup.subtree_control')) ?? '').trim().split(/\s+/));
    const missing = TEAM_CONTROLLERS.filter((controller) => available.has(controller) && !enabled.has(controller));
    if (!available.has('memory')) throw groupFailed(teamId, `${parent} does not offer the memory controller (its cgroup.controllers: ${[...available].join(' ') || 'none'})`);
    if (missing.length > 0) {
      const request = missing.map((controller) => `+${controller}`).join(' ');
      if (!writeOptionalControl(join(parent, 'cgroup.subtree_control'), request)) {
        // EBUSY: the parent holds processes (the daemon). Move the daemon into a leaf beside the teams.
        const leaf = join(parent, this.#daemonLeafName);
        if (!existsSync(leaf)) mkdirSync(leaf);
        writeControl(join(leaf, 'cgroup.procs'), String(this.#options.io.selfPid), teamId);
        writeControl(join(parent, 'cgroup.subtree_control'), request, teamId);
      }
    }
    this.#controllersEnabled = true;
  }
}

function applyV2Budget(directory: string, budget: TeamBudget, teamId: string): void {
  if (budget.memoryMaxBytes !== undefined) {
    writeControl(join(directory, 'memory.max'), String(budget.memoryMaxBytes), teamId);
    // No swap beyond the budget either; kernels without swap accounting lack the file.
    writeOptionalControl(join(directory, 'memory.swap.max'), '0');
  }
  if (budget.memoryHighBytes !== undefined) writeControl(join(directory, 'memory.high'), String(budget.memoryHighBytes), teamId);
  if (budget.pidsMax !== undefined) writeControl(join(directory, 'pids.max'), String(budget.pidsMax), teamId);
  if (budget.cpuWeight !== undefined) writeControl(join(directory, 'cpu.weight'), String(budget.cpuWeight), teamId);
  if (budget.cpuMaxCores !== undefined) writeControl(join(directory, 'cpu.max'), `${cpuQuotaUs(budget.cpuMaxCores)} ${CPU_PERIOD_US}`, teamId);
}

class CgroupV2TeamGroup implements TeamResourceGroup {
  readonly teamId: string;
  readonly name: string;
  readonly budget: TeamBudget;
  readonly directory: string;
  readonly #io: CgroupIo;
  /** memory.peak exists from Linux 5.19; before that the highest reading seen stands in. */
  #highestSeen = 0;
  #killing: Promise<KillAllResult> | undefined;
  #removing: Promise<void> | undefined;

  constructor(teamId: string, name: string, budget: TeamBudget, directory: string, io: CgroupIo) {
    this.teamId = teamId;
    this.name = name;
    this.budget = budget;
    this.directory = directory;
    this.#io = io;
  }

  get #procsFile(): string {
    return join(this.directory, 'cgroup.procs');
  }

  joinCommand(command: readonly string[]): string[] {
    return joinCommandFor([this.#procsFile], command);
  }

  pids(): number[] {
    return unionPids([this.#procsFile]);
  }

  memory(): GroupMemory {
    const current = readNumber(join(this.directory, 'memory.current')) ?? 0;
    this.#highestSeen = Math.max(this.#highestSeen, current);
    return {
      currentBytes: current,
      peakBytes: readNumber(join(this.directory, 'memory.peak')) ?? this.#highestSeen,
      oomKills: readKeyedNumbers(join(this.directory, 'memory.events')).get('oom_kill') ?? 0,
      // readNumber maps "max" to undefined: no limit.
      limitBytes: readNumber(join(this.directory, 'memory.max')) ?? null,
    };
  }

  killAll(): Promise<KillAllResult> {
    this.#killing ??= this.#killAll().finally(() => {
      this.#killing = undefined;
    });
    return this.#killing;
  }

  async #killAll(): Promise<KillAllResult> {
    const before = signallablePids(this.#io, [this.#procsFile]).length;
    // An empty group has nothing to freeze or kill; callers stop spawning into a group before killing it.
    if (before === 0) return { method: existsSync(join(this.directory, 'cgroup.kill')) ? 'cgroup.kill' : 'freeze-then-kill', killed: 0, survivors: [] };
    const killFile = join(this.directory, 'cgroup.kill');
    if (existsSync(killFile)) {
      // One write: the kernel kills every member and refuses forks into the group meanwhile.
      writeControl(killFile, '1', this.teamId);
      const survivors = await waitUntilEmpty(this.#io, [this.#procsFile]);
      if (survivors.length === 0) return { method: 'cgroup.kill', killed: before, survivors };
      // Only a fake tree (no kernel behind the file) or a stuck task gets here: kill by pid as well.
      const rest = await killListedUntilEmpty(this.#io, [this.#procsFile]);
      return { method: 'cgroup.kill', killed: Math.max(before, rest.killed), survivors: rest.survivors };
    }
    // Before Linux 5.14: freeze, kill every listed pid, thaw so the kills land.
    const freezeFile = join(this.directory, 'cgroup.freeze');
    const canFreeze = writeOptionalControl(freezeFile, '1');
    if (canFreeze) {
      const deadline = Date.now() + FREEZE_WAIT_MS;
      while (readKeyedNumbers(join(this.directory, 'cgroup.events')).get('frozen') !== 1 && Date.now() < deadline) await this.#io.sleep(5);
    }
    const signalled = new Set<number>();
    try {
      for (const pid of signallablePids(this.#io, [this.#procsFile])) {
        if (this.#io.processTable.signal(pid, 'SIGKILL')) signalled.add(pid);
      }
    } finally {
      if (canFreeze) writeOptionalControl(freezeFile, '0');
    }
    const rest = await killListedUntilEmpty(this.#io, [this.#procsFile], signalled);
    return { method: canFreeze ? 'freeze-then-kill' : 'kill-loop', killed: rest.killed, survivors: rest.survivors };
  }

  remove(): Promise<void> {
    this.#removing ??= removeGroupDirectories(this.#io, [this.directory], this.teamId).catch((error: unknown) => {
      this.#removing = undefined;
      throw error;
    });
    return this.#removing;
  }
}
