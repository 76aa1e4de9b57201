import type { Verb } from '../verb.js';

export const startVerb: Verb = {
  name: 'start',
  usage: 'factory start [--mode live] [--config PATH]',
  summary: 'the long-lived daemon: watch the mount, dispatch teams, keep the heartbeat fresh',
  details: [
    "Writes a `running` heartbeat, deals with a crashed predecessor's agents, subscribes to the",
    'mount, reconciles, and dispatches until SIGINT/SIGTERM/SIGHUP. Then it stops in order: refresh',
    'cancelled, `stopping` written, agents released, registry and final heartbeat written.',
    'Serves the status API, metrics and dashboard on http.host:http.port (default',
    "127.0.0.1:7420; the ready line and the heartbeat's `http.url` name it).",
    'Logs go to stderr: readable lines on a terminal, JSON lines otherwise',
    '(FACTORY_LOG_LEVEL=debug for more, FACTORY_LOG_FORMAT=json|pretty to choose).',
    'Exit codes: 0 stopped by a signal, 2 usage or config error or the HTTP port is taken,',
    "3 another daemon uses this config or the predecessor's agents could not be reaped,",
    '5 the issue subscription failed.',
  ].join('\n'),
  flags: [{ name: 'mode', takesValue: true, valueName: 'MODE', description: '`live`, the default and only mode (bounded runs are `loop` and `run-once`)' }],
  outlivesItsOutput: true,
  load: () => import('./start-run.js'),
};
