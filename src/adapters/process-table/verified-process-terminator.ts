import { AGENT_MARKER_ENV } from '../../domain/registry.js';
import { explainProtectedPid, isStillRunning, type ExpectedProcess } from '../../domain/process-identity.js';
import type { Clock } from '../../ports/clock.js';
import type { ProcessTable } from '../../ports/process-table.js';
import type { ProcessTerminator, SentSignal, SignalOutcome, TerminationRequest, TerminationResult, TerminationSignal } from '../../ports/process-terminator.js';

/** How often targets are re-read while waiting (single /proc reads of the survivors only). */
const SURVIVOR_POLL_MS = 20;
/** SIGKILL cannot be ignored, but its effect is asynchronous (and waits out uninterruptible I/O). */
const KILL_SETTLE_MS = 2_000;

/**
 * Signals a process only after proving, right now, that it still is the one we
 * identified: same start time, not a zombie, and the same marker when one is
 * expected. Between a snapshot and a signal a pid can die and be reused; this
 * re-check narrows that window to the kill syscall itself (Node has no pidfd).
 * Refuses pid ≤ 1, this process and its parent whatever the caller passes.
 */
export function signalVerifiedProcess(table: ProcessTable, expected: ExpectedProcess, signal: NodeJS.Signals): SignalOutcome {
  const self = table.self();
  const protectedBecause = explainProtectedPid(expected.pid, new Set([self.ppid]), self);
  if (protectedBecause) return { kind: 'refused', reason: protectedBecause };
  if (!isStillRunning(table, expected)) return { kind: 'gone', reason: `pid ${expected.pid} has exited or was reused` };
  if (expected.marker !== undefined) {
    const marker = table.readEnvironmentVariable(expected.pid, AGENT_MARKER_ENV);
    if (marker !== expected.marker) return { kind: 'gone', reason: `pid ${expected.pid} no longer carries the marker` };
  }
  try {
    return table.signal(expected.pid, signal) ? { kind: 'sent' } : { kind: 'gone', reason: `pid ${expected.pid} exited before the signal` };
  } catch (error) {
    return { kind: 'failed', reason: `${signal} to pid ${expected.pid} failed: ${(error as Error).message}` };
  }
}

function processKey(target: ExpectedProcess): string {
  return `${target.pid}/${target.startTime}`;
}

function uniqueProcesses(targets: readonly ExpectedProcess[]): ExpectedProcess[] {
  return [...new Map(targets.map((target) => [processKey(target), target])).values()];
}

/**
 * TERM → grace → KILL over the process table and the clock, shared by the
 * local fleet and the reaper. Each step is guarded so that one failure (an
 * unreadable /proc entry, an EPERM) never skips the steps after it: above
 * all, never the SIGKILL.
 */
export class VerifiedProcessTerminator implements ProcessTerminator {
  readonly #table: ProcessTable;
  readonly #clock: Clock;

  constructor(options: { readonly processTable: ProcessTable; readonly clock: Clock }) {
    this.#table = options.processTable;
    this.#clock = options.clock;
  }

  signalVerified(target: ExpectedProcess, signal: NodeJS.Signals): SignalOutcome {
    return signalVerifiedProcess(this.#table, target, signal);
  }

  async terminate(request: TerminationRequest): Promise<TerminationResult> {
    const table = this.#table;
    const clock = this.#clock;
    const { group, log } = request;
    const signals: SentSignal[] = [];
    const survivors = new Map<number, string>();
    const guarded = <T>(step: string, run: () => T): T | undefined => {
      try {
        return run();
      } catch (error) {
        log?.warn({ step, err: error }, `could not ${step}; carrying on`);
        return undefined;
      }
    };
    const send = (target: ExpectedProcess, signal: TerminationSignal): boolean => {
      const outcome = this.signalVerified(target, signal);
      if (outcome.kind === 'sent') {
        signals.push({ pid: target.pid, signal });
        log?.info({ targetPid: target.pid, signal }, 'signal sent');
        return true;
      }
      if (outcome.kind !== 'gone') {
        survivors.set(target.pid, outcome.reason);
        log?.warn({ targetPid: target.pid, signal, reason: outcome.reason }, 'signal not sent');
      }
      return false;
    };
    const signalGroup = (signal: TerminationSignal): void => {
      if (!group) return;
      guarded(`${signal} the group`, () => {
        if (group.isOurs()) table.signal(-group.pgid, signal);
      });
    };
    const stillRunning = (targets: readonly ExpectedProcess[]): ExpectedProcess[] => targets.filter((target) => isStillRunning(table, target));

    signalGroup('SIGTERM');
    const terminated = uniqueProcesses(request.processes ?? []).filter((target) => send(target, 'SIGTERM'));

    // Wait for the whole group too, not just the signalled processes: children
    // still flushing their work after SIGTERM deserve the same grace.
    const graceStartedMs = clock.now();
    const graceDeadlineMs = graceStartedMs + Math.max(0, request.graceMs);
    const groupMayStillRun = (): boolean => (group ? (guarded('watch the group', () => group.mayStillRun()) ?? true) : false);
    let ignoredTerm = stillRunning(terminated);
    while (clock.now() < graceDeadlineMs && (ignoredTerm.length > 0 || groupMayStillRun())) {
      await clock.sleep(Math.min(SURVIVOR_POLL_MS, graceDeadlineMs - clock.now()));
      ignoredTerm = stillRunning(ignoredTerm);
    }
    const graceWaitedMs = clock.now() - graceStartedMs;

    // One look at the tree decides both the group kill and which escaped processes carry our marker.
    const marked = group ? guarded('find the tree by its marker', () => group.markedMembers()) : undefined;
    signalGroup('SIGKILL');
    const escapees = (marked ?? []).filter((member) => member.via === 'escapee');
    const killed = uniqueProcesses([...ignoredTerm, ...escapees]).filter((target) => send(target, 'SIGKILL'));

    // SIGKILL is delivered asynchronously. Waiting (briefly) for the targets to
    // die means that a registry write or a reaper pass that follows sees no survivors.
    const settleDeadlineMs = clock.now() + KILL_SETTLE_MS;
    let unsettled = stillRunning(uniqueProcesses([...killed, ...(marked ?? [])]));
    while (unsettled.length > 0 && clock.now() < settleDeadlineMs) {
      await clock.sleep(Math.min(SURVIVOR_POLL_MS, settleDeadlineMs - clock.now()));
      unsettled = stillRunning(unsettled);
    }
    for (const target of unsettled) survivors.set(target.pid, `still running ${KILL_SETTLE_MS} ms after SIGKILL (uninterruptible sleep?)`);
    return { signals, survivors, graceWaitedMs };
  }
}
