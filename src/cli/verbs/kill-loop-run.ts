import { explainUnprovenDaemon } from '../../core/reaper/verdict.js';
import { isStillRunning, verifyProcessIdentity } from '../../domain/process-identity.js';
import { nodeStateFor } from '../../main.js';
import { FactoryError } from '../../errors.js';
import { flagBoolean, flagPositiveInt, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { printJson, type Output } from '../output.js';

/** `factory kill-loop` (its usage and flags are in kill-loop.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const { config, processTable: table, terminator, clock } = runtimeFromArgs(args);
  const timeoutMs = flagPositiveInt(args, 'timeout-ms', 60_000);
  const read = await nodeStateFor(config).heartbeats.read();
  if (read.kind === 'missing') throw new FactoryError('FACTORY_DAEMON_NOT_RUNNING', `no heartbeat at ${config.loop.heartbeatPath}; no daemon to stop`);
  if (read.kind === 'unreadable') throw new FactoryError('FACTORY_HEARTBEAT_UNREADABLE', `cannot trust ${config.loop.heartbeatPath}: ${read.reason}; nothing was signalled`);
  const heartbeat = read.value;
  const check = verifyProcessIdentity(heartbeat, table);
  if (check.verdict === 'mismatch') throw new FactoryError('FACTORY_DAEMON_IDENTITY_MISMATCH', `${check.reason}; nothing was signalled`);
  if (check.verdict === 'dead') throw new FactoryError('FACTORY_DAEMON_NOT_RUNNING', `the daemon that wrote ${config.loop.heartbeatPath} is not running (${check.reason})`);
  // A heartbeat can be forged with an unrelated process's real identity: only the daemon holds its lock open.
  const unproven = explainUnprovenDaemon(table, heartbeat.pid, config.paths.daemonLock);
  if (unproven) throw new FactoryError('FACTORY_DAEMON_IDENTITY_MISMATCH', `${unproven}; nothing was signalled`, { details: { pid: heartbeat.pid, daemonLock: config.paths.daemonLock } });
  const expected = { pid: heartbeat.pid, startTime: heartbeat.startTime };
  const sent = terminator.signalVerified(expected, 'SIGTERM');
  if (sent.kind !== 'sent') throw new FactoryError('FACTORY_DAEMON_NOT_RUNNING', `SIGTERM not sent: ${sent.reason}`);
  const deadline = clock.now() + timeoutMs;
  while (isStillRunning(table, expected) && clock.now() < deadline) await clock.sleep(100);
  const stopped = !isStillRunning(table, expected);
  const result = { pid: heartbeat.pid, signalled: 'SIGTERM', stopped, waitedMs: timeoutMs - Math.max(0, deadline - clock.now()) };
  if (flagBoolean(args, 'json')) printJson(output, result);
  else output.out(stopped ? `daemon pid ${heartbeat.pid} stopped` : `daemon pid ${heartbeat.pid} got SIGTERM but is still stopping after ${timeoutMs}ms (agents are being released)`);
  return stopped ? 0 : 1;
}
