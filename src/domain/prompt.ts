import type { Issue } from './issue.js';
import type { AgentRole } from './run.js';

/** Built-in instruction per well-known role; config `agents.<role>.instruction` adds to it. */
const ROLE_INSTRUCTIONS: Readonly<Record<string, string>> = {
  implementer:
    'You are the implementer. Make the change this issue asks for in the current git worktree, add or update tests, and commit your work on the current branch with a message that names the issue key.',
  reviewer:
    'You are the reviewer. Review the commits on the current branch against the issue. Run the tests. Report problems clearly; fix small ones yourself and commit them on the current branch.',
};

/** A role the factory has no built-in text for is told its name and the shared ground rules; its config instruction says the rest. */
function builtInInstruction(role: AgentRole): string {
  return ROLE_INSTRUCTIONS[role] ?? `You are the ${role} of this team. Work in the current git worktree and commit on the current branch with a message that names the issue key.`;
}

export interface PromptContext {
  readonly issue: Issue;
  readonly role: AgentRole;
  readonly branch: string;
  readonly worktree: string;
  readonly runId: string;
  readonly attempt: number;
  readonly extraInstruction?: string | undefined;
}

export function renderPrompt(context: PromptContext): string {
  const { issue, role } = context;
  const instruction = [builtInInstruction(role), context.extraInstruction].filter(Boolean).join('\n');
  return [
    `Issue ${issue.key}: ${issue.title}`,
    '',
    issue.body.trim(),
    '',
    `Labels: ${issue.labels.join(', ') || '(none)'}`,
    `Branch: ${context.branch}`,
    `Attempt: ${context.attempt}`,
    '',
    instruction,
  ].join('\n');
}

/**
 * Renders `{{name}}` placeholders in one argv element. Each element stays one
 * argument (no shell), so issue text can never inject a command. Unknown
 * placeholders are left as they are, which makes a typo visible in the log.
 */
export function renderArgument(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{\s*([a-zA-Z]+)\s*\}\}/g, (whole, name: string) => values[name] ?? whole);
}

export function placeholderValues(context: PromptContext): Record<string, string> {
  return {
    prompt: renderPrompt(context),
    issueKey: context.issue.key,
    title: context.issue.title,
    body: context.issue.body,
    branch: context.branch,
    worktree: context.worktree,
    role: context.role,
    runId: context.runId,
    attempt: String(context.attempt),
  };
}
