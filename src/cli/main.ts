#!/usr/bin/env node
import { pathToFileURL } from 'node:url';
import { ERROR_CATALOG, FactoryError, formatErrorLine, isFactoryError } from '../errors.js';
import { readFileSync } from 'node:fs';
import { COMMON_FLAGS, parseArgs, usageHint, type FlagSpec, type VerbGrammar } from './args.js';
import { codedFilesystemError } from './filesystem-errors.js';
import { processOutput, quietOnBrokenPipe, type Output } from './output.js';
import type { Verb } from './verb.js';
import { dispatchVerb } from './verbs/dispatch.js';
import { initVerb } from './verbs/init.js';
import { killLoopVerb } from './verbs/kill-loop.js';
import { loopStatusVerb } from './verbs/loop-status.js';
import { logsVerb } from './verbs/logs.js';
import { loopVerb } from './verbs/loop.js';
import { pruneVerb } from './verbs/prune.js';
import { reapOrphansVerb } from './verbs/reap-orphans.js';
import { resumeVerb } from './verbs/resume.js';
import { runOnceVerb } from './verbs/run-once.js';
import { startVerb } from './verbs/start.js';
import { statusVerb } from './verbs/status.js';
import { triageVerb } from './verbs/triage.js';
import { workerVerb } from './verbs/worker.js';

export const VERBS: readonly Verb[] = [
  startVerb,
  runOnceVerb,
  loopVerb,
  statusVerb,
  logsVerb,
  loopStatusVerb,
  killLoopVerb,
  reapOrphansVerb,
  triageVerb,
  dispatchVerb,
  resumeVerb,
  pruneVerb,
  initVerb,
  workerVerb,
];

function generalHelp(): string {
  const width = Math.max(...VERBS.map((v) => v.name.length));
  return [
    'factory: turns ready issues into supervised coding-agent runs',
    '',
    'usage: factory <verb> [--config PATH] [--json]',
    '       factory --version | factory version',
    '',
    'verbs:',
    ...VERBS.map((v) => `  ${v.name.padEnd(width)}  ${v.summary}`),
    '',
    'common flags:',
    ...COMMON_FLAGS.map(flagLine),
    '',
    "`factory <verb> --help` shows a verb's flags, output and exit codes. Docs: README.md, docs/.",
  ].join('\n');
}

function verbHelp(verb: Verb): string {
  return [`usage: ${verb.usage}`, '', verb.summary, '', verb.details, ...(verb.flags.length ? ['', 'flags:', ...verb.flags.map(flagLine)] : [])].join('\n');
}

function flagLine(flag: FlagSpec): string {
  return `  ${flag.short ? `-${flag.short}, ` : ''}--${flag.name}${flag.takesValue ? ` ${flag.valueName}` : ''}  ${flag.description}`;
}

/** package.json sits two folders up from both src/cli/main.ts and dist/cli/main.js. */
export function factoryVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** `help [VERB]` and `version` are words of the CLI itself, not verbs with a config. */
function grammarOf(name: string): VerbGrammar | undefined {
  if (name === 'help') return { flags: [], maxPositionals: 1 };
  if (name === 'version') return { flags: [], maxPositionals: 0 };
  const verb = VERBS.find((v) => v.name === name);
  return verb && { flags: verb.flags, maxPositionals: verb.maxPositionals ?? 0 };
}

/** Runs the CLI and returns the exit code; never throws for user mistakes. */
export async function runCli(argv: readonly string[], output: Output = processOutput): Promise<number> {
  let verbName: string | undefined;
  try {
    if (output === processOutput) quietOnBrokenPipe({ exit: true });
    const args = parseArgs(argv, grammarOf);
    verbName = VERBS.some((v) => v.name === args.verb) ? args.verb : undefined;
    if (output === processOutput && VERBS.find((v) => v.name === args.verb)?.outlivesItsOutput) quietOnBrokenPipe({ exit: false });
    if (args.verb === 'version' || (args.verb === undefined && args.flags.version)) {
      output.out(args.flags.json ? JSON.stringify({ version: factoryVersion() }) : `factory ${factoryVersion()}`);
      return 0;
    }
    if (args.verb === undefined || args.verb === 'help') {
      const topic = VERBS.find((v) => v.name === args.positionals[0]);
      output.out(topic ? verbHelp(topic) : generalHelp());
      return args.verb === undefined && !args.flags.help ? 2 : 0;
    }
    const verb = VERBS.find((v) => v.name === args.verb);
    if (!verb) throw new FactoryError('FACTORY_USAGE', `unknown verb "${args.verb}"; verbs are ${VERBS.map((v) => v.name).join(', ')}`);
    if (args.flags.help) {
      output.out(verbHelp(verb));
      return 0;
    }
    const { run } = await verb.load();
    return await run(args, output);
  } catch (error) {
    // A filesystem error the user caused (a mode, a full disk, a path through a file) is exit 2, never 70.
    const coded = pointedAtVerbHelp(isFactoryError(error) ? error : codedFilesystemError(error), verbName);
    if (coded) {
      output.err(formatErrorLine(coded));
      return coded.exitCode;
    }
    // A bug, not a user mistake: keep the stack so it can be reported.
    output.err(`factory: internal error: ${(error as Error).stack ?? String(error)}`);
    return 70;
  }
}

/** A verb's usage error that kept the general hint points at that verb's own help instead. */
function pointedAtVerbHelp(error: FactoryError | undefined, verb: string | undefined): FactoryError | undefined {
  if (!error || verb === undefined || error.code !== 'FACTORY_USAGE' || error.hint !== ERROR_CATALOG.FACTORY_USAGE.hint) return error;
  return new FactoryError('FACTORY_USAGE', error.message, { ...usageHint(verb), details: { ...error.details } });
}

// Run directly (`node --import tsx src/cli/main.ts`); bin/factory.js imports runCli instead.
const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`factory: internal error: ${String(error)}\n`);
      process.exitCode = 70;
    },
  );
}
