import type { AgentKind, AgentRunSnapshot } from './run-events.js';
import type { AgentRunVerdict } from './run-verdict.js';
import type { TokenUsage } from './usage-ledger.js';

/**
 * How an agent is run, as configured under `agents.<role>.driver`: an opaque
 * `command` judged by its exit code (the default), or a CLI Factory
 * understands (Claude Code, Codex): it builds the command line, reads the
 * agent's JSON event stream as it grows and judges the run by what the agent
 * reported, not by its exit code.
 */

export const AGENT_DRIVERS = ['command', 'claude-code', 'codex'] as const;
export type AgentDriverName = (typeof AGENT_DRIVERS)[number];

export const CLAUDE_CODE_PERMISSION_MODES = ['default', 'acceptEdits', 'bypassPermissions', 'plan'] as const;
export type ClaudeCodePermissionMode = (typeof CLAUDE_CODE_PERMISSION_MODES)[number];
export const CODEX_SANDBOX_MODES = ['read-only', 'workspace-write', 'danger-full-access'] as const;
export type CodexSandboxMode = (typeof CODEX_SANDBOX_MODES)[number];
export const CODEX_APPROVAL_POLICIES = ['never', 'on-request', 'on-failure'] as const;
export type CodexApprovalPolicy = (typeof CODEX_APPROVAL_POLICIES)[number];

export interface ClaudeCodeDriverOptions {
  readonly model?: string | undefined;
  readonly maxTurns?: number | undefined;
  /** Tool rules that run without asking (`Bash`, `Bash(git commit:*)`, `Edit`). Anything else is denied: the run fails with the tool named. */
  readonly allowedTools?: readonly string[] | undefined;
  readonly permissionMode?: ClaudeCodePermissionMode | undefined;
}

export interface CodexDriverOptions {
  readonly model?: string | undefined;
  /** `-c key=value` overrides in order, each value already TOML (see tomlValue). */
  readonly config?: readonly (readonly [key: string, tomlValue: string])[] | undefined;
  readonly sandbox?: CodexSandboxMode | undefined;
  readonly approvalPolicy?: CodexApprovalPolicy | undefined;
  /** No sandbox and no approvals: only where the run is already isolated (a container, a VM). */
  readonly bypassApprovalsAndSandbox?: boolean | undefined;
}

/** A driver Factory reads the stream of. */
export type CliDriverSpec = { readonly kind: 'claude-code'; readonly options: ClaudeCodeDriverOptions } | { readonly kind: 'codex'; readonly options: CodexDriverOptions };

export type AgentDriverSpec = { readonly kind: 'command' } | CliDriverSpec;

/** The executable a CLI driver runs when `command` is not configured. */
export const DEFAULT_DRIVER_EXECUTABLE: Readonly<Record<CliDriverSpec['kind'], string>> = { 'claude-code': 'claude', codex: 'codex' };

/** A JSON value from the config as the TOML value Codex's `-c key=value` expects (strings quoted, tables inline). */
export function tomlValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value)
      .map(([key, inner]) => `${/^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key)}=${tomlValue(inner)}`)
      .join(',')}}`;
  }
  throw new RangeError(`cannot write ${String(value)} as a TOML value`);
}

/** What a running agent is doing, from its stream: the state API, the dashboard and budgets read this. */
export interface AgentActivitySummary {
  readonly driver: AgentKind;
  readonly sessionId?: string;
  readonly model?: string;
  readonly turns: number;
  readonly usage: TokenUsage;
  readonly costUsd?: number;
  readonly toolCalls: number;
  /** The last tool call or message: `Bash: git commit -m …`, or the text. */
  readonly lastActivity?: { readonly kind: 'tool-call' | 'text'; readonly summary: string };
  /** Events parsed so far (stall detection counts these, not raw bytes). */
  readonly events: number;
}

/** A finished driver run: its figures and what it meant. */
export interface AgentRunReport extends AgentActivitySummary {
  readonly verdict: AgentRunVerdict['verdict'];
  /** Why it is not `succeeded`, in words a person can act on. */
  readonly reason?: string;
  /** When a usage or rate limit lifts, if the agent said (for parking and resuming). */
  readonly resetAtMs?: number;
}

export function summarizeActivity(snapshot: AgentRunSnapshot): AgentActivitySummary {
  return {
    driver: snapshot.agent,
    ...(snapshot.sessionId !== undefined ? { sessionId: snapshot.sessionId } : {}),
    ...(snapshot.model !== undefined ? { model: snapshot.model } : {}),
    turns: snapshot.turns,
    usage: snapshot.usage,
    ...(snapshot.costUsd !== undefined ? { costUsd: snapshot.costUsd } : {}),
    toolCalls: snapshot.toolCalls,
    ...(snapshot.lastActivity !== undefined ? { lastActivity: snapshot.lastActivity } : {}),
    events: snapshot.events,
  };
}

export function reportAgentRun(snapshot: AgentRunSnapshot, verdict: AgentRunVerdict): AgentRunReport {
  return {
    ...summarizeActivity(snapshot),
    verdict: verdict.verdict,
    ...(verdict.verdict !== 'succeeded' ? { reason: verdict.reason } : {}),
    ...(verdict.verdict === 'rate-limited' && verdict.resetAtMs !== undefined ? { resetAtMs: verdict.resetAtMs } : {}),
  };
}
