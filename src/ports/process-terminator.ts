import type { SentSignal } from '../domain/process.js';
import type { ExpectedProcess } from '../domain/process-identity.js';
import type { Logger } from './logger.js';

/**
 * Ending processes with proof: TERM, a grace period, then KILL, re-proving
 * every target's identity (start time, and marker when one is expected) just
 * before every signal. One implementation serves the fleet (stopping its own
 * agents) and the reaper (ending a dead daemon's agents), so there is one
 * place where a signal can be sent.
 */

export type { SentSignal, TerminationSignal } from '../domain/process.js';

export type SignalOutcome =
  { readonly kind: 'sent' } | { readonly kind: 'gone'; readonly reason: string } | { readonly kind: 'refused'; readonly reason: string } | { readonly kind: 'failed'; readonly reason: string };

/**
 * A process group signalled as a whole: an agent that leads its own group.
 * The group id is only ever signalled while `isOurs` proves it still names
 * the agent's group (a group id is reused like a pid).
 */
export interface GroupTarget {
  readonly pgid: number;
  /** Right before each group signal: whether the id provably still names our group. */
  isOurs(): boolean;
  /** Whether waiting longer could let the group finish by itself: decides how long to wait, never whom to signal. */
  mayStillRun(): boolean;
  /**
   * Right before SIGKILL: the marked processes of the tree (one look at the
   * table). Those outside the group (`via: 'escapee'`) are killed one by one,
   * each re-proven; all of them are waited for after the kill.
   */
  markedMembers(): readonly (ExpectedProcess & { readonly via: 'group' | 'escapee' })[];
}

export interface TerminationRequest {
  /** Processes signalled one by one (TERM, then KILL if still running after the grace period). */
  readonly processes?: readonly ExpectedProcess[];
  readonly group?: GroupTarget;
  readonly graceMs: number;
  /** `signal sent` / `signal not sent` lines and failed steps; silent when absent. */
  readonly log?: Logger;
}

export interface TerminationResult {
  readonly signals: readonly SentSignal[];
  /** Targets still running at the end, or never signalled because the signal was refused or failed. */
  readonly survivors: ReadonlyMap<number, string>;
  /** Time spent waiting inside the grace period (excluded from benchmark figures). */
  readonly graceWaitedMs: number;
}

export interface ProcessTerminator {
  /**
   * Signals one process only after proving, right now, that it still is the
   * one identified (same start time, not a zombie, same marker when expected).
   * Never pid ≤ 1, the calling process or its parent.
   */
  signalVerified(target: ExpectedProcess, signal: NodeJS.Signals): SignalOutcome;
  /** TERM every target, wait up to `graceMs` for them to go, KILL the rest, wait briefly for the KILL to land. */
  terminate(request: TerminationRequest): Promise<TerminationResult>;
}
