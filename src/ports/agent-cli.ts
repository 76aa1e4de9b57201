import type { CliDriverSpec } from '../domain/agent-events/agent-driver.js';

/**
 * What a CLI driver needs from outside core: the command line for one run of
 * the agent (no shell: the prompt is one argument), and a follower that reads
 * the agent's run log as it grows, so its JSON event stream is parsed while it
 * runs.
 */
export interface AgentCliHost {
  /** `executable` (the configured command) then the driver's arguments, the prompt last. */
  commandFor(executable: readonly string[], driver: CliDriverSpec, prompt: string, options?: AgentCommandOptions): string[];
  /** The file's size now, 0 when it does not exist: where an agent about to start begins writing. */
  sizeOf(path: string): number;
  /** Hands every byte appended to `path` from `fromByte` on to `onChunk`, in order, until stopped. */
  follow(path: string, fromByte: number, onChunk: (chunk: Uint8Array) => void): LogFollower;
}

export interface LogFollower {
  /** Reads whatever is left up to the file's current end, hands it over, then stops. Idempotent. */
  stop(): Promise<void>;
}

export interface AgentCommandOptions {
  /** Continue this session (Claude Code) or thread (Codex) instead of starting one. */
  readonly resumeSessionId?: string;
  /**
   * Usage exact while the run goes, not only in its final result (Claude Code's
   * `--include-partial-messages`): budgets are checked on it, and a run stopped
   * for one has no final result to correct the figures.
   */
  readonly liveUsage?: boolean;
}
