import type { IssueClaim } from '../../domain/claim.js';
import type { Issue } from '../../domain/issue.js';
import {
  admissionBudgetBytes,
  decideMemoryAdmission,
  formatMemory,
  isPressureLowSustained,
  isPressureSustained,
  PRESSURE_HIGH_SOME_AVG10,
  PRESSURE_SUSTAIN_MS,
  resolveTeamBudget,
  type PressureSample,
  type ResourcesPolicy,
  type RunningTeamMemory,
} from '../../domain/resource-budget.js';
import type { Clock } from '../../ports/clock.js';
import type { AvailableMemorySource, MemoryPressureSource } from '../../ports/team-resources.js';

/**
 * The last word before a claim that has a slot turns into a running team:
 * whether the machine has the memory for it (docs/resources.md, "Admission by
 * memory"). Claims it holds stay queued with the reason people see in status
 * and on the dashboard, and are offered again at the next pump (a team's end,
 * or the periodic re-pump while something is held).
 */
export interface AdmissionGate {
  /**
   * Of the claims slot admission let through, in start order, those to start
   * now; every other one is held, with its reason. No claim overtakes one held
   * before it, so a large team is not starved by a stream of small ones.
   */
  select(claims: readonly IssueClaim[], issues: ReadonlyMap<string, Issue>): { start: IssueClaim[]; held: Map<string, string> };
}

export interface MemoryAdmissionOptions {
  readonly policy: Pick<ResourcesPolicy, 'team' | 'byRepo' | 'byLabel' | 'reserve' | 'onPressure'>;
  readonly availableMemory: AvailableMemorySource;
  readonly pressure?: MemoryPressureSource;
  readonly clock: Clock;
  /** Teams running or being started now, with their admission budget and what they use (their group's current usage). */
  readonly running: () => RunningTeamMemory[];
}

export class MemoryAdmissionGate implements AdmissionGate {
  readonly #options: MemoryAdmissionOptions;
  #samples: PressureSample[] = [];
  /** As of the last sample, for status readers (the heartbeat reads it on every refresh, so it is kept, not recomputed). */
  #pressureNow: { someAvg10: number | null; holding: boolean } = { someAvg10: null, holding: false };

  constructor(options: MemoryAdmissionOptions) {
    this.#options = options;
  }

  /** Reads PSI once and keeps the samples the sustain window needs; called on the supervision tick and at each selection. */
  samplePressure(): void {
    const { pressure, clock } = this.#options;
    const reading = pressure?.read();
    if (!reading) return;
    const now = clock.now();
    // One sample older than the window anchors it (see isPressureSustained); older ones are dropped.
    const keepFrom = now - PRESSURE_SUSTAIN_MS;
    const anchor = this.#samples.filter((sample) => sample.atMs <= keepFrom).at(-1);
    this.#samples = [...(anchor ? [anchor] : []), ...this.#samples.filter((sample) => sample.atMs > keepFrom), { atMs: now, someAvg10: reading.someAvg10 }];
    this.#pressureNow = { someAvg10: reading.someAvg10, holding: this.pressureHolds() };
  }

  /** The last PSI `some avg10` read and whether sustained pressure holds starts; O(1). */
  pressureState(): { someAvg10: number | null; holding: boolean } {
    return this.#pressureNow;
  }

  /** Whether new teams are held for sustained memory pressure now. */
  pressureHolds(): boolean {
    return this.#options.policy.onPressure !== 'ignore' && isPressureSustained(this.#samples, this.#options.clock.now());
  }

  /** Whether pressure has stayed low for the whole sustain window (work parked for pressure may come back); never without PSI samples. */
  pressureLow(): boolean {
    return isPressureLowSustained(this.#samples, this.#options.clock.now());
  }

  /** What sustained pressure looks like now, in the words of a held claim and a park: `the machine's memory pressure has stayed high (PSI some avg10 45% ≥ 20% for 30 s)`. */
  pressureDescription(): string {
    const last = this.#samples.at(-1)?.someAvg10 ?? 0;
    return `the machine's memory pressure has stayed high (PSI some avg10 ${last.toFixed(0)}% ≥ ${PRESSURE_HIGH_SOME_AVG10}% for ${PRESSURE_SUSTAIN_MS / 1000} s)`;
  }

  select(claims: readonly IssueClaim[], issues: ReadonlyMap<string, Issue>): { start: IssueClaim[]; held: Map<string, string> } {
    const { policy, availableMemory } = this.#options;
    const start: IssueClaim[] = [];
    const held = new Map<string, string>();
    if (claims.length === 0) return { start, held };
    this.samplePressure();
    if (this.pressureHolds()) {
      const reason = `waiting for memory: ${this.pressureDescription()}`;
      for (const claim of claims) held.set(claim.issueKey, reason);
      return { start, held };
    }
    const memory = availableMemory.read();
    const running = [...this.#options.running()];
    let firstHeld: string | undefined;
    for (const claim of claims) {
      const budget = admissionBudgetBytes(resolveTeamBudget(policy, { repo: claim.repo, labels: issues.get(claim.issueKey)?.labels ?? [] }));
      const decision = decideMemoryAdmission({ availableBytes: memory.availableBytes, totalBytes: memory.totalBytes, running, nextBudgetBytes: budget, reserve: policy.reserve });
      if (firstHeld !== undefined) {
        held.set(claim.issueKey, `waiting for memory: ${firstHeld} is first in line (need ${formatMemory(decision.needBytes)}, ${formatMemory(decision.freeBytes)} free)`);
      } else if (decision.admit) {
        start.push(claim);
        // Counted in full until its group reports usage: the next decision in this pass must see it.
        running.push({ budgetBytes: budget, usedBytes: 0 });
      } else {
        held.set(claim.issueKey, decision.reason);
        firstHeld = claim.issueKey;
      }
    }
    return { start, held };
  }
}
