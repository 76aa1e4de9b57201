import type { Verb } from '../verb.js';

export const reapOrphansVerb: Verb = {
  name: 'reap-orphans',
  usage: 'factory reap-orphans [--dry-run] [--terminate-wedged-daemon] [--config PATH]',
  summary: "reap a dead daemon's orphaned agent trees; JSON report; non-zero if any survive",
  details: [
    'Meant for cron or a systemd timer (docs/reaper.md). Acts only when the heartbeat is stale AND',
    "the daemon's process identity is gone. Every agent is proven (pid, start time, boot id and its",
    'inherited marker) before any signal; its whole tree, including escapees, gets SIGTERM, then',
    'SIGKILL after reaper.graceMs. Prints a JSON report on stdout.',
    'Exit codes: 0 nothing to do or everything reaped, 1 an orphan survived or an error occurred,',
    '2 usage or config error, 3 the daemon is wedged (alive but stale: nothing touched unless',
    '--terminate-wedged-daemon), 4 another reaper holds the lock.',
  ].join('\n'),
  flags: [
    { name: 'dry-run', takesValue: false, description: 'report what would be done; signal and write nothing' },
    { name: 'terminate-wedged-daemon', takesValue: false, description: 'stop a wedged daemon by identity first, then reap' },
  ],
  load: () => import('./reap-orphans-run.js'),
};
