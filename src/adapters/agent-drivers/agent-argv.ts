/**
 * The command lines Factory runs each agent CLI with (argv after the binary),
 * as pure functions of the driver's options so they are tested without
 * spawning anything. Checked against `--help` of the pinned versions
 * (src/dev/agent-clis.ts). Prompts go last as one argument, never through
 * a shell.
 */

import type { ClaudeCodePermissionMode, CodexApprovalPolicy, CodexSandboxMode } from '../../domain/agent-events/agent-driver.js';

export type { ClaudeCodePermissionMode, CodexApprovalPolicy, CodexSandboxMode };

export interface ClaudeCodeArgvOptions {
  readonly prompt: string;
  readonly model?: string;
  readonly maxTurns?: number;
  /** `--allowedTools`: tool rules that run without asking, e.g. `Bash(git commit:*)`, `Edit`. */
  readonly allowedTools?: readonly string[];
  readonly permissionMode?: ClaudeCodePermissionMode;
  /** Continue this session (the `session_id` of an earlier run) instead of starting one. */
  readonly resumeSessionId?: string;
  /** Raw stream events: exact per-message usage while the run goes (more lines to parse). */
  readonly includePartialMessages?: boolean;
}

export function claudeCodeArgv(options: ClaudeCodeArgvOptions): string[] {
  const argv = ['-p', '--output-format', 'stream-json', '--verbose'];
  if (options.model !== undefined) argv.push('--model', options.model);
  if (options.maxTurns !== undefined) argv.push('--max-turns', String(positiveInteger('maxTurns', options.maxTurns)));
  // One argument per rule: the flag takes a variadic list, and a rule may contain spaces.
  if (options.allowedTools !== undefined && options.allowedTools.length > 0) argv.push('--allowedTools', ...options.allowedTools);
  if (options.permissionMode !== undefined) argv.push('--permission-mode', options.permissionMode);
  if (options.resumeSessionId !== undefined) argv.push('--resume', options.resumeSessionId);
  if (options.includePartialMessages) argv.push('--include-partial-messages');
  // The prompt last, after `--`: it ends the variadic --allowedTools list, and a prompt starting with a dash stays a prompt.
  argv.push('--', options.prompt);
  return argv;
}

export interface CodexArgvOptions {
  readonly prompt: string;
  readonly model?: string;
  /** `-c key=value` overrides, value in TOML (`'"o3"'`, `'true'`, `'{name="x"}'`), in this order. */
  readonly config?: readonly (readonly [key: string, tomlValue: string])[];
  readonly sandbox?: CodexSandboxMode;
  readonly approvalPolicy?: CodexApprovalPolicy;
  /** No sandbox and no approvals: only where the run is already isolated. */
  readonly bypassApprovalsAndSandbox?: boolean;
  /** Continue this thread (the `thread_id` of an earlier run): `codex exec resume <thread>`. */
  readonly resumeThreadId?: string;
}

export function codexArgv(options: CodexArgvOptions): string[] {
  const argv = options.resumeThreadId === undefined ? ['exec', '--json'] : ['exec', 'resume', '--json'];
  if (options.model !== undefined) argv.push('-m', options.model);
  for (const [key, value] of options.config ?? []) {
    if (!/^[A-Za-z0-9_.-]+$/.test(key)) throw new RangeError(`codex config key "${key}" is not a dotted TOML path`);
    argv.push('-c', `${key}=${value}`);
  }
  // `exec resume` has no --sandbox flag; the config key works for both forms.
  if (options.sandbox !== undefined) argv.push('-c', `sandbox_mode="${options.sandbox}"`);
  if (options.approvalPolicy !== undefined) argv.push('-c', `approval_policy="${options.approvalPolicy}"`);
  if (options.bypassApprovalsAndSandbox) argv.push('--dangerously-bypass-approvals-and-sandbox');
  if (options.resumeThreadId !== undefined) argv.push(options.resumeThreadId);
  // `--` so a prompt starting with a dash is not read as a flag.
  argv.push('--', options.prompt);
  return argv;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
