import type { Verb } from '../verb.js';

export const loopVerb: Verb = {
  name: 'loop',
  usage: 'factory loop [--max-iterations N] [--dry-run] [--config PATH] [--json]',
  summary: 'a bounded loop of cycles with a heartbeat per iteration',
  details: [
    'Runs up to N cycles (default 10), loop.iterationDelayMs apart, writing a heartbeat each',
    'iteration and `idle` at the end. Stops early after loop.maxConsecutiveFailures failed',
    'iterations in a row, or on SIGINT/SIGTERM/SIGHUP (ordered stop). --dry-run plans one cycle only.',
    'Exit codes: 0 finished, 1 stopped after consecutive failures, 2 usage or config error,',
    '3 another daemon uses this config.',
  ].join('\n'),
  outlivesItsOutput: true,
  flags: [
    { name: 'max-iterations', takesValue: true, valueName: 'N', description: 'number of cycles (default 10)' },
    { name: 'dry-run', takesValue: false, description: 'plan one cycle; change nothing' },
  ],
  load: () => import('./loop-run.js'),
};
