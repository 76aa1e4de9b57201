import type { Verb } from '../verb.js';

export const triageVerb: Verb = {
  name: 'triage',
  usage: 'factory triage <KEY|path> [--config PATH] [--json]',
  summary: "show how one issue would be triaged and routed, each agent's command, and the first agent's prompt",
  details: [
    'Reads one issue, applies the same rules as the daemon and prints the verdict, the repo,',
    'the branch, its claim (if any), the rendered argv of each agent and the prompt. Changes nothing.',
    'Exit codes: 0 in scope, 1 skipped, 2 usage, config or issue error.',
  ].join('\n'),
  flags: [],
  maxPositionals: 1,
  load: () => import('./triage-run.js'),
};
