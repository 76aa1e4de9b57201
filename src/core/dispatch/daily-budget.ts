import type { IssueClaim } from '../../domain/claim.js';
import type { Issue } from '../../domain/issue.js';
import { nextUtcDayStartMs, overDailyBudget, type DailyBudget } from '../../domain/budgets.js';
import type { Clock } from '../../ports/clock.js';
import type { StateStore } from '../../ports/state-store.js';
import type { AdmissionGate } from './memory-admission.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * What today's (UTC) recorded runs cost, from the usage ledger, kept in memory
 * so budget checks on every agent event cost nothing. Refreshed when a run's
 * usage is recorded; a new day starts at zero until its first refresh.
 */
export class DailySpend {
  readonly #store: Pick<StateStore, 'usageSummary'>;
  readonly #clock: Clock;
  #dayStartMs = -1;
  #spentUsd = 0;

  constructor(store: Pick<StateStore, 'usageSummary'>, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  async refresh(): Promise<void> {
    const dayStartMs = utcDayStartMs(this.#clock.now());
    const summary = await this.#store.usageSummary(dayStartMs);
    this.#dayStartMs = dayStartMs;
    this.#spentUsd = summary.total.costUsd ?? 0;
  }

  spentTodayUsd(): number {
    return utcDayStartMs(this.#clock.now()) === this.#dayStartMs ? this.#spentUsd : 0;
  }
}

function utcDayStartMs(nowMs: number): number {
  return Math.floor(nowMs / DAY_MS) * DAY_MS;
}

/**
 * `budgets.daily.maxCostUsd` before a start: while today's runs cost the
 * budget or more, no team starts (a resume neither); each claim that had a
 * slot waits with the reason, and starts on the next UTC day. Within the
 * budget, the next gate (memory admission) decides.
 */
export class DailyBudgetGate implements AdmissionGate {
  readonly #spend: DailySpend;
  readonly #budget: DailyBudget;
  readonly #clock: Clock;
  readonly #next: AdmissionGate | undefined;

  constructor(options: { spend: DailySpend; budget: DailyBudget; clock: Clock; next?: AdmissionGate | undefined }) {
    this.#spend = options.spend;
    this.#budget = options.budget;
    this.#clock = options.clock;
    this.#next = options.next;
  }

  select(claims: readonly IssueClaim[], issues: ReadonlyMap<string, Issue>): { start: IssueClaim[]; held: Map<string, string> } {
    const over = overDailyBudget(this.#spend.spentTodayUsd(), this.#budget);
    if (over) {
      const reason = `waiting for the daily budget: ${over.reason}; starts again at ${new Date(nextUtcDayStartMs(this.#clock.now())).toISOString()}`;
      return { start: [], held: new Map(claims.map((claim) => [claim.issueKey, reason])) };
    }
    return this.#next ? this.#next.select(claims, issues) : { start: [...claims], held: new Map() };
  }
}
