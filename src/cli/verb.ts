import type { ParsedArgs, FlagSpec } from './args.js';
import type { Output } from './output.js';

/** One CLI verb: its help, its flags, and what it does. Returns the exit code. */
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
  run(args: ParsedArgs, output: Output): Promise<number>;
}
