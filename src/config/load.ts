import { describeJsonSyntaxError, stripByteOrderMark } from '../domain/json-syntax.js';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { ZodIssue } from 'zod';
import { FactoryError } from '../errors.js';
import type { TeamStages } from '../domain/team.js';
import { configSchema, type ParsedFactoryConfig } from './schema.js';
import { teamStagesFor } from './team.js';

export const DEFAULT_CONFIG_FILE = 'factory.config.json';

/** The validated config with every path absolute, frozen so nothing edits it at run time. */
export type FactoryConfig = Omit<ParsedFactoryConfig, 'loop'> & {
  readonly configPath: string;
  /** Heartbeat and registry paths always set: `<state.dir>/…` unless the config moves them. */
  readonly loop: ParsedFactoryConfig['loop'] & { readonly heartbeatPath: string; readonly registryPath: string };
  /** The team every run gets: `team.stages`, or `agents` + `dispatch.teamMode` expanded (config/team.ts). */
  readonly teamStages: TeamStages;
  readonly paths: {
    readonly stateDir: string;
    readonly stateDb: string;
    readonly logsDir: string;
    readonly worktreesDir: string;
    readonly reaperLock: string;
    readonly daemonLock: string;
  };
};

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  return shortened(JSON.stringify(value));
}

/** JSON text as a config error may show it: a URL's user and password masked (a token a user put in a repo or Redis URL must not be printed), and cut short. */
function shortened(json: string): string {
  const text = json.replace(/(\/\/)[^/@\s"]*@/g, '$1***@');
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * How to fix the two type errors a first config makes most: a command written
 * as one string (the shell line it would be typed as) and a number in quotes.
 * The split is a hint only: Factory never splits a command itself.
 */
function typeHint(issue: ZodIssue & { code: 'invalid_type' }, value: unknown): string {
  if (typeof value !== 'string') return '';
  if (issue.expected === 'array' && issue.path.at(-1) === 'command' && value.trim() !== '') {
    const words = value.trim().split(/\s+/);
    return ` (write it as an array: ${shortened(`[${words.map((word) => JSON.stringify(word)).join(', ')}]`)})`;
  }
  const digits = value.trim();
  if (issue.expected === 'number' && /^-?\d+(\.\d+)?$/.test(digits)) return ` (write ${digits} without quotes)`;
  return '';
}

function valueAt(root: unknown, path: readonly (string | number)[]): unknown {
  let node = root;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[part];
  }
  return node;
}

/** One line per problem, in the form `path: expected X, got Y`. */
export function formatConfigIssue(issue: ZodIssue, raw: unknown): string {
  const path = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
  const got = describeValue(valueAt(raw, issue.path));
  // eslint-disable-next-line @typescript-eslint/switch-exhaustiveness-check -- zod has many codes; the default words the rest
  switch (issue.code) {
    case 'invalid_type':
      return issue.received === 'undefined' ? `${path}: expected ${issue.expected}, but it is missing` : `${path}: expected ${issue.expected}, got ${got}${typeHint(issue, valueAt(raw, issue.path))}`;
    case 'unrecognized_keys':
      return `${path}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} (check the spelling against docs/configuration.md)`;
    case 'invalid_enum_value':
      return `${path}: expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}, got ${got}`;
    case 'too_small':
    case 'too_big':
      return `${path}: ${issue.message.replace(/^Number must be/, 'expected a number').replace(/^String must/, 'expected a string that must')}, got ${got}`;
    default:
      return `${path}: ${issue.message.startsWith('expected') ? issue.message : `expected ${issue.message.toLowerCase()}`}, got ${got}`;
  }
}

function resolveFrom(base: string, path: string): string {
  return isAbsolute(path) ? path : resolve(base, path);
}

/**
 * A routed repo: a path is anchored at the config's folder; a remote URL
 * (`https://…`, `ssh://…`, or git's `user@host:path`, which names a host
 * before any slash) is kept as written, or it would become a folder named
 * `http:` that no worker can clone.
 */
function resolveRepo(base: string, repo: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(repo) || /^[^/]+:/.test(repo) ? repo : resolveFrom(base, repo);
}

/** Validates raw config and compiles it. `configPath` anchors relative paths. */
export function compileConfig(raw: unknown, configPath: string): FactoryConfig {
  const parsed = configSchema.safeParse(withMountForGitHub(raw));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${formatConfigIssue(issue, raw)}`);
    throw new FactoryError('FACTORY_CONFIG_INVALID', `${configPath} has ${lines.length} problem${lines.length > 1 ? 's' : ''}:\n${lines.join('\n')}`, {
      details: { problems: lines.map((l) => l.trim()) },
    });
  }
  const c = parsed.data;
  const base = dirname(configPath);
  const stateDir = resolveFrom(base, c.state.dir);
  const agents = Object.fromEntries(
    Object.entries(c.agents).map(([role, agent]) => [role, agent && { ...agent, command: agent.command.map((a) => resolveCommandPath(base, a)) }]),
  ) as ParsedFactoryConfig['agents'];
  const compiled: FactoryConfig = {
    ...c,
    configPath,
    mount: { ...c.mount, root: resolveFrom(base, c.mount.root) },
    repos: {
      default: c.repos.default === undefined ? undefined : resolveRepo(base, c.repos.default),
      byLabel: Object.fromEntries(Object.entries(c.repos.byLabel).map(([label, repo]) => [label, resolveRepo(base, repo)])),
      rules: c.repos.rules.map((rule) => ({ ...rule, repo: resolveRepo(base, rule.repo) })),
    },
    agents,
    // byRepo keys name repos like repos.* does, so they are anchored the same way and compare with a claim's repo.
    source: sourceWithAnchoredPaths(c.source, base),
    resources: { ...c.resources, byRepo: Object.fromEntries(Object.entries(c.resources.byRepo).map(([repo, budget]) => [resolveRepo(base, repo), budget])) },
    teamStages: teamStagesFor({ agents, dispatch: c.dispatch, team: c.team, review: c.review }),
    loop: {
      ...c.loop,
      // They follow state.dir unless set: a second config with its own state.dir must not share them (its daemon would reap our agents as a predecessor's).
      heartbeatPath: c.loop.heartbeatPath === undefined ? join(stateDir, 'heartbeat.json') : resolveFrom(base, c.loop.heartbeatPath),
      registryPath: c.loop.registryPath === undefined ? join(stateDir, 'registry.json') : resolveFrom(base, c.loop.registryPath),
    },
    state: { dir: stateDir },
    paths: {
      stateDir,
      stateDb: join(stateDir, 'state.db'),
      logsDir: join(stateDir, 'logs'),
      worktreesDir: join(stateDir, 'worktrees'),
      reaperLock: join(stateDir, 'reaper.lock'),
      daemonLock: join(stateDir, 'daemon.lock'),
    },
  };
  return deepFreeze(compiled);
}

/**
 * A GitHub-sourced config needs no issue folder: `mount.root` may be left out
 * then (the mount is not read). Every other config still requires it.
 */
function withMountForGitHub(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object') return raw;
  const record = raw as Record<string, unknown>;
  const kind = (record.source as { kind?: unknown } | undefined)?.kind;
  return kind === 'github' && record.mount === undefined ? { ...record, mount: { root: '.' } } : raw;
}

/** Credential and secret files are relative to the config file, like every other path in it. */
function sourceWithAnchoredPaths(source: ParsedFactoryConfig['source'], base: string): ParsedFactoryConfig['source'] {
  const github = source.github;
  if (github === undefined) return source;
  return {
    ...source,
    github: {
      ...github,
      ...(github.tokenFile === undefined ? {} : { tokenFile: resolveFrom(base, github.tokenFile) }),
      ...(github.webhookSecretFile === undefined ? {} : { webhookSecretFile: resolveFrom(base, github.webhookSecretFile) }),
      ...(github.app === undefined ? {} : { app: { ...github.app, privateKeyFile: resolveFrom(base, github.app.privateKeyFile) } }),
    },
  };
}

/** `./x` and `../x` arguments are relative to the config file, like every other path in it. */
function resolveCommandPath(base: string, arg: string): string {
  return arg.startsWith('./') || arg.startsWith('../') ? resolve(base, arg) : arg;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

export function loadConfig(path: string = DEFAULT_CONFIG_FILE): FactoryConfig {
  const configPath = resolve(path);
  let text: string;
  try {
    // An editor's invisible byte order mark is not a mistake worth refusing a config for.
    text = stripByteOrderMark(readFileSync(configPath, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FactoryError('FACTORY_CONFIG_NOT_FOUND', `no config file at ${configPath}`);
    }
    throw new FactoryError('FACTORY_CONFIG_UNREADABLE', `cannot read ${configPath}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // Line and column as for an issue file; JSON.parse's own message quotes the text, which may hold a secret.
    throw new FactoryError('FACTORY_CONFIG_INVALID', `${configPath} is ${describeJsonSyntaxError(text)}`, {
      hint: 'Fix the JSON at that line and column: a missing or extra comma, an unquoted key, a comment or single quotes (JSON allows none); docs/configuration.md shows a whole config.',
    });
  }
  return compileConfig(raw, configPath);
}
