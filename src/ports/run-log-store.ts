import type { ParsedRunId } from '../domain/run-id.js';

/**
 * Where agents' output goes and how it is read back: `factory logs`, the HTTP
 * log endpoint and the team run (which asks where an agent's log goes before
 * the fleet spawns it). Files under the state folder today
 * (adapters/run-logs/); a worker's log shipped elsewhere later.
 *
 * An agent is named by its slot in the team (its role, or `<role>-2` …): any
 * string the config allows as a role, never a fixed list. Readers never let a
 * request name a location of its choosing: runs are found by a parsed run id.
 */

/** Where one agent of one run writes, and where its side files (prompt, issue body) go. */
export interface AgentLogLocation {
  /** The file the fleet appends the agent's stdout and stderr to. */
  readonly logPath: string;
  /** Folder for the agent's private side files: outside any worktree. */
  readonly sideFilesDir: string;
  /** Common stem of the agent's side file names (`<stem>.prompt.md` …). */
  readonly sideFileStem: string;
}

export interface RunLogFile {
  readonly run: ParsedRunId;
  /** The agent's slot in the team: its role, or `<role>-2` … */
  readonly agent: string;
  readonly path: string;
  readonly sizeBytes: number;
  readonly modifiedAtMs: number;
}

/** A run and its agents' log files: the team's stage order, then any other agent in the order it started. */
export interface RunLogs {
  readonly run: ParsedRunId;
  readonly files: readonly RunLogFile[];
}

export interface LogTail {
  readonly text: string;
  /** Lines or bytes before `text` were left out. */
  readonly truncated: boolean;
  readonly sizeBytes: number;
}

export interface LogChunk {
  readonly chunk: Buffer;
  /** Where to continue reading; back at the start when the log was replaced by a shorter one. */
  readonly nextOffset: number;
}

export interface RunLogStore {
  /** Where `agent` of run `runId` (of `issueKey`) writes. Pure: creates nothing. */
  locateAgentLog(issueKey: string, runId: string, agent: string): AgentLogLocation;
  /** Every run of one issue that left a log, newest first (epoch, then attempt, then time). */
  listIssueRuns(issueKey: string): Promise<RunLogs[]>;
  /** One run's logs; undefined when the run id is malformed or the run left none. */
  findRun(runId: string): Promise<RunLogs | undefined>;
  /** The last `lines` lines, reading at most `maxBytes` (default 1 MiB) from the end. */
  tail(file: RunLogFile, options: { lines: number; maxBytes?: number }): Promise<LogTail>;
  /** Bytes from `offset` on (at most `maxBytes`, default 1 MiB), for following a growing log. */
  readFrom(file: RunLogFile, offset: number, maxBytes?: number): Promise<LogChunk>;
  /**
   * A side file an agent wrote into its side-files folder (a reviewer's
   * verdict): its text, or undefined when it does not exist. Refuses a path
   * outside the store and a file over `maxBytes`.
   */
  readSideFile(path: string, maxBytes: number): Promise<string | undefined>;
}
