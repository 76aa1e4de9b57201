import type { RunOutcome } from '../run.js';
import type { AgentKind } from './run-events.js';
import { addUsage, ZERO_USAGE, type TokenUsage } from './usage-ledger.js';

/**
 * The usage ledger as the state store keeps it: one record per agent run
 * (a run id and agent name identify it, so recording it twice changes
 * nothing), summed per role and driver for status, the API and the dashboard.
 */

export interface AgentUsageRecord {
  readonly runId: string;
  readonly issueKey: string;
  readonly role: string;
  readonly agentName: string;
  readonly driver: AgentKind;
  readonly usage: TokenUsage;
  /** Dollars the agent reported; absent when it reports none (Codex). */
  readonly costUsd?: number;
  readonly turns: number;
  readonly endedAtMs: number;
}

export interface UsageTotalsRow {
  readonly role: string;
  readonly driver: AgentKind;
  readonly usage: TokenUsage;
  /** Null while no run of this row reported a cost. */
  readonly costUsd: number | null;
  readonly turns: number;
  readonly runs: number;
}

export interface UsageSummary {
  /** Per role and driver, ordered by role then driver. */
  readonly rows: readonly UsageTotalsRow[];
  readonly total: Omit<UsageTotalsRow, 'role' | 'driver'>;
}

export const EMPTY_USAGE_SUMMARY: UsageSummary = Object.freeze({ rows: [], total: { usage: ZERO_USAGE, costUsd: null, turns: 0, runs: 0 } });

/** The ledger records of a finished run: one per agent a driver read the stream of. */
export function usageRecordsOf(outcome: RunOutcome): AgentUsageRecord[] {
  return outcome.agents.flatMap((agent) =>
    agent.report
      ? [
          {
            runId: outcome.runId,
            issueKey: outcome.issueKey,
            role: agent.role,
            agentName: agent.agentName,
            driver: agent.report.driver,
            usage: agent.report.usage,
            ...(agent.report.costUsd !== undefined ? { costUsd: agent.report.costUsd } : {}),
            turns: agent.report.turns,
            endedAtMs: agent.endedAtMs,
          },
        ]
      : [],
  );
}

/** Sums records per role and driver (the in-memory and Redis stores; SQLite sums in SQL to the same shape). */
export function summarizeUsage(records: Iterable<AgentUsageRecord>): UsageSummary {
  const rows = new Map<string, { -readonly [K in keyof UsageTotalsRow]: UsageTotalsRow[K] }>();
  for (const record of records) {
    const key = `${record.role}\u0000${record.driver}`;
    const row = rows.get(key) ?? { role: record.role, driver: record.driver, usage: ZERO_USAGE, costUsd: null, turns: 0, runs: 0 };
    row.usage = addUsage(row.usage, record.usage);
    if (record.costUsd !== undefined) row.costUsd = (row.costUsd ?? 0) + record.costUsd;
    row.turns += record.turns;
    row.runs += 1;
    rows.set(key, row);
  }
  return summaryOfRows([...rows.values()]);
}

/** Orders rows and adds the total. */
export function summaryOfRows(rows: readonly UsageTotalsRow[]): UsageSummary {
  const sorted = [...rows].sort((a, b) => (a.role < b.role ? -1 : a.role > b.role ? 1 : a.driver < b.driver ? -1 : a.driver > b.driver ? 1 : 0));
  let total: UsageSummary['total'] = EMPTY_USAGE_SUMMARY.total;
  for (const row of sorted) {
    total = {
      usage: addUsage(total.usage, row.usage),
      costUsd: row.costUsd === null ? total.costUsd : (total.costUsd ?? 0) + row.costUsd,
      turns: total.turns + row.turns,
      runs: total.runs + row.runs,
    };
  }
  return { rows: sorted, total };
}

/** The start of the local day containing `nowMs`, for "today" totals, in the zone `utcOffsetMinutes` east of UTC. */
export function startOfDayMs(nowMs: number, utcOffsetMinutes: number): number {
  const offsetMs = utcOffsetMinutes * 60_000;
  const dayMs = 24 * 60 * 60_000;
  return Math.floor((nowMs + offsetMs) / dayMs) * dayMs - offsetMs;
}
