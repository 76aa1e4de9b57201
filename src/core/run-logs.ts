import { open, readdir, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { isValidIssueKey } from '../domain/issue.js';

/**
 * Finding and reading agents' run logs (`<logsDir>/<KEY>/<runId>-<role>.log`)
 * for `factory logs` and the HTTP log endpoint. Every path is built from a
 * validated issue key, a validated run id and a known role, and is then
 * checked (after resolving symlinks) to lie inside the logs folder: a request
 * can never name a file of its choosing.
 */

export const LOG_ROLES = ['implementer', 'reviewer'] as const;
export type LogRole = (typeof LOG_ROLES)[number];

/** Run ids are `<KEY>-e<epoch>-a<attempt>-<hex>` (see Dispatcher#start). */
const RUN_ID_PATTERN = /^(.+)-e(\d{1,9})-a(\d{1,6})-([0-9a-f]{1,32})$/;
const LOG_FILE_PATTERN = /^(.+)-(implementer|reviewer)\.log$/;

export interface ParsedRunId {
  readonly runId: string;
  readonly issueKey: string;
  readonly epoch: number;
  readonly attempt: number;
}

export function parseRunId(runId: string): ParsedRunId | undefined {
  if (runId.length > 200) return undefined;
  const match = RUN_ID_PATTERN.exec(runId);
  if (!match || !isValidIssueKey(match[1]!)) return undefined;
  return { runId, issueKey: match[1]!, epoch: Number(match[2]), attempt: Number(match[3]) };
}

export interface RunLogFile {
  readonly run: ParsedRunId;
  readonly role: LogRole;
  readonly path: string;
  readonly sizeBytes: number;
  readonly modifiedAtMs: number;
}

/** A run and its agents' log files, implementer first. */
export interface RunLogs {
  readonly run: ParsedRunId;
  readonly files: readonly RunLogFile[];
}

/** True when `path` (symlinks resolved) is inside `folder` (symlinks resolved). */
async function isInside(folder: string, path: string): Promise<boolean> {
  try {
    const [root, real] = await Promise.all([realpath(folder), realpath(path)]);
    return real.startsWith(root.endsWith(sep) ? root : root + sep);
  } catch {
    return false;
  }
}

/** Every run of one issue that left a log, newest first (by epoch, then attempt, then file time). */
export async function listIssueRuns(logsDir: string, issueKey: string): Promise<RunLogs[]> {
  if (!isValidIssueKey(issueKey)) return [];
  const folder = join(logsDir, issueKey);
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    return [];
  }
  const byRun = new Map<string, RunLogFile[]>();
  for (const name of names) {
    const match = LOG_FILE_PATTERN.exec(name);
    const run = match ? parseRunId(match[1]!) : undefined;
    // A file of another issue's run in this folder is not ours to show here.
    if (!match || !run || run.issueKey !== issueKey) continue;
    const file = await describeLogFile(logsDir, run, match[2] as LogRole);
    if (file) byRun.set(run.runId, [...(byRun.get(run.runId) ?? []), file]);
  }
  const runs = [...byRun.values()].map((files) => ({ run: files[0]!.run, files: sortByRole(files) }));
  const newest = (r: RunLogs): number => Math.max(...r.files.map((f) => f.modifiedAtMs));
  return runs.sort((a, b) => b.run.epoch - a.run.epoch || b.run.attempt - a.run.attempt || newest(b) - newest(a));
}

/** The log files of one run, or undefined when the run id is malformed or left no log. */
export async function findRunLogs(logsDir: string, runId: string): Promise<RunLogs | undefined> {
  const run = parseRunId(runId);
  if (!run) return undefined;
  const files: RunLogFile[] = [];
  for (const role of LOG_ROLES) {
    const file = await describeLogFile(logsDir, run, role);
    if (file) files.push(file);
  }
  return files.length > 0 ? { run, files } : undefined;
}

export function runLogPath(logsDir: string, run: ParsedRunId, role: LogRole): string {
  return join(logsDir, run.issueKey, `${run.runId}-${role}.log`);
}

async function describeLogFile(logsDir: string, run: ParsedRunId, role: LogRole): Promise<RunLogFile | undefined> {
  const path = runLogPath(logsDir, run, role);
  if (!(await isInside(logsDir, path))) return undefined;
  try {
    const info = await stat(path);
    return info.isFile() ? { run, role, path, sizeBytes: info.size, modifiedAtMs: info.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
}

function sortByRole(files: RunLogFile[]): RunLogFile[] {
  return files.sort((a, b) => LOG_ROLES.indexOf(a.role) - LOG_ROLES.indexOf(b.role));
}

export interface LogTail {
  readonly text: string;
  /** Lines or bytes before `text` were left out. */
  readonly truncated: boolean;
  readonly sizeBytes: number;
}

/**
 * The last `lines` lines of a log, reading at most `maxBytes` from its end, so
 * a gigabyte log costs no more than a small one.
 */
export async function readLogTail(path: string, options: { lines: number; maxBytes?: number }): Promise<LogTail> {
  const maxBytes = options.maxBytes ?? 1024 * 1024;
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - maxBytes);
    const buffer = Buffer.alloc(size - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    let text = buffer.subarray(0, bytesRead).toString('utf8');
    let truncated = start > 0;
    // A window that starts mid-file starts mid-line: drop the partial first line.
    if (truncated) text = text.slice(text.indexOf('\n') + 1);
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    if (lines.length > options.lines) {
      truncated = true;
      lines.splice(0, lines.length - options.lines);
    }
    return { text: lines.length > 0 ? `${lines.join('\n')}\n` : '', truncated, sizeBytes: size };
  } finally {
    await handle.close();
  }
}

/** Bytes of a log from `offset` on (for following a growing file); `nextOffset` is where to continue. */
export async function readLogFrom(path: string, offset: number, maxBytes = 1024 * 1024): Promise<{ chunk: Buffer; nextOffset: number }> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    // A log that shrank was replaced: start again from its beginning.
    const from = size < offset ? 0 : offset;
    const length = Math.min(maxBytes, size - from);
    if (length <= 0) return { chunk: Buffer.alloc(0), nextOffset: from };
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, from);
    return { chunk: buffer.subarray(0, bytesRead), nextOffset: from + bytesRead };
  } finally {
    await handle.close();
  }
}
