import { FactoryError } from '../../errors.js';
import { prepareDaemonHttp } from '../../http/daemon-http.js';
import { openSession } from '../../main.js';
import { flagString, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { onStopSignal, openWithStopSignals } from '../signals.js';

/** `factory start` (its usage and flags are in start.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs): Promise<number> {
  const mode = flagString(args, 'mode') ?? 'live';
  if (mode !== 'live') throw new FactoryError('FACTORY_USAGE', `--mode: expected "live", got "${mode}" (bounded runs are \`factory loop\` and \`factory run-once\`)`);
  const runtime = runtimeFromArgs(args);
  // Everything `start` says goes through the logger: piped, its stderr is pure JSON lines.
  const http = prepareDaemonHttp(runtime, { warn: (message) => runtime.log.warn({}, message) });
  let stopped!: () => void;
  let failed!: (error: FactoryError) => void;
  const stopRequested = new Promise<void>((resolve) => (stopped = resolve));
  const fatal = new Promise<never>((_, reject) => (failed = reject));
  // It may reject while startLive() is still running, before the race below awaits it.
  fatal.catch(() => undefined);
  // Fleet mode: a standby waits in open() for the leader lease; a stop signal ends that wait (exit 0).
  const standby = new AbortController();
  const standbySignals = onStopSignal(
    () => standby.abort(),
    () => undefined,
  );
  let openedWithSignals: Awaited<ReturnType<typeof openWithStopSignals<Awaited<ReturnType<typeof openSession>>>>>;
  try {
    openedWithSignals = await openWithStopSignals(
      () => openSession(runtime, 'live', { hooks: http.hooks, standbySignal: standby.signal }),
      (_opened, signal) => {
        runtime.log.info({ signal }, 'stop requested');
        stopped();
      },
      (message) => runtime.log.warn({}, message),
    );
  } catch (error) {
    if (!standby.signal.aborted) throw error;
    runtime.log.info({}, 'stopped while standing by for the leader lease');
    return 0;
  } finally {
    standbySignals.dispose();
  }
  const { opened, signals } = openedWithSignals;
  try {
    const url = await http.start(opened.session);
    await opened.session.startLive(failed);
    await http.announce(opened.session);
    runtime.log.info(
      { heartbeat: runtime.config.loop.heartbeatPath, ...(url ? { dashboard: url } : {}) },
      `live daemon running (pid ${process.pid});${url ? ` dashboard ${url};` : ''} Ctrl-C to stop`,
    );
    // A subscription that cannot heal rejects `fatal`: the stop below records `failed` and exits 5.
    await Promise.race([stopRequested, fatal]);
    await opened.close('stopped');
    runtime.log.info({}, 'stopped');
    return 0;
  } catch (error) {
    await opened.close('failed');
    throw error;
  } finally {
    signals.dispose();
    await opened.close('stopped');
    // After the final heartbeat: probes keep answering (`stopping`) while agents are released.
    await http.close();
  }
}
