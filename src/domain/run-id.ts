import { isValidIssueKey } from './issue.js';

/**
 * Run ids are `<KEY>-e<epoch>-a<attempt>-<hex>` (the dispatcher makes them).
 * Parsing one is how a log reader tells which issue, epoch and attempt a file
 * or a request belongs to, without trusting anything else it says.
 */
export interface ParsedRunId {
  readonly runId: string;
  readonly issueKey: string;
  readonly epoch: number;
  readonly attempt: number;
}

const RUN_ID_PATTERN = /^(.+)-e(\d{1,9})-a(\d{1,6})-([0-9a-f]{1,32})$/;

export function parseRunId(runId: string): ParsedRunId | undefined {
  if (runId.length > 200) return undefined;
  const match = RUN_ID_PATTERN.exec(runId);
  if (!match || !isValidIssueKey(match[1]!)) return undefined;
  return { runId, issueKey: match[1]!, epoch: Number(match[2]), attempt: Number(match[3]) };
}
