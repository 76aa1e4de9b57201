import type { ParsedArgs, FlagSpec } from './args.js';
import type { Output } from './output.js';

/** What a verb does. Returns the exit code. */
export interface VerbImplementation {
  run(args: ParsedArgs, output: Output): Promise<number>;
}

/**
 * One CLI verb: its help and flags, which `factory --help` and the argument parser read, and
 * a loader for what it does. The implementation is imported only when the verb runs, so help,
 * `--version` and every other verb never load its module graph (config schema, pino, SQLite,
 * Redis, GitHub clients): keep a verb's own file free of imports beyond types.
 */
export interface Verb {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
  /** Longer help: what it prints and its exit codes. */
  readonly details: string;
  readonly flags: readonly FlagSpec[];
  /** How many positional arguments it takes (default 0): one more is a usage error. */
  readonly maxPositionals?: number;
  /**
   * Owns agents or a daemon (start, loop, run-once, dispatch, worker): a closed
   * output pipe must not cut its ordered stop short, so it keeps going with its
   * output dropped. Every other verb exits quietly when its reader goes away.
   */
  readonly outlivesItsOutput?: boolean;
  /** Imports the verb's implementation (`./<verb>-run.js`). */
  load(): Promise<VerbImplementation>;
}
