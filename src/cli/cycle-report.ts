import type { CycleReport } from '../core/bounded-run.js';
import { formatDuration } from '../domain/duration.js';
import { formatTable } from './output.js';

/** The human-readable form of a run-once or loop iteration report. */
export function formatCycleReport(report: CycleReport, nowMs: number): string {
  const count = (action: string): number => report.decisions.filter((d) => d.action === action).length;
  const lines = [
    `${report.dryRun ? 'Dry run: nothing was claimed, spawned or written.\n' : ''}pulled ${report.pulled} issue(s), ${report.unreadableFiles.length} unreadable file(s)`,
    `triaged: ${count('queued')} ${report.dryRun ? 'would dispatch' : 'queued'}, ${count('skipped')} skipped, ${count('already-handled')} already handled, ${count('already-active')} already active, ${count('cancelled')} cancelled`,
  ];
  if (report.decisions.length > 0) {
    lines.push(
      '',
      'decisions:',
      formatTable(
        ['ISSUE', 'ACTION', 'WHY'],
        report.decisions.map((d) => [d.issueKey, d.action, d.reason]),
      ),
    );
  }
  if (report.unreadableFiles.length > 0) {
    lines.push(
      '',
      'unreadable files (skipped):',
      formatTable(
        ['FILE', 'WHY'],
        report.unreadableFiles.map((s) => [s.path, s.reason]),
      ),
    );
  }
  if (!report.dryRun) {
    lines.push('', `dispatched ${report.dispatched.length} team(s):`);
    lines.push(
      formatTable(
        ['ISSUE', 'RUN', 'OUTCOME', 'TOOK', 'DETAIL'],
        report.outcomes.map((o) => [o.issueKey, o.runId, o.reason, formatDuration(o.endedAtMs - o.startedAtMs), o.detail]),
      ),
    );
    if (report.nextRetryAtMs !== null) lines.push('', `next retry due in ${formatDuration(report.nextRetryAtMs - nowMs)}`);
  }
  return lines.join('\n');
}
