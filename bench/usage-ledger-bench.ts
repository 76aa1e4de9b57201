import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SqliteStateStore } from '../src/adapters/state-store/sqlite-state-store.js';
import type { AgentUsageRecord } from '../src/ports/state-store.js';
import { median, percentile, round } from './bench-support.js';

/**
 * What the usage ledger adds to each run, on the real SQLite store (WAL,
 * synchronous=FULL, so each write is a commit with its fsync): one
 * recordUsage per finished run (two agents), and the status read of today's
 * and all-time totals once the ledger holds many runs.
 */

function recordsOf(run: number, endedAtMs: number): AgentUsageRecord[] {
  const usage = { input: 12_000 + run, output: 800, cacheRead: 30_000, cacheWrite: 2_000 };
  return [
    { runId: `run-${run}`, issueKey: `FAC-${run}`, role: 'implementer', agentName: `FAC-${run}-implementer`, driver: 'claude-code', usage, costUsd: 0.12, turns: 14, endedAtMs },
    { runId: `run-${run}`, issueKey: `FAC-${run}`, role: 'reviewer', agentName: `FAC-${run}-reviewer`, driver: 'codex', usage, turns: 3, endedAtMs },
  ];
}

export async function benchUsageLedger(runs = 300, history = 20_000): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'factory-ledger-bench-'));
  const store = new SqliteStateStore(join(dir, 'state.db'));
  try {
    const now = Date.now();
    const writes: number[] = [];
    for (let run = 0; run < runs; run++) {
      const started = performance.now();
      await store.recordUsage(recordsOf(run, now - run * 60_000));
      writes.push(performance.now() - started);
    }
    // A long history, older than today, then the reads `factory status` and /api/v1/state make.
    const old = Array.from({ length: history }, (_, i) => recordsOf(runs + i, now - 3 * 86_400_000 - i * 1000)).flat();
    for (let i = 0; i < old.length; i += 1000) await store.recordUsage(old.slice(i, i + 1000));
    const todayReads: number[] = [];
    const allReads: number[] = [];
    for (let i = 0; i < 30; i++) {
      let started = performance.now();
      await store.usageSummary(now - 86_400_000);
      todayReads.push(performance.now() - started);
      started = performance.now();
      await store.usageSummary(0);
      allReads.push(performance.now() - started);
    }
    return {
      name: 'usage-ledger',
      recordPerRunMsMedian: round(median(writes)),
      recordPerRunMsP99: round(percentile(writes, 99)),
      agentRunsInLedger: (runs + history) * 2,
      summaryTodayMsMedian: round(median(todayReads)),
      summaryAllTimeMsMedian: round(median(allReads)),
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchUsageLedger(), null, 2));
}
