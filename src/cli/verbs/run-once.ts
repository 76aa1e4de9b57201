import type { Verb } from '../verb.js';

export const runOnceVerb: Verb = {
  name: 'run-once',
  usage: 'factory run-once [--dry-run] [--config PATH] [--json]',
  summary: 'one discover → triage → dispatch cycle; waits for the teams and prints a report',
  details: [
    'Scans the mount, triages every issue, dispatches teams (up to dispatch.batchSize at once) and',
    'waits for them. Prints pulled / triaged / dispatched / skipped-with-reasons and each outcome.',
    'With --dry-run nothing is claimed, spawned or written. SIGINT/SIGTERM/SIGHUP releases running teams in order.',
    'Exit codes: 0 all teams succeeded (or none ran), 1 a team failed, ended no-changes or was released, 2 usage or config error,',
    '3 another daemon uses this config.',
  ].join('\n'),
  flags: [{ name: 'dry-run', takesValue: false, description: 'report what would happen; change nothing' }],
  outlivesItsOutput: true,
  load: () => import('./run-once-run.js'),
};
