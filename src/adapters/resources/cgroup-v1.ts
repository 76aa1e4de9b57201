import { join } from 'node:path';
import { cpuQuotaUs, cpuSharesForWeight, CPU_PERIOD_US, type TeamBudget } from '../../domain/resource-budget.js';
import type { CgroupV1Hierarchy, GroupMemory, KillAllResult, LeftoverGroup, TeamResourceGroup, TeamResourceGroups } from '../../ports/team-resources.js';
import {
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
 * Team groups on cgroup v1: one folder per hierarchy (memory, pids, cpu,
 * freezer; whichever are writable), all with the same name, under the
 * daemon's own group of each hierarchy.
 *
 * - memory.limit_in_bytes is enforced by the kernel's OOM killer inside the
 *   group only, and counted in memory.oom_control's `oom_kill`.
 * - Kill-all freezes the group first, so no member can fork or exit while
 *   every listed pid is SIGKILLed (a frozen pid cannot be reused), then thaws
 *   it so the kills land.
 */

/** v1 reports "no limit" as a huge page-aligned number; anything from here up means unlimited. */
const V1_UNLIMITED = 2 ** 62;
const FREEZE_WAIT_MS = 1_000;

export type V1Controller = CgroupV1Hierarchy['controller'];

export interface CgroupV1TeamGroupsOptions {
  /** Writable hierarchies, each with the folder team groups are created in. */
  readonly hierarchies: readonly Pick<CgroupV1Hierarchy, 'controller' | 'parentPath'>[];
  /** e.g. `factory-<instanceId>-`: marks this daemon's groups for the reaper. */
  readonly namePrefix: string;
  readonly io: CgroupIo;
}

export class CgroupV1TeamGroups implements TeamResourceGroups {
  readonly mechanism = 'cgroup-v1' as const;
  readonly #options: CgroupV1TeamGroupsOptions;

  constructor(options: CgroupV1TeamGroupsOptions) {
    if (!options.hierarchies.some((hierarchy) => hierarchy.controller === 'memory')) {
      throw new RangeError('cgroup v1 team groups need a writable memory hierarchy');
    }
    this.#options = options;
  }

  create(teamId: string, budget: TeamBudget): TeamResourceGroup {
    const group = this.#handle(groupNameFor(this.#options.namePrefix, teamId), teamId, budget);
    const created: string[] = [];
    try {
      for (const [controller, directory] of group.directories) {
        makeGroupDirectory(directory, teamId);
        created.push(directory);
        applyV1Budget(controller, directory, budget, teamId);
      }
    } catch (error) {
      // Half-made groups would be joined by nobody and confuse the reaper; best-effort rollback.
      for (const directory of created.reverse()) {
        try {
          this.#options.io.removeDirectory(directory);
        } catch {
          // left for the reaper's leftover sweep
        }
      }
      throw error;
    }
    return group;
  }

  listLeftovers(): LeftoverGroup[] {
    const names = new Set(this.#options.hierarchies.flatMap((hierarchy) => listChildGroups(hierarchy.parentPath, this.#options.namePrefix)));
    return [...names].sort().map((name) => ({
      name,
      teamId: name.slice(this.#options.namePrefix.length),
      pids: unionPids(this.#options.hierarchies.map((hierarchy) => join(hierarchy.parentPath, name, 'cgroup.procs'))),
    }));
  }

  adopt(leftover: LeftoverGroup): TeamResourceGroup {
    return this.#handle(leftover.name, leftover.teamId, {});
  }

  #handle(name: string, teamId: string, budget: TeamBudget): CgroupV1TeamGroup {
    const directories = new Map<V1Controller, string>(this.#options.hierarchies.map((hierarchy) => [hierarchy.controller, join(hierarchy.parentPath, name)]));
    return new CgroupV1TeamGroup(teamId, name, budget, directories, this.#options.io);
  }
}

function applyV1Budget(controller: V1Controller, directory: string, budget: TeamBudget, teamId: string): void {
  switch (controller) {
    case 'memory':
      if (budget.memoryMaxBytes !== undefined) {
        writeControl(join(directory, 'memory.limit_in_bytes'), String(budget.memoryMaxBytes), teamId);
        // With swap accounting, memory+swap gets the same cap so a team cannot swap its way past the budget.
        writeOptionalControl(join(directory, 'memory.memsw.limit_in_bytes'), String(budget.memoryMaxBytes));
      }
      if (budget.memoryHighBytes !== undefined) writeControl(join(directory, 'memory.soft_limit_in_bytes'), String(budget.memoryHighBytes), teamId);
      return;
    case 'pids':
      if (budget.pidsMax !== undefined) writeControl(join(directory, 'pids.max'), String(budget.pidsMax), teamId);
      return;
    case 'cpu':
      if (budget.cpuWeight !== undefined) writeControl(join(directory, 'cpu.shares'), String(cpuSharesForWeight(budget.cpuWeight)), teamId);
      if (budget.cpuMaxCores !== undefined) {
        writeControl(join(directory, 'cpu.cfs_period_us'), String(CPU_PERIOD_US), teamId);
        writeControl(join(directory, 'cpu.cfs_quota_us'), String(cpuQuotaUs(budget.cpuMaxCores)), teamId);
      }
      return;
    case 'freezer':
      return;
  }
}

class CgroupV1TeamGroup implements TeamResourceGroup {
  readonly teamId: string;
  readonly name: string;
  readonly budget: TeamBudget;
  readonly directories: ReadonlyMap<V1Controller, string>;
  readonly #io: CgroupIo;
  #killing: Promise<KillAllResult> | undefined;
  #removing: Promise<void> | undefined;

  constructor(teamId: string, name: string, budget: TeamBudget, directories: ReadonlyMap<V1Controller, string>, io: CgroupIo) {
    this.teamId = teamId;
    this.name = name;
    this.budget = budget;
    this.directories = directories;
    this.#io = io;
  }

  get #procsFiles(): string[] {
    return [...this.directories.values()].map((directory) => join(directory, 'cgroup.procs'));
  }

  joinCommand(command: readonly string[]): string[] {
    return joinCommandFor(this.#procsFiles, command);
  }

  pids(): number[] {
    return unionPids(this.#procsFiles);
  }

  memory(): GroupMemory {
    const directory = this.directories.get('memory');
    if (directory === undefined) return { currentBytes: 0, peakBytes: 0, oomKills: 0, limitBytes: null };
    const limit = readNumber(join(directory, 'memory.limit_in_bytes'));
    return {
      currentBytes: readNumber(join(directory, 'memory.usage_in_bytes')) ?? 0,
      peakBytes: readNumber(join(directory, 'memory.max_usage_in_bytes')) ?? 0,
      // `oom_kill` exists from Linux 4.13; older kernels only say under_oom.
      oomKills: readKeyedNumbers(join(directory, 'memory.oom_control')).get('oom_kill') ?? 0,
      limitBytes: limit === undefined || limit >= V1_UNLIMITED ? null : limit,
    };
  }

  killAll(): Promise<KillAllResult> {
    this.#killing ??= this.#killAll().finally(() => {
      // A later call kills whatever joined since (a spawn racing the stop).
      this.#killing = undefined;
    });
    return this.#killing;
  }

  async #killAll(): Promise<KillAllResult> {
    const freezer = this.directories.get('freezer');
    if (freezer === undefined) return { method: 'kill-loop', ...(await killListedUntilEmpty(this.#io, this.#procsFiles)) };

    // An empty group has nothing to freeze or kill; callers stop spawning into a group before killing it.
    if (signallablePids(this.#io, this.#procsFiles).length === 0) return { method: 'freeze-then-kill', killed: 0, survivors: [] };
    const stateFile = join(freezer, 'freezer.state');
    writeControl(stateFile, 'FROZEN', this.teamId);
    // FREEZING turns FROZEN once every task stopped; a task in uninterruptible sleep can delay that.
    const freezeDeadline = Date.now() + FREEZE_WAIT_MS;
    while (readText(stateFile)?.trim() !== 'FROZEN' && Date.now() < freezeDeadline) await this.#io.sleep(5);
    const signalled = new Set<number>();
    try {
      for (const pid of signallablePids(this.#io, this.#procsFiles)) {
        if (this.#io.processTable.signal(pid, 'SIGKILL')) signalled.add(pid);
      }
    } finally {
      // Frozen tasks act on SIGKILL only once thawed; thawing is what lets them die.
      writeControl(stateFile, 'THAWED', this.teamId);
    }
    // Anything that slipped in between (a joiner mid-exec) is caught by the loop.
    const rest = await killListedUntilEmpty(this.#io, this.#procsFiles, signalled);
    const survivors = rest.survivors.length > 0 ? rest.survivors : await waitUntilEmpty(this.#io, this.#procsFiles);
    return { method: 'freeze-then-kill', killed: rest.killed, survivors };
  }

  remove(): Promise<void> {
    this.#removing ??= removeGroupDirectories(this.#io, [...this.directories.values()], this.teamId).catch((error: unknown) => {
      this.#removing = undefined;
      throw error;
    });
    return this.#removing;
  }
}
