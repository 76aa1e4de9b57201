import { planCycle, runCycle, type CycleReport } from '../../core/bounded-run.js';
import { createIssueSource, openSession, readStateStore, type Runtime } from '../../main.js';
import { triageRulesFor } from '../../domain/triage.js';
import type { IssueClaim } from '../../ports/state-store.js';
import { flagBoolean } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { formatCycleReport } from '../cycle-report.js';
import { printJson } from '../output.js';
import { openWithStopSignals } from '../signals.js';
import type { Verb } from '../verb.js';

/** Claims as the last daemon left them, read-only; empty when there is no state yet. */
export function readClaimsReadOnly(runtime: Runtime): Promise<Map<string, IssueClaim>> {
  return readStateStore(runtime.config, async (store) => new Map((await store.listClaims()).map((c) => [c.issueKey, c])), new Map<string, IssueClaim>());
}

export async function dryRunCycle(runtime: Runtime): Promise<CycleReport> {
  const { config } = runtime;
  return planCycle(await createIssueSource(runtime), triageRulesFor(config), await readClaimsReadOnly(runtime));
}

/** Exit 1 when a team ran and did not succeed, so scripts can tell. */
export function exitCodeForCycle(report: CycleReport): number {
  return report.outcomes.some((o) => o.reason !== 'succeeded' && o.reason !== 'cancelled') ? 1 : 0;
}

export const runOnceVerb: Verb = {
  name: 'run-once',
  usage: 'factory run-once [--dry-run] [--config PATH] [--json]',
  summary: 'one discover → triage → dispatch cycle; waits for the teams and prints a report',
  details: [
    'Scans the mount, triages every issue, dispatches teams (up to dispatch.batchSize at once) and',
    'waits for them. Prints pulled / triaged / dispatched / skipped-with-reasons and each outcome.',
    'With --dry-run nothing is claimed, spawned or written. SIGINT/SIGTERM releases running teams in order.',
    'Exit codes: 0 all teams succeeded (or none ran), 1 a team failed, ended no-changes or was released, 2 usage or config error,',
    '3 another daemon uses this config.',
  ].join('\n'),
  flags: [{ name: 'dry-run', takesValue: false, description: 'report what would happen; change nothing' }],
  outlivesItsOutput: true,
  async run(args, output) {
    const runtime = runtimeFromArgs(args);
    let report: CycleReport;
    if (flagBoolean(args, 'dry-run')) {
      report = await dryRunCycle(runtime);
    } else {
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
    }
    if (flagBoolean(args, 'json')) printJson(output, report);
    else output.out(formatCycleReport(report, runtime.clock.now()));
    return exitCodeForCycle(report);
  },
};
