import type { FactorySession, PredecessorReport } from '../core/factory-session.js';
import type { HeartbeatWrite } from '../core/heartbeat-keeper.js';
import type { DaemonStatus, SubscriptionHealth } from '../domain/heartbeat.js';
import type { AgentRole } from '../domain/run.js';
import type { AgentActivitySummary } from '../domain/agent-events/agent-driver.js';
import type { ControlPlaneFleetStatus } from '../adapters/team-executor/bullmq-team-executor.js';

/**
 * What only the running daemon knows, beyond its files: each team's last sign
 * of work, the issue titles, the heartbeat keeper's own view. The status server
 * works without it (from the files alone, as `factory status` does) and adds
 * these extras when it runs inside the daemon.
 */
export interface DaemonView {
  teams(): LiveTeam[];
  runningTeamCount(): number;
  queuedCount(): number;
  nextRetryAtMs(): number | null;
  subscription(): SubscriptionHealth | null;
  heartbeat(): LiveHeartbeat;
  predecessor(): PredecessorReport | undefined;
  /** Claims memory admission holds now (docs/resources.md); absent where the view has no admission. */
  heldForMemory?(): number;
  /** fleet.backend "bullmq": workers, placements, the queue and this control plane's fleet counters, read from Redis. */
  fleet?(): Promise<ControlPlaneFleetStatus>;
}

export interface LiveTeam {
  readonly issueKey: string;
  /** Untrusted text from the issue: escape it wherever it is shown. */
  readonly title: string;
  readonly runId: string;
  readonly attempt: number;
  readonly startedAtMs: number;
  /** Last change in the agents' output bytes or tree CPU time, as the supervisor last sampled it. */
  readonly lastActivityAtMs: number;
  /** Set when the factory is stopping the team (timed out, stalled, cancelled, released). */
  readonly stopping: string | null;
  readonly agents: readonly LiveAgent[];
}

export interface LiveAgent {
  readonly role: AgentRole;
  readonly agentName: string;
  /** `local`, or the worker node the agent runs on. */
  readonly node: string;
  /** Null for an agent on another node (its pid means nothing here). */
  readonly pid: number | null;
  readonly startedAtMs: number;
  /** A CLI driver's agent, from its stream: the last tool call or message, turns, tokens and cost so far. Null for command agents. */
  readonly activity: AgentActivitySummary | null;
  /** The highest sampled RSS of the agent's tree so far (supervision ticks; sampled, not exact); null until a tick sampled it. */
  readonly memoryPeakBytes: number | null;
}

export interface LiveHeartbeat {
  readonly status: DaemonStatus;
  readonly refreshIntervalMs: number;
  readonly lastWrite: HeartbeatWrite | null;
  readonly lastWriteError: string | null;
}

/** The view of an open session. Every call reads in-memory state only: no file, no process lookup. */
export function sessionView(session: FactorySession): DaemonView {
  const keeper = session.heartbeat;
  return {
    teams: () =>
      session.teams().map((team) => ({
        issueKey: team.plan.issue.key,
        title: team.plan.issue.title,
        runId: team.plan.runId,
        attempt: team.plan.attempt,
        startedAtMs: team.startedAtMs,
        lastActivityAtMs: team.lastActivityAtMs,
        stopping: team.stopReason ?? null,
        agents: team.runningAgents().map((agent) => ({
          role: agent.role,
          agentName: agent.agentName,
          node: agent.placement.node,
          pid: agent.placement.pid,
          startedAtMs: agent.startedAtMs,
          activity: agent.activity ?? null,
          memoryPeakBytes: agent.memoryPeakBytes ?? null,
        })),
      })),
    runningTeamCount: () => session.status().runningTeams,
    queuedCount: () => session.status().queued,
    nextRetryAtMs: () => session.status().nextRetryAtMs,
    subscription: () => session.intake?.health() ?? null,
    heartbeat: () => ({ status: keeper.status, refreshIntervalMs: keeper.refreshIntervalMs, lastWrite: keeper.lastWrite, lastWriteError: keeper.lastWriteError }),
    predecessor: () => session.predecessor,
    heldForMemory: () => session.heldReasons().size,
    ...fleetViewOf(session),
  };
}

function fleetViewOf(session: FactorySession): Pick<DaemonView, 'fleet'> {
  // Asked by shape, not by class, so a local daemon never loads the BullMQ adapter.
  const executor = session.deps.executor as Partial<{ fleetStatus(options: { readonly refreshIntervalMs: number }): Promise<ControlPlaneFleetStatus> }> | undefined;
  if (typeof executor?.fleetStatus !== 'function') return {};
  const refreshIntervalMs = session.deps.config.loop.heartbeatIntervalMs;
  const fleetStatus = executor.fleetStatus.bind(executor);
  return { fleet: () => fleetStatus({ refreshIntervalMs }) };
}
