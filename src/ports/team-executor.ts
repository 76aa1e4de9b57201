import type { AgentActivitySummary } from '../domain/agent-events/agent-driver.js';
import type { Issue } from '../domain/issue.js';
import type { AgentResult, AgentRole, RunOutcome, StopReason } from '../domain/run.js';
import type { TeamStages } from '../domain/team.js';
import type { ParkedRun, ParkTrigger, RunBudget } from '../domain/budgets.js';

/** Everything an executor needs to run one team on one issue. */
export interface TeamPlan {
  readonly runId: string;
  readonly issue: Issue;
  readonly attempt: number;
  readonly repo: string;
  readonly branch: string;
  readonly stages: TeamStages;
  /** A parked run this one continues: its work is restored into the worktree and its stage's agent sessions resumed. */
  readonly resume?: ParkedRun;
  /**
   * With `resume`: the park was made on another machine, where its agents'
   * sessions live, so the agents start new sessions on the parked work. The
   * park keeps its sessions (a resume back on that machine continues them).
   */
  readonly startNewSessions?: boolean;
  /**
   * The run budget (`budgets.run`) the run is held to, set by the control plane when the team runs
   * elsewhere (a fleet worker): absent, the executor's own. Today's spending is the control plane's
   * business (admission), not the worker's.
   */
  readonly runBudget?: RunBudget;
}

/** Where something runs: `local` for this machine's process groups, or a worker's node name. */
export interface Placement {
  readonly node: string;
}

/** Where one agent runs. `pid` is only meaningful (and only ever signalled) on its own node. */
export interface AgentPlacement extends Placement {
  readonly pid: number | null;
}

export interface RunningAgent {
  readonly role: AgentRole;
  readonly agentName: string;
  readonly placement: AgentPlacement;
  readonly startedAtMs: number;
  /** What a CLI driver's agent is doing, from its stream (turns, tokens, cost, last tool call); absent for command agents. */
  readonly activity?: AgentActivitySummary;
  /** The highest sampled RSS of the agent's tree so far (see AgentResult.memoryPeakBytes); absent until a supervision tick sampled it. */
  readonly memoryPeakBytes?: number;
}

/**
 * What happens in a run, in order. Consumers switch on `kind`; new kinds
 * (agent activity, token usage from real agent CLIs) are added here.
 */
export type RunEvent =
  | { readonly kind: 'stage-started'; readonly runId: string; readonly stage: number; readonly roles: readonly AgentRole[]; readonly atMs: number }
  | { readonly kind: 'agent-started'; readonly runId: string; readonly agent: RunningAgent; readonly atMs: number }
  | { readonly kind: 'agent-exited'; readonly runId: string; readonly result: AgentResult; readonly atMs: number }
  /** A CLI driver's agent did something (a turn, a tool call, a message, more tokens); at most one a second per agent, and one at exit. */
  | { readonly kind: 'agent-activity'; readonly runId: string; readonly agentName: string; readonly role: AgentRole; readonly activity: AgentActivitySummary; readonly atMs: number }
  | { readonly kind: 'outcome'; readonly runId: string; readonly outcome: RunOutcome; readonly atMs: number };

export type RunEventKind = RunEvent['kind'];

/** One team run, wherever it executes. */
export interface TeamExecution {
  readonly plan: TeamPlan;
  readonly placement: Placement;
  readonly startedAtMs: number;
  /** Resolves once the run ended, whatever the reason. Never rejects. */
  readonly outcome: Promise<RunOutcome>;
  /** Set once the factory asked the run to stop. */
  readonly stopReason: StopReason | undefined;
  /** The last sign of work the supervisor saw (see sampleActivity). */
  readonly lastActivityAtMs: number;
  /** Calls `listener` for every event, past ones first (a late subscriber misses nothing); returns the unsubscribe. */
  subscribe(listener: (event: RunEvent) => void): () => void;
  /** Agents running now, for status. */
  runningAgents(): readonly RunningAgent[];
  /**
   * Asks the run to stop; the first reason wins and the outcome carries it. Resolves when its agents are gone.
   * With `parked`, `park` says why (memory pressure, say): the work and sessions are kept for a resume.
   */
  cancel(reason: StopReason, park?: ParkTrigger): Promise<void>;
  /** Samples the agents' signs of work and returns when the last change was seen (for stall detection). */
  sampleActivity(): Promise<number>;
}

/** A run still going, as an executor lists it. */
export interface RunningTeamRef {
  readonly runId: string;
  readonly issueKey: string;
  readonly placement: Placement;
}

/**
 * Runs teams. The control plane hands over a plan and gets back a run to
 * watch and cancel; where its worktree and agents live (local process groups
 * now, a queue worker next) is the executor's business.
 */
export interface TeamExecutor {
  /** The node runs started here are placed on. */
  readonly node: string;
  start(plan: TeamPlan): TeamExecution;
  /**
   * The run with `runId`, still going on another node after the control plane
   * that started it went away; undefined when it is gone (or was local).
   */
  attach(runId: string): Promise<TeamExecution | undefined>;
  listRunning(): Promise<readonly RunningTeamRef[]>;
}
