import type { RunOutcome } from '../../domain/run.js';
import { staleEpochError } from '../../errors.js';
import { isActiveClaimStatus } from '../../domain/claim.js';
import type { AgentUsageRecord, DaemonOwner, IssueClaim, SkipRecord, StateBatch, StateStore, UsageSummary } from '../../ports/state-store.js';
import { summarizeUsage } from '../../domain/agent-events/usage-records.js';

/**
 * A StateStore in memory with the SQLite store's semantics (epochs, stale
 * epoch refusal, atomic batches, writeback bookkeeping), for unit tests and
 * for a control plane that keeps no state on disk. Values are copied in and
 * out, so a caller can never change stored state by holding a reference.
 */
export class InMemoryStateStore implements StateStore {
  #epoch = 0;
  #owner: (DaemonOwner & { epoch: number; sinceMs: number }) | undefined;
  readonly #claims = new Map<string, IssueClaim>();
  /** Insertion order is the outcome order; a rerecorded run id moves to the end, as SQLite's INSERT OR REPLACE does. */
  readonly #outcomes = new Map<string, { outcome: RunOutcome; writtenBack: boolean }>();
  readonly #skips = new Map<string, SkipRecord>();
  /** The usage ledger by `<runId>/<agentName>`. */
  readonly #usage = new Map<string, AgentUsageRecord>();
  #closed = false;

  get owner(): (DaemonOwner & { epoch: number; sinceMs: number }) | undefined {
    return this.#owner;
  }

  async beginEpoch(owner: DaemonOwner, nowMs: number): Promise<number> {
    this.#epoch++;
    this.#owner = { ...owner, epoch: this.#epoch, sinceMs: nowMs };
    return this.#epoch;
  }

  async currentEpoch(): Promise<number> {
    return this.#epoch;
  }

  async getClaim(issueKey: string): Promise<IssueClaim | undefined> {
    const claim = this.#claims.get(issueKey);
    return claim && { ...claim };
  }

  async listClaims(): Promise<IssueClaim[]> {
    return [...this.#claims.values()].sort(byUpdatedDesc).map((c) => ({ ...c }));
  }

  async listActiveClaims(): Promise<IssueClaim[]> {
    return (await this.listClaims()).filter((c) => isActiveClaimStatus(c.status));
  }

  async apply(batch: StateBatch): Promise<void> {
    // Checked before any change, so a refused batch leaves nothing behind.
    if (batch.epoch < this.#epoch) throw staleEpochError(batch.epoch, this.#epoch);
    for (const claim of batch.claims ?? []) this.#claims.set(claim.issueKey, { ...claim, interruptions: claim.interruptions ?? 0, node: claim.node ?? null, park: claim.park ?? null });
    for (const skip of batch.skips ?? []) this.#skips.set(skip.issueKey, { ...skip });
    for (const issueKey of batch.clearedSkips ?? []) this.#skips.delete(issueKey);
    if (batch.outcome) {
      const { outcome, nextClaim } = batch.outcome;
      this.#outcomes.delete(outcome.runId);
      this.#outcomes.set(outcome.runId, { outcome: structuredClone(outcome), writtenBack: false });
      this.#claims.set(nextClaim.issueKey, { ...nextClaim, interruptions: nextClaim.interruptions ?? 0, node: nextClaim.node ?? null, park: nextClaim.park ?? null });
    }
  }

  async markWrittenBack(runId: string): Promise<void> {
    const entry = this.#outcomes.get(runId);
    if (entry) entry.writtenBack = true;
  }

  async pendingWritebacks(): Promise<RunOutcome[]> {
    return [...this.#outcomes.values()].filter((e) => !e.writtenBack).map((e) => structuredClone(e.outcome));
  }

  async recentOutcomes(limit: number): Promise<RunOutcome[]> {
    return [...this.#outcomes.values()]
      .reverse()
      .slice(0, Math.max(0, limit))
      .map((e) => structuredClone(e.outcome));
  }

  async outcomeCount(): Promise<number> {
    return this.#outcomes.size;
  }

  async listSkips(): Promise<SkipRecord[]> {
    return [...this.#skips.values()].sort((a, b) => b.atMs - a.atMs).map((s) => ({ ...s }));
  }

  async recordUsage(records: readonly AgentUsageRecord[]): Promise<void> {
    for (const record of records) this.#usage.set(`${record.runId}/${record.agentName}`, structuredClone(record));
  }

  async usageSummary(sinceMs: number): Promise<UsageSummary> {
    return summarizeUsage([...this.#usage.values()].filter((record) => record.endedAtMs >= sinceMs));
  }

  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

function byUpdatedDesc(a: IssueClaim, b: IssueClaim): number {
  return b.updatedAtMs - a.updatedAtMs;
}
