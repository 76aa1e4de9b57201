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
  run(args: ParsedArgs, output: Output): Promise<number>;
}
