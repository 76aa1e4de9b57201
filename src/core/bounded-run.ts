import type { Issue } from '../domain/issue.js';
import type { RunOutcome } from '../domain/run.js';
import type { TriageRules } from '../domain/triage.js';
import type { IssueSource, SkippedIssueFile } from '../ports/issue-source.js';
import type { IssueClaim } from '../ports/state-store.js';
import type { IntakeDecision } from './dispatch/dispatcher.js';
import type { FactorySession } from './factory-session.js';
import { decideIntake } from './intake-decision.js';
import type { TeamExecution } from '../ports/team-executor.js';

/** The report `run-once` and each `loop` iteration print. */
export interface CycleReport {
  readonly dryRun: boolean;
  readonly pulled: number;
  readonly unreadableFiles: readonly SkippedIssueFile[];
  readonly decisions: readonly IntakeDecision[];
  readonly dispatched: readonly { readonly issueKey: string; readonly runId: string; readonly attempt: number }[];
  readonly outcomes: readonly RunOutcome[];
  readonly nextRetryAtMs: number | null;
}

/**
 * What a cycle would do, without claiming, spawning or writing anything.
 * `claims` are read from the state store when one exists, so "already handled"
 * shows up in a dry run too.
 */
export async function planCycle(source: IssueSource, rules: TriageRules, claims: ReadonlyMap<string, IssueClaim>): Promise<CycleReport> {
  const scan = await source.scan();
  const decisions = scan.issues.map((issue: Issue): IntakeDecision => {
    const verdict = decideIntake(issue, claims.get(issue.key), rules);
    switch (verdict.kind) {
      case 'skip':
        return { issueKey: issue.key, action: 'skipped', reason: verdict.reason };
      case 'queue':
        return { issueKey: issue.key, action: 'queued', reason: `would dispatch; routed by ${verdict.routedBy}`, repo: verdict.repo };
      case 'already-active':
        return { issueKey: issue.key, action: verdict.kind, reason: verdict.reason, repo: verdict.repo };
      case 'already-handled':
      case 'deferred':
        return { issueKey: issue.key, action: verdict.kind, reason: verdict.reason };
    }
  });
  return { dryRun: true, pulled: scan.issues.length, unreadableFiles: scan.skipped, decisions, dispatched: [], outcomes: [], nextRetryAtMs: null };
}

/**
 * One discover → triage → dispatch cycle on an open session; waits for the teams it started.
 * `startedBefore`: teams the dispatcher started on its own since the last cycle (a retry
 * falling due between loop iterations), reported as this cycle's.
 */
export async function runCycle(session: FactorySession, startedBefore: readonly TeamExecution[] = []): Promise<CycleReport> {
  const dispatcher = session.dispatcher;
  const scan = await session.deps.source.scan();
  const decisions = await dispatcher.intake(scan.issues, { complete: true });
  // A finishing team frees its slot and the dispatcher starts the next queued
  // issue itself; those count as this cycle's dispatches too.
  const teams: TeamExecution[] = [...startedBefore];
  const stopObserving = dispatcher.observeStarts((team) => teams.push(team));
  try {
    await dispatcher.pump();
    await dispatcher.whenIdle();
  } finally {
    stopObserving();
  }
  return {
    dryRun: false,
    pulled: scan.issues.length,
    unreadableFiles: scan.skipped,
    decisions,
    dispatched: teams.map((team) => ({ issueKey: team.plan.issue.key, runId: team.plan.runId, attempt: team.plan.attempt })),
    outcomes: await Promise.all(teams.map((team) => team.outcome)),
    nextRetryAtMs: dispatcher.nextRetryAtMs(),
  };
}

export interface LoopReport {
  readonly iterations: readonly CycleReport[];
  readonly stoppedBecause: 'max-iterations' | 'consecutive-failures' | 'signal';
  readonly consecutiveFailures: number;
  readonly lastError: string | null;
}

/** An iteration fails when it throws, or when it ran teams and none succeeded. */
function isFailedCycle(report: CycleReport): boolean {
  return report.outcomes.length > 0 && !report.outcomes.some((o) => o.reason === 'succeeded');
}

/**
 * The bounded loop: a heartbeat per iteration, `idle` at the end, and a stop
 * after `maxConsecutiveFailures` failed iterations in a row.
 */
export async function runLoop(
  session: FactorySession,
  options: { maxIterations: number; maxConsecutiveFailures: number; iterationDelayMs: number; shouldStop: () => boolean; onIteration?: (index: number, report: CycleReport) => void },
): Promise<LoopReport> {
  const { clock, log } = session.deps;
  const iterations: CycleReport[] = [];
  let consecutiveFailures = 0;
  let lastError: string | null = null;
  // A retry that falls due during the pause between iterations is started by
  // the dispatcher's own timer; it belongs to the next iteration's report (and
  // its failure count), not to none.
  const startedBetween: TeamExecution[] = [];
  const stopObserving = session.dispatcher.observeStarts((team) => startedBetween.push(team));
  try {
    for (let index = 1; index <= options.maxIterations; index++) {
      if (options.shouldStop()) return { iterations, stoppedBecause: 'signal', consecutiveFailures, lastError };
      session.iteration = index;
      await session.writeHeartbeat('running');
      try {
        const report = await runCycle(session, startedBetween.splice(0));
        startedBetween.length = 0; // the cycle observed its own starts
        iterations.push(report);
        options.onIteration?.(index, report);
        consecutiveFailures = isFailedCycle(report) ? consecutiveFailures + 1 : 0;
        if (consecutiveFailures > 0) lastError = `iteration ${index}: no team succeeded`;
      } catch (error) {
        consecutiveFailures++;
        lastError = `iteration ${index}: ${(error as Error).message}`;
        log.error({ iteration: index, err: (error as Error).message }, 'loop iteration failed');
      }
      if (consecutiveFailures >= options.maxConsecutiveFailures) {
        return { iterations, stoppedBecause: 'consecutive-failures', consecutiveFailures, lastError };
      }
      if (index < options.maxIterations) {
        await session.writeHeartbeat('idle');
        await clock.sleep(options.iterationDelayMs);
      }
    }
    return { iterations, stoppedBecause: 'max-iterations', consecutiveFailures, lastError };
  } finally {
    stopObserving();
  }
}
