import type { AgentRunSnapshot } from './run-events.js';

/**
 * Truth over exit codes: what a finished agent run means, from its parsed
 * events first and its exit status second. An error result is a failure even
 * with exit 0; a usage or rate limit parks the run (it is not the agent's
 * fault and nothing paid for should be thrown away); an approval nobody could
 * give is a failure that says so, even when the agent carried on and claimed
 * success.
 */

export type AgentRunVerdict =
  | { readonly verdict: 'succeeded' }
  | { readonly verdict: 'failed'; readonly reason: string }
  | { readonly verdict: 'needs-approval'; readonly reason: string }
  | { readonly verdict: 'rate-limited'; readonly reason: string; readonly resetAtMs?: number };

export interface AgentExit {
  readonly code: number | null;
  readonly signal: string | null;
}

export function judgeAgentRun(snapshot: AgentRunSnapshot, exit: AgentExit): AgentRunVerdict {
  if (snapshot.rateLimit) {
    const { message, resetAtMs, resetText } = snapshot.rateLimit;
    return { verdict: 'rate-limited', reason: resetText === undefined ? message : `${message} (resets ${resetText})`, resetAtMs };
  }
  if (snapshot.approvalsNeeded.length > 0) {
    const first = snapshot.approvalsNeeded[0]!;
    const more = snapshot.approvalsNeeded.length > 1 ? ` and ${snapshot.approvalsNeeded.length - 1} more` : '';
    return {
      verdict: 'needs-approval',
      reason: `${snapshot.agent} needed approval for ${first.tool} (${first.summary})${more}; a non-interactive run cannot give it: allow the tool in the agent's config`,
    };
  }
  const result = snapshot.result;
  if (result && !result.ok) {
    const failure = result.failure;
    const status = failure?.apiErrorStatus === undefined ? '' : ` (API status ${failure.apiErrorStatus})`;
    return { verdict: 'failed', reason: `${snapshot.agent} reported ${failure?.kind ?? 'an error'}${status}: ${failure?.message ?? ''}`.trimEnd() };
  }
  if (exit.signal !== null) return { verdict: 'failed', reason: `${snapshot.agent} was killed by ${exit.signal}` };
  if (exit.code !== 0) return { verdict: 'failed', reason: `${snapshot.agent} exited ${exit.code}${result ? ' after a success result' : ' without a result'}` };
  if (!result) return { verdict: 'failed', reason: `${snapshot.agent} exited 0 without a final result: the stream ended early` };
  return { verdict: 'succeeded' };
}
