import type { Liveness, LivenessVerdict } from '../core/liveness.js';
import type { StatusSnapshot, TeamStatus } from '../core/status-snapshot.js';
import { isReconcileStalled, type DaemonStatus, type SubscriptionHealth } from '../domain/heartbeat.js';
import type { DaemonView, LiveAgent, LiveHeartbeat } from './daemon-view.js';

/**
 * Health in two parts, because they answer different questions:
 * - `ok` (liveness): the daemon's process is alive and its heartbeat fresh.
 *   Only this should make a supervisor restart it.
 * - `status` (readiness): whether it is dispatching well: subscription,
 *   reconcile passes, recent errors. A wedged watcher heals itself (or the
 *   daemon exits on its own after `intake.unhealthyLimitMs`), so this never
 *   warrants a restart; it warrants a look.
 */
export interface HealthReport {
  readonly ok: boolean;
  readonly verdict: LivenessVerdict;
  readonly detail: string;
  readonly heartbeatAgeMs: number | null;
  /** `loop.heartbeatStaleMs`: an older heartbeat is stale. */
  readonly heartbeatStaleMs: number;
  readonly status: DispatchHealth;
}

/** `ready`: dispatching normally. `degraded`: dispatching, but something is healing (amber). `unavailable`: not dispatching (red). */
export type DispatchState = 'ready' | 'degraded' | 'unavailable';

export interface DispatchHealth {
  readonly state: DispatchState;
  /** Why it is not `ready`; empty when it is. */
  readonly reasons: readonly string[];
  readonly daemonStatus: DaemonStatus | null;
  readonly subscription: SubscriptionHealth | null;
  readonly reconcile: { readonly state: 'never' | 'ok' | 'running' | 'stalled'; readonly startedAtMs: number | null; readonly lastProgressAtMs: number | null };
  readonly lastErrors: readonly { readonly source: 'subscription' | 'heartbeat-write' | 'registry'; readonly message: string }[];
}

/** Verdicts under which the process is alive and its heartbeat fresh (a stopping daemon is alive, and exits by itself). */
const ALIVE_VERDICTS: readonly LivenessVerdict[] = ['healthy', 'subscription-unhealthy', 'stopping'];

export function judgeHealth(liveness: Liveness, options: { nowMs: number; staleMs: number; view?: DaemonView | undefined; registry?: StatusSnapshot['registry'] }): HealthReport {
  const ok = ALIVE_VERDICTS.includes(liveness.verdict) && liveness.processAlive === true;
  const heartbeat = liveness.heartbeat;
  const live = options.view?.heartbeat();
  // In the daemon itself the in-memory state is fresher than the file; elsewhere the file is all there is.
  const daemonStatus = live?.status ?? heartbeat?.status ?? null;
  const subscription = options.view?.subscription() ?? heartbeat?.subscription ?? null;
  const watchesSubscription = (heartbeat?.mode ?? 'live') === 'live';
  const reasons: string[] = [];
  let state: DispatchState = 'ready';
  const worsen = (to: DispatchState, reason: string): void => {
    if (to === 'unavailable' || state === 'ready') state = to;
    reasons.push(reason);
  };

  if (!ok) worsen('unavailable', `liveness is ${liveness.verdict}: ${liveness.detail}`);
  if (daemonStatus !== null && daemonStatus !== 'running' && daemonStatus !== 'idle') worsen('unavailable', `the daemon is ${daemonStatus}`);
  const reconcile = describeReconcile(subscription, options.nowMs);
  if (subscription && watchesSubscription) {
    if (subscription.state === 'wedged' || subscription.state === 'not-listening') worsen('unavailable', `the issue subscription is ${subscription.state}`);
    else if (subscription.state === 'starting' || subscription.state === 'reconnecting') worsen('degraded', `the issue subscription is ${subscription.state}`);
    else if (subscription.unhealthySinceMs !== null) worsen('degraded', `intake unhealthy for ${Math.round((options.nowMs - subscription.unhealthySinceMs) / 1000)}s`);
    if (reconcile.state === 'stalled') worsen('unavailable', 'a reconcile pass is stalled');
  }
  const lastErrors: DispatchHealth['lastErrors'][number][] = [];
  if (subscription?.lastError) lastErrors.push({ source: 'subscription', message: subscription.lastError });
  if (live?.lastWriteError) lastErrors.push({ source: 'heartbeat-write', message: live.lastWriteError });
  if (options.registry?.state === 'unreadable') lastErrors.push({ source: 'registry', message: options.registry.detail });
  if (state === 'ready' && lastErrors.length > 0) worsen('degraded', `recent error: ${lastErrors[0]!.message}`);

  return {
    ok,
    verdict: liveness.verdict,
    detail: liveness.detail,
    heartbeatAgeMs: liveness.ageMs,
    heartbeatStaleMs: options.staleMs,
    status: { state, reasons, daemonStatus, subscription, reconcile, lastErrors },
  };
}

function describeReconcile(subscription: SubscriptionHealth | null, nowMs: number): DispatchHealth['reconcile'] {
  if (!subscription) return { state: 'never', startedAtMs: null, lastProgressAtMs: null };
  const { reconcileStartedAtMs: startedAtMs, lastProgressAtMs } = subscription;
  const state = isReconcileStalled(subscription, nowMs) ? 'stalled' : startedAtMs !== null ? 'running' : lastProgressAtMs !== null ? 'ok' : 'never';
  return { state, startedAtMs, lastProgressAtMs };
}

/** A running team as the state API shows it: the registry's agents plus what only the daemon knows. */
export interface StateTeam extends Omit<TeamStatus, 'agents'> {
  /** Registry entries for agents on this machine; for a run the registry does not list (placed on another node), the daemon's own view, whose pid is null. */
  readonly agents: readonly StateAgent[];
  /** Untrusted issue text; null when served from files only. */
  readonly title: string | null;
  readonly lastActivityAtMs: number | null;
  readonly stopping: string | null;
}

export type StateAgent = (TeamStatus['agents'][number] & Pick<LiveAgent, 'activity' | 'memoryPeakBytes'>) | (LiveAgent & { readonly alive: boolean });

/** `GET /api/v1/state`: the `factory status` snapshot, health, and the live extras when served by the daemon. */
export interface StateDocument extends Omit<StatusSnapshot, 'teams'> {
  readonly apiVersion: 1;
  readonly health: HealthReport;
  readonly teams: readonly StateTeam[];
  /** Null when the server reads files only (no daemon in this process). */
  readonly live: {
    readonly heartbeat: LiveHeartbeat;
    readonly runningTeamCount: number;
    readonly queuedCount: number;
    readonly nextRetryAtMs: number | null;
    readonly predecessor: { readonly found: number; readonly reaped: number; readonly requeued: readonly string[] } | null;
  } | null;
}

export function buildStateDocument(snapshot: StatusSnapshot, options: { staleMs: number; view: DaemonView | undefined }): StateDocument {
  const { view } = options;
  const health = judgeHealth(snapshot.liveness, { nowMs: snapshot.generatedAtMs, staleMs: options.staleMs, view, registry: snapshot.registry });
  const liveTeams = new Map((view?.teams() ?? []).map((team) => [team.runId, team]));
  const teams: StateTeam[] = snapshot.teams.map((team) => {
    const live = liveTeams.get(team.runId);
    liveTeams.delete(team.runId);
    // The registry knows the processes; only the daemon knows what a CLI driver's agent is doing and its sampled memory.
    const liveAgents = new Map((live?.agents ?? []).map((agent) => [agent.agentName, agent]));
    const agents = team.agents.map((agent) => {
      const liveAgent = liveAgents.get(agent.agentName);
      return { ...agent, activity: liveAgent?.activity ?? null, memoryPeakBytes: liveAgent?.memoryPeakBytes ?? null };
    });
    return {
      ...team,
      // The registry only knows its agents' start times, and at the reviewer stage that is the reviewer's: the team's own start keeps its age and its place in the order.
      startedAtMs: live?.startedAtMs ?? team.startedAtMs,
      agents,
      attempt: team.attempt ?? live?.attempt ?? null,
      title: live?.title ?? null,
      lastActivityAtMs: live?.lastActivityAtMs ?? null,
      stopping: live?.stopping ?? null,
    };
  });
  // Teams the registry does not list: worktree being prepared, between two stages, or placed on another node.
  for (const live of liveTeams.values()) {
    const agents = live.agents.map((agent) => ({ ...agent, alive: true }));
    teams.push({
      issueKey: live.issueKey,
      runId: live.runId,
      attempt: live.attempt,
      startedAtMs: live.startedAtMs,
      agents,
      title: live.title,
      lastActivityAtMs: live.lastActivityAtMs,
      stopping: live.stopping,
    });
  }
  teams.sort((a, b) => a.startedAtMs - b.startedAtMs || (a.issueKey < b.issueKey ? -1 : 1));
  const predecessor = view?.predecessor();
  return {
    ...snapshot,
    apiVersion: 1,
    health,
    teams,
    live: view
      ? {
          heartbeat: view.heartbeat(),
          runningTeamCount: view.runningTeamCount(),
          queuedCount: view.queuedCount(),
          nextRetryAtMs: view.nextRetryAtMs(),
          predecessor: predecessor ? { found: predecessor.found, reaped: predecessor.reaped, requeued: predecessor.requeued } : null,
        }
      : null,
  };
}
