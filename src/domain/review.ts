import { oneLine } from './agent-events/run-events.js';
import type { TeamStages } from './team.js';

/**
 * Review rounds, as pure rules. A review stage (a stage marked `review` in the
 * team, domain/team.ts) ends with a verdict: `approve`, or `request-changes`
 * with comments. Request-changes sends the team back to the work stages
 * before the review stage with the comments, then the review stage runs
 * again, up to the stage's `maxRounds`; rounds exhausted, the run ends
 * `changes-requested`. Nothing here names a role.
 *
 * How a reviewer reports (docs/agents.md, "Review rounds"): it writes
 * `{"verdict": "approve"}` or `{"verdict": "request-changes", "comments": "..."}`
 * to the file named by FACTORY_REVIEW_FILE (outside the worktree). Without
 * that file, a driver may read the same JSON from the agent's final message.
 * Without either, an agent that exited 0 approves: a reviewer written before
 * verdicts existed keeps working. A file that is there but not a verdict fails
 * the run with the reason, since guessing what a reviewer meant is worse.
 */

export const REVIEW_VERDICTS = ['approve', 'request-changes'] as const;
export type ReviewVerdictKind = (typeof REVIEW_VERDICTS)[number];

/** Where a verdict came from, for the round history. */
export type VerdictSource = 'file' | 'final-message' | 'exit-code';

export interface ReviewVerdict {
  readonly verdict: ReviewVerdictKind;
  /** The reviewer's comments; empty for an approval without any. */
  readonly comments: string;
  readonly source: VerdictSource;
}

export type VerdictReading = { readonly ok: true; readonly verdict: ReviewVerdict } | { readonly ok: false; readonly reason: string };

/** `review.maxRounds` when the config does not say. */
export const DEFAULT_MAX_REVIEW_ROUNDS = 2;
/** A verdict file larger than this is not a verdict. */
export const MAX_VERDICT_FILE_BYTES = 256 * 1024;
/** Comments kept in the round history (the full text goes to the implementer). */
const COMMENT_SUMMARY_CHARS = 300;

/** The verdict file's text → a verdict, or why it is not one. */
export function parseVerdictText(text: string, source: Exclude<VerdictSource, 'exit-code'> = 'file'): VerdictReading {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: `not JSON: ${oneLine(text, 80) || '(empty)'}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JSON object' };
  const record = value as Record<string, unknown>;
  const verdict = record.verdict;
  if (typeof verdict !== 'string' || !(REVIEW_VERDICTS as readonly string[]).includes(verdict)) {
    return { ok: false, reason: `"verdict" must be one of ${REVIEW_VERDICTS.map((v) => `"${v}"`).join(', ')}, got ${JSON.stringify(verdict) ?? 'nothing'}` };
  }
  const comments = commentsText(record.comments);
  if (comments === undefined) return { ok: false, reason: '"comments" must be a string or an array of strings' };
  if (verdict === 'request-changes' && comments.trim() === '') return { ok: false, reason: '"request-changes" needs "comments" saying what to change' };
  return { ok: true, verdict: { verdict: verdict as ReviewVerdictKind, comments: comments.trim(), source } };
}

function commentsText(raw: unknown): string | undefined {
  if (raw === undefined || raw === null) return '';
  if (typeof raw === 'string') return raw;
  if (Array.isArray(raw) && raw.every((item) => typeof item === 'string')) return raw.map((item) => `- ${item}`).join('\n');
  return undefined;
}

/**
 * A verdict in an agent's final message: the last `{...}` in it that parses
 * as a verdict (a model often wraps it in prose or a code fence). For drivers
 * that see the final message; undefined when there is none.
 */
export function verdictFromFinalMessage(text: string): ReviewVerdict | undefined {
  for (let end = text.lastIndexOf('}'); end >= 0; end = text.lastIndexOf('}', end - 1)) {
    for (let start = text.lastIndexOf('{', end); start >= 0; start = text.lastIndexOf('{', start - 1)) {
      const reading = parseVerdictText(text.slice(start, end + 1), 'final-message');
      if (reading.ok) return reading.verdict;
    }
  }
  return undefined;
}

/** What one reviewer of a review stage reported. */
export interface ReviewerReport {
  readonly role: string;
  /** The file's text; undefined when the reviewer wrote none. */
  readonly fileText: string | undefined;
  /** The agent's final message, when its driver knows it. */
  readonly finalMessage?: string | undefined;
}

/** One reviewer's verdict from its report (the agent exited 0). */
export function readReviewerVerdict(report: ReviewerReport): VerdictReading {
  if (report.fileText !== undefined) {
    const reading = parseVerdictText(report.fileText, 'file');
    return reading.ok ? reading : { ok: false, reason: `${report.role} wrote an invalid verdict to FACTORY_REVIEW_FILE: ${reading.reason}` };
  }
  const fromMessage = report.finalMessage === undefined ? undefined : verdictFromFinalMessage(report.finalMessage);
  return { ok: true, verdict: fromMessage ?? { verdict: 'approve', comments: '', source: 'exit-code' } };
}

export type StageReview = { readonly kind: 'approve' } | { readonly kind: 'request-changes'; readonly comments: string } | { readonly kind: 'invalid'; readonly reason: string };

/** A review stage's decision: any reviewer requesting changes sends the work back, with every such reviewer's comments. */
export function decideStageReview(verdicts: readonly { readonly role: string; readonly reading: VerdictReading }[]): StageReview {
  const invalid = verdicts.find((entry) => !entry.reading.ok);
  if (invalid && !invalid.reading.ok) return { kind: 'invalid', reason: invalid.reading.reason };
  const requests = verdicts.flatMap((entry) => (entry.reading.ok && entry.reading.verdict.verdict === 'request-changes' ? [{ role: entry.role, comments: entry.reading.verdict.comments }] : []));
  if (requests.length === 0) return { kind: 'approve' };
  const comments = requests.length === 1 ? requests[0]!.comments : requests.map((r) => `## ${r.role}\n\n${r.comments}`).join('\n\n');
  return { kind: 'request-changes', comments };
}

/**
 * The stage a request-changes sends the team back to: the first work stage
 * after the previous review stage. Undefined when the review stage has no
 * work stage before it (e.g. reviewer and implementer in one parallel stage):
 * nobody can be sent back, and the run ends `changes-requested`.
 */
export function reworkStageFor(stages: TeamStages, reviewStage: number): number | undefined {
  let start = 0;
  for (let index = reviewStage - 1; index >= 0; index--) {
    if (stages[index]?.review !== undefined) {
      start = index + 1;
      break;
    }
  }
  return start < reviewStage ? start : undefined;
}

/** One agent's turn in the round history: who, in which round, what it said, and the branch head after it. */
export interface ReviewRoundEntry {
  readonly round: number;
  readonly role: string;
  readonly agentName: string;
  /** Set for reviewers. */
  readonly verdict?: ReviewVerdictKind;
  readonly verdictSource?: VerdictSource;
  /** The reviewer's comments, cut to one short line. */
  readonly commentsSummary?: string;
  /** The branch head after the agent's stage; null when it could not be read. */
  readonly commit: string | null;
}

export function summarizeComments(comments: string): string {
  return oneLine(comments, COMMENT_SUMMARY_CHARS);
}

/** What an agent sent back by a reviewer reads in its prompt (and the comments file holds). */
export function reviewCommentsSection(round: number, comments: string): string {
  return [`Review round ${round}: the reviewer requested changes on the previous round. Their comments:`, '', comments.trim(), '', 'Address every comment, then commit on the current branch.'].join(
    '\n',
  );
}

/**
 * The built-in instruction a reviewing agent gets: where and how to report
 * its verdict. The path is the agent's own FACTORY_REVIEW_FILE.
 */
export function verdictInstruction(): string {
  return [
    'When you are done, report your verdict as JSON in the file named by the FACTORY_REVIEW_FILE environment variable (outside the worktree; do not commit it):',
    '{"verdict": "approve"} when the change is ready, or {"verdict": "request-changes", "comments": "what to change, specifically"} to send it back to the implementer.',
    'For example: printf \'%s\\n\' \'{"verdict":"approve"}\' > "$FACTORY_REVIEW_FILE"',
  ].join('\n');
}
