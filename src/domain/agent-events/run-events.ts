import { ZERO_USAGE, type TokenUsage } from './usage-ledger.js';

/**
 * What an agent run is doing, in Factory's terms, whichever CLI runs it. The
 * per-CLI parsers (claude-code-parser.ts, codex-parser.ts) turn the CLI's own
 * JSON lines into these; everything downstream (stall detection, the state
 * API, budgets, the verdict) reads only these.
 */

export type AgentKind = 'claude-code' | 'codex';

/** Why a result is a failure, as a code to match on; `message` is the agent's own words. */
export type AgentFailureKind = 'api-error' | 'max-turns' | 'turn-failed' | 'error-result';

export interface AgentFailure {
  readonly kind: AgentFailureKind;
  readonly message: string;
  /** The HTTP status of the model API error behind it, when the agent reports one. */
  readonly apiErrorStatus?: number;
}

export type AgentRunEvent =
  /** The session (Claude Code) or thread (Codex) id: what `--resume` / `exec resume` continue. */
  | { readonly kind: 'session'; readonly sessionId: string; readonly model?: string; readonly cliVersion?: string }
  | { readonly kind: 'turn-started'; readonly turn: number }
  | { readonly kind: 'turn-completed'; readonly turn: number }
  /** Text the model wrote for the user. */
  | { readonly kind: 'text'; readonly text: string }
  /** `summary`: one short line, e.g. the shell command or the file path. */
  | { readonly kind: 'tool-call'; readonly callId?: string; readonly tool: string; readonly summary: string }
  | { readonly kind: 'tool-result'; readonly callId?: string; readonly tool?: string; readonly isError: boolean; readonly exitCode?: number; readonly summary: string }
  /** The run's usage so far, each model message counted once; emitted whenever it changes. */
  | { readonly kind: 'usage'; readonly total: TokenUsage }
  /** The agent wanted an approval nobody can give in a non-interactive run. */
  | { readonly kind: 'approval-needed'; readonly tool: string; readonly summary: string }
  /** A usage or rate limit stopped the agent; `resetAtMs` when the agent said when it lifts. */
  | { readonly kind: 'rate-limited'; readonly message: string; readonly resetAtMs?: number; readonly resetText?: string }
  /** Something the agent reported that is worth a log line but does not end the run. */
  | { readonly kind: 'warning'; readonly message: string }
  | {
      readonly kind: 'result';
      readonly ok: boolean;
      readonly failure?: AgentFailure;
      /** The final message. */
      readonly text?: string;
      readonly costUsd?: number;
      readonly usage: TokenUsage;
      readonly turns: number;
      readonly durationMs?: number;
    }
  /** An event type this parser does not know: kept, never fatal. */
  | { readonly kind: 'unknown'; readonly type: string }
  /** A line that is not a JSON object (torn, hostile): skipped, with why. */
  | { readonly kind: 'skipped'; readonly reason: string };

export type ResultEvent = Extract<AgentRunEvent, { kind: 'result' }>;
export type RateLimitedEvent = Extract<AgentRunEvent, { kind: 'rate-limited' }>;
export type ApprovalNeededEvent = Extract<AgentRunEvent, { kind: 'approval-needed' }>;

/** Everything a dashboard, a budget check or the verdict needs about a run so far. */
export interface AgentRunSnapshot {
  readonly agent: AgentKind;
  readonly sessionId?: string;
  readonly model?: string;
  readonly turns: number;
  readonly usage: TokenUsage;
  readonly costUsd?: number;
  readonly toolCalls: number;
  /** The last tool call or text: what the agent is doing now. */
  readonly lastActivity?: { readonly kind: 'tool-call' | 'text'; readonly summary: string };
  readonly result?: ResultEvent;
  readonly rateLimit?: RateLimitedEvent;
  readonly approvalsNeeded: readonly ApprovalNeededEvent[];
  readonly warnings: number;
  readonly unknownEvents: number;
  readonly skippedLines: number;
  readonly events: number;
}

export interface AgentEventParser {
  readonly agent: AgentKind;
  /** One line of the agent's stdout (see JsonLinesReader) → the events it means. Never throws. */
  parseLine(line: string): AgentRunEvent[];
  snapshot(): AgentRunSnapshot;
}

/** Folds events into a snapshot; shared by both parsers so the snapshot means the same for each. */
export class AgentRunTracker {
  private state: { -readonly [K in keyof AgentRunSnapshot]: AgentRunSnapshot[K] };

  constructor(agent: AgentKind) {
    this.state = { agent, turns: 0, usage: ZERO_USAGE, toolCalls: 0, approvalsNeeded: [], warnings: 0, unknownEvents: 0, skippedLines: 0, events: 0 };
  }

  apply(event: AgentRunEvent): void {
    const s = this.state;
    s.events++;
    switch (event.kind) {
      case 'session':
        s.sessionId = event.sessionId;
        if (event.model !== undefined) s.model = event.model;
        return;
      case 'turn-started':
        s.turns = Math.max(s.turns, event.turn);
        return;
      case 'turn-completed':
        return;
      case 'text':
        s.lastActivity = { kind: 'text', summary: oneLine(event.text, SUMMARY_CHARS) };
        return;
      case 'tool-call':
        s.toolCalls++;
        s.lastActivity = { kind: 'tool-call', summary: `${event.tool}: ${event.summary}` };
        return;
      case 'tool-result':
        return;
      case 'usage':
        s.usage = event.total;
        return;
      case 'approval-needed':
        s.approvalsNeeded = [...s.approvalsNeeded, event];
        return;
      case 'rate-limited':
        // The first report with a reset time wins over one without.
        if (s.rateLimit === undefined || (s.rateLimit.resetAtMs === undefined && event.resetAtMs !== undefined)) s.rateLimit = event;
        return;
      case 'warning':
        s.warnings++;
        return;
      case 'result':
        s.result = event;
        s.usage = event.usage;
        s.turns = Math.max(s.turns, event.turns);
        if (event.costUsd !== undefined) s.costUsd = event.costUsd;
        return;
      case 'unknown':
        s.unknownEvents++;
        return;
      case 'skipped':
        s.skippedLines++;
        return;
    }
  }

  snapshot(): AgentRunSnapshot {
    return { ...this.state };
  }
}

/**
 * What every CLI's parser shares: a line that is not a JSON object is a
 * `skipped` event (never a throw), and every event is folded into the same
 * snapshot. A subclass only says what one parsed line means.
 */
export abstract class JsonLinesEventParser implements AgentEventParser {
  abstract readonly agent: AgentKind;
  private readonly tracker: AgentRunTracker;

  protected constructor(agent: AgentKind) {
    this.tracker = new AgentRunTracker(agent);
  }

  parseLine(line: string): AgentRunEvent[] {
    const parsed = parseJsonObjectLine(line);
    const events = parsed.ok ? this.eventsOf(parsed.value) : [{ kind: 'skipped' as const, reason: parsed.reason }];
    for (const event of events) this.tracker.apply(event);
    return events;
  }

  snapshot(): AgentRunSnapshot {
    return this.tracker.snapshot();
  }

  /** The events one JSON object line of this CLI's stream means. */
  protected abstract eventsOf(line: Record<string, unknown>): AgentRunEvent[];
}

export const SUMMARY_CHARS = 160;

/** The first line of `text`, whitespace collapsed, cut to `max` characters with an ellipsis. */
export function oneLine(text: string, max: number = SUMMARY_CHARS): string {
  const collapsed = text.replace(/\s+/g, ' ').trim();
  return collapsed.length > max ? `${collapsed.slice(0, max - 1)}…` : collapsed;
}

/** A JSON line as an object, or the reason it is not one; never throws, whatever the line holds. */
export function parseJsonObjectLine(line: string): { ok: true; value: Record<string, unknown> } | { ok: false; reason: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return { ok: false, reason: `not JSON (${error instanceof Error ? error.name : 'error'}): ${oneLine(line, 80)}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: `not a JSON object: ${oneLine(line, 80)}` };
  return { ok: true, value: value as Record<string, unknown> };
}

export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

export function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function asFiniteNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
