import { FactoryError } from '../errors.js';

/** A parsed command line: the verb, its positional arguments and its flags. */
export interface ParsedArgs {
  readonly verb: string | undefined;
  readonly positionals: readonly string[];
  readonly flags: Readonly<Record<string, string | boolean>>;
}

export interface FlagSpec {
  readonly name: string;
  readonly takesValue: boolean;
  readonly description: string;
}

/** Flags every verb accepts. */
export const COMMON_FLAGS: readonly FlagSpec[] = [
  { name: 'config', takesValue: true, description: 'config file (default ./factory.config.json)' },
  { name: 'json', takesValue: false, description: 'print machine-readable JSON' },
  { name: 'help', takesValue: false, description: 'show help for this verb' },
];

/**
 * Parses `factory <verb> [args] [--flag value | --flag=value | --bool]`.
 * Unknown flags are errors, so a typo never silently changes behaviour.
 */
export function parseArgs(argv: readonly string[], flagsFor: (verb: string | undefined) => readonly FlagSpec[]): ParsedArgs {
  const positionals: string[] = [];
  const flags: Record<string, string | boolean> = {};
  let verb: string | undefined;
  const tokens = [...argv];
  while (tokens.length > 0) {
    const token = tokens.shift()!;
    if (token === '-h') {
      flags.help = true;
      continue;
    }
    if (!token.startsWith('--')) {
      if (verb === undefined) verb = token;
      else positionals.push(token);
      continue;
    }
    const [rawName, inlineValue] = token.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const spec = [...COMMON_FLAGS, ...flagsFor(verb)].find((f) => f.name === rawName);
    if (!spec) throw new FactoryError('FACTORY_USAGE', `unknown flag --${rawName}${verb ? ` for \`factory ${verb}\`` : ''}`);
    if (!spec.takesValue) {
      if (inlineValue !== undefined) throw new FactoryError('FACTORY_USAGE', `--${rawName} takes no value, got "${inlineValue}"`);
      flags[rawName] = true;
      continue;
    }
    const value = inlineValue ?? tokens.shift();
    if (value === undefined || value.startsWith('--')) throw new FactoryError('FACTORY_USAGE', `--${rawName} needs a value`);
    flags[rawName] = value;
  }
  return { verb, positionals, flags };
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
  if (!Number.isSafeInteger(value) || value < 1) throw new FactoryError('FACTORY_USAGE', `--${name}: expected a whole number of at least 1, got "${text}"`);
  return value;
}
