import type { IssueClaim } from '../domain/claim.js';
import { decideWorktreeRetention, leftoverRefFor, type WorktreeKeepReason } from '../domain/worktree-retention.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Workspace, WorktreeRecord } from '../ports/workspace.js';

/** What became of one worktree in a prune pass. */
export type PrunedWorktree =
  | { readonly worktree: WorktreeRecord; readonly action: 'kept'; readonly reason: WorktreeKeepReason }
  | { readonly worktree: WorktreeRecord; readonly action: 'would-remove'; readonly bytes: number | undefined }
  | { readonly worktree: WorktreeRecord; readonly action: 'removed'; readonly bytes: number | undefined; readonly leftoverRef: string | undefined }
  /** The issue became active again between the decision and the removal (checked under the repository lock). */
  | { readonly worktree: WorktreeRecord; readonly action: 'spared'; readonly reason: string }
  | { readonly worktree: WorktreeRecord; readonly action: 'failed'; readonly error: string };

export interface PruneReport {
  readonly worktrees: readonly PrunedWorktree[];
  /** Bytes removed (or, in a dry run, that would be), counting only worktrees that could be measured. */
  readonly bytes: number;
}

export interface WorktreeJanitorDeps {
  readonly workspace: Pick<Workspace, 'listWorktrees' | 'removeWorktree' | 'diskUsage'>;
  /**
   * The issue's claim as it stands now (asked again right before each
   * removal). Absent where this process keeps no claims: a fleet worker, and
   * `factory prune` on a worker's config. There only the worker's own runs
   * (`teamRunning`) and the touch time decide (docs/operations.md, "Worktree
   * retention").
   */
  readonly claimOf?: (issueKey: string) => Promise<IssueClaim | undefined>;
  /** A team of the issue is running or being started by this process (asked again under the repository lock). */
  readonly teamRunning: (issueKey: string) => boolean;
  readonly clock: Clock;
  readonly log: Logger;
}

/**
 * Applies the worktree retention rule (domain/worktree-retention.ts): the
 * daemon's and a fleet worker's periodic passes and `factory prune` all go
 * through `prune`. Each removal asks the rule again under the repository's
 * lock, so a team that starts for the issue meanwhile keeps its worktree.
 */
export class WorktreeJanitor {
  readonly #deps: WorktreeJanitorDeps;
  #timer: TimerHandle | undefined;
  #pass: Promise<unknown> | undefined;
  #closed = false;

  constructor(deps: WorktreeJanitorDeps) {
    this.#deps = deps;
  }

  async prune(options: { keepFinishedForMs: number | null; dryRun: boolean }): Promise<PruneReport> {
    const results: PrunedWorktree[] = [];
    for (const worktree of await this.#deps.workspace.listWorktrees()) {
      // A stop in progress waits for at most the removal under way, not for the whole pass.
      if (this.#closed) break;
      results.push(await this.#pruneOne(worktree, options));
    }
    const bytes = results.reduce((sum, result) => sum + ((result.action === 'removed' || result.action === 'would-remove' ? result.bytes : 0) ?? 0), 0);
    return { worktrees: results, bytes };
  }

  async #pruneOne(worktree: WorktreeRecord, options: { keepFinishedForMs: number | null; dryRun: boolean }): Promise<PrunedWorktree> {
    const { workspace, clock, log } = this.#deps;
    const decide = async () =>
      decideWorktreeRetention({
        issueKey: worktree.issueKey,
        claim: worktree.issueKey === undefined ? undefined : await this.#deps.claimOf?.(worktree.issueKey),
        teamRunning: worktree.issueKey !== undefined && this.#deps.teamRunning(worktree.issueKey),
        lastModifiedMs: worktree.lastModifiedMs,
        nowMs: clock.now(),
        keepFinishedForMs: options.keepFinishedForMs,
      });
    try {
      const decision = await decide();
      if (!decision.remove) return { worktree, action: 'kept', reason: decision.reason };
      if (options.dryRun) return { worktree, action: 'would-remove', bytes: await workspace.diskUsage(worktree) };
      const issueKey = worktree.issueKey!;
      const removal = await workspace.removeWorktree(worktree, {
        leftoverRef: leftoverRefFor(issueKey, clock.now()),
        message: `factory: what was uncommitted in the worktree of ${issueKey} when it was removed`,
        confirm: async () => (await decide()).remove,
      });
      if (!removal.removed) {
        log.info({ issue: issueKey, path: worktree.path, reason: removal.reason }, 'kept a worktree: its issue became active again');
        return { worktree, action: 'spared', reason: removal.reason };
      }
      const leftoverRef = removal.leftover?.ref;
      log.info({ issue: issueKey, path: worktree.path, bytesFreed: removal.bytesFreed ?? null, leftoverRef: leftoverRef ?? null }, 'removed the worktree of a finished issue; its branch is kept');
      return { worktree, action: 'removed', bytes: removal.bytesFreed, leftoverRef };
    } catch (error) {
      const message = (error as Error).message;
      log.warn({ issue: worktree.issueKey ?? null, path: worktree.path, err: message }, 'could not remove a worktree; it stays');
      return { worktree, action: 'failed', error: message };
    }
  }

  /**
   * The daemon's and the worker's schedule: a pass now and then one every
   * `intervalMs` after the last one ended. Passes run beside dispatch (or the
   * queue), never before it: a failed pass is logged and the next one comes
   * on time.
   */
  start(options: { intervalMs: number; keepFinishedForMs: number }): void {
    const run = (): void => {
      this.#pass = this.prune({ keepFinishedForMs: options.keepFinishedForMs, dryRun: false })
        .then((report) => {
          const removed = report.worktrees.filter((result) => result.action === 'removed').length;
          if (removed > 0) this.#deps.log.info({ removed, bytesFreed: report.bytes }, 'worktree retention pass');
        })
        .catch((error: Error) => this.#deps.log.warn({ err: error.message }, 'worktree retention pass failed; trying again next interval'))
        .finally(() => {
          if (!this.#closed) this.#timer = this.#deps.clock.setTimeout(run, options.intervalMs);
        });
    };
    run();
  }

  /** Stops the schedule and waits for the removal under way, if any. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#deps.clock.clearTimeout(this.#timer);
    await this.#pass;
  }
}
