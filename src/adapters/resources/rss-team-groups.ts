import { readFileSync } from 'node:fs';
import { AGENT_MARKER_ENV, formatAgentMarker } from '../../domain/registry.js';
import type { TeamBudget } from '../../domain/resource-budget.js';
import type { ProcessInfo, ProcessTable } from '../../ports/process-table.js';
import type { BudgetStop, GroupMemory, KillAllResult, LeftoverGroup, TeamResourceGroup, TeamResourceGroups } from '../../ports/team-resources.js';

/**
 * The fallback where no cgroup is writable (not root, no delegation): a team's
 * processes are the ones whose FACTORY_AGENT_MARKER starts with the run's
 * marker prefix (escapees included, since they inherit it), their RSS is
 * summed from /proc, and a team over its memoryMax is SIGKILLed by
 * enforceBudgets(), which the daemon calls on its supervision tick.
 *
 * Weaker than a cgroup, and documented so: the kernel does not stop the team,
 * Factory does, up to one sampling interval late; RSS counts shared pages once
 * per process (the sum overstates, so it errs on the side of stopping); and a
 * process that clears its environment is not seen.
 */

export interface RssTeamGroupsOptions {
  readonly instanceId: string;
  readonly processTable: ProcessTable;
  /** Resident memory of one process in bytes; undefined when gone. Defaults to /proc/<pid>/status VmRSS. */
  readonly readRss?: (pid: number) => number | undefined;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Bound on waiting for killed processes to vanish. */
  readonly settleMs?: number;
}

export type { BudgetStop } from '../../ports/team-resources.js';

interface TeamSample {
  readonly members: ProcessInfo[];
  rssBytes: number;
}

/** /proc/<pid>/status VmRSS, in bytes (kernel threads and zombies have none). */
export function readProcessRss(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s*kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return undefined;
  }
}

export class RssTeamGroups implements TeamResourceGroups {
  readonly mechanism = 'rss-sampling' as const;
  readonly #options: RssTeamGroupsOptions;
  readonly #instancePrefix: string;
  readonly #groups = new Map<string, RssTeamGroup>();

  constructor(options: RssTeamGroupsOptions) {
    this.#options = options;
    this.#instancePrefix = formatAgentMarker(options.instanceId, '', '').slice(0, -1);
  }

  create(teamId: string, budget: TeamBudget): TeamResourceGroup {
    const group = new RssTeamGroup(teamId, budget, this.#teamPrefix(teamId), this, () => this.#groups.delete(teamId));
    this.#groups.set(teamId, group);
    return group;
  }

  /** Teams of this daemon instance that still have marked processes but no live group here: a crashed predecessor's. */
  listLeftovers(): LeftoverGroup[] {
    const leftovers: LeftoverGroup[] = [];
    for (const [teamPrefix, sample] of this.sampleTeams()) {
      const teamId = teamPrefix.slice(this.#instancePrefix.length, -1);
      if (this.#groups.has(teamId)) continue;
      leftovers.push({ name: teamPrefix, teamId, pids: sample.members.map((member) => member.pid) });
    }
    return leftovers.sort((a, b) => a.name.localeCompare(b.name));
  }

  adopt(leftover: LeftoverGroup): TeamResourceGroup {
    return this.create(leftover.teamId, {});
  }

  /**
   * One pass over the process table: every process carrying a marker of this
   * instance, grouped by team (the marker up to its last ":"), with summed RSS.
   * Costs one environment read per process on the machine.
   */
  sampleTeams(): Map<string, TeamSample> {
    const readRss = this.#options.readRss ?? readProcessRss;
    const teams = new Map<string, TeamSample>();
    for (const info of this.#options.processTable.snapshot().processes.values()) {
      if (info.state === 'Z' || info.state === 'X') continue;
      const marker = this.#options.processTable.readEnvironmentVariable(info.pid, AGENT_MARKER_ENV);
      if (marker === undefined || !marker.startsWith(this.#instancePrefix)) continue;
      const teamPrefix = marker.slice(0, marker.lastIndexOf(':') + 1);
      const sample = teams.get(teamPrefix) ?? { members: [], rssBytes: 0 };
      sample.members.push(info);
      sample.rssBytes += readRss(info.pid) ?? 0;
      teams.set(teamPrefix, sample);
    }
    return teams;
  }

  /**
   * Samples every team once and stops each one whose RSS is over its memoryMax.
   * Call it on the supervision tick; it returns the teams it stopped.
   */
  async enforceBudgets(): Promise<BudgetStop[]> {
    const samples = this.sampleTeams();
    const stops: BudgetStop[] = [];
    for (const group of this.#groups.values()) {
      const sample = samples.get(group.teamPrefix);
      group.record(sample);
      const limit = group.budget.memoryMaxBytes;
      if (limit === undefined || sample === undefined || sample.rssBytes <= limit) continue;
      group.countBudgetStop();
      stops.push({ teamId: group.teamId, rssBytes: sample.rssBytes, limitBytes: limit, result: await this.killMembers(sample.members) });
    }
    return stops;
  }

  /** Starts enforceBudgets() every `intervalMs` on a real timer (for use without a supervision tick); returns the stop function. */
  startEnforcing(intervalMs: number, onStop: (stop: BudgetStop) => void = () => undefined): () => void {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      this.enforceBudgets()
        .then((stops) => stops.forEach(onStop))
        .catch(() => undefined)
        .finally(() => {
          running = false;
        });
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** SIGKILLs each member whose identity (pid and start time) still matches the sample, then waits for them to vanish. */
  async killMembers(members: readonly ProcessInfo[]): Promise<KillAllResult> {
    const table = this.#options.processTable;
    const stillOurs = (member: ProcessInfo): boolean => {
      const now = table.inspect(member.pid);
      return now !== undefined && now.startTime === member.startTime && now.state !== 'Z' && now.state !== 'X';
    };
    let killed = 0;
    for (const member of members) {
      if (member.pid !== process.pid && stillOurs(member) && table.signal(member.pid, 'SIGKILL')) killed += 1;
    }
    const sleep = this.#options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    const deadline = Date.now() + (this.#options.settleMs ?? 5_000);
    let survivors = members.filter(stillOurs);
    while (survivors.length > 0 && Date.now() < deadline) {
      await sleep(10);
      survivors = survivors.filter(stillOurs);
    }
    return { method: 'marker-sweep', killed, survivors: survivors.map((member) => member.pid) };
  }

  #teamPrefix(teamId: string): string {
    return formatAgentMarker(this.#options.instanceId, teamId, '');
  }
}

class RssTeamGroup implements TeamResourceGroup {
  readonly teamId: string;
  readonly name: string;
  readonly budget: TeamBudget;
  readonly teamPrefix: string;
  readonly #owner: RssTeamGroups;
  readonly #forget: () => void;
  #current = 0;
  #peak = 0;
  #budgetStops = 0;
  #pids: number[] = [];

  constructor(teamId: string, budget: TeamBudget, teamPrefix: string, owner: RssTeamGroups, forget: () => void) {
    this.teamId = teamId;
    this.name = teamPrefix;
    this.budget = budget;
    this.teamPrefix = teamPrefix;
    this.#owner = owner;
    this.#forget = forget;
  }

  /** Nothing to join: the fleet's marker is what puts a process in the team. */
  joinCommand(command: readonly string[]): string[] {
    return [...command];
  }

  pids(): number[] {
    this.record(this.#owner.sampleTeams().get(this.teamPrefix));
    return [...this.#pids];
  }

  memory(): GroupMemory {
    return { currentBytes: this.#current, peakBytes: this.#peak, oomKills: this.#budgetStops, limitBytes: this.budget.memoryMaxBytes ?? null };
  }

  record(sample: TeamSample | undefined): void {
    this.#current = sample?.rssBytes ?? 0;
    this.#peak = Math.max(this.#peak, this.#current);
    this.#pids = (sample?.members ?? []).map((member) => member.pid);
  }

  countBudgetStop(): void {
    this.#budgetStops += 1;
  }

  async killAll(): Promise<KillAllResult> {
    const sample = this.#owner.sampleTeams().get(this.teamPrefix);
    return this.#owner.killMembers(sample?.members ?? []);
  }

  async remove(): Promise<void> {
    this.#forget();
  }
}
