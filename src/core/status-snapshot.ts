import { compareClaimsForDispatch, describeWait, isDueForStart, type SlotUse } from '../domain/claim-lifecycle.js';
import type { HeartbeatResources } from '../domain/heartbeat.js';
import type { RegistryEntry } from '../domain/registry.js';
import type { RunOutcome } from '../domain/run.js';
import type { FleetStatus } from '../ports/team-run-queue.js';
import type { HeartbeatStore, RegistryStore } from '../ports/node-state-store.js';
import type { ProcessTable } from '../ports/process-table.js';
import type { IssueClaim, ReadOnlyStateStore, SkipRecord, UsageSummary } from '../ports/state-store.js';
import { EMPTY_USAGE_SUMMARY, startOfDayMs } from '../domain/agent-events/usage-records.js';
import { judgeLiveness, type Liveness } from './liveness.js';

/**
 * What the running daemon is doing, read from its files (heartbeat, registry,
 * state database), never from a fresh instance. `factory status` prints it;
 * the HTTP state API serves the same object.
 */
export interface StatusSnapshot {
  readonly generatedAtMs: number;
  readonly configPath: string;
  readonly liveness: Liveness;
  /**
   * fleet.backend "bullmq": the leader, the workers (host, slots, runs,
   * heartbeat age, whether they still reach Redis), where each run is placed,
   * the queue and Redis's memory, read from Redis. Null in local mode.
   */
  readonly fleet: FleetStatus | null;
  readonly registry: { readonly state: 'ok' | 'missing' | 'unreadable'; readonly detail: string; readonly rejectedEntries: number };
  readonly teams: readonly TeamStatus[];
  /** Claims due to start (queued, or past their retry time), in the order they will start. */
  readonly queue: readonly WaitingClaim[];
  /** Claims waiting for their retry time, soonest first. */
  readonly retries: readonly WaitingClaim[];
  /** Parked claims (over a usage budget or stopped by a usage limit, work kept), with why and when they resume; soonest resume first, by-hand last. */
  readonly parked: readonly WaitingClaim[];
  readonly recentOutcomes: readonly RunOutcome[];
  readonly outcomeCount: number;
  /** Issues triage skips (by key), and files intake cannot read as issues (no key; `path` names the file), as the daemon's heartbeat last said. */
  readonly skipped: readonly SkippedStatus[];
  /** The usage ledger (docs/agents.md): CLI-driver agent runs summed per role and driver, today (local time) and in all. */
  readonly usage: { readonly todaySinceMs: number; readonly today: UsageSummary; readonly allTime: UsageSummary };
  /**
   * Team budgets on this machine (docs/resources.md): the mechanism detection
   * chose, what it enforces, PSI pressure and the claims held for memory, as
   * the daemon's heartbeat last said. Null without a heartbeat that carries it.
   */
  readonly resources: HeartbeatResources | null;
}

/** Why an issue is not dispatched; a file that could not be read as an issue has no key, and its `path` instead. */
export interface SkippedStatus {
  readonly issueKey: string | null;
  readonly path?: string;
  readonly reason: string;
  readonly atMs: number;
}

/** A claim not started yet, with why: `waiting for a slot: 4 of 4 busy`, `retrying at <time> (attempt 2 of 3)`. */
export interface WaitingClaim extends IssueClaim {
  readonly why: string;
}

export interface TeamStatus {
  readonly issueKey: string;
  readonly runId: string;
  readonly attempt: number | null;
  readonly startedAtMs: number;
  readonly agents: readonly (RegistryEntry & { readonly alive: boolean })[];
}

/** Where a status reader finds the daemon's records; main.ts builds it (`statusSourcesFor`). */
export interface StatusSources {
  readonly configPath: string;
  readonly staleMs: number;
  /** The config's slots and attempts, to say why a claim waits. */
  readonly dispatch: { readonly batchSize: number; readonly maxAttempts: number };
  readonly heartbeats: Pick<HeartbeatStore, 'read'>;
  readonly registry: Pick<RegistryStore, 'read'>;
  readonly processTable: ProcessTable;
  /** Reads the state store opened read-only; `whenMissing` when no daemon ever created it. */
  readState<T>(read: (store: ReadOnlyStateStore) => Promise<T>, whenMissing: T): Promise<T>;
  /** fleet.backend "bullmq": the fleet as Redis says now. */
  readFleet?(nowMs: number): Promise<FleetStatus>;
}

export async function readStatusSnapshot(sources: StatusSources, options: { nowMs: number; outcomeLimit?: number }): Promise<StatusSnapshot> {
  const heartbeat = await sources.heartbeats.read();
  const liveness = judgeLiveness(heartbeat, { nowMs: options.nowMs, staleMs: sources.staleMs, processTable: sources.processTable });
  const registry = await sources.registry.read();
  const entries = registry.kind === 'ok' ? registry.value.file.agents : [];
  const byRun = new Map<string, RegistryEntry[]>();
  for (const entry of entries) byRun.set(entry.runId, [...(byRun.get(entry.runId) ?? []), entry]);

  const todaySinceMs = startOfDayMs(options.nowMs, -new Date(options.nowMs).getTimezoneOffset());
  const empty: { claims: IssueClaim[]; recentOutcomes: RunOutcome[]; outcomeCount: number; skipped: SkipRecord[]; today: UsageSummary; allTime: UsageSummary } = {
    claims: [],
    recentOutcomes: [],
    outcomeCount: 0,
    skipped: [],
    today: EMPTY_USAGE_SUMMARY,
    allTime: EMPTY_USAGE_SUMMARY,
  };
  const { claims, recentOutcomes, outcomeCount, skipped, today, allTime } = await sources.readState(
    async (store) => ({
      // Only claims in play: a factory with a long history must not pay for all of it on every status read.
      claims: await store.listActiveClaims(),
      recentOutcomes: await store.recentOutcomes(options.outcomeLimit ?? 20),
      outcomeCount: await store.outcomeCount(),
      skipped: await store.listSkips(),
      today: await store.usageSummary(todaySinceMs),
      allTime: await store.usageSummary(0),
    }),
    empty,
  );
  const claimByRun = new Map(claims.filter((c) => c.runId).map((c) => [c.runId!, c]));
  const teams: TeamStatus[] = [...byRun.entries()].map(([runId, agents]) => ({
    issueKey: agents[0]!.issueKey,
    runId,
    attempt: claimByRun.get(runId)?.attempt ?? null,
    // The team's own start when the registry keeps it: at the reviewer stage the oldest agent listed is the reviewer.
    startedAtMs: Math.min(...agents.map((a) => a.teamStartedAtMs ?? a.startedAtMs)),
    agents: agents.map((agent) => {
      const info = agent.node === 'local' ? sources.processTable.inspect(agent.pid) : undefined;
      return { ...agent, alive: info !== undefined && info.startTime === agent.startTime && info.state !== 'Z' };
    }),
  }));
  return {
    generatedAtMs: options.nowMs,
    configPath: sources.configPath,
    liveness,
    fleet: sources.readFleet ? await sources.readFleet(options.nowMs) : null,
    registry:
      registry.kind === 'ok'
        ? { state: 'ok', detail: `${entries.length} agent(s)`, rejectedEntries: registry.value.rejected.length }
        : registry.kind === 'missing'
          ? { state: 'missing', detail: 'no registry file yet', rejectedEntries: 0 }
          : { state: 'unreadable', detail: registry.reason, rejectedEntries: 0 },
    teams,
    ...describeWaitingClaims(claims, liveness, sources.dispatch, options.nowMs),
    recentOutcomes,
    outcomeCount,
    skipped: [...(liveness.heartbeat?.skippedFiles ?? []).map((file) => ({ issueKey: null, path: file.path, reason: file.reason, atMs: file.sinceMs })), ...skipped],
    usage: { todaySinceMs, today, allTime },
    resources: liveness.heartbeat?.resources ?? null,
  };
}

/** Verdicts under which the daemon is dispatching (an unhealthy subscription still starts what is queued). */
const DISPATCHING: readonly Liveness['verdict'][] = ['healthy', 'subscription-unhealthy'];

function describeWaitingClaims(claims: readonly IssueClaim[], liveness: Liveness, dispatch: StatusSources['dispatch'], nowMs: number): Pick<StatusSnapshot, 'queue' | 'retries' | 'parked'> {
  const heartbeat = liveness.heartbeat;
  const slots: SlotUse | null = heartbeat && DISPATCHING.includes(liveness.verdict) ? { busy: heartbeat.inFlightTeams, total: dispatch.batchSize } : null;
  const held = new Map((heartbeat?.resources?.held ?? []).map((entry) => [entry.issueKey, entry.reason]));
  const context = { nowMs, slots, noDaemon: `the daemon is ${liveness.verdict}`, maxAttempts: dispatch.maxAttempts, held };
  const due = claims.filter((c) => isDueForStart(c, nowMs)).sort(compareClaimsForDispatch);
  const later = claims.filter((c) => c.status === 'retry-wait' && !isDueForStart(c, nowMs)).sort((a, b) => (a.nextAttemptAtMs ?? 0) - (b.nextAttemptAtMs ?? 0));
  return {
    queue: due.map((claim, position) => ({ ...claim, why: describeWait(claim, { ...context, position }) })),
    retries: later.map((claim) => ({ ...claim, why: describeWait(claim, { ...context, position: 0 }) })),
    parked: claims
      .filter((c) => c.status === 'parked')
      .sort((a, b) => (a.park?.resumeAtMs ?? Number.POSITIVE_INFINITY) - (b.park?.resumeAtMs ?? Number.POSITIVE_INFINITY))
      .map((claim) => ({ ...claim, why: describeWait(claim, { ...context, position: 0 }) })),
  };
}
