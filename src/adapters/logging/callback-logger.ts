import type { LogFields, Logger } from '../../ports/logger.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * A logger that hands every record to a function: for a child process that
 * reports its log events to its parent as JSON lines, and for tests that
 * assert what was logged. Child bindings are merged into the fields.
 */
export function createCallbackLogger(record: (level: LogLevel, fields: LogFields, message: string) => void, bindings: LogFields = {}): Logger {
  const at =
    (level: LogLevel) =>
    (fields: LogFields, message = '') =>
      record(level, { ...bindings, ...fields }, message);
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => createCallbackLogger(record, { ...bindings, ...more }),
  };
}
