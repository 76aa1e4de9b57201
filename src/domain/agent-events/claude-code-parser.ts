import { asFiniteNumber, asRecord, asString, JsonLinesEventParser, oneLine, type AgentFailure, type AgentRunEvent } from './run-events.js';
import { addUsage, maxUsage, sameUsage, tokenCount, ZERO_USAGE, type TokenUsage } from './usage-ledger.js';

/**
 * Claude Code's `-p --output-format stream-json --verbose` stream → run events.
 *
 * What the stream looks like (2.1.x, see test/fixtures/transcripts/claude-code-*.jsonl):
 * `system/init` names the session; each content block of a model message comes
 * as its own `assistant` event repeating that message's id and usage (taken at
 * message_start, so output tokens read 1 there); `user` events carry tool
 * results; `result` closes the run with the exact totals, the cost, `is_error`
 * and `api_error_status`. An API error appears as a synthetic `assistant`
 * message (`is_api_error_message`) followed by an error result.
 *
 * Usage is counted once per message id (field-wise max over its repeats) while
 * the run goes, improved by `stream_event` message_delta figures when the CLI
 * runs with `--include-partial-messages`, and replaced by the result's totals,
 * which are the CLI's own exact sum.
 */
export class ClaudeCodeParser extends JsonLinesEventParser {
  readonly agent = 'claude-code' as const;
  private readonly usageByMessage = new Map<string, TokenUsage>();
  private readonly toolNames = new Map<string, string>();
  /** Each tool call's summary by id, for naming a denied call. */
  private readonly toolCalls = new Map<string, string>();
  /** Tool calls already reported denied (the result lists them again). */
  private readonly deniedCalls = new Set<string>();
  private runningTotal: TokenUsage = ZERO_USAGE;
  private turns = 0;
  /** The message whose raw stream events are arriving (partial-messages mode). */
  private streamingMessageId: string | undefined;
  private rateLimitReported = false;

  constructor() {
    super('claude-code');
  }

  protected eventsOf(line: Record<string, unknown>): AgentRunEvent[] {
    const type = asString(line.type) ?? '(no type)';
    switch (type) {
      case 'system':
        return this.system(line);
      case 'assistant':
        return this.assistant(line);
      case 'user':
        return this.user(line);
      case 'result':
        return this.result(line);
      case 'stream_event':
        return this.streamEvent(line);
      case 'rate_limit_event':
        return this.rateLimitEvent(line);
      default:
        return [{ kind: 'unknown', type }];
    }
  }

  private system(line: Record<string, unknown>): AgentRunEvent[] {
    const sessionId = asString(line.session_id);
    if (line.subtype === 'init' && sessionId !== undefined) {
      return [{ kind: 'session', sessionId, model: asString(line.model), cliVersion: asString(line.claude_code_version) }];
    }
    if (line.subtype === 'permission_denied') {
      // Said the moment the tool is refused, so a driver can stop the run then instead of at its result.
      const callId = asString(line.tool_use_id);
      if (callId !== undefined) this.deniedCalls.add(callId);
      const tool = asString(line.tool_name) ?? '?';
      const call = callId === undefined ? undefined : this.toolCalls.get(callId);
      return [{ kind: 'approval-needed', tool, summary: call ?? oneLine(asString(line.message) ?? '(no detail)') }];
    }
    return [{ kind: 'unknown', type: `system/${asString(line.subtype) ?? '?'}` }];
  }

  private assistant(line: Record<string, unknown>): AgentRunEvent[] {
    const message = asRecord(line.message);
    if (!message) return [{ kind: 'skipped', reason: 'assistant event without a message object' }];
    const events: AgentRunEvent[] = [];
    const content = Array.isArray(message.content) ? message.content : [];
    if (line.is_api_error_message === true) {
      // A synthetic message the CLI writes for a failed API call: the text is the error, not model output.
      const status = asFiniteNumber(line.api_error_status);
      const text = content.map((block) => asString(asRecord(block)?.text) ?? '').join(' ');
      if (status === 429 || line.error === 'rate_limit') events.push(this.rateLimited(text));
      else events.push({ kind: 'warning', message: oneLine(text || `API error ${status ?? ''}`) });
      return events;
    }
    const messageId = asString(message.id);
    if (messageId !== undefined && !this.usageByMessage.has(messageId)) {
      this.turns++;
      events.push({ kind: 'turn-started', turn: this.turns });
    }
    for (const raw of content) {
      const block = asRecord(raw);
      if (!block) continue;
      if (block.type === 'text' && typeof block.text === 'string' && block.text.length > 0) events.push({ kind: 'text', text: block.text });
      if (block.type === 'tool_use') {
        const tool = asString(block.name) ?? '?';
        const callId = asString(block.id);
        const summary = summarizeToolInput(tool, block.input);
        if (callId !== undefined) {
          this.toolNames.set(callId, tool);
          this.toolCalls.set(callId, summary);
        }
        events.push({ kind: 'tool-call', callId, tool, summary });
      }
    }
    if (messageId !== undefined) events.push(...this.recordMessageUsage(messageId, usageOf(message.usage)));
    return events;
  }

  private user(line: Record<string, unknown>): AgentRunEvent[] {
    const content = asRecord(line.message)?.content;
    if (!Array.isArray(content)) return [];
    const events: AgentRunEvent[] = [];
    for (const raw of content) {
      const block = asRecord(raw);
      if (block?.type !== 'tool_result') continue;
      const callId = asString(block.tool_use_id);
      events.push({
        kind: 'tool-result',
        callId,
        tool: callId === undefined ? undefined : this.toolNames.get(callId),
        isError: block.is_error === true,
        summary: oneLine(toolResultText(block.content) || '(no output)'),
      });
    }
    return events;
  }

  private result(line: Record<string, unknown>): AgentRunEvent[] {
    const events: AgentRunEvent[] = [];
    for (const raw of Array.isArray(line.permission_denials) ? line.permission_denials : []) {
      const denial = asRecord(raw);
      const callId = asString(denial?.tool_use_id);
      if (callId !== undefined && this.deniedCalls.has(callId)) continue;
      const tool = asString(denial?.tool_name) ?? '?';
      events.push({ kind: 'approval-needed', tool, summary: summarizeToolInput(tool, denial?.tool_input) });
    }
    const apiErrorStatus = asFiniteNumber(line.api_error_status);
    const subtype = asString(line.subtype) ?? '';
    const text = asString(line.result);
    const isError = line.is_error === true || (subtype !== '' && subtype !== 'success');
    let failure: AgentFailure | undefined;
    if (isError) {
      const errors = Array.isArray(line.errors) ? line.errors.filter((e): e is string => typeof e === 'string') : [];
      const message = oneLine(text ?? errors[0] ?? subtype ?? 'error result', 300);
      if (subtype === 'error_max_turns') failure = { kind: 'max-turns', message };
      else if (apiErrorStatus !== undefined) failure = { kind: 'api-error', message, apiErrorStatus };
      else failure = { kind: 'error-result', message };
      if (apiErrorStatus === 429 && !this.rateLimitReported) events.push(this.rateLimited(message));
    }
    // The result's usage is the CLI's exact total; without one, what the messages said stands.
    const reported = asRecord(line.usage);
    const total = reported ? usageOf(reported) : this.runningTotal;
    if (!sameUsage(total, this.runningTotal)) {
      this.runningTotal = total;
      events.push({ kind: 'usage', total });
    }
    const turns = asFiniteNumber(line.num_turns);
    events.push({
      kind: 'result',
      ok: !isError,
      failure,
      text,
      costUsd: asFiniteNumber(line.total_cost_usd),
      usage: total,
      turns: turns !== undefined && turns >= 0 ? Math.floor(turns) : this.turns,
      durationMs: asFiniteNumber(line.duration_ms),
    });
    return events;
  }

  /** Raw API stream events (`--include-partial-messages`): exact per-message usage as it arrives. */
  private streamEvent(line: Record<string, unknown>): AgentRunEvent[] {
    const event = asRecord(line.event);
    if (event?.type === 'message_start') {
      const message = asRecord(event.message);
      this.streamingMessageId = asString(message?.id);
      if (this.streamingMessageId === undefined) return [];
      const events: AgentRunEvent[] = [];
      if (!this.usageByMessage.has(this.streamingMessageId)) {
        this.turns++;
        events.push({ kind: 'turn-started', turn: this.turns });
      }
      events.push(...this.recordMessageUsage(this.streamingMessageId, usageOf(message?.usage)));
      return events;
    }
    if (event?.type === 'message_delta' && this.streamingMessageId !== undefined) {
      const before = this.usageByMessage.get(this.streamingMessageId) ?? ZERO_USAGE;
      const usage = asRecord(event.usage);
      return this.recordMessageUsage(this.streamingMessageId, { ...before, output: tokenCount(usage?.output_tokens) });
    }
    return [];
  }

  private rateLimitEvent(line: Record<string, unknown>): AgentRunEvent[] {
    const info = asRecord(line.rate_limit_info);
    const status = asString(info?.status);
    const resetsAt = asFiniteNumber(info?.resetsAt);
    if (status === 'rejected') {
      this.rateLimitReported = true;
      const limit = asString(info?.rateLimitType) ?? 'usage';
      return [{ kind: 'rate-limited', message: `${limit} limit reached`, resetAtMs: resetsAt === undefined ? undefined : resetsAt * 1000 }];
    }
    if (status === 'allowed_warning') return [{ kind: 'warning', message: `approaching the ${asString(info?.rateLimitType) ?? 'usage'} limit` }];
    return [];
  }

  private rateLimited(message: string): AgentRunEvent {
    this.rateLimitReported = true;
    return { kind: 'rate-limited', message: oneLine(message || 'rate limited') };
  }

  private recordMessageUsage(messageId: string, usage: TokenUsage): AgentRunEvent[] {
    const before = this.usageByMessage.get(messageId);
    const merged = before ? maxUsage(before, usage) : usage;
    this.usageByMessage.set(messageId, merged);
    if (before && sameUsage(before, merged)) return [];
    let total = ZERO_USAGE;
    for (const each of this.usageByMessage.values()) total = addUsage(total, each);
    if (sameUsage(total, this.runningTotal)) return [];
    this.runningTotal = total;
    return [{ kind: 'usage', total }];
  }
}

function usageOf(raw: unknown): TokenUsage {
  const usage = asRecord(raw);
  return {
    input: tokenCount(usage?.input_tokens),
    output: tokenCount(usage?.output_tokens),
    cacheRead: tokenCount(usage?.cache_read_input_tokens),
    cacheWrite: tokenCount(usage?.cache_creation_input_tokens),
  };
}

/** The one thing a person wants to see of a tool call: the command, the file, the pattern. */
export function summarizeToolInput(tool: string, input: unknown): string {
  const fields = asRecord(input) ?? {};
  const pick = (...names: string[]): string | undefined => names.map((name) => asString(fields[name])).find((value) => value !== undefined && value.length > 0);
  const main = tool === 'Bash' ? pick('command') : pick('file_path', 'notebook_path', 'path', 'pattern', 'url', 'query', 'description', 'prompt', 'command');
  if (main !== undefined) return oneLine(main);
  const keys = Object.keys(fields);
  return keys.length === 0 ? '(no input)' : oneLine(`{${keys.slice(0, 5).join(', ')}}`);
}

function toolResultText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((part) => asString(asRecord(part)?.text) ?? '').join(' ');
}
