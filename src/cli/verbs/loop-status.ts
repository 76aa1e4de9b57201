import type { Verb } from '../verb.js';

export const loopStatusVerb: Verb = {
  name: 'loop-status',
  usage: 'factory loop-status [--config PATH] [--json]',
  summary: 'liveness verdict for cron: exit 0 healthy, 1 otherwise',
  details: [
    'Prints one line: the verdict (healthy, stale, wedged, stopping, stopped, missing, unreadable,',
    'subscription-unhealthy) and why.',
    'Exit codes: 0 healthy, 1 any other verdict, 2 config error.',
  ].join('\n'),
  flags: [],
  load: () => import('./loop-status-run.js'),
};
