import { resumesWhenPressureIsLow } from '../../domain/budgets.js';
import type { IssueClaim } from '../../domain/claim.js';
import { PRESSURE_SUSTAIN_MS } from '../../domain/resource-budget.js';
import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';
import type { TeamExecution } from '../../ports/team-executor.js';

/** What pressure parking reads of the memory gate: PSI as the supervision tick last sampled it. */
export interface PressureReadings {
  /** Pressure has stayed high for the sustain window. */
  pressureHolds(): boolean;
  /** Pressure has stayed low for the sustain window. */
  pressureLow(): boolean;
  /** The words for a park's reason. */
  pressureDescription(): string;
}

export interface PressureParkingOptions {
  readonly pressure: PressureReadings;
  /** `resources.onPressure` is `park`: running teams are parked. Otherwise only work parked earlier (by a run with `park`) is resumed. */
  readonly parkTeams: boolean;
  /** Resumes pressure-parked work when pressure stays low: the live daemon only (bounded runs such as `dispatch` start nothing they were not asked for). */
  readonly resumeParked: boolean;
  readonly clock: Clock;
  readonly log: Logger;
  readonly teams: () => readonly TeamExecution[];
  /** Every claim (the state store's list): pressure-parked ones are picked from it, at most once per window. */
  readonly claims: () => Promise<Iterable<IssueClaim>>;
  readonly resume: (issueKey: string, why: string) => Promise<{ resumed: boolean }>;
}

/**
 * `resources.onPressure: "park"` (docs/resources.md): while the machine's
 * memory pressure stays high, the newest running team is parked, one per
 * sustain window (each park gets a window to show its effect before the next);
 * work parked for pressure comes back, one issue per window, once pressure has
 * stayed low for a whole window. Called on every supervision tick, after PSI
 * was sampled. The newest team goes first: it has the least work to lose, and
 * the oldest is the closest to done.
 */
export class PressureParking {
  readonly #options: PressureParkingOptions;
  #lastParkAtMs: number | undefined;
  /** When pressure-parked work was last looked for: at most once per window, so a quiet machine does not list claims on every tick. */
  #lastResumeCheckAtMs: number | undefined;

  constructor(options: PressureParkingOptions) {
    this.#options = options;
  }

  async tick(): Promise<void> {
    const { pressure, clock } = this.#options;
    const now = clock.now();
    if (pressure.pressureHolds()) {
      if (this.#options.parkTeams && !this.#withinWindow(this.#lastParkAtMs, now)) this.#parkNewest(now);
      return;
    }
    if (this.#options.resumeParked && pressure.pressureLow() && !this.#withinWindow(this.#lastResumeCheckAtMs, now)) await this.#resumeOldest(now);
  }

  #withinWindow(lastAtMs: number | undefined, now: number): boolean {
    return lastAtMs !== undefined && now - lastAtMs < PRESSURE_SUSTAIN_MS;
  }

  #parkNewest(now: number): void {
    // Teams already being stopped (for a budget, a stall, a cancel) free their memory anyway.
    const candidates = this.#options.teams().filter((team) => team.stopReason === undefined);
    // Ties go to the later start (teams() lists them in start order).
    const newest = candidates.reduce<TeamExecution | undefined>((best, team) => (best === undefined || team.startedAtMs >= best.startedAtMs ? team : best), undefined);
    if (!newest) return;
    this.#lastParkAtMs = now;
    const reason = this.#options.pressure.pressureDescription();
    this.#options.log.warn({ issue: newest.plan.issue.key, run: newest.plan.runId, running: candidates.length }, `parking the newest team: ${reason}`);
    void newest.cancel('parked', { kind: 'memory-pressure', reason });
  }

  async #resumeOldest(now: number): Promise<void> {
    this.#lastResumeCheckAtMs = now;
    let oldest: IssueClaim | undefined;
    for (const claim of await this.#options.claims()) {
      if (claim.status !== 'parked' || !claim.park || !resumesWhenPressureIsLow(claim.park)) continue;
      if (oldest === undefined || claim.updatedAtMs < oldest.updatedAtMs) oldest = claim;
    }
    if (!oldest) return;
    await this.#options.resume(oldest.issueKey, 'resumed by itself: memory pressure has stayed low');
  }
}
