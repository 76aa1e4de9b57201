import { createIssueSource, openSession, readStateStore, resumeRequestsFor, type OpenedSession } from '../../main.js';
import { flagBoolean } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { formatDuration } from '../../domain/duration.js';
import { isFactoryError } from '../../errors.js';
import { printJson } from '../output.js';
import { openWithStopSignals } from '../signals.js';
import type { Verb } from '../verb.js';
import { issueArgument } from './triage.js';

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
  async run(args, output) {
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
  },
};
