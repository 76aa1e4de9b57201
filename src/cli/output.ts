import { formatDuration } from '../domain/duration.js';

/** Small formatting helpers for human-readable CLI output. */

export function formatAge(atMs: number | null | undefined, nowMs: number): string {
  if (atMs === null || atMs === undefined) return 'never';
  return `${formatDuration(Math.max(0, nowMs - atMs))} ago`;
}

/**
 * A plain aligned table; no colours, so it pipes and logs cleanly. One line
 * per row: a cell that holds several lines (git's stderr in a failure's
 * detail) is joined with " | ", or every later column would spill.
 */
export function formatTable(headers: readonly string[], cellRows: readonly (readonly string[])[]): string {
  if (cellRows.length === 0) return '  (none)';
  const rows = cellRows.map((row) => row.map(oneLine));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `  ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

let outputClosed = false;
let exitOnBrokenPipe = true;
let pipeGuarded = false;

/**
 * `factory logs X | head -1`: the reader went away (EPIPE). Not an error to
 * report with a stack trace: a verb that only prints exits quietly (0); a verb
 * that owns agents (`exit: false`) keeps going with its output dropped, so its
 * ordered stop is never cut short.
 */
export function quietOnBrokenPipe(options: { exit: boolean }): void {
  exitOnBrokenPipe = options.exit;
  if (pipeGuarded) return;
  pipeGuarded = true;
  const onError = (error: NodeJS.ErrnoException): void => {
    if (error.code !== 'EPIPE') throw error;
    outputClosed = true;
    if (exitOnBrokenPipe) process.exit(0);
  };
  process.stdout.on('error', onError);
  process.stderr.on('error', onError);
}

export const processOutput: Output = {
  out: (text) => void (outputClosed || process.stdout.write(`${text}\n`)),
  err: (text) => void (outputClosed || process.stderr.write(`${text}\n`)),
};

export function printJson(output: Output, value: unknown): void {
  output.out(JSON.stringify(value, null, 2));
}

function oneLine(cell: string): string {
  if (!/[\r\n\t]/.test(cell)) return cell;
  return cell
    .split(/\r?\n|\r/)
    .map((part) => part.trim())
    .filter(Boolean)
    .join(' | ')
    .replace(/\t/g, ' ');
}
