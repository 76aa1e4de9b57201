import { join } from 'node:path';
import { envPassthroughFor } from './env-passthrough.js';
import type { Issue } from './issue.js';
import { reviewCommentsSection, verdictInstruction } from './review.js';
import type { AgentRole } from './run.js';

/** Built-in instruction per well-known role; config `agents.<role>.instruction` adds to it. */
const ROLE_INSTRUCTIONS: Readonly<Record<string, string>> = {
  implementer:
    'You are the implementer. Make the change this issue asks for in the current git worktree, add or update tests, and commit your work on the current branch with a message that names the issue key.',
  reviewer: 'You are the reviewer. Review the commits on the current branch against the issue. Run the tests. Report problems clearly; fix small ones yourself and commit them on the current branch.',
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
  /** Set when the agent's stage is in a review loop (domain/review.ts). */
  readonly review?: AgentReviewContext | undefined;
}

/** An agent's part in a review round. */
export interface AgentReviewContext {
  /** 1 for the first pass; 2 and on after a reviewer requested changes. */
  readonly round: number;
  /** Set for a reviewer: where it writes its verdict (outside the worktree). */
  readonly verdictFile?: string | undefined;
  /** The comments of the review that sent the team back, from round 2 on. */
  readonly comments?: string | undefined;
}

export function renderPrompt(context: PromptContext): string {
  const { issue, role, review } = context;
  const reviewSections = [review?.comments === undefined ? undefined : reviewCommentsSection(review.round, review.comments), review?.verdictFile === undefined ? undefined : verdictInstruction()];
  const instruction = [builtInInstruction(role), context.extraInstruction, ...reviewSections].filter(Boolean).join('\n');
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

/** `{{ name }}` in an argv element. */
const PLACEHOLDER_PATTERN = /\{\{\s*([a-zA-Z]+)\s*\}\}/g;

/**
 * Renders `{{name}}` placeholders in one argv element. Each element stays one
 * argument (no shell), so issue text can never inject a command, as long as
 * no shell parses the argument: findPlaceholdersInScripts finds those that
 * would be, and the config refuses them. Unknown placeholders are left as
 * they are, which makes a typo visible in the log.
 */
export function renderArgument(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(PLACEHOLDER_PATTERN, (whole, name: string) => values[name] ?? whole);
}

/** Every placeholder an agent command may use, and where a script finds the same value instead. */
export const PLACEHOLDER_ENVIRONMENT = {
  prompt: 'FACTORY_PROMPT_FILE',
  issueKey: 'FACTORY_ISSUE_KEY',
  title: 'FACTORY_ISSUE_TITLE',
  body: 'FACTORY_ISSUE_BODY_FILE',
  branch: 'FACTORY_BRANCH',
  worktree: 'PWD',
  role: 'FACTORY_AGENT_ROLE',
  runId: 'FACTORY_RUN_ID',
  attempt: 'FACTORY_ATTEMPT',
} as const;

export type PlaceholderName = keyof typeof PLACEHOLDER_ENVIRONMENT;

export function placeholderValues(context: PromptContext): Record<PlaceholderName, string> {
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

// ---------------------------------------------------------------------------
// Placeholders inside scripts. `["sh", "-c", "echo {{title}}"]` hands the
// title to a shell as code: a title `$(touch /tmp/x)` runs. The argv rule
// ("each element is one argument") cannot help once a program parses an
// argument as code, so such commands are refused at config validation.

/** Shells whose `-c` (alone or in a cluster such as `-lc`) makes the first operand a script. */
const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'ash', 'yash', 'fish', 'busybox']);
/** Shell options that take the next argument as their value (`-o pipefail`, `--rcfile FILE`). */
const SHELL_OPTIONS_WITH_VALUE = new Set(['-o', '+o', '-O', '+O', '--rcfile', '--init-file']);
/** Interpreters whose code comes as the argument after one of these flags. */
const INTERPRETER_CODE_FLAGS: readonly { readonly name: RegExp; readonly flags: ReadonlySet<string> }[] = [
  { name: /^(?:python|pypy)[0-9.]*$/, flags: new Set(['-c']) },
  { name: /^(?:node|nodejs|bun)$/, flags: new Set(['-e', '--eval', '-p', '--print']) },
  { name: /^perl[0-9.]*$/, flags: new Set(['-e', '-E']) },
  { name: /^ruby[0-9.]*$/, flags: new Set(['-e']) },
  { name: /^(?:php[0-9.]*)$/, flags: new Set(['-r']) },
];

export interface PlaceholderInScript {
  /** Index in argv of the script argument. */
  readonly index: number;
  /** The shell or interpreter that parses it, by base name. */
  readonly program: string;
  /** Known placeholders in it, each once, in order of appearance. */
  readonly placeholders: readonly PlaceholderName[];
}

/**
 * Script arguments of argv that hold known placeholders. A shell or
 * interpreter is recognised anywhere in argv by its base name, so it is found
 * behind `env`, `timeout`, `nice` or an absolute path alike; `env -S` strings
 * are command lines too.
 */
export function findPlaceholdersInScripts(argv: readonly string[]): PlaceholderInScript[] {
  const found: PlaceholderInScript[] = [];
  const note = (index: number, program: string): void => {
    const placeholders = knownPlaceholdersIn(argv[index] ?? '');
    if (placeholders.length > 0 && !found.some((entry) => entry.index === index)) found.push({ index, program, placeholders });
  };
  argv.forEach((arg, index) => {
    const program = arg.slice(arg.lastIndexOf('/') + 1);
    if (program === 'env') {
      const split = envSplitStringIndex(argv, index);
      if (split !== undefined) note(split, 'env -S');
    }
    if (SHELLS.has(program)) {
      const script = shellScriptIndex(argv, index);
      if (script !== undefined) note(script, program);
    }
    const interpreter = INTERPRETER_CODE_FLAGS.find((entry) => entry.name.test(program));
    if (interpreter !== undefined) {
      for (let at = index + 1; at < argv.length; at++) {
        const option = argv[at] ?? '';
        const inline = option.match(/^(--[a-z]+)=/);
        if (inline && interpreter.flags.has(inline[1] as string)) note(at, program);
        if (interpreter.flags.has(option)) note(at + 1, program);
        if (!option.startsWith('-')) break;
      }
    }
  });
  return found.sort((a, b) => a.index - b.index);
}

/** The argv index of the script when the shell at `shellIndex` is given `-c`; undefined for a script file or stdin. */
function shellScriptIndex(argv: readonly string[], shellIndex: number): number | undefined {
  let sawCommandFlag = false;
  for (let at = shellIndex + 1; at < argv.length; at++) {
    const arg = argv[at] ?? '';
    if (arg === '--' || arg === '-') return sawCommandFlag ? at + 1 : undefined;
    if (SHELL_OPTIONS_WITH_VALUE.has(arg)) {
      at++;
      continue;
    }
    if (arg.startsWith('--')) continue;
    if (/^[-+][A-Za-z]+$/.test(arg)) {
      if (arg.startsWith('-') && arg.includes('c')) sawCommandFlag = true;
      continue;
    }
    return sawCommandFlag ? at : undefined;
  }
  return undefined;
}

/** The argv index of an `env -S STRING` / `--split-string=STRING` command line, if any. */
function envSplitStringIndex(argv: readonly string[], envIndex: number): number | undefined {
  for (let at = envIndex + 1; at < argv.length; at++) {
    const arg = argv[at] ?? '';
    if (arg === '-S' || arg === '--split-string') return at + 1;
    if (arg.startsWith('-S') || arg.startsWith('--split-string=')) return at;
    if (arg === '-u' || arg === '-C' || arg === '--unset' || arg === '--chdir') {
      at++;
      continue;
    }
    if (!arg.startsWith('-') && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(arg)) return undefined;
  }
  return undefined;
}

function knownPlaceholdersIn(text: string): PlaceholderName[] {
  const names: PlaceholderName[] = [];
  for (const match of text.matchAll(PLACEHOLDER_PATTERN)) {
    const name = match[1] as string;
    if (Object.hasOwn(PLACEHOLDER_ENVIRONMENT, name) && !names.includes(name as PlaceholderName)) names.push(name as PlaceholderName);
  }
  return names;
}

/** What to write instead, per placeholder: a quoted variable, or a file to read for the long texts. */
export function describeScriptPlaceholderFix(placeholders: readonly PlaceholderName[]): string {
  const uses = placeholders.map((name) => {
    const variable = PLACEHOLDER_ENVIRONMENT[name];
    return name === 'body' || name === 'prompt' ? `{{${name}}} -> "$(cat "$${variable}")" (${variable} names a file)` : `{{${name}}} -> "$${variable}"`;
  });
  return `issue text would be read as code; use the environment instead, double-quoted: ${uses.join(', ')}`;
}

// ---------------------------------------------------------------------------
// The environment an agent gets from its team (the fleet adds its identity
// variables, and the allowed part of the daemon's own environment).

export interface AgentEnvironmentInput {
  readonly context: PromptContext;
  /** `agents.<role>.env` from the config. */
  readonly configEnv: Readonly<Record<string, string>>;
  /** `agents.<role>.envPassthrough` from the config: added to the default allowlist. */
  readonly configEnvPassthrough?: readonly string[] | undefined;
  /** Where the agent's files go: outside the worktree (the run's log folder), so they are never committed. */
  readonly filesDir: string;
  /** Names this agent's files apart from its teammates' and earlier attempts', e.g. `<runId>-<slot>`. */
  readonly fileStem: string;
}

export interface AgentFile {
  readonly path: string;
  readonly content: string;
}

export interface AgentEnvironment {
  readonly env: Readonly<Record<string, string>>;
  /** Written (readable by the daemon's user only) before the agent starts. */
  readonly files: readonly AgentFile[];
  /** Which of the daemon's own variables the fleet passes on (env-passthrough.ts). */
  readonly envPassthrough: readonly string[];
}

/**
 * The variables a team gives an agent. Issue text travels as data a script
 * quotes (`"$FACTORY_ISSUE_TITLE"`) or reads from a file, never as code. The
 * body and the prompt are files: they can be long (the environment has a size
 * limit) and may hold characters it cannot. Factory's own variables come
 * last, so a config `env` cannot forge them.
 */
export function agentEnvironment(input: AgentEnvironmentInput): AgentEnvironment {
  const { context, filesDir, fileStem } = input;
  const worktree = context.worktree.replace(/\/+$/, '');
  if (filesDir === worktree || filesDir.startsWith(`${worktree}/`)) {
    throw new Error(`agent files must be outside the worktree, so they are never committed; ${filesDir} is inside the worktree ${worktree}`);
  }
  const bodyFile = join(filesDir, `${fileStem}.issue-body.md`);
  const promptFile = join(filesDir, `${fileStem}.prompt.md`);
  const review = context.review;
  const commentsFile = review?.comments === undefined ? undefined : join(filesDir, `${fileStem}.review-comments.md`);
  return {
    env: {
      ...input.configEnv,
      FACTORY_BRANCH: context.branch,
      FACTORY_ATTEMPT: String(context.attempt),
      // The environment cannot hold NUL; a title with one loses it rather than failing the spawn.
      [PLACEHOLDER_ENVIRONMENT.title]: context.issue.title.replaceAll('\0', ''),
      [PLACEHOLDER_ENVIRONMENT.body]: bodyFile,
      [PLACEHOLDER_ENVIRONMENT.prompt]: promptFile,
      ...(review ? { FACTORY_REVIEW_ROUND: String(review.round) } : {}),
      ...(review?.verdictFile === undefined ? {} : { FACTORY_REVIEW_FILE: review.verdictFile }),
      ...(commentsFile === undefined ? {} : { FACTORY_REVIEW_COMMENTS_FILE: commentsFile }),
    },
    files: [
      { path: bodyFile, content: `${context.issue.body}\n` },
      { path: promptFile, content: `${renderPrompt(context)}\n` },
      ...(commentsFile === undefined || review?.comments === undefined ? [] : [{ path: commentsFile, content: `${review.comments.trim()}\n` }]),
    ],
    envPassthrough: envPassthroughFor(input.configEnvPassthrough),
  };
}
