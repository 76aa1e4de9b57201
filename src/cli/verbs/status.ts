import type { Verb } from '../verb.js';

export const statusVerb: Verb = {
  name: 'status',
  usage: 'factory status [--config PATH] [--json]',
  summary: "the running daemon's state: heartbeat, teams, queue, retries, outcomes",
  details: [
    "Read from the daemon's heartbeat, registry and state database; it never starts a daemon or",
    'touches a process. Works whether or not a daemon is running.',
    "Exit codes: 0 printed (whatever the daemon's health: use `loop-status` to alert), 2 config error.",
  ].join('\n'),
  flags: [],
  load: () => import('./status-run.js'),
};
