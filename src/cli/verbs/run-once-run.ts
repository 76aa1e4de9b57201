import { planCycle, runCycle, type CycleReport } from '../../core/bounded-run.js';
import { createIssueSource, openSession, readStateStore, type Runtime } from '../../main.js';
import { triageRulesFor } from '../../domain/triage.js';
import type { IssueClaim } from '../../ports/state-store.js';
import { flagBoolean, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { formatCycleReport } from '../cycle-report.js';
import { printJson, type Output } from '../output.js';
import { formatPreflightWarnings, preflightWarnings } from '../preflight-warnings.js';
import { openWithStopSignals } from '../signals.js';

/** Claims as the last daemon left them, read-only; empty when there is no state yet. */
export function readClaimsReadOnly(runtime: Runtime): Promise<Map<string, IssueClaim>> {
  return readStateStore(runtime.config, async (store) => new Map((await store.listClaims()).map((c) => [c.issueKey, c])), new Map<string, IssueClaim>());
}

export async function dryRunCycle(runtime: Runtime): Promise<CycleReport> {
  const { config } = runtime;
  return planCycle(await createIssueSource(runtime), triageRulesFor(config), await readClaimsReadOnly(runtime));
}

/** A dry run's report (`run-once`, `loop`), with what would make every team fail to start as warnings. */
export async function printDryRun(runtime: Runtime, output: Output, json: boolean): Promise<CycleReport> {
  const report = await dryRunCycle(runtime);
  const warnings = await preflightWarnings(runtime.config);
  if (json) printJson(output, { ...report, warnings });
  else {
    output.out(formatCycleReport(report, runtime.clock.now()));
    for (const line of formatPreflightWarnings(warnings)) output.out(line);
  }
  return report;
}

/** Exit 1 when a team ran and did not succeed, so scripts can tell. */
export function exitCodeForCycle(report: CycleReport): number {
  return report.outcomes.some((o) => o.reason !== 'succeeded' && o.reason !== 'cancelled') ? 1 : 0;
}

/** `factory run-once` (its usage and flags are in run-once.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const runtime = runtimeFromArgs(args);
  if (flagBoolean(args, 'dry-run')) return exitCodeForCycle(await printDryRun(runtime, output, flagBoolean(args, 'json')));
  let report: CycleReport;
  // Agents run in their own sessions, so Ctrl-C never reaches them: release them in order, as `start` does.
  const { opened, signals } = await openWithStopSignals(
    () => openSession(runtime, 'once'),
    (session) => void session.session.dispatcher.releaseAll(),
  );
  try {
    await opened.session.writeHeartbeat('running');
    report = await runCycle(opened.session);
  } finally {
    signals.dispose();
    await opened.close('stopped');
  }
  if (flagBoolean(args, 'json')) printJson(output, report);
  else output.out(formatCycleReport(report, runtime.clock.now()));
  return exitCodeForCycle(report);
}
