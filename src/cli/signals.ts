/**
 * The signals that ask a long-running verb for its ordered stop. SIGHUP is one:
 * closing the terminal of a foreground `factory start` sends it, and its
 * default action would kill the daemon with no stop at all (heartbeat left
 * `running`, agents working on unsupervised).
 */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Stop-signal handling for long-running verbs: the first signal asks for
 * the ordered stop; later ones are acknowledged but do not cut it short (a
 * half-done stop would leave agents without a registry entry).
 */
export function onStopSignal(
  handler: (signal: NodeJS.Signals) => void,
  /** Says a repeated signal was heard; the daemon passes its logger, so its stderr stays pure log lines. */
  onRepeat: (message: string) => void = (message) => void process.stderr.write(`factory: ${message}\n`),
): { readonly requested: () => boolean; dispose(): void } {
  let requested = false;
  const listener = (signal: NodeJS.Signals): void => {
    if (requested) {
      onRepeat(`${signal} received again; still stopping in order (agents are being released)`);
      return;
    }
    requested = true;
    handler(signal);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, listener);
  return {
    requested: () => requested,
    dispose() {
      for (const signal of STOP_SIGNALS) process.off(signal, listener);
    },
  };
}

/**
 * Opens a session with the stop signals already caught. A signal that arrives
 * while the session opens (after the daemon wrote `running`, before it could
 * stop in order) is held and honoured as soon as the session is open, instead
 * of killing the process with the signal's default action.
 */
export async function openWithStopSignals<T>(
  open: () => Promise<T>,
  onStop: (opened: T, signal: NodeJS.Signals) => void,
  onRepeat?: (message: string) => void,
): Promise<{ opened: T; signals: ReturnType<typeof onStopSignal> }> {
  let opened: T | undefined;
  let pending: NodeJS.Signals | undefined;
  const signals = onStopSignal((signal) => {
    if (opened === undefined) pending = signal;
    else onStop(opened, signal);
  }, onRepeat);
  try {
    opened = await open();
  } catch (error) {
    signals.dispose();
    throw error;
  }
  if (pending !== undefined) onStop(opened, pending);
  return { opened, signals };
}
