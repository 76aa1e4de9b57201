import type { TeamBudget } from '../domain/resource-budget.js';

/**
 * Per-team resource groups: every agent of a team, and every descendant
 * (setsid escapees included), runs inside one group that carries the team's
 * budget, reports its memory, and can be killed and removed as a whole.
 *
 * Three mechanisms sit behind this port, chosen at startup by detection:
 * `cgroup-v2` (a writable, delegated v2 subtree with the memory controller),
 * `cgroup-v1` (writable v1 hierarchies: memory, pids, cpu, freezer), and
 * `rss-sampling` (nothing writable: RSS of the team's marked processes is
 * sampled from /proc and the team is stopped over budget).
 */

export type ResourceMechanism = 'cgroup-v2' | 'cgroup-v1' | 'rss-sampling';

/** How a group's processes are killed all at once, best first. */
export type KillAllMethod = 'cgroup.kill' | 'freeze-then-kill' | 'kill-loop' | 'marker-sweep';

export interface CgroupV2Support {
  /** Where the v2 hierarchy is mounted, when it is. */
  readonly mountPath: string | null;
  /** The daemon's own v2 group, relative to the mount ("/" is the root). */
  readonly ownGroup: string | null;
  /** Controllers the own group's parent offers to it (cgroup.controllers of the own group). */
  readonly controllers: readonly string[];
  /** Where team groups would be created: a writable subtree (the own group under systemd `Delegate=yes`), or null. */
  readonly delegatedPath: string | null;
  readonly writable: boolean;
  /** Whether cgroup.kill exists (kernel 5.14+). */
  readonly hasKill: boolean;
  /** Why v2 is not usable for budgets, when it is not. */
  readonly reason: string | null;
}

export interface CgroupV1Hierarchy {
  readonly controller: 'memory' | 'pids' | 'cpu' | 'freezer';
  readonly mountPath: string;
  /** The daemon's own group in this hierarchy, relative to the mount. */
  readonly ownGroup: string;
  /** Where team groups are created: the own group's folder. */
  readonly parentPath: string;
  readonly writable: boolean;
  readonly reason: string | null;
}

/** What the machine offers, found once at startup; shown by `status` and the state API. */
export interface ResourceSupportReport {
  readonly mechanism: ResourceMechanism;
  /** One line for people, e.g. `cgroup v1 (memory, pids, cpu, freezer writable); v2 has no memory controller`. */
  readonly summary: string;
  readonly v2: CgroupV2Support;
  readonly v1: readonly CgroupV1Hierarchy[];
  /** Which budget keys the chosen mechanism enforces. */
  readonly enforces: { readonly memory: boolean; readonly pids: boolean; readonly cpu: boolean };
  readonly killAll: KillAllMethod;
  /** Whether PSI memory pressure can be read (admission holds teams while it stays high). */
  readonly pressure: boolean;
}

export interface GroupMemory {
  /** Memory charged to the group now (RSS sum for the sampler). */
  readonly currentBytes: number;
  /** Highest usage seen: the kernel's own peak for cgroups, the highest sample for the sampler. */
  readonly peakBytes: number;
  /** Times the group was killed for its memory: kernel OOM kills in the group, or budget stops by the sampler. */
  readonly oomKills: number;
  readonly limitBytes: number | null;
}

export interface KillAllResult {
  readonly method: KillAllMethod;
  /** Processes that were in the group when the kill began. */
  readonly killed: number;
  /** Pids still present when waiting stopped (stuck in the kernel, state D); empty when the group emptied. */
  readonly survivors: readonly number[];
}

export interface TeamResourceGroup {
  /** The run id the group belongs to. */
  readonly teamId: string;
  /** The group's folder name in every hierarchy (`<prefix><teamId>`, sanitised). */
  readonly name: string;
  readonly budget: TeamBudget;
  /**
   * The argv that joins the group and then execs `command`, so the process
   * (and so every descendant) is inside before it runs anything. The pid stays
   * the same across the exec. For `rss-sampling` this is `command` itself.
   */
  joinCommand(command: readonly string[]): string[];
  /** The group's processes now. */
  pids(): number[];
  memory(): GroupMemory;
  /** Kills every process of the group at once, then waits (bounded) for the group to empty. Idempotent. */
  killAll(): Promise<KillAllResult>;
  /** Removes the group's folders (retried until the kernel lets go of them). Idempotent. */
  remove(): Promise<void>;
}

/** A group found on disk with this daemon's prefix: a crashed predecessor's, or one not yet removed. */
export interface LeftoverGroup {
  readonly name: string;
  readonly teamId: string;
  readonly pids: readonly number[];
}

export interface TeamResourceGroups {
  readonly mechanism: ResourceMechanism;
  /**
   * Creates the group of one team with its budget applied. `teamId` is the run
   * id: the RSS sampler finds the team's processes by the run's marker prefix.
   * Throws FACTORY_RESOURCES_GROUP_FAILED when the kernel refuses.
   */
  create(teamId: string, budget: TeamBudget): TeamResourceGroup;
  /** Groups with this daemon's name prefix, for the reaper. */
  listLeftovers(): LeftoverGroup[];
  /** A handle on an existing group by name (from listLeftovers), to kill and remove it. */
  adopt(leftover: LeftoverGroup): TeamResourceGroup;
  /**
   * Only where Factory itself enforces budgets (`rss-sampling`): samples every
   * team once and stops those over their memoryMax. The daemon calls it on its
   * supervision tick; the kernel needs no such help.
   */
  enforceBudgets?(): Promise<readonly BudgetStop[]>;
}

/** A team stopped for its budget by enforceBudgets(). */
export interface BudgetStop {
  readonly teamId: string;
  readonly rssBytes: number;
  readonly limitBytes: number;
  readonly result: KillAllResult;
}

/**
 * Everything the daemon uses for budgets, built once at startup by the
 * composition root: what detection found, the groups of the chosen mechanism,
 * and the memory and pressure readers admission asks before a team starts.
 */
export interface TeamResources {
  readonly report: ResourceSupportReport;
  readonly groups: TeamResourceGroups;
  readonly availableMemory: AvailableMemorySource;
  /** Absent where PSI cannot be read. */
  readonly pressure?: MemoryPressureSource;
}

/** The machine's memory as admission sees it. */
export interface AvailableMemory {
  readonly availableBytes: number;
  readonly totalBytes: number;
  /** Where the figures came from: /proc/meminfo, or the daemon's own group limit (inside a container). */
  readonly source: 'meminfo' | 'cgroup-v1-limit' | 'cgroup-v2-limit';
}

/** Reads available memory; the fake lets admission be tested with any figure. */
export interface AvailableMemorySource {
  read(): AvailableMemory;
}

export interface MemoryPressure {
  /** PSI `some avg10`, percent. */
  readonly someAvg10: number;
  /** PSI `full avg10`, percent. */
  readonly fullAvg10: number;
}

export interface MemoryPressureSource {
  /** Undefined where PSI is not available (kernel without CONFIG_PSI, or psi=0). */
  read(): MemoryPressure | undefined;
}
