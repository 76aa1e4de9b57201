import { pino, destination, type Logger as PinoLogger } from 'pino';

/**
 * Daemon logs are pino JSON lines with `issue`, `run` and `agent` fields, on
 * stderr so stdout stays free for reports and `--json` output.
 */
export type Logger = Pick<PinoLogger, 'info' | 'warn' | 'error' | 'debug' | 'child'>;

export function createLogger(options: { level?: string; destination?: number } = {}): Logger {
  return pino({ level: options.level ?? process.env.FACTORY_LOG_LEVEL ?? 'info', base: { pid: process.pid } }, destination({ fd: options.destination ?? 2, sync: true }));
}

/** A logger that drops everything, for tests and for quiet CLI verbs. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}
