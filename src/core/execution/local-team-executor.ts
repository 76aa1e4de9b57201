import type { RunningTeamRef, TeamExecution, TeamExecutor, TeamPlan } from '../../ports/team-executor.js';
import { TeamRun, type TeamRunDeps } from './team-run.js';

/**
 * Runs teams on this machine: a worktree from the Workspace, agents from the
 * local Fleet as process groups, registry entries kept by the team. Nothing
 * outlives this daemon here, so there is never a run to attach to: a restarted
 * daemon reaps its predecessor's local agents and requeues their claims.
 */
export class LocalTeamExecutor implements TeamExecutor {
  readonly node: string;
  readonly #deps: TeamRunDeps;
  readonly #running = new Map<string, TeamRun>();

  constructor(deps: TeamRunDeps) {
    this.#deps = deps;
    this.node = deps.fleet.node;
  }

  start(plan: TeamPlan): TeamExecution {
    const run = new TeamRun(plan, this.#deps);
    this.#running.set(plan.runId, run);
    void run.outcome.then(() => this.#running.delete(plan.runId));
    return run;
  }

  async attach(): Promise<TeamExecution | undefined> {
    return undefined;
  }

  async listRunning(): Promise<RunningTeamRef[]> {
    return [...this.#running.values()].map((run) => ({ runId: run.plan.runId, issueKey: run.plan.issue.key, placement: run.placement }));
  }
}
