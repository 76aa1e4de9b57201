import type { Verb } from '../verb.js';

export const pruneVerb: Verb = {
  name: 'prune',
  usage: 'factory prune [--dry-run] [--older-than DURATION] [--config PATH] [--json]',
  summary: "remove finished issues' worktrees (branches and commits stay; uncommitted work is saved to a ref)",
  details: [
    "Removes the worktrees under the state folder's worktrees/ whose issue finished (or has no claim) and",
    'that nothing touched for workspace.keepFinishedForMs (default 7 days), or for --older-than (e.g. 3d,',
    '12h, 0). Uncommitted or untracked changes are first saved to refs/factory/leftover/<issue>-<time>.',
    'With fleet.backend "bullmq" (a fleet worker\'s config) no claims are read, Redis included: a worktree',
    "untouched for that long goes, as the running worker's own pass decides (docs/operations.md).",
    'The live daemon and a running worker do the same every workspace.pruneIntervalMs; this removes only',
    'while neither runs on this config (it holds their lock meanwhile, so none starts); --dry-run works at',
    'any time.',
    'Prints each worktree removed (or that would be) with its size, and the total.',
    'Exit codes: 0 done (also when nothing was due), 1 a worktree could not be removed, 2 usage or config',
    'error, 3 a daemon or worker is running on this config (use --dry-run, or let it prune).',
  ].join('\n'),
  flags: [
    { name: 'dry-run', takesValue: false, description: 'list what would be removed; remove nothing' },
    { name: 'older-than', takesValue: true, valueName: 'DURATION', description: 'untouched for longer than this (3d, 12h, 30m, 0) instead of workspace.keepFinishedForMs' },
  ],
  load: () => import('./prune-run.js'),
};
