/**
 * Token usage as the agents report it, and a small pure ledger that adds it up
 * per agent. Four kinds, because they are priced differently: fresh input,
 * output, input read from the prompt cache, input written to it.
 */

export interface TokenUsage {
  readonly input: number;
  readonly output: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
}

export const ZERO_USAGE: TokenUsage = Object.freeze({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0 });

export const TOKEN_KINDS = ['input', 'output', 'cacheRead', 'cacheWrite'] as const satisfies readonly (keyof TokenUsage)[];

export function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  return { input: a.input + b.input, output: a.output + b.output, cacheRead: a.cacheRead + b.cacheRead, cacheWrite: a.cacheWrite + b.cacheWrite };
}

/** Field-wise `a - b`, never below 0: a total minus an earlier total. */
export function subtractUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  return { input: Math.max(0, a.input - b.input), output: Math.max(0, a.output - b.output), cacheRead: Math.max(0, a.cacheRead - b.cacheRead), cacheWrite: Math.max(0, a.cacheWrite - b.cacheWrite) };
}

/** Field-wise maximum: two reports of one message's usage, the later one never smaller. */
export function maxUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  return { input: Math.max(a.input, b.input), output: Math.max(a.output, b.output), cacheRead: Math.max(a.cacheRead, b.cacheRead), cacheWrite: Math.max(a.cacheWrite, b.cacheWrite) };
}

export function totalTokens(usage: TokenUsage): number {
  return usage.input + usage.output + usage.cacheRead + usage.cacheWrite;
}

export function sameUsage(a: TokenUsage, b: TokenUsage): boolean {
  return a.input === b.input && a.output === b.output && a.cacheRead === b.cacheRead && a.cacheWrite === b.cacheWrite;
}

/** A non-negative integer from untrusted JSON, 0 otherwise: a hostile count cannot make usage negative or NaN. */
export function tokenCount(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.floor(value) : 0;
}

export interface AgentUsageTotals {
  readonly usage: TokenUsage;
  /** Dollars the agents reported; undefined while no agent of this key reported a cost. */
  readonly costUsd: number | undefined;
  readonly turns: number;
  readonly runs: number;
}

const EMPTY_TOTALS: AgentUsageTotals = Object.freeze({ usage: ZERO_USAGE, costUsd: undefined, turns: 0, runs: 0 });

/** One finished (or parked) run's figures, as the run's parser settled them. */
export interface RunUsageRecord {
  /** The agent the usage belongs to, e.g. the role: `implementer`, `reviewer`. */
  readonly agent: string;
  readonly usage: TokenUsage;
  readonly costUsd?: number;
  readonly turns: number;
}

/**
 * Usage totals per agent and overall. Immutable: `record` returns a new
 * ledger, so a caller can compute "what if this run is added" for a budget
 * check without touching the one it holds.
 */
export class UsageLedger {
  private constructor(private readonly byAgent: ReadonlyMap<string, AgentUsageTotals>) {}

  static empty(): UsageLedger {
    return new UsageLedger(new Map());
  }

  record(run: RunUsageRecord): UsageLedger {
    const before = this.byAgent.get(run.agent) ?? EMPTY_TOTALS;
    const next = new Map(this.byAgent);
    next.set(run.agent, {
      usage: addUsage(before.usage, run.usage),
      costUsd: run.costUsd === undefined ? before.costUsd : (before.costUsd ?? 0) + run.costUsd,
      turns: before.turns + run.turns,
      runs: before.runs + 1,
    });
    return new UsageLedger(next);
  }

  agent(agent: string): AgentUsageTotals {
    return this.byAgent.get(agent) ?? EMPTY_TOTALS;
  }

  agents(): readonly string[] {
    return [...this.byAgent.keys()].sort();
  }

  total(): AgentUsageTotals {
    let totals = EMPTY_TOTALS;
    for (const entry of this.byAgent.values()) {
      totals = {
        usage: addUsage(totals.usage, entry.usage),
        costUsd: entry.costUsd === undefined ? totals.costUsd : (totals.costUsd ?? 0) + entry.costUsd,
        turns: totals.turns + entry.turns,
        runs: totals.runs + entry.runs,
      };
    }
    return totals;
  }
}
