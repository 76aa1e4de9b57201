import { constants } from 'node:fs';
import { open, readdir, realpath, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { isValidIssueKey } from '../../domain/issue.js';
import { parseRunId, type ParsedRunId } from '../../domain/run-id.js';
import { filesystemError } from '../../errors.js';
import type { AgentLogLocation, LogChunk, LogTail, RunLogFile, RunLogs, RunLogStore } from '../../ports/run-log-store.js';

/**
 * Run logs as files: `<logsDir>/<KEY>/<runId>-<agent>.log`, the agent's side
 * files beside it. Every path read is built from a validated issue key and a
 * parsed run id, and is then checked (symlinks resolved) to lie inside the
 * logs folder: a request can never name a file of its choosing.
 */

const DEFAULT_MAX_BYTES = 1024 * 1024;

/** `<runId>-<agent>.log`; the run id ends in `-<hex>`, so the first dash after it starts the agent. */
const LOG_FILE_PATTERN = /^(.+-e\d{1,9}-a\d{1,6}-[0-9a-f]{1,32})-([A-Za-z0-9][A-Za-z0-9_.-]{0,99})\.log$/;

interface DescribedFile extends RunLogFile {
  readonly createdAtMs: number;
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

export interface FileRunLogStoreOptions {
  /**
   * The team's agents in stage order (from the config): their logs are listed
   * in this order, any other agent's after them in the order they started.
   */
  readonly agentOrder?: readonly string[];
}

export class FileRunLogStore implements RunLogStore {
  readonly #agentOrder: readonly string[];

  constructor(
    readonly logsDir: string,
    options: FileRunLogStoreOptions = {},
  ) {
    this.#agentOrder = options.agentOrder ?? [];
  }

  locateAgentLog(issueKey: string, runId: string, agent: string): AgentLogLocation {
    const sideFilesDir = join(this.logsDir, issueKey);
    const sideFileStem = `${runId}-${agent}`;
    return { logPath: join(sideFilesDir, `${sideFileStem}.log`), sideFilesDir, sideFileStem };
  }

  async listIssueRuns(issueKey: string): Promise<RunLogs[]> {
    const byRun = await this.#filesOf(issueKey, () => true);
    const newest = (r: RunLogs): number => Math.max(...r.files.map((f) => f.modifiedAtMs));
    return byRun.sort((a, b) => b.run.epoch - a.run.epoch || b.run.attempt - a.run.attempt || newest(b) - newest(a));
  }

  async findRun(runId: string): Promise<RunLogs | undefined> {
    const run = parseRunId(runId);
    if (!run) return undefined;
    return (await this.#filesOf(run.issueKey, (candidate) => candidate.runId === run.runId))[0];
  }

  async tail(file: RunLogFile, options: { lines: number; maxBytes?: number }): Promise<LogTail> {
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    const handle = await open(file.path, 'r');
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

  async readFrom(file: RunLogFile, offset: number, maxBytes = DEFAULT_MAX_BYTES): Promise<LogChunk> {
    const handle = await open(file.path, 'r');
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

  async readSideFile(path: string, maxBytes: number): Promise<string | undefined> {
    const root = resolve(this.logsDir);
    if (!resolve(path).startsWith(`${root}${sep}`)) throw new Error(`${path} is not a side file of the run logs in ${root}`);
    let handle;
    try {
      // O_NOFOLLOW: an agent that swaps its verdict file for a symlink cannot make the daemon read another file.
      handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) throw new Error(`${path} holds ${size} bytes, more than the ${maxBytes} a side file may`);
      const buffer = Buffer.alloc(size);
      const { bytesRead } = await handle.read(buffer, 0, size, 0);
      return buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  }

  /** The runs of one issue (those `wanted` keeps) with their log files. */
  async #filesOf(issueKey: string, wanted: (run: ParsedRunId) => boolean): Promise<RunLogs[]> {
    if (!isValidIssueKey(issueKey)) return [];
    let names: string[];
    try {
      names = await readdir(join(this.logsDir, issueKey));
    } catch (error) {
      // No folder yet is no logs yet; a folder the user made unreadable (or a path through a file) is theirs to fix.
      const refused = filesystemError(error, { path: join(this.logsDir, issueKey), action: 'list the run logs in', access: 'read', setting: 'state.dir' });
      if (refused) throw refused;
      return [];
    }
    const byRun = new Map<string, { run: ParsedRunId; files: DescribedFile[] }>();
    for (const name of names) {
      const match = LOG_FILE_PATTERN.exec(name);
      const run = match ? parseRunId(match[1]!) : undefined;
      // A file of another issue's run in this folder is not ours to show here.
      if (!match || !run || run.issueKey !== issueKey || !wanted(run)) continue;
      const file = await this.#describe(run, match[2]!);
      if (!file) continue;
      const entry = byRun.get(run.runId) ?? { run, files: [] };
      entry.files.push(file);
      byRun.set(run.runId, entry);
    }
    return [...byRun.values()].map(({ run, files }) => ({ run, files: this.#inTeamOrder(files) }));
  }

  /** Configured agents in stage order, then the others by creation time where the file system keeps it, then name. */
  #inTeamOrder(files: DescribedFile[]): RunLogFile[] {
    const rank = (agent: string): number => {
      const index = this.#agentOrder.indexOf(agent);
      return index < 0 ? Number.MAX_SAFE_INTEGER : index;
    };
    return files.sort((a, b) => rank(a.agent) - rank(b.agent) || a.createdAtMs - b.createdAtMs || a.agent.localeCompare(b.agent)).map(({ createdAtMs: _createdAtMs, ...file }) => file);
  }

  async #describe(run: ParsedRunId, agent: string): Promise<DescribedFile | undefined> {
    const path = this.locateAgentLog(run.issueKey, run.runId, agent).logPath;
    if (!(await isInside(this.logsDir, path))) return undefined;
    try {
      const info = await stat(path);
      if (!info.isFile()) return undefined;
      return { run, agent, path, sizeBytes: info.size, modifiedAtMs: info.mtimeMs, createdAtMs: info.birthtimeMs > 0 ? info.birthtimeMs : info.mtimeMs };
    } catch {
      return undefined;
    }
  }
}
