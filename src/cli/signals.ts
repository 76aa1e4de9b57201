/**
 * SIGINT/SIGTERM handling for long-running verbs: the first signal asks for
 * the ordered stop; later ones are acknowledged but do not cut it short (a
 * half-done stop would leave agents without a registry entry).
 */
export function onStopSignal(handler: (signal: NodeJS.Signals) => void): { readonly requested: () => boolean; dispose(): void } {
  let requested = false;
  const listener = (signal: NodeJS.Signals): void => {
    if (requested) {
      process.stderr.write(`factory: ${signal} received again; still stopping in order (agents are being released)\n`);
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
