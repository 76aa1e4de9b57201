import { createIssueSource, openSession, readStateStore, resumeRequestsFor, type OpenedSession } from '../../main.js';
import { flagBoolean, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { formatDuration } from '../../domain/duration.js';
import { isFactoryError } from '../../errors.js';
import { printJson, type Output } from '../output.js';
import { openWithStopSignals } from '../signals.js';
import { issueArgument } from './triage-run.js';

/** `factory resume` (its usage and flags are in resume.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const runtime = runtimeFromArgs(args);
  const json = flagBoolean(args, 'json');
  const issue = await (await createIssueSource(runtime)).read(issueArgument(args, 'resume'));
  const claim = await readStateStore(runtime.config, (store) => store.getClaim(issue.key), undefined);
  if (claim?.status !== 'parked') {
    const status = claim?.status ?? 'never dispatched';
    if (json) printJson(output, { resumed: false, issueKey: issue.key, status });
    else output.out(`${issue.key} is not parked (${status}); only a parked issue resumes`);
    return 1;
  }
  let opened: { opened: OpenedSession; signals: { dispose(): void } };
  try {
    opened = await openWithStopSignals(
      () => openSession(runtime, 'once'),
      (session) => void session.session.dispatcher.releaseAll(),
    );
  } catch (error) {
    if (!isFactoryError(error, 'FACTORY_DAEMON_ALREADY_RUNNING')) throw error;
    // One issue never has two teams: the running daemon owns the queue, so it is asked, not bypassed.
    await resumeRequestsFor(runtime.config).request(issue.key, runtime.clock.now());
    if (json) printJson(output, { resumed: 'requested', issueKey: issue.key, park: claim.park ?? null });
    else output.out(`${issue.key}: asked the running daemon to resume it; it does so on its next supervision pass (runs.superviseIntervalMs). Follow it with \`factory status\`.`);
    return 0;
  }
  const { signals } = opened;
  try {
    const { resumed, status, team } = await opened.opened.session.resumeOne(issue);
    if (!resumed || !team) {
      if (json) printJson(output, { resumed: false, issueKey: issue.key, status });
      else output.out(`${issue.key} was not resumed (${status})`);
      return 1;
    }
    const outcome = await team.outcome;
    await opened.opened.session.whenIdle();
    if (json) printJson(output, { resumed: true, outcome });
    else {
      output.out(`${issue.key}: resumed ${claim.park?.runId ?? ''}; ${outcome.reason} after ${formatDuration(outcome.endedAtMs - outcome.startedAtMs)}: ${outcome.detail}`);
      output.out(`  branch ${outcome.branch} in ${outcome.worktree}`);
    }
    return outcome.reason === 'succeeded' ? 0 : 1;
  } finally {
    signals.dispose();
    await opened.opened.close('stopped');
  }
}
