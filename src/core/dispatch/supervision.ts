import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';
import type { TeamExecution } from '../../ports/team-executor.js';

export interface SupervisionPolicy {
  readonly maxRuntimeMs: number;
  readonly stallLimitMs: number;
}

/**
 * One supervision round: stops teams that ran too long or show no sign of
 * work. Runs on the supervisor's timer, never on the heartbeat's. Samples are
 * taken for all teams at once, so one round shares one look at the agents.
 */
export async function superviseTeams(teams: readonly TeamExecution[], policy: SupervisionPolicy, clock: Clock, log: Logger): Promise<void> {
  const now = clock.now();
  const live = teams.filter((team) => !team.stopReason);
  const lastActivity = await Promise.all(live.map((team) => (now - team.startedAtMs > policy.maxRuntimeMs ? Promise.resolve(now) : team.sampleActivity().catch(() => now))));
  live.forEach((team, index) => {
    const fields = { issue: team.plan.issue.key, run: team.plan.runId };
    if (now - team.startedAtMs > policy.maxRuntimeMs) {
      log.warn(fields, `run exceeded runs.maxRuntimeMs (${policy.maxRuntimeMs} ms); stopping`);
      void team.cancel('timed-out');
      return;
    }
    const idleMs = now - lastActivity[index]!;
    if (idleMs > policy.stallLimitMs) {
      log.warn(fields, `no output and no CPU for ${idleMs} ms (runs.stallLimitMs ${policy.stallLimitMs}); stopping as stalled`);
      void team.cancel('stalled');
    }
  });
}
