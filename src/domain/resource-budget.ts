import type { RunMemory, RunOutcome } from './run.js';

/**
 * Resource budgets of a team and memory-aware admission: pure rules, no I/O.
 *
 * Sizes are binary (1G = 2^30 bytes), as the kernel's cgroup files count them.
 * A budget is resolved from the team default, then the repo's override, then
 * the labels' overrides (see resolveTeamBudget). Admission compares what the
 * machine can still give with what the next team may take (decideMemoryAdmission).
 */

/** What one team may use. Every field is optional: an absent field means "no limit". */
export interface TeamBudget {
  /** Hard memory limit of the whole team (cgroup v2 memory.max, v1 memory.limit_in_bytes, or the RSS sampler's stop line). */
  readonly memoryMaxBytes?: number;
  /** Soft limit: above it the kernel reclaims hard (v2 memory.high, v1 memory.soft_limit_in_bytes). */
  readonly memoryHighBytes?: number;
  /** Relative CPU share, 1..10000, 100 being the default of every group (v2 cpu.weight; v1 cpu.shares scaled). */
  readonly cpuWeight?: number;
  /** Hard CPU cap in cores, e.g. 1.5 (v2 cpu.max, v1 cpu.cfs_quota_us). */
  readonly cpuMaxCores?: number;
  /** Most processes (and threads) the team may have at once. */
  readonly pidsMax?: number;
}

export type BudgetKey = keyof TeamBudget;
export const BUDGET_KEYS: readonly BudgetKey[] = ['memoryMaxBytes', 'memoryHighBytes', 'cpuWeight', 'cpuMaxCores', 'pidsMax'];

/** How much memory admission keeps free on top of a team's budget: a share of the machine's total, or a fixed size. */
export type MemoryReserve = { readonly fraction: number } | { readonly bytes: number };

/** What happens when the machine's memory pressure stays high: hold new teams (`hold`), also park the newest team (`park`), or do nothing (`ignore`). */
export type PressureAction = 'hold' | 'park' | 'ignore';

export interface ResourcesPolicy {
  readonly team: TeamBudget;
  readonly byRepo: Readonly<Record<string, TeamBudget>>;
  readonly byLabel: Readonly<Record<string, TeamBudget>>;
  readonly reserve: MemoryReserve;
  readonly onPressure: PressureAction;
  /** Whether a team that ran out of its memory budget (outcome `oom`) is tried again; default no. */
  readonly retryOom: boolean;
}

export const DEFAULT_MEMORY_RESERVE: MemoryReserve = { fraction: 0.1 };

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * Parses a size such as `"4G"`, `"512M"`, `"1.5G"`, `"4GiB"`, `"100MB"` or a
 * whole number of bytes. Units are binary whatever the spelling: budgets are
 * compared with kernel figures, which are binary. Undefined when not a size.
 */
export function parseSize(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input > 0 ? input : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(input);
  if (!match) return undefined;
  const unit = SIZE_UNITS[(match[2] ?? '').toUpperCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.round(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** `4.0 GB` from one GiB up, `512 MB` below: the form status and the dashboard show. */
export function formatMemory(bytes: number): string {
  const clamped = Math.max(0, bytes);
  if (clamped >= 2 ** 30) return `${(clamped / 2 ** 30).toFixed(1)} GB`;
  return `${Math.round(clamped / 2 ** 20)} MB`;
}

/**
 * The budget of one team: the team default, overridden key by key by the
 * repo's entry, then by the entries of the labels. When several labels
 * set the same key the largest value wins, so a label can only ask for more
 * room than another label, and the result does not depend on label order.
 */
export function resolveTeamBudget(policy: Pick<ResourcesPolicy, 'team' | 'byRepo' | 'byLabel'>, target: { readonly repo?: string; readonly labels?: readonly string[] }): TeamBudget {
  const resolved: Partial<Record<BudgetKey, number>> = { ...policy.team };
  const repoOverride = target.repo === undefined ? undefined : policy.byRepo[target.repo];
  if (repoOverride) Object.assign(resolved, definedEntries(repoOverride));

  const labelValues: Partial<Record<BudgetKey, number>> = {};
  for (const label of target.labels ?? []) {
    const override = Object.hasOwn(policy.byLabel, label) ? policy.byLabel[label] : undefined;
    for (const [key, value] of Object.entries(definedEntries(override ?? {})) as [BudgetKey, number][]) {
      labelValues[key] = Math.max(labelValues[key] ?? value, value);
    }
  }
  Object.assign(resolved, labelValues);
  return resolved;
}

function definedEntries(budget: TeamBudget): Partial<Record<BudgetKey, number>> {
  const out: Partial<Record<BudgetKey, number>> = {};
  for (const key of BUDGET_KEYS) {
    const value = budget[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** Whether a budget asks for anything at all; a team with an empty budget needs no group. */
export function hasAnyLimit(budget: TeamBudget): boolean {
  return BUDGET_KEYS.some((key) => budget[key] !== undefined);
}

/** The memory a team may claim for admission: its hard limit, else its soft limit, else nothing known. */
export function admissionBudgetBytes(budget: TeamBudget): number | undefined {
  return budget.memoryMaxBytes ?? budget.memoryHighBytes;
}

export function reserveBytes(reserve: MemoryReserve, totalBytes: number): number {
  return 'bytes' in reserve ? reserve.bytes : Math.round(reserve.fraction * totalBytes);
}

export interface RunningTeamMemory {
  /** The team's admission budget (admissionBudgetBytes); undefined when it has none. */
  readonly budgetBytes: number | undefined;
  /**
   * What the team uses now, when known. Available memory already excludes it,
   * so only the rest of the budget (what the team may still claim) is held
   * back; unknown usage holds back the whole budget.
   */
  readonly usedBytes?: number;
}

export interface MemoryAdmissionInput {
  /** What the machine (or the daemon's own container limit) can still give: MemAvailable or limit minus usage. */
  readonly availableBytes: number;
  /** The machine's (or container's) total memory; the base of a fractional reserve. */
  readonly totalBytes: number;
  readonly running: readonly RunningTeamMemory[];
  /** The next team's admission budget; undefined admits at once (nothing to compare). */
  readonly nextBudgetBytes: number | undefined;
  readonly reserve: MemoryReserve;
}

export type MemoryAdmission =
  { readonly admit: true; readonly needBytes: number; readonly freeBytes: number } | { readonly admit: false; readonly needBytes: number; readonly freeBytes: number; readonly reason: string };

/**
 * Admits the next team when the memory left after every running team's
 * remaining budget covers the next team's budget plus the reserve.
 * `free` = available − Σ (budget − used) of running teams; `need` = budget + reserve.
 */
export function decideMemoryAdmission(input: MemoryAdmissionInput): MemoryAdmission {
  const heldBack = input.running.reduce((sum, team) => sum + (team.budgetBytes === undefined ? 0 : Math.max(0, team.budgetBytes - (team.usedBytes ?? 0))), 0);
  const freeBytes = Math.max(0, input.availableBytes - heldBack);
  if (input.nextBudgetBytes === undefined) return { admit: true, needBytes: 0, freeBytes };
  const needBytes = input.nextBudgetBytes + reserveBytes(input.reserve, input.totalBytes);
  if (freeBytes >= needBytes) return { admit: true, needBytes, freeBytes };
  return { admit: false, needBytes, freeBytes, reason: waitingForMemoryReason(needBytes, freeBytes) };
}

/** The reason a held team shows in status and the dashboard. */
export function waitingForMemoryReason(needBytes: number, freeBytes: number): string {
  return `waiting for memory: need ${formatMemory(needBytes)}, ${formatMemory(freeBytes)} free`;
}

/** PSI `some avg10` (percent of the last 10 s some task stalled on memory) from which pressure counts as high. */
export const PRESSURE_HIGH_SOME_AVG10 = 20;
/** How long pressure must stay high before new teams are held: a one-off spike (a build's link step) is not enough. */
export const PRESSURE_SUSTAIN_MS = 30_000;

export interface PressureSample {
  readonly atMs: number;
  /** PSI `some avg10` in percent. */
  readonly someAvg10: number;
}

/**
 * Whether memory pressure has stayed high for the whole of the last
 * `sustainMs`: the last sample taken at or before the window's start, and
 * every sample since, are at or above the threshold. Without a sample that old
 * there is no proof yet, so the answer is no.
 */
export function isPressureSustained(samples: readonly PressureSample[], nowMs: number, thresholdPct = PRESSURE_HIGH_SOME_AVG10, sustainMs = PRESSURE_SUSTAIN_MS): boolean {
  return heldThroughWindow(samples, nowMs, sustainMs, (someAvg10) => someAvg10 >= thresholdPct);
}

/**
 * The mirror of isPressureSustained: pressure has stayed below the threshold
 * for the whole of the last `sustainMs`. Work parked for memory pressure comes
 * back only then, so one quiet sample between two spikes does not bring it
 * back into the same pressure.
 */
export function isPressureLowSustained(samples: readonly PressureSample[], nowMs: number, thresholdPct = PRESSURE_HIGH_SOME_AVG10, sustainMs = PRESSURE_SUSTAIN_MS): boolean {
  return heldThroughWindow(samples, nowMs, sustainMs, (someAvg10) => someAvg10 < thresholdPct);
}

/** Whether the last sample at or before the window's start, and every sample since, satisfy `holds`; no sample that old: no proof, so no. */
function heldThroughWindow(samples: readonly PressureSample[], nowMs: number, sustainMs: number, holds: (someAvg10: number) => boolean): boolean {
  const windowStart = nowMs - sustainMs;
  const ordered = samples.filter((sample) => sample.atMs <= nowMs).sort((a, b) => a.atMs - b.atMs);
  const firstInWindow = ordered.findIndex((sample) => sample.atMs > windowStart);
  const anchorIndex = (firstInWindow === -1 ? ordered.length : firstInWindow) - 1;
  if (anchorIndex < 0) return false;
  return ordered.slice(anchorIndex).every((sample) => holds(sample.someAvg10));
}

/** A team's memory as its group measured it at the end of the run. */
export interface TeamMemoryFigures {
  readonly peakBytes: number;
  readonly oomKills: number;
  readonly limitBytes: number | null;
}

/**
 * The outcome of a team that ran inside a group: its memory figures attached,
 * and `oom` instead of a failure when the group was killed for its memory
 * (the kernel's OOM killer inside the group, or the RSS sampler's budget stop).
 * A run the factory or a person stopped (cancelled, released) keeps its reason,
 * and so does a run that succeeded although a child was OOM-killed on the way.
 */
export function outcomeWithMemory(outcome: RunOutcome, figures: TeamMemoryFigures, mechanism: string): RunOutcome {
  const memory: RunMemory = { peakBytes: figures.peakBytes, oomKills: figures.oomKills, limitBytes: figures.limitBytes, mechanism };
  const ranOut = figures.oomKills > 0 && (outcome.reason === 'failed' || outcome.reason === 'stalled' || outcome.reason === 'timed-out');
  if (!ranOut) return { ...outcome, memory };
  const limit = figures.limitBytes === null ? 'its memory budget' : `its memory budget of ${formatMemory(figures.limitBytes)}`;
  const by = mechanism === 'rss-sampling' ? 'stopped by Factory' : 'OOM-killed by the kernel';
  return { ...outcome, reason: 'oom', detail: `the team ran out of ${limit} (${by}, peak ${formatMemory(figures.peakBytes)}): ${outcome.detail}`, memory };
}

/** v1 cpu.shares for a v2-style weight (v2 default 100 = v1 default 1024). */
export function cpuSharesForWeight(weight: number): number {
  return Math.max(2, Math.round((weight * 1024) / 100));
}

/** CFS period used for a CPU cap, and the quota for `cores` cores in it. */
export const CPU_PERIOD_US = 100_000;
export function cpuQuotaUs(cores: number): number {
  return Math.max(1_000, Math.round(cores * CPU_PERIOD_US));
}
