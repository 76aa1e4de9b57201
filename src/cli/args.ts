import { parseArgs as parseNodeArgs, type ParseArgsConfig } from 'node:util';
import { FactoryError } from '../errors.js';

/** A parsed command line: the verb, its positional arguments and its flags. */
export interface ParsedArgs {
  readonly verb: string | undefined;
  readonly positionals: readonly string[];
  readonly flags: Readonly<Record<string, string | boolean>>;
}

interface FlagSpecBase {
  readonly name: string;
  readonly description: string;
  /** A one-letter alias (`-h`). */
  readonly short?: string;
}

/** A switch, or a flag with a value and the placeholder help shows for it (`--config PATH`, `--tail N`). */
export type FlagSpec = FlagSpecBase & ({ readonly takesValue: false } | { readonly takesValue: true; readonly valueName: string });

/** Flags every verb accepts. */
export const COMMON_FLAGS: readonly FlagSpec[] = [
  { name: 'config', takesValue: true, valueName: 'PATH', description: 'config file (default ./factory.config.json)' },
  { name: 'json', takesValue: false, description: 'print machine-readable JSON' },
  { name: 'help', short: 'h', takesValue: false, description: 'show help for this verb' },
];

/** Flags only meaningful without a verb. */
const TOP_LEVEL_FLAGS: readonly FlagSpec[] = [{ name: 'version', takesValue: false, description: 'print the version' }];

/** What the parser needs to know about a verb: its flags and how many positional arguments it takes. */
export interface VerbGrammar {
  readonly flags: readonly FlagSpec[];
  readonly maxPositionals: number;
}

function optionsOf(flags: readonly FlagSpec[]): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(flags.map((f) => [f.name, { type: f.takesValue ? 'string' : 'boolean', ...(f.short ? { short: f.short } : {}) }] as const));
}

/** Usage errors point at the help of the verb being used, not at the general help. */
export function usageHint(verb: string | undefined): { hint: string } {
  return { hint: verb ? `Run \`factory ${verb} --help\` for its arguments and flags.` : 'Run `factory --help` for the verbs and their flags.' };
}

/** node:util's parse errors, said the way Factory says usage errors (exit 2, pointing at the verb's help). */
function usageError(error: unknown, verb: string | undefined, flags: readonly FlagSpec[] = []): FactoryError<'FACTORY_USAGE'> {
  const code = (error as { code?: string }).code;
  const unknown = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /^Unknown option '--([^'=]+)/.exec((error as Error).message)?.[1] : undefined;
  const nearest = unknown === undefined ? undefined : nearestFlag(unknown, flags);
  const message = (error as Error).message
    // node:util's advice names its own API ("To specify a positional argument starting with a '-', …"): keep the first sentence.
    .replace(/\. To specify .*$/s, '')
    .replace(/^Unknown option '([^']+)'.*$/s, 'unknown flag $1')
    .replace(/^Option '(-[^' ]+)[^']*' argument missing.*$/s, '$1 needs a value')
    .replace(/^Option '(-[^' ]+)[^']*' does not take an argument.*$/s, '$1 takes no value')
    .replace(/^Option '(-[^' ]+)[^']*' argument is ambiguous.*$/s, '$1 needs a value (to pass one that starts with "-", write $1=VALUE)');
  const where = verb ? ` for \`factory ${verb}\`` : '';
  const suggestion = nearest ? `; did you mean --${nearest}?` : '';
  return new FactoryError('FACTORY_USAGE', `${message}${code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? where : ''}${suggestion}`, usageHint(verb));
}

/** The verb's flag a mistyped one most likely meant: one or two edits away (`--slot`, `--dryrun`), or the only flag it begins. */
function nearestFlag(typed: string, flags: readonly FlagSpec[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const { name } of flags) {
    const distance = editDistance(typed.toLowerCase(), name);
    if (distance <= Math.min(2, Math.floor(name.length / 3)) && (!best || distance < best.distance)) best = { name, distance };
  }
  if (best) return best.name;
  const begun = flags.filter((flag) => typed.length >= 3 && flag.name.startsWith(typed));
  return begun.length === 1 ? begun[0]!.name : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * Parses `factory <verb> [args] [--flag value | --flag=value | --bool | -h]`
 * with node:util's parseArgs in strict mode: unknown flags (long or short),
 * a missing value and a value given to a switch are errors, and so is one
 * positional argument more than the verb takes, so a typo never silently
 * changes behaviour. `grammarOf` returns undefined for an unknown verb.
 */
export function parseArgs(argv: readonly string[], grammarOf: (verb: string) => VerbGrammar | undefined): ParsedArgs {
  // First pass: find the verb (the first positional), knowing only the common flags that take values.
  let verb: string | undefined;
  try {
    const first = parseNodeArgs({ args: [...argv], options: optionsOf([...COMMON_FLAGS, ...TOP_LEVEL_FLAGS]), strict: false, allowPositionals: true, tokens: true });
    verb = first.tokens.find((token) => token.kind === 'positional')?.value;
  } catch (error) {
    throw usageError(error, undefined);
  }
  const grammar = verb === undefined ? undefined : grammarOf(verb);
  const flags = verb === undefined ? [...COMMON_FLAGS, ...TOP_LEVEL_FLAGS] : [...COMMON_FLAGS, ...(grammar?.flags ?? [])];
  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };
  try {
    parsed = parseNodeArgs({ args: [...argv], options: optionsOf(flags), strict: true, allowPositionals: true });
  } catch (error) {
    // An unknown verb is reported as such (by the caller), not as its first unknown flag.
    if (verb !== undefined && grammar === undefined) return { verb, positionals: [], flags: {} };
    throw usageError(error, verb, flags);
  }
  const positionals = parsed.positionals.slice(1);
  if (grammar && !parsed.values.help && positionals.length > grammar.maxPositionals) {
    const extra = positionals
      .slice(grammar.maxPositionals)
      .map((p) => `"${p}"`)
      .join(' ');
    throw new FactoryError(
      'FACTORY_USAGE',
      `\`factory ${verb}\` takes ${grammar.maxPositionals === 0 ? 'no arguments' : `at most ${grammar.maxPositionals} argument(s)`}, got ${extra} too`,
      usageHint(verb),
    );
  }
  const values: Record<string, string | boolean> = {};
  for (const [name, value] of Object.entries(parsed.values)) if (typeof value === 'string' || typeof value === 'boolean') values[name] = value;
  return { verb, positionals, flags: values };
}

export function flagString(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags[name];
  return typeof value === 'string' ? value : undefined;
}

export function flagBoolean(args: ParsedArgs, name: string): boolean {
  return args.flags[name] === true;
}

/** A positive whole number flag, or the fallback when absent. */
export function flagPositiveInt(args: ParsedArgs, name: string, fallback: number): number {
  const text = flagString(args, name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new FactoryError('FACTORY_USAGE', `--${name}: expected a whole number of at least 1, got "${text}"`, usageHint(args.verb));
  return value;
}
