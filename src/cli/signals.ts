/**
 * SIGINT/SIGTERM handling for long-running verbs: the first signal asks for
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
  process.on('SIGINT', listener);
  process.on('SIGTERM', listener);
  return {
    requested: () => requested,
    dispose() {
      process.off('SIGINT', listener);
      process.off('SIGTERM', listener);
    },
  };
}

/**
 * Opens a session with SIGINT/SIGTERM already caught. A signal that arrives
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
