/**
 * Structured logging as a port: the one logger type of the codebase. Fields
 * first, message second (pino's order), so `issue`, `run` and `agent` fields
 * stay machine-readable. The pino adapter (adapters/logging/) writes JSON lines
 * or, on a terminal, readable lines; tests pass the silent one.
 */
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(fields: LogFields, message?: string): void;
  info(fields: LogFields, message?: string): void;
  warn(fields: LogFields, message?: string): void;
  error(fields: LogFields, message?: string): void;
  /** A logger that adds `bindings` to every record. */
  child(bindings: LogFields): Logger;
}
