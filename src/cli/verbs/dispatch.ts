import { createIssueSource, openSession } from '../../main.js';
import { flagBoolean } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { formatDuration } from '../../domain/duration.js';
import { printJson } from '../output.js';
import { openWithStopSignals } from '../signals.js';
import type { Verb } from '../verb.js';
import { issueArgument } from './triage.js';

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
  async run(args, output) {
    const runtime = runtimeFromArgs(args);
    const issue = await (await createIssueSource(runtime)).read(issueArgument(args, 'dispatch'));
    // Agents run in their own sessions, so Ctrl-C never reaches them: release them in order.
    const { opened, signals } = await openWithStopSignals(
      () => openSession(runtime, 'once'),
      (session) => void session.session.dispatcher.releaseAll(),
    );
    try {
      const { decision, team } = await opened.session.dispatchOne(issue, { force: flagBoolean(args, 'force') });
      if (!team) {
        const why = decision ? `${decision.action}: ${decision.reason}` : 'not dispatchable';
        if (flagBoolean(args, 'json')) printJson(output, { dispatched: false, decision });
        else output.out(`${issue.key} was not dispatched (${why})${decision?.action === 'already-handled' ? '; pass --force to run it again' : ''}`);
        return 1;
      }
      const outcome = await team.outcome;
      await opened.session.whenIdle();
      if (flagBoolean(args, 'json')) printJson(output, { dispatched: true, outcome });
      else {
        output.out(`${issue.key}: ${outcome.reason} after ${formatDuration(outcome.endedAtMs - outcome.startedAtMs)}: ${outcome.detail}`);
        for (const agent of outcome.agents) output.out(`  ${agent.role}: exit ${agent.exitCode ?? '-'}${agent.signal ? ` (${agent.signal})` : ''}, log ${agent.logPath}`);
        output.out(`  branch ${outcome.branch} in ${outcome.worktree}`);
      }
      return outcome.reason === 'succeeded' ? 0 : 1;
    } finally {
      signals.dispose();
      await opened.close('stopped');
    }
  },
};
