import { compareClaimsForDispatch, isDueForStart } from '../../domain/claim-lifecycle.js';
import type { IssueClaim } from '../../domain/claim.js';
import type { Issue } from '../../domain/issue.js';

/**
 * Which due claims start now: those queued or past their retry deadline, whose
 * issue is in scope and has no team, in dispatch order (the one `status`
 * lists), up to the free slots. Pure: the dispatcher passes in what it knows.
 */
export function admit(input: {
  readonly claims: Iterable<IssueClaim>;
  readonly issues: ReadonlyMap<string, Issue>;
  /** Issues with a team (running or being started). */
  readonly busy: (issueKey: string) => boolean;
  readonly freeSlots: number;
  readonly nowMs: number;
  /** Only this issue (the `dispatch` verb). */
  readonly only?: string | undefined;
}): IssueClaim[] {
  if (input.freeSlots <= 0) return [];
  const due: IssueClaim[] = [];
  for (const claim of input.claims) {
    if (input.only !== undefined && claim.issueKey !== input.only) continue;
    if (!isDueForStart(claim, input.nowMs) || input.busy(claim.issueKey) || !input.issues.has(claim.issueKey)) continue;
    due.push(claim);
  }
  due.sort(compareClaimsForDispatch);
  return due.slice(0, input.freeSlots);
}

/** The earliest retry deadline among the claims, or null. */
export function earliestRetryAtMs(claims: Iterable<IssueClaim>): number | null {
  let earliest: number | null = null;
  for (const claim of claims) {
    if (claim.status === 'retry-wait' && claim.nextAttemptAtMs !== null && (earliest === null || claim.nextAttemptAtMs < earliest)) earliest = claim.nextAttemptAtMs;
  }
  return earliest;
}
