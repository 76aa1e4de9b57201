import type { Issue } from './issue.js';
import { formatDuration } from './duration.js';
import { formatMemory } from './resource-budget.js';
import type { ReviewRoundEntry } from './review.js';
import type { AgentResult, RunMemory, RunOutcome } from './run.js';

/**
 * A run's outcome as a short Markdown report for a person: what happened, where
 * the work and the logs are. Pure, so any source that writes back Markdown (the
 * local mount's outcome file today, an issue comment later) renders the same text.
 */
export function renderOutcomeReport(issue: Issue, outcome: RunOutcome): string {
  const lines: string[] = [
    `# ${issue.key}: ${outcome.reason}`,
    '',
    `Factory's report on the last run of ${inlineCode(issue.key)} "${singleLine(issue.title)}".`,
    'This file is replaced after each run; Factory never reads it as an issue.',
    '',
    `- **Outcome:** ${outcome.reason}`,
    `- **Detail:** ${isSingleLine(outcome.detail) ? outcome.detail || '(none)' : 'see below'}`,
    `- **Attempt:** ${outcome.attempt}`,
    `- **Run:** ${inlineCode(outcome.runId)}`,
    `- **Issue file:** ${inlineCode(issue.location)}`,
    `- **Revision:** ${inlineCode(outcome.revision.slice(0, 12))}`,
    `- **Branch:** ${inlineCode(outcome.branch)}`,
    `- **Worktree:** ${inlineCode(outcome.worktree)}`,
    `- **Started:** ${formatTime(outcome.startedAtMs)}`,
    `- **Ended:** ${formatTime(outcome.endedAtMs)} (${formatDuration(outcome.endedAtMs - outcome.startedAtMs)})`,
  ];
  if (outcome.memory) lines.push(`- **Memory:** ${describeRunMemory(outcome.memory)}`);
  if (!isSingleLine(outcome.detail)) lines.push('', '## Detail', '', ...fencedBlock(outcome.detail));
  if (outcome.reviewRounds && outcome.reviewRounds.length > 0) lines.push('', '## Review rounds', '', ...renderReviewRounds(outcome.reviewRounds));
  lines.push('', '## Agents', '');
  if (outcome.agents.length === 0) lines.push('No agent was started.');
  for (const agent of outcome.agents) lines.push(...renderAgent(agent), '');
  return `${lines.join('\n').trimEnd()}\n`;
}

/** One line per agent turn: `1. round 1, reviewer: request-changes (add a test) at \`abc123\``. */
function renderReviewRounds(rounds: readonly ReviewRoundEntry[]): string[] {
  return rounds.map((entry, index) => {
    const said = entry.verdict === undefined ? '' : `: **${entry.verdict}**${entry.verdictSource === 'exit-code' ? ' (exit 0, no verdict file)' : ''}`;
    const comments = entry.commentsSummary === undefined ? '' : ` "${singleLine(entry.commentsSummary)}"`;
    const commit = entry.commit === null ? '' : ` at ${inlineCode(entry.commit.slice(0, 12))}`;
    return `${index + 1}. round ${entry.round}, ${singleLine(entry.role)}${said}${comments}${commit}`;
  });
}

function renderAgent(agent: AgentResult): string[] {
  const exit = agent.signal !== null ? `killed by ${agent.signal}` : agent.exitCode !== null ? `exit code ${agent.exitCode}` : 'no exit status';
  return [
    `### ${agent.role}: ${inlineCode(agent.agentName)}`,
    '',
    `- **Result:** ${agent.reason} (${exit})`,
    `- **Log:** ${inlineCode(agent.logPath)}`,
    `- **Started:** ${formatTime(agent.startedAtMs)}`,
    `- **Ended:** ${formatTime(agent.endedAtMs)} (${formatDuration(agent.endedAtMs - agent.startedAtMs)})`,
    ...(agent.memoryPeakBytes !== undefined ? [`- **Memory:** ${describeAgentMemory(agent.memoryPeakBytes)}`] : []),
  ];
}

/** `peak 96 MB (sampled RSS of its process tree)`: a sample on the supervision tick, so a short spike can be missed. */
export function describeAgentMemory(peakBytes: number): string {
  return `peak ${formatMemory(peakBytes)} (sampled RSS of its process tree)`;
}

/** `peak 98 MB of a 100 MB budget, 1 OOM kill (cgroup-v1)`. */
export function describeRunMemory(memory: RunMemory): string {
  const budget = memory.limitBytes === null ? '' : ` of a ${formatMemory(memory.limitBytes)} budget`;
  const kills = memory.oomKills === 0 ? '' : `, ${memory.oomKills} OOM kill${memory.oomKills === 1 ? '' : 's'}`;
  return `peak ${formatMemory(memory.peakBytes)}${budget}${kills} (${memory.mechanism})`;
}

function isSingleLine(text: string): boolean {
  return !text.includes('\n');
}

function singleLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}

/** Paths and names may contain backticks; a longer fence keeps them literal. */
function inlineCode(text: string): string {
  const value = singleLine(text);
  const longestRun = Math.max(0, ...(value.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longestRun + 1);
  const pad = value.startsWith('`') || value.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${value}${pad}${fence}`;
}

function fencedBlock(text: string): string[] {
  const longestRun = Math.max(0, ...(text.match(/`{3,}/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longestRun + 1));
  return [`${fence}text`, text.trimEnd(), fence];
}

function formatTime(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : 'unknown';
}
