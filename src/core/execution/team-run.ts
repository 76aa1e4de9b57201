import { join } from 'node:path';
import type { Issue } from '../domain/issue.js';
import { placeholderValues, renderArgument } from '../domain/prompt.js';
import type { AgentResult, AgentRole, RunOutcome, RunOutcomeReason } from '../domain/run.js';
import type { Clock } from '../ports/clock.js';
import type { AgentActivity, AgentExit, AgentHandle, Fleet } from '../ports/fleet.js';
import type { PreparedWorkspace, Workspace } from '../ports/workspace.js';
import { maybeCrash } from './fault-injection.js';
import type { Logger } from '../ports/logger.js';
import type { RegistryKeeper } from './registry-keeper.js';

export interface AgentCommand {
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly instruction?: string | undefined;
}

export interface TeamPlan {
  readonly issue: Issue;
  readonly runId: string;
  readonly attempt: number;
  readonly repo: string;
  readonly branch: string;
  readonly mode: 'sequential' | 'parallel';
  readonly agents: { readonly implementer: AgentCommand; readonly reviewer?: AgentCommand | undefined };
}

export interface TeamRunDeps {
  readonly fleet: Fleet;
  readonly workspace: Workspace;
  readonly registry: RegistryKeeper;
  readonly clock: Clock;
  readonly log: Logger;
  readonly logsDir: string;
  readonly killGraceMs: number;
}

/** Why the factory stopped a team before it finished on its own. */
export type StopReason = Extract<RunOutcomeReason, 'timed-out' | 'stalled' | 'cancelled' | 'released'>;

/**
 * One team at work on one issue: a worktree, then the implementer and the
 * reviewer as real process trees. The team owns its agents' registry entries:
 * added right after spawn, removed right after exit.
 */
export class TeamRun {
  readonly plan: TeamPlan;
  readonly startedAtMs: number;
  readonly outcome: Promise<RunOutcome>;
  readonly #deps: TeamRunDeps;
  readonly #handles = new Map<AgentRole, AgentHandle>();
  readonly #results: AgentResult[] = [];
  /** Why an agent could not be started, by role, for the outcome's detail. */
  readonly #spawnErrors = new Map<AgentRole, string>();
  #stopReason: StopReason | undefined;
  #workspace: PreparedWorkspace | undefined;
  #lastActivity: { signature: string; atMs: number };

  constructor(plan: TeamPlan, deps: TeamRunDeps) {
    this.plan = plan;
    this.#deps = deps;
    this.startedAtMs = deps.clock.now();
    this.#lastActivity = { signature: '', atMs: this.startedAtMs };
    this.outcome = this.#run();
  }

  get issueKey(): string {
    return this.plan.issue.key;
  }

  /** Agents running now, for status and the state API. */
  runningAgents(): AgentHandle[] {
    return [...this.#handles.values()];
  }

  get lastActivityAtMs(): number {
    return this.#lastActivity.atMs;
  }

  /**
   * Samples the agents' signs of work (output bytes and tree CPU time). Any
   * change counts as activity, so a silent agent that burns CPU is busy.
   * Called by the supervisor on its own timer, never by the heartbeat.
   */
  sampleActivity(): number {
    const samples: AgentActivity[] = [...this.#handles.values()].map((handle) => handle.activity());
    const signature = samples.map((s) => `${s.outputBytes}/${s.treeCpuTicks ?? '?'}`).join(',');
    if (signature !== this.#lastActivity.signature) this.#lastActivity = { signature, atMs: this.#deps.clock.now() };
    return this.#lastActivity.atMs;
  }

  /** Stops the team's agents (whole process groups). The outcome carries `reason`. */
  async stop(reason: StopReason): Promise<void> {
    this.#stopReason ??= reason;
    await Promise.all([...this.#handles.values()].map((handle) => handle.stop(this.#deps.killGraceMs)));
  }

  get stopReason(): StopReason | undefined {
    return this.#stopReason;
  }

  async #run(): Promise<RunOutcome> {
    const { plan } = this;
    try {
      this.#workspace = await this.#deps.workspace.prepare({ repo: plan.repo, issueKey: plan.issue.key, branch: plan.branch });
    } catch (error) {
      return this.#finish('spawn-failed', `could not prepare the worktree: ${(error as Error).message}`);
    }
    const roles: AgentRole[][] = plan.agents.reviewer
      ? plan.mode === 'parallel'
        ? [['implementer', 'reviewer']]
        : [['implementer'], ['reviewer']]
      : [['implementer']];
    for (const stage of roles) {
      if (this.#stopReason) break;
      const results = await Promise.all(stage.map((role) => this.#runAgent(role)));
      const failed = results.find((r) => r.reason !== 'succeeded');
      if (failed) {
        const reason = this.#stopReason ?? failed.reason;
        return this.#finish(reason, describeAgentFailure(failed, this.#stopReason));
      }
    }
    if (this.#stopReason) return this.#finish(this.#stopReason, `stopped: ${this.#stopReason}`);
    const commits = await this.#deps.workspace.commitsSince(this.#workspace).catch(() => -1);
    const detail = commits >= 0 ? `${this.#results.length} agent(s) exited 0; ${commits} commit(s) on ${plan.branch}` : `${this.#results.length} agent(s) exited 0`;
    return this.#finish('succeeded', detail);
  }

  async #runAgent(role: AgentRole): Promise<AgentResult> {
    const { plan } = this;
    const workspace = this.#workspace!;
    const agent = role === 'reviewer' ? plan.agents.reviewer! : plan.agents.implementer;
    const agentName = `${plan.issue.key}-${role}`;
    const values = placeholderValues({
      issue: plan.issue,
      role,
      branch: workspace.branch,
      worktree: workspace.path,
      runId: plan.runId,
      attempt: plan.attempt,
      extraInstruction: agent.instruction,
    });
    const logPath = join(this.#deps.logsDir, plan.issue.key, `${plan.runId}-${role}.log`);
    const startedAtMs = this.#deps.clock.now();
    let handle: AgentHandle;
    try {
      handle = await this.#deps.fleet.spawn({
        issueKey: plan.issue.key,
        runId: plan.runId,
        role,
        agentName,
        command: agent.command.map((arg) => renderArgument(arg, values)),
        cwd: workspace.path,
        env: { ...agent.env, FACTORY_BRANCH: workspace.branch, FACTORY_ATTEMPT: String(plan.attempt) },
        logPath,
        worktree: workspace.path,
      });
    } catch (error) {
      return this.#record({ role, agentName, exitCode: null, signal: null, reason: 'spawn-failed', logPath, startedAtMs, endedAtMs: this.#deps.clock.now() }, (error as Error).message);
    }
    this.#handles.set(role, handle);
    const log = this.#deps.log.child({ issue: plan.issue.key, run: plan.runId, agent: agentName });
    maybeCrash('after-spawn');
    await this.#deps.registry.add(handle.identity);
    maybeCrash('after-registry-write');
    log.info({ pid: handle.identity.pid }, `${role} started`);
    // A stop requested while we were spawning must still reach this agent.
    if (this.#stopReason) void handle.stop(this.#deps.killGraceMs);
    const exit: AgentExit = await handle.exited;
    // The leader is gone, but descendants it left behind (a dev server, a
    // watcher) still carry the marker: end them before the entry leaves the registry.
    await handle.stop(this.#deps.killGraceMs).catch((error: Error) => log.warn({ err: error.message }, 'could not clean up the agent tree after exit'));
    this.#handles.delete(role);
    await this.#deps.registry.remove(handle.identity.marker);
    const reason: RunOutcomeReason = this.#stopReason ?? (exit.exitCode === 0 ? 'succeeded' : 'failed');
    log.info({ exitCode: exit.exitCode, signal: exit.signal, reason }, `${role} exited`);
    if (reason === 'failed' && this.plan.mode === 'parallel') {
      // The team has failed; its other agents would work on for nothing.
      for (const sibling of this.#handles.values()) void sibling.stop(this.#deps.killGraceMs);
    }
    return this.#record({ role, agentName, exitCode: exit.exitCode, signal: exit.signal, reason, logPath, startedAtMs, endedAtMs: exit.endedAtMs });
  }

  #record(result: AgentResult, spawnError?: string): AgentResult {
    this.#results.push(result);
    if (spawnError) this.#spawnErrors.set(result.role, spawnError);
    return result;
  }

  #finish(reason: RunOutcomeReason, detail: string): RunOutcome {
    const spawnErrors = [...this.#spawnErrors.entries()].map(([role, message]) => `${role}: ${message}`);
    return {
      runId: this.plan.runId,
      issueKey: this.plan.issue.key,
      revision: this.plan.issue.revision,
      attempt: this.plan.attempt,
      reason,
      detail: spawnErrors.length > 0 && reason === 'spawn-failed' ? spawnErrors.join('; ') : detail,
      branch: this.#workspace?.branch ?? this.plan.branch,
      worktree: this.#workspace?.path ?? '',
      agents: [...this.#results],
      startedAtMs: this.startedAtMs,
      endedAtMs: this.#deps.clock.now(),
    };
  }
}

function describeAgentFailure(result: AgentResult, stopReason: StopReason | undefined): string {
  if (stopReason) return `${result.role} stopped: ${stopReason}`;
  if (result.reason === 'spawn-failed') return `${result.role} could not be started`;
  if (result.signal) return `${result.role} was killed by ${result.signal}`;
  return `${result.role} exited with code ${result.exitCode}`;
}
