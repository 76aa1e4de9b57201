import { createIssueSource, openSession } from '../../main.js';
import { flagBoolean, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { formatDuration } from '../../domain/duration.js';
import { printJson, type Output } from '../output.js';
import { openWithStopSignals } from '../signals.js';
import { issueArgument } from './triage-run.js';

/** `factory dispatch` (its usage and flags are in dispatch.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
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
}
