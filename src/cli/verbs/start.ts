import { FactoryError } from '../../errors.js';
import { prepareDaemonHttp } from '../../http/daemon-http.js';
import { openSession } from '../../main.js';
import { flagString } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { onStopSignal, openWithStopSignals } from '../signals.js';
import type { Verb } from '../verb.js';

export const startVerb: Verb = {
  name: 'start',
  usage: 'factory start [--mode live] [--config PATH]',
  summary: 'the long-lived daemon: watch the mount, dispatch teams, keep the heartbeat fresh',
  details: [
    "Writes a `running` heartbeat, deals with a crashed predecessor's agents, subscribes to the",
    'mount, reconciles, and dispatches until SIGINT/SIGTERM. Then it stops in order: refresh',
    'cancelled, `stopping` written, agents released, registry and final heartbeat written.',
    'Serves the status API, metrics and dashboard on http.host:http.port (default',
    "127.0.0.1:7420; the ready line and the heartbeat's `http.url` name it).",
    'Logs go to stderr: readable lines on a terminal, JSON lines otherwise',
    '(FACTORY_LOG_LEVEL=debug for more, FACTORY_LOG_FORMAT=json|pretty to choose).',
    'Exit codes: 0 stopped by a signal, 2 usage or config error or the HTTP port is taken,',
    "3 another daemon uses this config or the predecessor's agents could not be reaped,",
    '5 the issue subscription failed.',
  ].join('\n'),
  flags: [{ name: 'mode', takesValue: true, description: '`live`, the default and only mode (bounded runs are `loop` and `run-once`)' }],
  outlivesItsOutput: true,
  async run(args) {
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
  },
};
