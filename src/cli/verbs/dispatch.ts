import type { Verb } from '../verb.js';

export const dispatchVerb: Verb = {
  name: 'dispatch',
  usage: 'factory dispatch <KEY|path> [--force] [--config PATH] [--json]',
  summary: 'run one team for one issue now and wait for its outcome (for debugging)',
  details: [
    "Triage and claim rules are the daemon's: a skipped issue is not run, and a revision that",
    'already ended is not run again unless --force. Cannot run while a daemon uses this config.',
    'Exit codes: 0 the team succeeded, 1 it failed, ended no-changes or the issue was not dispatched, 2 usage,',
    'config or issue error, 3 a daemon is running on this config.',
  ].join('\n'),
  flags: [{ name: 'force', takesValue: false, description: 'run even if this revision already ended' }],
  maxPositionals: 1,
  outlivesItsOutput: true,
  load: () => import('./dispatch-run.js'),
};
