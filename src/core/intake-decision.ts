import type { Issue } from '../domain/issue.js';
import { triageIssue, type TriageRules } from '../domain/triage.js';
import { isActiveClaimStatus, type IssueClaim } from '../domain/claim.js';

/**
 * What intake does with one issue given its current claim: the single rule
 * the dispatcher acts on and `--dry-run` reports. Pure: no I/O, no clock.
 */
export type IntakeVerdict =
  | { readonly kind: 'skip'; readonly reason: string; /** an active claim must be cancelled */ readonly leftScope: boolean }
  | { readonly kind: 'already-active'; readonly reason: string; readonly repo: string }
  | { readonly kind: 'already-handled'; readonly reason: string }
  | { readonly kind: 'deferred'; readonly reason: string }
  | { readonly kind: 'queue'; readonly repo: string; readonly routedBy: string };

export function decideIntake(issue: Issue, claim: IssueClaim | undefined, rules: TriageRules): IntakeVerdict {
  const active = claim !== undefined && isActiveClaimStatus(claim.status);
  const triage = triageIssue(issue, rules);
  if (triage.verdict === 'skip') return { kind: 'skip', reason: triage.reason, leftScope: active };
  // A cancelled claim ended because the issue left scope, not because this
  // revision ran: when the issue comes back unchanged it is claimed afresh.
  if (claim?.revision === issue.revision && claim.status !== 'cancelled') {
    return active
      ? { kind: 'already-active', reason: `claim is ${claim.status}`, repo: claim.repo }
      : { kind: 'already-handled', reason: `revision ${issue.revision.slice(0, 8)} already ended: ${claim.status}` };
  }
  // An edit while a team works does not start a second team; the new revision
  // is taken up when this run ends (the issue is re-read then).
  if (claim?.status === 'running') return { kind: 'deferred', reason: 'a team is running on an earlier revision' };
  return { kind: 'queue', repo: triage.repo, routedBy: triage.routedBy };
}
