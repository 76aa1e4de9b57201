import type { Verb } from '../verb.js';

export const workerVerb: Verb = {
  name: 'worker',
  usage: 'factory worker [--slots N] [--config PATH]',
  summary: 'run team runs from the fleet queue on this machine (fleet.backend "bullmq", docs/fleet.md)',
  details: [
    'Consumes team runs from the BullMQ queue of fleet.pool on fleet.redis.url, up to --slots (default',
    'fleet.worker.slots) at a time. Each run gets a worktree (from a per-worker clone when',
    'fleet.worker.repoCacheDir is set) and its agents run as local process groups, listed in this',
    "worker's registry with its own heartbeat, so `factory reap-orphans --config` works on this host.",
    'Worktrees of issues with no run on this worker, untouched for workspace.keepFinishedForMs, are removed',
    'at start and every workspace.pruneIntervalMs (branches stay; uncommitted work is saved to a ref).',
    'A run whose lock cannot be renewed in time is self-fenced: agents killed, nothing reported.',
    'Runs from a control plane with an older lease epoch than this worker has seen are refused.',
    'SIGTERM/SIGINT/SIGHUP: no new run is fetched; running ones get fleet.worker.shutdownGraceMs to finish,',
    'then are stopped and handed back to the queue. Exit codes: 0 stopped by a signal, 2 config error',
    "or unsuitable Redis, 3 another worker or daemon uses this config or its predecessor's agents",
    'survived, 5 Redis unreachable.',
  ].join('\n'),
  flags: [{ name: 'slots', takesValue: true, valueName: 'N', description: 'team runs at once (default fleet.worker.slots)' }],
  load: () => import('./worker-run.js'),
};
