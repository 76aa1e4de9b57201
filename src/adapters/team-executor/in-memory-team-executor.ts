import type { Clock } from '../../ports/clock.js';
import type { AgentResult, RunOutcome, RunOutcomeReason, StopReason } from '../../domain/run.js';
import { agentNameFor } from '../../domain/team.js';
import type { Placement, RunEvent, RunningAgent, RunningTeamRef, TeamExecution, TeamExecutor, TeamPlan } from '../../ports/team-executor.js';

/**
 * Team runs with no processes, placed on a named node: the test decides when
 * each run ends. Runs live in the executor, not in the control plane that
 * started them, so a second control plane (a restarted daemon) on the same
 * executor can attach to a run the first one started, as it would to a run on
 * a queue worker. `cancel` ends a run at once with the stop reason.
 */
export class InMemoryTeamExecutor implements TeamExecutor {
  readonly node: string;
  readonly #clock: Clock;
  readonly #runs = new Map<string, InMemoryTeamRun>();
  /** Plans in start order, for assertions. */
  readonly started: TeamPlan[] = [];

  constructor(options: { node: string; clock: Clock }) {
    this.node = options.node;
    this.#clock = options.clock;
  }

  start(plan: TeamPlan): TeamExecution {
    const run = new InMemoryTeamRun(plan, { node: this.node }, this.#clock);
    this.#runs.set(plan.runId, run);
    this.started.push(plan);
    return run;
  }

  async attach(runId: string): Promise<TeamExecution | undefined> {
    const run = this.#runs.get(runId);
    return run && !run.ended ? run : undefined;
  }

  async listRunning(): Promise<RunningTeamRef[]> {
    return [...this.#runs.values()].filter((run) => !run.ended).map((run) => ({ runId: run.plan.runId, issueKey: run.plan.issue.key, placement: run.placement }));
  }

  /** The run for `issueKey` started last. */
  runOf(issueKey: string): InMemoryTeamRun | undefined {
    return [...this.#runs.values()].reverse().find((run) => run.plan.issue.key === issueKey);
  }

  /** Forgets a run, as a worker that died with its run would. */
  lose(runId: string): void {
    this.#runs.delete(runId);
  }
}

export class InMemoryTeamRun implements TeamExecution {
  readonly plan: TeamPlan;
  readonly placement: Placement;
  readonly startedAtMs: number;
  readonly outcome: Promise<RunOutcome>;
  readonly #clock: Clock;
  readonly #events: RunEvent[] = [];
  readonly #listeners = new Set<(event: RunEvent) => void>();
  #resolve!: (outcome: RunOutcome) => void;
  #stopReason: StopReason | undefined;
  #lastActivityAtMs: number;
  #ended = false;
  readonly #agents: RunningAgent[];

  constructor(plan: TeamPlan, placement: Placement, clock: Clock) {
    this.plan = plan;
    this.placement = placement;
    this.#clock = clock;
    this.startedAtMs = clock.now();
    this.#lastActivityAtMs = this.startedAtMs;
    this.outcome = new Promise((resolve) => (this.#resolve = resolve));
    const first = plan.stages[0]?.agents ?? [];
    this.#agents = first.map((a) => ({ role: a.role, agentName: agentNameFor(plan.issue.key, a.slot), placement: { node: placement.node, pid: null }, startedAtMs: this.startedAtMs }));
    this.#emit({ kind: 'stage-started', runId: plan.runId, stage: 0, roles: first.map((a) => a.role), atMs: this.startedAtMs });
    for (const agent of this.#agents) this.#emit({ kind: 'agent-started', runId: plan.runId, agent, atMs: this.startedAtMs });
  }

  get ended(): boolean {
    return this.#ended;
  }

  get stopReason(): StopReason | undefined {
    return this.#stopReason;
  }

  get lastActivityAtMs(): number {
    return this.#lastActivityAtMs;
  }

  subscribe(listener: (event: RunEvent) => void): () => void {
    for (const event of this.#events) listener(event);
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  runningAgents(): RunningAgent[] {
    return this.#ended ? [] : [...this.#agents];
  }

  async cancel(reason: StopReason): Promise<void> {
    this.#stopReason ??= reason;
    this.finish(this.#stopReason, `stopped: ${this.#stopReason}`);
    await this.outcome;
  }

  async sampleActivity(): Promise<number> {
    return this.#lastActivityAtMs;
  }

  /** Pretends the run's agents showed a sign of work. */
  touch(): void {
    this.#lastActivityAtMs = this.#clock.now();
  }

  /** Ends the run with `reason`, as its node would report it. */
  finish(reason: RunOutcomeReason, detail = `${reason} on ${this.placement.node}`): void {
    if (this.#ended) return;
    this.#ended = true;
    const endedAtMs = this.#clock.now();
    const results: AgentResult[] = this.#agents.map((a) => ({
      role: a.role,
      agentName: a.agentName,
      exitCode: reason === 'succeeded' ? 0 : null,
      signal: null,
      reason,
      logPath: '',
      startedAtMs: a.startedAtMs,
      endedAtMs,
    }));
    for (const result of results) this.#emit({ kind: 'agent-exited', runId: this.plan.runId, result, atMs: endedAtMs });
    const outcome: RunOutcome = {
      runId: this.plan.runId,
      issueKey: this.plan.issue.key,
      revision: this.plan.issue.revision,
      attempt: this.plan.attempt,
      reason,
      detail,
      branch: this.plan.branch,
      worktree: '',
      agents: results,
      startedAtMs: this.startedAtMs,
      endedAtMs,
    };
    this.#emit({ kind: 'outcome', runId: this.plan.runId, outcome, atMs: endedAtMs });
    this.#resolve(outcome);
  }

  #emit(event: RunEvent): void {
    this.#events.push(event);
    for (const listener of this.#listeners) listener(event);
  }
}
