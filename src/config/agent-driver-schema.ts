import { z } from 'zod';
import {
  AGENT_DRIVERS,
  CLAUDE_CODE_PERMISSION_MODES,
  CODEX_APPROVAL_POLICIES,
  CODEX_SANDBOX_MODES,
  DEFAULT_DRIVER_EXECUTABLE,
  tomlValue,
  type AgentDriverSpec,
} from '../domain/agent-events/agent-driver.js';

/**
 * `agents.<role>.driver` and its options (docs/agents.md). With a CLI driver,
 * `command` is optional and names the executable (default `claude` /
 * `codex`); Factory adds the driver's arguments and the prompt itself.
 */

const nonEmpty = z.string().min(1, 'expected a non-empty string');
const tomlKey = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a dotted config key such as "model_reasoning_effort" or "model_providers.local"');

const claudeCodeOptions = z
  .object({
    model: nonEmpty.optional(),
    maxTurns: z.number().int('expected a whole number of turns').min(1).max(10_000).optional(),
    /** Tools that run without asking, e.g. ["Bash(git commit:*)", "Edit"]; a tool outside them is denied and fails the run. */
    allowedTools: z.array(nonEmpty).optional(),
    permissionMode: z.enum(CLAUDE_CODE_PERMISSION_MODES).optional(),
  })
  .strict();

const codexOptions = z
  .object({
    model: nonEmpty.optional(),
    /** `-c key=value` overrides, values as JSON (strings, numbers, booleans, arrays, tables): written as TOML for the CLI. */
    config: z.record(tomlKey, z.union([z.string(), z.number(), z.boolean(), z.array(z.unknown()), z.record(z.unknown())])).optional(),
    sandbox: z.enum(CODEX_SANDBOX_MODES).optional(),
    approvalPolicy: z.enum(CODEX_APPROVAL_POLICIES).optional(),
    bypassApprovalsAndSandbox: z.boolean().optional(),
  })
  .strict();

export const agentDriverFields = {
  /** `command` (default): run `command` as is, judged by its exit code. `claude-code`, `codex`: Factory runs the CLI and reads its event stream. */
  driver: z.enum(AGENT_DRIVERS).default('command'),
  claudeCode: claudeCodeOptions.optional(),
  codex: codexOptions.optional(),
};

interface DriverFields {
  readonly command?: readonly string[] | undefined;
  readonly driver: (typeof AGENT_DRIVERS)[number];
  readonly claudeCode?: z.infer<typeof claudeCodeOptions> | undefined;
  readonly codex?: z.infer<typeof codexOptions> | undefined;
}

/** A command agent needs its command; options belong to their own driver only (a misplaced block is a mistake, not a no-op). */
export function checkAgentDriver(agent: DriverFields, ctx: z.RefinementCtx): void {
  if (agent.driver === 'command' && agent.command === undefined) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['command'],
      message: 'expected a command as a non-empty array of strings, e.g. ["claude", "-p", "{{prompt}}"], or a driver ("claude-code", "codex")',
    });
  }
  if (agent.claudeCode !== undefined && agent.driver !== 'claude-code') {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['claudeCode'], message: `expected claudeCode options only with "driver": "claude-code" (driver is "${agent.driver}")` });
  }
  if (agent.codex !== undefined && agent.driver !== 'codex') {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['codex'], message: `expected codex options only with "driver": "codex" (driver is "${agent.driver}")` });
  }
}

/** The agent with its driver compiled: `driver` becomes the spec the team run uses, `command` the executable for a CLI driver. */
export function compileAgentDriver<T extends DriverFields>(agent: T): { [K in Exclude<keyof T, keyof DriverFields>]: T[K] } & { command: string[]; driver: AgentDriverSpec } {
  const { driver, claudeCode, codex, command, ...rest } = agent;
  if (driver === 'command') return { ...rest, command: [...(command ?? [])], driver: { kind: 'command' } };
  if (driver === 'claude-code') return { ...rest, command: command ? [...command] : [DEFAULT_DRIVER_EXECUTABLE[driver]], driver: { kind: 'claude-code', options: claudeCode ?? {} } };
  const { config, ...options } = codex ?? {};
  return {
    ...rest,
    command: command ? [...command] : [DEFAULT_DRIVER_EXECUTABLE[driver]],
    driver: { kind: 'codex', options: { ...options, ...(config ? { config: Object.entries(config).map(([key, value]) => [key, tomlValue(value)] as const) } : {}) } },
  };
}
