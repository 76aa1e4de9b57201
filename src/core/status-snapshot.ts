import type { RegistryEntry } from '../domain/registry.js';
import type { RunOutcome } from '../domain/run.js';
import type { HeartbeatStore, RegistryStore } from '../ports/node-state-store.js';
import type { ProcessTable } from '../ports/process-table.js';
import type { IssueClaim, ReadOnlyStateStore, SkipRecord } from '../ports/state-store.js';
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
  readonly registry: { readonly state: 'ok' | 'missing' | 'unreadable'; readonly detail: string; readonly rejectedEntries: number };
  readonly teams: readonly TeamStatus[];
  readonly queue: readonly IssueClaim[];
  readonly retries: readonly IssueClaim[];
  readonly recentOutcomes: readonly RunOutcome[];
  readonly outcomeCount: number;
  readonly skipped: readonly SkipRecord[];
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
  readonly heartbeats: Pick<HeartbeatStore, 'read'>;
  readonly registry: Pick<RegistryStore, 'read'>;
  readonly processTable: ProcessTable;
  /** Reads the state store opened read-only; `whenMissing` when no daemon ever created it. */
  readState<T>(read: (store: ReadOnlyStateStore) => Promise<T>, whenMissing: T): Promise<T>;
}

export async function readStatusSnapshot(sources: StatusSources, options: { nowMs: number; outcomeLimit?: number }): Promise<StatusSnapshot> {
  const heartbeat = await sources.heartbeats.read();
  const liveness = judgeLiveness(heartbeat, { nowMs: options.nowMs, staleMs: sources.staleMs, processTable: sources.processTable });
  const registry = await sources.registry.read();
  const entries = registry.kind === 'ok' ? registry.value.file.agents : [];
  const byRun = new Map<string, RegistryEntry[]>();
  for (const entry of entries) byRun.set(entry.runId, [...(byRun.get(entry.runId) ?? []), entry]);

  const empty: { claims: IssueClaim[]; recentOutcomes: RunOutcome[]; outcomeCount: number; skipped: SkipRecord[] } = { claims: [], recentOutcomes: [], outcomeCount: 0, skipped: [] };
  const { claims, recentOutcomes, outcomeCount, skipped } = await sources.readState(
    async (store) => ({
      // Only claims in play: a factory with a long history must not pay for all of it on every status read.
      claims: await store.listActiveClaims(),
      recentOutcomes: await store.recentOutcomes(options.outcomeLimit ?? 20),
      outcomeCount: await store.outcomeCount(),
      skipped: await store.listSkips(),
    }),
    empty,
  );
  const claimByRun = new Map(claims.filter((c) => c.runId).map((c) => [c.runId!, c]));
  const teams: TeamStatus[] = [...byRun.entries()].map(([runId, agents]) => ({
    issueKey: agents[0]!.issueKey,
    runId,
    attempt: claimByRun.get(runId)?.attempt ?? null,
    startedAtMs: Math.min(...agents.map((a) => a.startedAtMs)),
    agents: agents.map((agent) => {
      const info = agent.node === 'local' ? sources.processTable.inspect(agent.pid) : undefined;
      return { ...agent, alive: info !== undefined && info.startTime === agent.startTime && info.state !== 'Z' };
    }),
  }));
  return {
    generatedAtMs: options.nowMs,
    configPath: sources.configPath,
    liveness,
    registry:
      registry.kind === 'ok'
        ? { state: 'ok', detail: `${entries.length} agent(s)`, rejectedEntries: registry.value.rejected.length }
        : registry.kind === 'missing'
          ? { state: 'missing', detail: 'no registry file yet', rejectedEntries: 0 }
          : { state: 'unreadable', detail: registry.reason, rejectedEntries: 0 },
    teams,
    queue: claims.filter((c) => c.status === 'queued'),
    retries: claims.filter((c) => c.status === 'retry-wait').sort((a, b) => (a.nextAttemptAtMs ?? 0) - (b.nextAttemptAtMs ?? 0)),
    recentOutcomes,
    outcomeCount,
    skipped,
  };
}
