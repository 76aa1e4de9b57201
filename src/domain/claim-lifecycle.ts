import type { ClaimStatus, FixRound, IssueClaim } from './claim.js';
import type { Issue } from './issue.js';
import { computeBackoffMs, type RunOutcome, type RunOutcomeReason } from './run.js';
import { describePark } from './budgets.js';

/**
 * The claim lifecycle, the factory's core business rule, as pure functions:
 * every change of a claim is one of these transitions, each a total function
 * of the claim and the event, with the writer's epoch and the time passed in.
 * Nothing else in the code builds a claim from another one.
 *
 *   (none) ──intake──▶ queued ──start──▶ running ──outcome──▶ succeeded | retry-wait | gave-up (incl. no-changes, changes-requested) | cancelled | queued (released) | parked
 *   retry-wait ──due──▶ running;  running ──daemon crash──▶ queued | gave-up;  active ──left scope──▶ cancelled
 *   parked ──resume (by hand, or at its reset time)──▶ queued (with the park: the next start continues it)
 *   ended ──requeue by hand──▶ queued
 *   succeeded ──published (pull request open)──▶ shepherding ──fix round (CI failed, changes requested)──▶ queued (with the fix) ──start──▶ running
 *   running fix ──outcome──▶ shepherding | cancelled | queued (released, fix kept) | parked (fix kept);  shepherding ──pull request closed──▶ succeeded (merged) | gave-up (closed without merging)
 */

/** What the lifecycle needs of the dispatch policy. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Whether a team that ran out of its memory budget (outcome `oom`) is tried again (`resources.retryOom`, default no). */
  readonly retryOom?: boolean;
}

export interface CrashPolicy {
  /** Runs cut short by daemon crashes in a row before the issue is given up. */
  readonly maxCrashInterruptions: number;
}

/** Who writes, and when: every transition stamps both. */
export interface Stamp {
  readonly epoch: number;
  readonly nowMs: number;
}

/** A fresh claim for an issue revision intake routed to `repo`. */
export function claimAfterIntake(issue: Issue, routing: { readonly repo: string; readonly routedBy: string }, stamp: Stamp): IssueClaim {
  return {
    issueKey: issue.key,
    revision: issue.revision,
    status: 'queued',
    attempt: 0,
    nextAttemptAtMs: null,
    runId: null,
    repo: routing.repo,
    priority: issue.priority ?? null,
    createdAtMs: issue.createdAtMs,
    updatedAtMs: stamp.nowMs,
    lastReason: `routed by ${routing.routedBy}`,
    epoch: stamp.epoch,
    interruptions: 0,
    node: null,
  };
}

/** A team starts: the next attempt, placed on `node`. Written before the team exists (claim before spawn). */
export function claimOnStart(claim: IssueClaim, run: { readonly runId: string; readonly node: string }, stamp: Stamp): IssueClaim {
  return withChanges(claim, stamp, { status: 'running', attempt: claim.attempt + 1, runId: run.runId, node: run.node, nextAttemptAtMs: null, lastReason: null });
}

/**
 * A run ended. Every outcome reason is handled here (the `never` check makes
 * a new reason a compile error until it is). A run that ended on its own or
 * by the factory's hand breaks any streak of crash interruptions.
 */
export function claimAfterOutcome(claim: IssueClaim, outcome: Pick<RunOutcome, 'reason' | 'detail' | 'park'>, policy: RetryPolicy, stamp: Stamp): IssueClaim {
  if (claim.fix) return claimAfterFixOutcome(claim, claim.fix, outcome, stamp);
  // Any outcome but a park ends what an earlier park left to continue.
  const ended = { interruptions: 0, node: null, park: null } as const;
  const reason: RunOutcomeReason = outcome.reason;
  switch (reason) {
    case 'succeeded':
      return withChanges(claim, stamp, { ...ended, status: 'succeeded', lastReason: outcome.detail });
    case 'released':
      // The daemon is stopping: not the issue's fault, so the attempt is given back (and a resumed run resumes again).
      return withChanges(claim, stamp, { ...ended, park: claim.park ?? null, status: 'queued', attempt: Math.max(0, claim.attempt - 1), lastReason: 'released by daemon stop' });
    case 'parked':
      // Over a budget or a limit: not the issue's fault either, so the attempt is given back; the work and sessions are kept for the resume.
      return withChanges(claim, stamp, {
        ...ended,
        status: 'parked',
        attempt: Math.max(0, claim.attempt - 1),
        park: outcome.park ?? null,
        lastReason: outcome.park ? describePark(outcome.park, claim.issueKey) : `parked: ${outcome.detail}`,
      });
    case 'cancelled':
      return withChanges(claim, stamp, { ...ended, status: 'cancelled', lastReason: outcome.detail });
    case 'no-changes':
      // Agents that exited 0 without a commit would most likely do so again: a person looks first.
      return withChanges(claim, stamp, { ...ended, status: 'gave-up', lastReason: `no-changes: ${outcome.detail}` });
    case 'changes-requested':
      // The reviewer still wanted changes after review.maxRounds: another attempt would replay the same argument; a person decides.
      return withChanges(claim, stamp, { ...ended, status: 'gave-up', lastReason: `changes-requested: ${outcome.detail}` });
    case 'oom':
      // The same budget would most likely run out again: only tried again when the config says so.
      if (!policy.retryOom) return withChanges(claim, stamp, { ...ended, status: 'gave-up', lastReason: `oom: ${outcome.detail}` });
      return retryOrGiveUp(claim, reason, outcome.detail, policy, stamp);
    case 'failed':
    case 'timed-out':
    case 'stalled':
    case 'spawn-failed':
      return retryOrGiveUp(claim, reason, outcome.detail, policy, stamp);
    default:
      return unreachable(reason);
  }
}

/**
 * A fix round ended. Its pull request is still open, so whatever the team did
 * the claim goes back to the shepherd, which judges the head again (a round
 * that pushed nothing is escalated, or tried again when it was cut short: see
 * domain/shepherd.ts). Not retried here: the shepherd decides the next round.
 */
function claimAfterFixOutcome(claim: IssueClaim, fix: FixRound, outcome: Pick<RunOutcome, 'reason' | 'detail' | 'park'>, stamp: Stamp): IssueClaim {
  const ended = { interruptions: 0, node: null, park: null } as const;
  const reason: RunOutcomeReason = outcome.reason;
  switch (reason) {
    case 'released':
      // The daemon is stopping: the round starts again from the queue at the next start.
      return withChanges(claim, stamp, { ...ended, status: 'queued', attempt: Math.max(0, claim.attempt - 1), lastReason: `fix round ${fix.round} released by daemon stop` });
    case 'parked':
      return withChanges(claim, stamp, {
        ...ended,
        status: 'parked',
        attempt: Math.max(0, claim.attempt - 1),
        park: outcome.park ?? null,
        lastReason: outcome.park ? describePark(outcome.park, claim.issueKey) : `parked: ${outcome.detail}`,
      });
    case 'cancelled':
      return withChanges(claim, stamp, { ...ended, fix: null, status: 'cancelled', lastReason: outcome.detail });
    case 'succeeded':
    case 'failed':
    case 'timed-out':
    case 'stalled':
    case 'spawn-failed':
    case 'oom':
    case 'no-changes':
    case 'changes-requested':
      return withChanges(claim, stamp, { ...ended, fix: null, status: 'shepherding', lastReason: `fix round ${fix.round} ${reason}: ${outcome.detail}` });
    default:
      return unreachable(reason);
  }
}

/** A run that may go better next time: retried after a backoff until `maxAttempts`, then given up. */
function retryOrGiveUp(claim: IssueClaim, reason: RunOutcomeReason, detail: string, policy: RetryPolicy, stamp: Stamp): IssueClaim {
  const ended = { interruptions: 0, node: null, park: null } as const;
  if (claim.attempt < policy.maxAttempts) {
    const dueAt = stamp.nowMs + computeBackoffMs(claim.attempt, policy.backoffBaseMs, policy.backoffMaxMs);
    return withChanges(claim, stamp, { ...ended, status: 'retry-wait', nextAttemptAtMs: dueAt, lastReason: `${reason}: ${detail}` });
  }
  return withChanges(claim, stamp, { ...ended, status: 'gave-up', lastReason: `${reason} on attempt ${claim.attempt} of ${policy.maxAttempts}: ${detail}` });
}

/**
 * A previous daemon died while this claim's run was going on this machine
 * (its agents are reaped by now). The crash is not counted as the issue's
 * attempt, but a run that dies with its daemon every time may be what kills
 * it: after `maxCrashInterruptions` in a row the issue is given up.
 */
export function claimAfterCrash(claim: IssueClaim, policy: CrashPolicy, stamp: Stamp): IssueClaim {
  const interruptions = (claim.interruptions ?? 0) + 1;
  if (interruptions >= policy.maxCrashInterruptions) {
    return withChanges(claim, stamp, {
      status: 'gave-up',
      runId: null,
      node: null,
      interruptions,
      lastReason: `interrupted by ${interruptions} daemon crashes in a row while it ran; it may be what brings the daemon down (check its agent logs), then run it again with \`factory dispatch ${claim.issueKey} --force\``,
    });
  }
  return withChanges(claim, stamp, { status: 'queued', attempt: Math.max(0, claim.attempt - 1), runId: null, node: null, interruptions, lastReason: 'interrupted by a daemon restart' });
}

/** The issue left scope or the source while no team ran on it. (A running team is stopped instead; its outcome ends the claim.) */
export function claimAfterCancel(claim: IssueClaim, reason: string, stamp: Stamp): IssueClaim {
  return withChanges(claim, stamp, { status: 'cancelled', nextAttemptAtMs: null, node: null, fix: null, lastReason: reason });
}

/** `dispatch --force`: the same revision again, with a fresh attempt count, starting over (a park is not continued). Not for a running claim. */
export function claimAfterRequeue(claim: IssueClaim, stamp: Stamp): IssueClaim {
  return withChanges(claim, stamp, { status: 'queued', attempt: 0, nextAttemptAtMs: null, node: null, park: null, fix: null, lastReason: 'requeued by hand' });
}

/**
 * The succeeded run's branch is pushed and its pull request open: the claim
 * stays in play while the shepherd follows the pull request. Idempotent (a
 * restart publishes again, find-first).
 */
export function claimAfterPublish(claim: IssueClaim, pullUrl: string, stamp: Stamp): IssueClaim {
  if (claim.status !== 'succeeded' && claim.status !== 'shepherding') throw new RangeError(`only a succeeded claim is published; ${claim.issueKey} is ${claim.status}`);
  return withChanges(claim, stamp, { status: 'shepherding', fix: null, lastReason: `pull request open: ${pullUrl}` });
}

/**
 * The shepherd sends the team back to the pull request's branch: the claim is
 * queued with the round, so the round waits for a slot in dispatch order like
 * any run, and the next start runs it with the failures in the issue text.
 */
export function claimForFixRound(claim: IssueClaim, fix: FixRound, stamp: Stamp): IssueClaim {
  if (claim.status !== 'shepherding') throw new RangeError(`only a shepherding claim starts a fix round; ${claim.issueKey} is ${claim.status}`);
  return withChanges(claim, stamp, {
    status: 'queued',
    attempt: 0,
    nextAttemptAtMs: null,
    node: null,
    park: null,
    fix,
    lastReason: `fix round ${fix.round} (${fix.trigger} on ${fix.onSha.slice(0, 7)})`,
  });
}

/**
 * The pull request was merged or closed. Merged ends the issue as succeeded
 * (also when the issue closing with the merge was seen first and cancelled the
 * claim); closed without merging is a person's decision to drop it.
 */
export function claimAfterPullClosed(claim: IssueClaim, merged: boolean, pullUrl: string, stamp: Stamp): IssueClaim | undefined {
  if (claim.status !== 'shepherding' && !(merged && claim.status === 'cancelled')) return undefined;
  return merged
    ? withChanges(claim, stamp, { status: 'succeeded', fix: null, lastReason: `pull request merged: ${pullUrl}` })
    : // A person closed it: the revision ended (not `cancelled`, which intake claims again while the issue is in scope, and a
      // second pull request would follow). An edit of the issue, or `dispatch --force`, runs it again.
      withChanges(claim, stamp, { status: 'gave-up', fix: null, nextAttemptAtMs: null, lastReason: `pull request closed without merging: ${pullUrl}` });
}

/**
 * A parked claim goes back in the queue with its park, so the next start
 * continues the same sessions in the same worktree (with a fresh run budget).
 * `why`: `resumed by hand`, `resumed at the limit's reset time`.
 */
export function claimAfterResume(claim: IssueClaim, why: string, stamp: Stamp): IssueClaim {
  if (claim.status !== 'parked') throw new RangeError(`only a parked claim resumes; ${claim.issueKey} is ${claim.status}`);
  return withChanges(claim, stamp, { status: 'queued', nextAttemptAtMs: null, node: null, lastReason: why });
}

/** What a restarted daemon does with a claim it finds, by status (and placement, for running claims). */
export type ClaimOnOpen = 'keep' | 'resolve-local-crash' | 'attach';

export function claimOnOpen(claim: IssueClaim, currentEpoch: number, localNode: string): ClaimOnOpen {
  const status: ClaimStatus = claim.status;
  switch (status) {
    case 'running':
      if (claim.epoch >= currentEpoch) return 'keep';
      // Claims without a placement were written by a daemon that only ran agents locally.
      return (claim.node ?? localNode) === localNode ? 'resolve-local-crash' : 'attach';
    case 'queued':
    case 'retry-wait':
    case 'succeeded':
    case 'gave-up':
    case 'cancelled':
    case 'parked':
    case 'shepherding':
      return 'keep';
    default:
      return unreachable(status);
  }
}

/** Whether the claim waits for a team slot now. */
export function isDueForStart(claim: IssueClaim, nowMs: number): boolean {
  const status: ClaimStatus = claim.status;
  switch (status) {
    case 'queued':
      return true;
    case 'retry-wait':
      return (claim.nextAttemptAtMs ?? 0) <= nowMs;
    case 'running':
    case 'succeeded':
    case 'gave-up':
    case 'cancelled':
    case 'parked':
    case 'shepherding':
      return false;
    default:
      return unreachable(status);
  }
}

/**
 * The order due claims start in: priority first (lower first, none last),
 * then age (older issue first), then key. Admission sorts with it and
 * `status` lists the queue with it, so the listed order is the run order.
 */
export function compareClaimsForDispatch(a: IssueClaim, b: IssueClaim): number {
  const pa = a.priority ?? Number.POSITIVE_INFINITY;
  const pb = b.priority ?? Number.POSITIVE_INFINITY;
  if (pa !== pb) return pa < pb ? -1 : 1;
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs - b.createdAtMs;
  return a.issueKey < b.issueKey ? -1 : a.issueKey > b.issueKey ? 1 : 0;
}

/**
 * A waiting claim's issue got a new priority or creation time. Neither is part
 * of the revision (reordering work is not new work), so the claim is kept and
 * only its place in the queue changes.
 */
export function claimAfterReorder(claim: IssueClaim, order: { readonly priority: number | null; readonly createdAtMs: number }, stamp: Stamp): IssueClaim {
  return withChanges(claim, stamp, { priority: order.priority, createdAtMs: order.createdAtMs });
}

/** Whether the issue's order fields differ from its claim's. */
export function isReordered(claim: IssueClaim, issue: Issue): boolean {
  return claim.priority !== (issue.priority ?? null) || claim.createdAtMs !== issue.createdAtMs;
}

/** Team slots of the daemon dispatching the queue, as its heartbeat last said. */
export interface SlotUse {
  readonly busy: number;
  readonly total: number;
}

export interface WaitContext {
  readonly nowMs: number;
  /** Null when no daemon is dispatching; `noDaemon` then says why. */
  readonly slots: SlotUse | null;
  readonly noDaemon: string;
  /** The claim's 0-based place among the due claims, in dispatch order. */
  readonly position: number;
  readonly maxAttempts: number;
  /** Claims the daemon's memory admission holds (from its heartbeat), with their reason: it wins over the slot reason. */
  readonly held?: ReadonlyMap<string, string>;
}

/**
 * Why a waiting claim has not started yet, in the words `status`, the state
 * API and the dashboard show: `waiting for a slot: 4 of 4 busy`,
 * `waiting for memory: need 4.0 GB, 2.1 GB free`, `retrying at <time> (attempt 2 of 3)`.
 */
export function describeWait(claim: IssueClaim, context: WaitContext): string {
  const nextAttempt = `attempt ${claim.attempt + 1} of ${context.maxAttempts}`;
  if (!isDueForStart(claim, context.nowMs)) {
    if (claim.status === 'parked' && claim.park) return describePark(claim.park, claim.issueKey);
    return claim.status === 'retry-wait' ? `retrying at ${new Date(claim.nextAttemptAtMs ?? 0).toISOString()} (${nextAttempt})` : `not waiting: ${claim.status}`;
  }
  const retrySuffix = claim.attempt > 0 ? ` (${nextAttempt})` : '';
  const { slots } = context;
  if (slots === null) return `waiting for a daemon: ${context.noDaemon}${retrySuffix}`;
  // A claim with a free slot that admission holds waits for memory, not for a slot.
  const heldReason = context.held?.get(claim.issueKey);
  if (heldReason !== undefined) return `${heldReason}${retrySuffix}`;
  const free = slots.total - slots.busy;
  if (context.position < free) return `next to start: ${slots.busy} of ${slots.total} slots busy${retrySuffix}`;
  return `waiting for a slot: ${slots.busy} of ${slots.total} busy${retrySuffix}`;
}

/** Whether the claim counts as queued (waiting for a slot now or after its backoff). */
export function isWaiting(status: ClaimStatus): boolean {
  return status === 'queued' || status === 'retry-wait';
}

type ClaimChanges = Partial<Omit<IssueClaim, 'issueKey' | 'epoch' | 'updatedAtMs'>>;

/** The one place a claim is derived from another. */
function withChanges(claim: IssueClaim, stamp: Stamp, changes: ClaimChanges): IssueClaim {
  return { ...claim, ...changes, updatedAtMs: stamp.nowMs, epoch: stamp.epoch };
}

function unreachable(value: never): never {
  throw new Error(`unhandled claim lifecycle case: ${String(value)}`);
}
