import { writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { isatty } from 'node:tty';
import { pino, destination, type DestinationStream } from 'pino';
import type { Logger } from '../../ports/logger.js';

/**
 * Daemon logs are pino JSON lines with `issue`, `run` and `agent` fields, on
 * stderr so stdout stays free for reports and `--json` output. When stderr is
 * a terminal a person is reading, so the same records are printed as short
 * readable lines instead (FACTORY_LOG_FORMAT=json|pretty overrides the guess).
 */
export type LogFormat = 'json' | 'pretty';

export interface LoggerOptions {
  readonly level?: string;
  readonly destination?: number;
  readonly format?: LogFormat;
  /** The environment the switches are read from (FACTORY_LOG_LEVEL, FACTORY_LOG_FORMAT, NO_COLOR); the composition root passes process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const env = options.env ?? process.env;
  const fd = options.destination ?? 2;
  const format = options.format ?? chooseLogFormat(fd, env.FACTORY_LOG_FORMAT);
  const level = options.level ?? env.FACTORY_LOG_LEVEL ?? 'info';
  const stream: DestinationStream = format === 'pretty' ? prettyStream(fd, { color: env.NO_COLOR === undefined }) : destination({ fd, sync: true });
  // Every line names the process and the machine that wrote it; anything else that names a pid says whose (`agentPid`, `targetPid`).
  return pino({ level, base: { pid: process.pid, hostname: hostname() } }, stream);
}

function chooseLogFormat(fd: number, requested: string | undefined): LogFormat {
  if (requested === 'json' || requested === 'pretty') return requested;
  return isatty(fd) ? 'pretty' : 'json';
}

/** A logger that drops everything, for tests and for quiet CLI verbs. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}

const LEVELS: Record<number, { name: string; color: string }> = {
  10: { name: 'TRACE', color: '\x1b[90m' },
  20: { name: 'DEBUG', color: '\x1b[90m' },
  30: { name: 'INFO ', color: '\x1b[36m' },
  40: { name: 'WARN ', color: '\x1b[33m' },
  50: { name: 'ERROR', color: '\x1b[31m' },
  60: { name: 'FATAL', color: '\x1b[41m' },
};
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';
/** The fields operators scan for come first, in this order; pino's own bookkeeping is left out. */
const LEADING_FIELDS = ['issue', 'run', 'agent'];
const OMITTED_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/**
 * Formats one pino JSON record as `12:04:05.123 INFO  message  issue=FAC-1 run=… key=value`.
 * Anything that is not a JSON record is passed through as it came.
 */
export function formatLogLine(json: string, options: { color: boolean }): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const paint = (code: string, text: string): string => (options.color ? `${code}${text}${RESET}` : text);
  const time = typeof record.time === 'number' ? formatLocalTime(record.time) : '--:--:--.---';
  const level = LEVELS[record.level as number] ?? { name: String(record.level).toUpperCase().padEnd(5), color: '' };
  const keys = [...LEADING_FIELDS.filter((k) => k in record), ...Object.keys(record).filter((k) => !LEADING_FIELDS.includes(k) && !OMITTED_FIELDS.has(k))];
  const fields = keys.map((key) => `${key}=${formatValue(record[key])}`).join(' ');
  const message = typeof record.msg === 'string' ? record.msg : '';
  return `${paint(DIM, time)} ${paint(level.color, level.name)} ${message}${fields ? `  ${paint(DIM, fields)}` : ''}\n`;
}

/** Local wall-clock time: a person at a terminal reads their own clock (the JSON lines keep epoch ms). */
function formatLocalTime(ms: number): string {
  const at = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}.${String(at.getMilliseconds()).padStart(3, '0')}`;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

function prettyStream(fd: number, options: { color: boolean }): DestinationStream {
  return {
    write(chunk: string) {
      // Synchronous, like the JSON destination: a crash must not lose its last lines.
      writeSync(fd, formatLogLine(chunk, options));
    },
  };
}
