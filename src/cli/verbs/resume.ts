import type { Verb } from '../verb.js';

export const resumeVerb: Verb = {
  name: 'resume',
  usage: 'factory resume <KEY|path> [--config PATH] [--json]',
  summary: 'continue a parked issue: the same agent session in the same worktree, with a fresh run budget',
  details: [
    "A run over a usage budget (budgets.*) or stopped by the agent's usage limit is parked: its work is",
    'kept at refs/factory/park/<run> and its session id on the claim. This continues it: the work is',
    'restored into the worktree and the agent resumes its session (claude --resume, codex exec resume).',
    'With a daemon running on this config, the daemon does it: the request is left in the state folder',
    'and taken on its next supervision pass (this process starts no team). With no daemon, the run',
    'happens here and this waits for its outcome, as `dispatch` does.',
    'Exit codes: 0 the resumed run succeeded, or the running daemon was asked to resume it; 1 the issue',
    'is not parked, or the resumed run did not succeed (parked again, failed); 2 usage, config or issue error.',
  ].join('\n'),
  flags: [],
  maxPositionals: 1,
  outlivesItsOutput: true,
  load: () => import('./resume-run.js'),
};
