import { reportAgentRun, summarizeActivity, type AgentActivitySummary, type AgentRunReport, type CliDriverSpec } from '../../domain/agent-events/agent-driver.js';
import { ClaudeCodeParser } from '../../domain/agent-events/claude-code-parser.js';
import { CodexParser } from '../../domain/agent-events/codex-parser.js';
import { JsonLinesReader } from '../../domain/agent-events/json-lines.js';
import type { AgentEventParser, AgentRunEvent } from '../../domain/agent-events/run-events.js';
import { judgeAgentRun, type AgentExit } from '../../domain/agent-events/run-verdict.js';
import { renderArgument, type PlaceholderName } from '../../domain/prompt.js';
import type { AgentCommand } from '../../domain/team.js';
import type { AgentCliHost, AgentCommandOptions, LogFollower } from '../../ports/agent-cli.js';
import type { Clock, TimerHandle } from '../../ports/clock.js';

/** Activity events go out at most this often per agent: a chatty agent must not flood the run's event stream. */
export const ACTIVITY_EVENT_INTERVAL_MS = 1_000;

export interface AgentStreamWatchOptions {
  readonly driver: CliDriverSpec;
  readonly host: AgentCliHost;
  readonly clock: Clock;
  /** The agent's activity changed (throttled; once more at the end). */
  readonly onActivity: (activity: AgentActivitySummary) => void;
  /**
   * The agent asked for something nobody can give in a non-interactive run (a
   * tool approval): called once, with why, so the run stops now rather than
   * waiting for the agent to give up or stall.
   */
  readonly onNeedsInput: (reason: string) => void;
  /** Every change of the agent's figures (turns, tokens, cost), unthrottled: budgets are checked on each. */
  readonly onUsage?: (activity: AgentActivitySummary) => void;
  /** The agent reported a usage or rate limit (once), with when it lifts if it said: the run parks rather than waits. */
  readonly onRateLimited?: (reason: string, resetAtMs: number | undefined) => void;
}

/**
 * Follows one CLI agent's run log while it runs: the raw stream stays in the
 * log (`factory logs` reads it), the lines are parsed as they arrive into run
 * events, and at exit the verdict comes from what the agent reported (domain
 * run-verdict.ts), not from its exit code.
 */
export class AgentStreamWatch {
  readonly #options: AgentStreamWatchOptions;
  readonly #parser: AgentEventParser;
  readonly #reader = new JsonLinesReader();
  #follower: LogFollower | undefined;
  #lastActivityEventAtMs = -Infinity;
  #activityPending = false;
  /** The throttled emit still owed for changes inside the last interval (an agent may then go quiet for minutes in one tool call). */
  #trailingEmit: TimerHandle | undefined;
  #needsInputReported = false;
  #rateLimitReported = false;

  constructor(options: AgentStreamWatchOptions) {
    this.#options = options;
    const clock = options.clock;
    this.#parser =
      options.driver.kind === 'claude-code'
        ? new ClaudeCodeParser()
        : // Codex names a usage limit's reset as a wall-clock time in the machine's zone.
          new CodexParser({ nowMs: () => clock.now(), utcOffsetMinutes: -new Date(clock.now()).getTimezoneOffset() });
  }

  /** Starts reading `logPath` from its current end: call it just before the agent starts. */
  start(logPath: string): void {
    const host = this.#options.host;
    this.#follower = host.follow(logPath, host.sizeOf(logPath), (chunk) => this.#take(this.#reader.push(chunk).lines));
  }

  /** The agent never started: stop following. */
  async abandon(): Promise<void> {
    this.#cancelTrailingEmit();
    await this.#follower?.stop();
  }

  activity(): AgentActivitySummary {
    return summarizeActivity(this.#parser.snapshot());
  }

  /** After the agent exited: reads the rest of the log, then judges the run. */
  async finish(exit: AgentExit): Promise<AgentRunReport> {
    await this.#follower?.stop();
    this.#take(this.#reader.flush().lines);
    this.#cancelTrailingEmit();
    if (this.#activityPending) this.#emitActivity();
    const snapshot = this.#parser.snapshot();
    return reportAgentRun(snapshot, judgeAgentRun(snapshot, exit));
  }

  #take(lines: readonly string[]): void {
    let changed = false;
    for (const line of lines) {
      for (const event of this.#parser.parseLine(line)) {
        if (isActivity(event)) changed = true;
        if (event.kind === 'approval-needed' && !this.#needsInputReported) {
          this.#needsInputReported = true;
          const verdict = judgeAgentRun(this.#parser.snapshot(), { code: null, signal: null });
          this.#options.onNeedsInput(verdict.verdict === 'needs-approval' ? verdict.reason : `${this.#options.driver.kind} needed approval for ${event.tool}`);
        }
        if (event.kind === 'rate-limited' && !this.#rateLimitReported) {
          this.#rateLimitReported = true;
          this.#options.onRateLimited?.(event.resetText === undefined ? event.message : `${event.message} (resets ${event.resetText})`, event.resetAtMs);
        }
      }
    }
    if (!changed) return;
    this.#options.onUsage?.(this.activity());
    this.#activityPending = true;
    const sinceLastMs = this.#options.clock.now() - this.#lastActivityEventAtMs;
    if (sinceLastMs >= ACTIVITY_EVENT_INTERVAL_MS) this.#emitActivity();
    // Changes inside the interval are emitted when it ends, not only with the next change: the
    // tool call an agent is now running must be seen while it runs.
    else {
      this.#trailingEmit ??= this.#options.clock.setTimeout(() => {
        this.#trailingEmit = undefined;
        if (this.#activityPending) this.#emitActivity();
      }, ACTIVITY_EVENT_INTERVAL_MS - sinceLastMs);
    }
  }

  #cancelTrailingEmit(): void {
    this.#options.clock.clearTimeout(this.#trailingEmit);
    this.#trailingEmit = undefined;
  }

  #emitActivity(): void {
    this.#cancelTrailingEmit();
    this.#activityPending = false;
    this.#lastActivityEventAtMs = this.#options.clock.now();
    this.#options.onActivity(this.activity());
  }
}

function isActivity(event: AgentRunEvent): boolean {
  return event.kind !== 'unknown' && event.kind !== 'skipped' && event.kind !== 'warning';
}

export type AgentLaunch = { readonly ok: true; readonly command: string[]; readonly watch?: AgentStreamWatch } | { readonly ok: false; readonly reason: string };

/**
 * The command an agent runs with and, for a CLI driver, the watch that reads
 * its stream. A command agent's argv is rendered from its placeholders; a CLI
 * driver's is built from its options with the role's prompt as one argument.
 */
export function prepareAgentLaunch(
  agent: AgentCommand,
  values: Readonly<Record<PlaceholderName, string>>,
  host: AgentCliHost | undefined,
  callbacks: Pick<AgentStreamWatchOptions, 'clock' | 'onActivity' | 'onNeedsInput' | 'onUsage' | 'onRateLimited'>,
  /** Continue a parked run's session; exact usage while it runs (budgets are set). */
  commandOptions: AgentCommandOptions = {},
): AgentLaunch {
  const driver = agent.driver;
  if (driver === undefined || driver.kind === 'command') return { ok: true, command: agent.command.map((arg) => renderArgument(arg, values)) };
  if (!host) return { ok: false, reason: `the ${driver.kind} driver is not available in this process (no agent CLI host was wired in)` };
  return { ok: true, command: host.commandFor(agent.command, driver, values.prompt, commandOptions), watch: new AgentStreamWatch({ driver, host, ...callbacks }) };
}
