import { asFiniteNumber, asRecord, asString, JsonLinesEventParser, oneLine, type AgentRunEvent } from './run-events.js';
import { subtractUsage, tokenCount, ZERO_USAGE, type TokenUsage } from './usage-ledger.js';

/**
 * Codex's `codex exec --json` stream → run events.
 *
 * What the stream looks like (0.171, see test/fixtures/transcripts/codex-*.jsonl):
 * `thread.started` names the thread (what `exec resume` continues);
 * `turn.started`, then `item.started` / `item.completed` for each
 * `agent_message`, `command_execution`, `file_change`, ... item, then
 * `turn.completed` with the thread's usage so far (cumulative across
 * `exec resume` runs), or `turn.failed` with the error.
 * A top-level `error` event precedes `turn.failed`; an `error` item is a
 * warning (e.g. unknown model metadata) and does not end the run.
 *
 * Codex states a usage limit only in words ("You've hit your usage limit. Try
 * again at 1:26 PM."), as a wall-clock time in the machine's zone; give the
 * parser the clock and the zone offset to turn that into an instant.
 */

export interface CodexParserOptions {
  /** Now, in epoch ms, for resolving "Try again at 1:26 PM"; without it only the text is kept. */
  readonly nowMs?: () => number;
  /** The zone the CLI formats times in, minutes east of UTC (the negated `Date#getTimezoneOffset()`). */
  readonly utcOffsetMinutes?: number;
  /**
   * The thread's usage at the end of the run this one resumes. `turn.completed`
   * reports the whole thread's total, earlier `exec` runs included, so a
   * resumed run's own usage is that minus this.
   */
  readonly usageBaseline?: TokenUsage;
}

export class CodexParser extends JsonLinesEventParser {
  readonly agent = 'codex' as const;
  private usage: TokenUsage = ZERO_USAGE;
  private turns = 0;
  private lastText: string | undefined;
  private rateLimitReported = false;

  constructor(private readonly options: CodexParserOptions = {}) {
    super('codex');
  }

  protected eventsOf(line: Record<string, unknown>): AgentRunEvent[] {
    const type = asString(line.type) ?? '(no type)';
    switch (type) {
      case 'thread.started': {
        const threadId = asString(line.thread_id);
        return threadId === undefined ? [{ kind: 'skipped', reason: 'thread.started without a thread_id' }] : [{ kind: 'session', sessionId: threadId }];
      }
      case 'turn.started':
        this.turns++;
        return [{ kind: 'turn-started', turn: this.turns }];
      case 'turn.completed': {
        const raw = asRecord(line.usage);
        // Cached input is part of Codex's input_tokens; Factory counts it apart, as cache reads.
        const cacheRead = tokenCount(raw?.cached_input_tokens);
        const threadTotal: TokenUsage = {
          input: Math.max(0, tokenCount(raw?.input_tokens) - cacheRead),
          output: tokenCount(raw?.output_tokens),
          cacheRead,
          cacheWrite: tokenCount(raw?.cache_write_input_tokens),
        };
        this.usage = subtractUsage(threadTotal, this.options.usageBaseline ?? ZERO_USAGE);
        return [
          { kind: 'usage', total: this.usage },
          { kind: 'turn-completed', turn: this.turns },
          { kind: 'result', ok: true, text: this.lastText, usage: this.usage, turns: this.turns },
        ];
      }
      case 'turn.failed': {
        const message = oneLine(asString(asRecord(line.error)?.message) ?? 'turn failed', 300);
        const events: AgentRunEvent[] = [];
        const limit = this.rateLimitOf(message);
        if (limit) events.push(limit);
        events.push({ kind: 'result', ok: false, failure: { kind: 'turn-failed', message, apiErrorStatus: apiStatusOf(message) }, usage: this.usage, turns: this.turns });
        return events;
      }
      case 'error': {
        const message = oneLine(asString(line.message) ?? 'error', 300);
        return [this.rateLimitOf(message) ?? { kind: 'warning', message }];
      }
      case 'item.started':
      case 'item.updated':
      case 'item.completed':
        return this.item(type, asRecord(line.item));
      default:
        return [{ kind: 'unknown', type }];
    }
  }

  private item(phase: string, item: Record<string, unknown> | undefined): AgentRunEvent[] {
    if (!item) return [{ kind: 'skipped', reason: `${phase} without an item object` }];
    const itemType = asString(item.type) ?? '?';
    const id = asString(item.id);
    const completed = phase === 'item.completed';
    switch (itemType) {
      case 'agent_message': {
        const text = asString(item.text);
        if (!completed || text === undefined) return [];
        this.lastText = text;
        return [{ kind: 'text', text }];
      }
      case 'reasoning':
      case 'todo_list':
        return [];
      case 'command_execution': {
        const summary = oneLine(unwrapShell(asString(item.command) ?? '?'));
        if (phase === 'item.started') return [{ kind: 'tool-call', callId: id, tool: 'shell', summary }];
        if (!completed) return [];
        const exitCode = asFiniteNumber(item.exit_code);
        const output = asString(item.aggregated_output) ?? '';
        return [
          { kind: 'tool-result', callId: id, tool: 'shell', isError: item.status === 'failed' || (exitCode !== undefined && exitCode !== 0), exitCode, summary: oneLine(output || '(no output)') },
        ];
      }
      case 'file_change': {
        if (!completed) return [];
        const paths = (Array.isArray(item.changes) ? item.changes : []).map((change) => asString(asRecord(change)?.path)).filter((path): path is string => path !== undefined);
        return [{ kind: 'tool-call', callId: id, tool: 'file_change', summary: oneLine(paths.join(', ') || '(no paths)') }];
      }
      case 'mcp_tool_call': {
        if (phase !== 'item.started') return [];
        return [{ kind: 'tool-call', callId: id, tool: `${asString(item.server) ?? '?'}.${asString(item.tool) ?? '?'}`, summary: '(mcp)' }];
      }
      case 'web_search':
        return phase === 'item.started' ? [{ kind: 'tool-call', callId: id, tool: 'web_search', summary: oneLine(asString(item.query) ?? '') }] : [];
      case 'error':
        return completed ? [{ kind: 'warning', message: oneLine(asString(item.message) ?? 'error item') }] : [];
      default:
        return [{ kind: 'unknown', type: `item/${itemType}` }];
    }
  }

  private rateLimitOf(message: string): AgentRunEvent | undefined {
    if (!/usage limit|rate limit/i.test(message)) return undefined;
    if (this.rateLimitReported) return { kind: 'warning', message };
    this.rateLimitReported = true;
    const resetText = /try again at ([^.]+(?:\.\d+)?)/i.exec(message)?.[1]?.trim();
    const now = this.options.nowMs?.();
    const resetAtMs = resetText !== undefined && now !== undefined ? resolveWallClockTime(resetText, now, this.options.utcOffsetMinutes ?? 0) : undefined;
    return { kind: 'rate-limited', message, resetText, resetAtMs };
  }
}

/**
 * `/bin/bash -lc 'echo hi'` or `/bin/bash -lc "printf \"x\""` (Codex quotes
 * either way) → the command the model asked for, as a person would read it.
 */
export function unwrapShell(command: string): string {
  const single = /^\S*\b(?:ba|z)?sh -l?c '([\s\S]*)'$/.exec(command);
  if (single?.[1] !== undefined) return single[1].replace(/'\\''/g, "'");
  const double = /^\S*\b(?:ba|z)?sh -l?c "([\s\S]*)"$/.exec(command);
  if (double?.[1] !== undefined) return double[1].replace(/\\([\\"$`])/g, '$1');
  return command;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * Codex's reset text → an instant, read in the zone `utcOffsetMinutes` east of
 * UTC: "2:29 PM" (or "14:29") is the first such time after `nowMs`; "Dec 3rd,
 * 2026 12:29 PM" is that date. Undefined for text it does not recognise (another
 * format or language), so the caller falls back to its own retry delay rather
 * than guessing.
 */
export function resolveWallClockTime(text: string, nowMs: number, utcOffsetMinutes: number): number | undefined {
  const match = /^(?:([A-Za-z]{3})[a-z]*\.? (\d{1,2})(?:st|nd|rd|th)?,? (\d{4}),? )?(\d{1,2}):(\d{2})(?:\s*([AaPp])\.?[Mm]\.?)?$/.exec(text.trim());
  if (!match) return undefined;
  let hours = Number(match[4]);
  const minutes = Number(match[5]);
  const meridiem = match[6]?.toLowerCase();
  if (minutes > 59 || hours > 23 || (meridiem !== undefined && (hours < 1 || hours > 12))) return undefined;
  if (meridiem === 'p' && hours < 12) hours += 12;
  if (meridiem === 'a' && hours === 12) hours = 0;
  const offsetMs = utcOffsetMinutes * 60_000;
  if (match[1] !== undefined) {
    const month = MONTHS.indexOf(match[1].toLowerCase());
    const day = Number(match[2]);
    if (month === -1 || day < 1 || day > 31) return undefined;
    return Date.UTC(Number(match[3]), month, day, hours, minutes) - offsetMs;
  }
  const local = new Date(nowMs + offsetMs);
  let candidate = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate(), hours, minutes) - offsetMs;
  // The CLI rounds down to the minute, so a time up to a minute back still means "now-ish", not tomorrow.
  if (candidate < nowMs - 60_000) candidate += 24 * 60 * 60_000;
  return candidate;
}

function apiStatusOf(message: string): number | undefined {
  const status = /\b(?:status|unexpected status)\s+(\d{3})\b/i.exec(message)?.[1];
  return status === undefined ? undefined : Number(status);
}
