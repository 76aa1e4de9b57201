import type { Verb } from '../verb.js';

export const logsVerb: Verb = {
  name: 'logs',
  usage: 'factory logs <KEY> [--follow] [--tail N] [--raw] [--config PATH] [--json]',
  summary: "print the agent logs of an issue's latest run (--follow: until its agents exit)",
  details: [
    "Prints every agent's log of the issue's latest run, in the team's stage order, each under a",
    '`==> <agent> <run> <==` header, from <state.dir>/logs/<KEY>/. --tail N prints only the last N',
    'lines of each. --follow keeps printing new output until the run ends (its agents exited and',
    "the daemon recorded the outcome) or Ctrl-C; if the issue's team is starting, it waits for it.",
    "A claude-code or codex agent's JSON event stream is shown as one line per turn, message, tool call",
    'and result; --raw prints the JSON lines as the CLI wrote them.',
    'Exit codes: 0 printed, 1 no logs for this issue (FACTORY_RUN_LOGS_NOT_FOUND), 2 usage or config error.',
  ].join('\n'),
  maxPositionals: 1,
  flags: [
    { name: 'follow', takesValue: false, description: "keep printing until the run's agents exit" },
    { name: 'tail', takesValue: true, valueName: 'N', description: "only the last N lines of each agent's log" },
    { name: 'raw', takesValue: false, description: "a CLI driver's JSON lines as written, not rendered" },
  ],
  load: () => import('./logs-run.js'),
};
