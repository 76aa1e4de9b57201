import type { Verb } from '../verb.js';

export const killLoopVerb: Verb = {
  name: 'kill-loop',
  usage: 'factory kill-loop [--timeout-ms N] [--config PATH] [--json]',
  summary: "SIGTERM the daemon, after proving the heartbeat's process is still that daemon",
  details: [
    'Reads the heartbeat, proves pid + start time + boot id still name the daemon that wrote it',
    'and that this process holds the daemon lock open (a forged heartbeat cannot fake that),',
    'sends SIGTERM and waits up to --timeout-ms (default 60000) for the ordered stop to finish.',
    'A heartbeat whose process is gone or was reused is never signalled.',
    'Exit codes: 0 the daemon stopped, 1 it is still stopping after the timeout, 2 usage or',
    'config error, 3 no daemon is running or the identity does not match (nothing signalled).',
  ].join('\n'),
  flags: [{ name: 'timeout-ms', takesValue: true, valueName: 'N', description: 'how long to wait for the stop (default 60000)' }],
  load: () => import('./kill-loop-run.js'),
};
