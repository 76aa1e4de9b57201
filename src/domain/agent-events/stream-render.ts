import { ClaudeCodeParser } from './claude-code-parser.js';
import { CodexParser } from './codex-parser.js';
import { parseJsonObjectLine, type AgentEventParser, type AgentRunEvent } from './run-events.js';
import { totalTokens } from './usage-ledger.js';

/**
 * A CLI driver's run log made readable (`factory logs`): its JSON lines
 * become one short line per thing that happened (a turn, a tool call and its
 * result, a message, the result with its usage); lines that are not an
 * agent's JSON (Factory's header, the agent's stderr) pass through unchanged.
 * Which CLI wrote the log is told by its first event.
 */
export class AgentStreamRenderer {
  #parser: AgentEventParser | undefined;

  /** The readable lines for one log line (none for bookkeeping events such as running usage totals). */
  render(line: string): string[] {
    const parsed = parseJsonObjectLine(line);
    if (!parsed.ok) return [line];
    this.#parser ??= parserFor(parsed.value.type);
    if (!this.#parser) return [line];
    return this.#parser.parseLine(line).flatMap(describe);
  }
}

function parserFor(type: unknown): AgentEventParser | undefined {
  if (type === 'system' || type === 'assistant' || type === 'user' || type === 'result' || type === 'stream_event') return new ClaudeCodeParser();
  if (typeof type === 'string' && /^(thread|turn|item)\.|^error$/.test(type)) return new CodexParser();
  return undefined;
}

function describe(event: AgentRunEvent): string[] {
  switch (event.kind) {
    case 'session':
      return [`● session ${event.sessionId}${event.model ? ` (${event.model})` : ''}`];
    case 'turn-started':
      return [`── turn ${event.turn}`];
    case 'text':
      return event.text.split('\n').map((line, i) => (i === 0 ? `» ${line}` : `  ${line}`));
    case 'tool-call':
      return [`$ ${event.tool}: ${event.summary}`];
    case 'tool-result':
      return [`  ↳ ${event.isError ? `error${event.exitCode !== undefined ? ` (exit ${event.exitCode})` : ''}` : 'ok'}: ${event.summary}`];
    case 'approval-needed':
      return [`! needs approval for ${event.tool}: ${event.summary}`];
    case 'rate-limited':
      return [`! rate limited: ${event.message}${event.resetText ? ` (resets ${event.resetText})` : ''}`];
    case 'warning':
      return [`! ${event.message}`];
    case 'result': {
      const figures = `${event.turns} turn(s), ${totalTokens(event.usage)} tokens${event.costUsd !== undefined ? `, $${event.costUsd.toFixed(4)}` : ''}`;
      return [event.ok ? `✔ done: ${figures}` : `✖ ${event.failure?.kind ?? 'failed'}: ${event.failure?.message ?? ''} (${figures})`];
    }
    case 'turn-completed':
    case 'usage':
    case 'unknown':
    case 'skipped':
      return [];
  }
}
