/**
 * The shepherd's rules, pure: what a pull request's checks and reviews on its
 * head commit mean, when Factory sends the implementer back, and when it asks
 * a person instead. Every verdict names the head commit it was made on, and a
 * commit that already had a fix round never gets another (but for a round cut
 * short, retried while rounds remain), so a stale result (a check or a review
 * on an older commit) never triggers work.
 */

/** One check run or commit status on the head commit, as the shepherd judges it. */
export interface PullCheck {
  readonly name: string;
  readonly state: 'pending' | 'passed' | 'failed';
  /** GitHub's conclusion or status state (`failure`, `timed_out`, `error`...). */
  readonly conclusion: string;
  /** What the check said (its output text or summary, or the status description), untrimmed. */
  readonly output: string;
}

export interface PullReview {
  /** The code host's id of the review, for logs. */
  readonly id: number;
  readonly author: string;
  /** GitHub's `author_association`: `OWNER`, `MEMBER`, `COLLABORATOR`, `CONTRIBUTOR`, `NONE`... */
  readonly association: string;
  /** Written by Factory's own login: never a person's approval or change request. */
  readonly byFactory: boolean;
  /** `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`. */
  readonly state: string;
  readonly body: string;
  /** The commit the review was made on. */
  readonly commitId: string;
  readonly submittedAtMs: number;
}

export interface PullObservation {
  readonly number: number;
  readonly state: 'open' | 'closed' | 'merged';
  readonly draft: boolean;
  readonly headSha: string;
  /** Check runs and commit statuses on `headSha` only. */
  readonly checks: readonly PullCheck[];
  readonly reviews: readonly PullReview[];
}

export type RoundTrigger = 'ci-failed' | 'changes-requested';

export interface ShepherdRound {
  readonly round: number;
  readonly trigger: RoundTrigger;
  /** The head commit the failure or the review was on. */
  readonly onSha: string;
  /** One line per failed check or change request, for people. */
  readonly failures: readonly string[];
  readonly fingerprints: readonly string[];
  /**
   * `queued` while the round is on the issue's claim (waiting for a slot or
   * running; `running` in records written before rounds were dispatched), then
   * the team's outcome (`succeeded`, `failed`, `stalled`...), `interrupted`
   * (lost with a daemon) or `superseded` (a new revision ran instead). A round
   * that ended without pushing a commit escalates (see judgeAnsweredHead).
   */
  readonly result: string;
  /** The commit pushed after the round; null when nothing was pushed. */
  readonly pushedSha: string | null;
  readonly atMs: number;
  /** What the round's run said when it ended (the outcome's detail, one line); absent before then and in older records. */
  readonly detail?: string;
}

export interface ShepherdRecord {
  readonly pullNumber: number;
  readonly pullUrl: string;
  readonly branch: string;
  readonly rounds: readonly ShepherdRound[];
  /** Why a person was asked to take over; null while Factory handles it. */
  readonly escalated: string | null;
  /** The last verdict, for status views (`waiting for CI on 1a2b3c4`, `green`...). */
  readonly lastVerdict: string;
  readonly merged: boolean;
}

export type ShepherdVerdict =
  | { readonly kind: 'wait'; readonly reason: string }
  | { readonly kind: 'fix'; readonly trigger: RoundTrigger; readonly onSha: string; readonly failures: readonly string[]; readonly fingerprints: readonly string[]; readonly feedback: string }
  | { readonly kind: 'escalate'; readonly onSha: string; readonly reason: string }
  | { readonly kind: 'green'; readonly onSha: string; readonly approved: boolean }
  | { readonly kind: 'closed'; readonly merged: boolean };

export interface ShepherdPolicy {
  readonly maxRounds: number;
  /** Whose reviews count; default: {@link DEFAULT_REVIEW_TRUST}. */
  readonly trust?: ReviewTrust;
}

/**
 * Whose reviews approve a pull request or send the implementer back. On a
 * public repository anyone can leave a review: a stranger's approval must not
 * merge, and a stranger's change request must not reach the agent's prompt.
 */
export interface ReviewTrust {
  /** `author_association` values that count. */
  readonly associations: readonly string[];
  /** Logins that count whatever their association (compared case-insensitively). */
  readonly logins: readonly string[];
}

export const DEFAULT_TRUSTED_ASSOCIATIONS = ['OWNER', 'MEMBER', 'COLLABORATOR'] as const;
export const DEFAULT_REVIEW_TRUST: ReviewTrust = { associations: DEFAULT_TRUSTED_ASSOCIATIONS, logins: [] };

/** Whether `review` counts: by a trusted association or login, and never one of Factory's own. */
export function isTrustedReview(review: PullReview, trust: ReviewTrust = DEFAULT_REVIEW_TRUST): boolean {
  if (review.byFactory) return false;
  const author = review.author.toLowerCase();
  return trust.associations.includes(review.association.toUpperCase()) || trust.logins.some((login) => login.toLowerCase() === author);
}

const FAILED_CONCLUSIONS = new Set(['failure', 'timed_out', 'cancelled', 'action_required', 'startup_failure', 'stale', 'error']);

/** Check-run status and conclusion (or a commit status state) → pending, passed or failed. */
export function checkState(status: string, conclusion: string | null): PullCheck['state'] {
  if (status !== 'completed' && status !== 'success' && status !== 'failure' && status !== 'error') return 'pending';
  const verdict = conclusion ?? status;
  return FAILED_CONCLUSIONS.has(verdict) ? 'failed' : verdict === 'success' || verdict === 'neutral' || verdict === 'skipped' || verdict === 'completed' ? 'passed' : 'failed';
}

export function shortSha(sha: string): string {
  return sha.slice(0, 7);
}

/** The latest review of each author on `sha`; reviews on other commits are stale and ignored. */
export function currentReviews(reviews: readonly PullReview[], sha: string): PullReview[] {
  const latest = new Map<string, PullReview>();
  for (const review of [...reviews].sort((a, b) => a.submittedAtMs - b.submittedAtMs)) {
    if (review.commitId !== sha || review.state === 'COMMENTED' || review.state === 'PENDING') continue;
    latest.set(review.author.toLowerCase(), review);
  }
  return [...latest.values()].filter((review) => review.state !== 'DISMISSED');
}

/** Round results of a round still on the issue's claim (waiting for a slot or running): it has not ended. */
export const PENDING_ROUND_RESULTS: ReadonlySet<string> = new Set(['queued', 'running']);
/** Round results of a round that never ran to its end (lost with a daemon, or replaced by a new revision): it answered nothing. */
const UNANSWERED_ROUND_RESULTS: ReadonlySet<string> = new Set(['interrupted', 'superseded']);
/** Round results worth one more round on the same failure: the run was cut short, not wrong. */
const TRANSIENT_ROUND_RESULTS: ReadonlySet<string> = new Set(['stalled', 'timed-out']);

/** Whether the round put a new commit on the pull request (a round that pushed its own head again pushed nothing). */
export function roundPushed(round: ShepherdRound): boolean {
  return round.pushedSha !== null && round.pushedSha !== round.onSha;
}

/** The approvals and change requests that do not count (see {@link isTrustedReview}), for the log. */
export function untrustedVerdicts(reviews: readonly PullReview[], trust: ReviewTrust = DEFAULT_REVIEW_TRUST): PullReview[] {
  return reviews.filter((review) => (review.state === 'APPROVED' || review.state === 'CHANGES_REQUESTED') && !isTrustedReview(review, trust));
}

export function judgePull(observation: PullObservation, record: ShepherdRecord, policy: ShepherdPolicy): ShepherdVerdict {
  if (observation.state !== 'open') return { kind: 'closed', merged: observation.state === 'merged' };
  const sha = observation.headSha;
  if (record.escalated !== null) return { kind: 'wait', reason: `a person was asked to take over: ${record.escalated}` };
  const answered = record.rounds.filter((round) => round.onSha === sha && !UNANSWERED_ROUND_RESULTS.has(round.result)).at(-1);
  if (answered !== undefined && PENDING_ROUND_RESULTS.has(answered.result)) return { kind: 'wait', reason: `fix round ${answered.round} on ${shortSha(sha)} is ${answered.result}` };
  if (answered !== undefined && (roundPushed(answered) || answered.result === 'cancelled')) {
    return { kind: 'wait', reason: `round ${answered.round} answered ${shortSha(sha)}; waiting for a new commit` };
  }

  const failedChecks = observation.checks.filter((check) => check.state === 'failed');
  const pending = observation.checks.filter((check) => check.state === 'pending');
  const trusted = observation.reviews.filter((review) => isTrustedReview(review, policy.trust));
  const reviews = currentReviews(trusted, sha);
  const changeRequests = reviews.filter((review) => review.state === 'CHANGES_REQUESTED');

  // All of a commit's failures go into one round: wait for the checks still running.
  if (pending.length > 0 && changeRequests.length === 0) return { kind: 'wait', reason: `waiting for ${pending.length} check(s) on ${shortSha(sha)}` };
  if (failedChecks.length === 0 && changeRequests.length === 0) {
    return { kind: 'green', onSha: sha, approved: reviews.some((review) => review.state === 'APPROVED') };
  }

  // A round ended on this very head without pushing: the failure stands and nobody would be told.
  if (answered !== undefined) {
    const stuck = escalateUnpushedRound(answered, record, policy);
    if (stuck !== undefined) return stuck;
  }
  const trigger: RoundTrigger = failedChecks.length > 0 ? 'ci-failed' : 'changes-requested';
  const fingerprints = [...failedChecks.map((check) => failureFingerprint(check.name, check.output)), ...changeRequests.map((review) => failureFingerprint(`review by ${review.author}`, review.body))];
  const failures = [...failedChecks.map((check) => `check ${check.name}: ${check.conclusion}`), ...changeRequests.map((review) => `review by ${review.author}: changes requested`)];
  // Only a round that pushed was a fix attempt: the same failure after a round cut short is not "back", it was never fixed.
  const earlier = new Set(record.rounds.filter(roundPushed).flatMap((round) => round.fingerprints));
  const repeated = fingerprints.find((fingerprint) => earlier.has(fingerprint));
  if (repeated !== undefined) {
    return { kind: 'escalate', onSha: sha, reason: `the same failure came back after a fix attempt (${repeated.split('\n')[0]})` };
  }
  const used = record.rounds.length;
  if (used >= policy.maxRounds) {
    return { kind: 'escalate', onSha: sha, reason: `${failures.join('; ')} on ${shortSha(sha)}, and all ${policy.maxRounds} fix round(s) are used` };
  }
  return { kind: 'fix', trigger, onSha: sha, failures, fingerprints, feedback: renderFeedback(observation, failedChecks, changeRequests, used + 1, policy.maxRounds) };
}

/**
 * A round ended on the head without pushing a commit (failed, stalled,
 * timed out, or succeeded with nothing new) and the head still fails: a
 * person is asked at once, with the round's result and reason. Only a round
 * cut short (stalled, timed out) is tried again, as the next round on the
 * same failure, while `maxRounds` allows (undefined: judge it as a new failure).
 */
function escalateUnpushedRound(round: ShepherdRound, record: ShepherdRecord, policy: ShepherdPolicy): ShepherdVerdict | undefined {
  const transient = TRANSIENT_ROUND_RESULTS.has(round.result);
  if (transient && record.rounds.length < policy.maxRounds) return undefined;
  const why = round.detail === undefined || round.detail.length === 0 ? round.result : `${round.result}: ${round.detail}`;
  const used = transient ? `, and all ${policy.maxRounds} fix round(s) are used` : '';
  return { kind: 'escalate', onSha: round.onSha, reason: `fix round ${round.round} ended without pushing a commit on ${shortSha(round.onSha)} (${why})${used}` };
}

const MAX_EXCERPT_LINES = 40;
const MAX_EXCERPT_CHARS = 4000;
const ERROR_LINE = /\b(error|fail(ed|ure)?|assert(ion)?|expected|exception|panic|traceback)\b/i;

/**
 * The part of a check's output worth showing: from a few lines before the
 * first line that looks like an error, at most 40 lines and 4000 characters.
 */
export function trimExcerpt(output: string): string {
  const lines = output.replace(/\r\n/g, '\n').split('\n');
  const firstError = lines.findIndex((line) => ERROR_LINE.test(line));
  const start = firstError <= 0 ? 0 : Math.max(0, firstError - 3);
  let excerpt = lines
    .slice(start, start + MAX_EXCERPT_LINES)
    .join('\n')
    .trim();
  if (excerpt.length > MAX_EXCERPT_CHARS) excerpt = `${excerpt.slice(0, MAX_EXCERPT_CHARS)}\n[... cut]`;
  const cutBefore = start > 0 ? `[${start} line(s) before]\n` : '';
  const cutAfter = start + MAX_EXCERPT_LINES < lines.length ? `\n[${lines.length - start - MAX_EXCERPT_LINES} more line(s)]` : '';
  return `${cutBefore}${excerpt}${cutAfter}`;
}

/**
 * `name` plus the first error lines of `output`, with what changes between
 * two runs of the same failure (numbers, hashes, durations, temp paths)
 * replaced, so the same failure after a fix attempt is recognised.
 */
export function failureFingerprint(name: string, output: string): string {
  const lines = output
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  const errorLines = lines.filter((line) => ERROR_LINE.test(line));
  const chosen = (errorLines.length > 0 ? errorLines : lines).slice(0, 3);
  const normalized = chosen.map((line) =>
    line
      .toLowerCase()
      .replace(/\b[0-9a-f]{7,40}\b/g, '<sha>')
      .replace(/(\/tmp|\/var\/folders|\/home\/[^/\s]+)\/\S*/g, '<path>')
      .replace(/\d+(\.\d+)?\s*(ms|s|sec|seconds|m)\b/g, '<time>')
      .replace(/\d+/g, '<n>')
      .replace(/\s+/g, ' '),
  );
  return [name.toLowerCase(), ...normalized].join('\n').slice(0, 400);
}

function renderFeedback(observation: PullObservation, failedChecks: readonly PullCheck[], changeRequests: readonly PullReview[], round: number, maxRounds: number): string {
  const lines = [
    `## Pull request feedback (fix round ${round} of ${maxRounds})`,
    '',
    `Pull request #${observation.number} for this issue is at commit ${shortSha(observation.headSha)}. Fix what follows on the same branch and commit; Factory pushes your commits.`,
  ];
  if (failedChecks.length > 0) {
    lines.push('', '### Failed checks');
    for (const check of failedChecks) {
      lines.push('', `- **${check.name}**: ${check.conclusion}`);
      const excerpt = trimExcerpt(check.output);
      if (excerpt.length > 0) lines.push('', '```text', excerpt.replace(/```/g, "'''"), '```');
    }
  }
  if (changeRequests.length > 0) {
    lines.push('', '### Changes requested in review');
    for (const review of changeRequests) lines.push('', `- **${review.author}**:`, '', ...review.body.split('\n').map((line) => `  > ${line}`));
  }
  return lines.join('\n');
}

const RECORD_MARK = 'factory:shepherd';

/** The record as a hidden block for the status comment (base64, so no text in it can close the comment). */
export function encodeShepherdRecord(record: ShepherdRecord): string {
  return `<!-- ${RECORD_MARK} ${Buffer.from(JSON.stringify(record), 'utf8').toString('base64')} -->`;
}

export function decodeShepherdRecord(text: string): ShepherdRecord | undefined {
  const match = new RegExp(`<!-- ${RECORD_MARK} ([A-Za-z0-9+/=]+) -->`).exec(text);
  if (match === null) return undefined;
  try {
    const record = JSON.parse(Buffer.from(match[1]!, 'base64').toString('utf8')) as ShepherdRecord;
    return typeof record.pullNumber === 'number' && Array.isArray(record.rounds) ? record : undefined;
  } catch {
    return undefined;
  }
}

/** The pull request and its round history, as Markdown for the status comment and the pull request body. */
export function renderShepherdSection(record: ShepherdRecord, maxRounds: number): string {
  const lines = [`**Pull request:** ${record.pullUrl} (branch \`${record.branch}\`)`, '', `**Shepherd:** ${record.lastVerdict}`];
  if (record.escalated !== null) lines.push('', `**Needs a person:** ${record.escalated}`);
  if (record.rounds.length > 0) {
    lines.push('', `**Fix rounds** (${record.rounds.length} of ${maxRounds})`, '', '| Round | Trigger | On | What failed | Result | Pushed |', '|---|---|---|---|---|---|');
    for (const round of record.rounds) {
      const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
      lines.push(
        `| ${round.round} | ${round.trigger} | \`${shortSha(round.onSha)}\` | ${cell(round.failures.join('; '))} | ${round.result} | ${round.pushedSha === null ? '-' : `\`${shortSha(round.pushedSha)}\``} |`,
      );
    }
  }
  return lines.join('\n');
}
