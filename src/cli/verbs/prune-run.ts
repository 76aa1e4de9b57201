import { GitWorktreeWorkspace } from '../../adapters/workspace/git-worktree-workspace.js';
import type { IssueClaim } from '../../domain/claim.js';
import type { FactoryConfig } from '../../config/load.js';
import { parseDuration } from '../../domain/duration.js';
import { formatMemory } from '../../domain/resource-budget.js';
import { WorktreeJanitor, type PrunedWorktree, type PruneReport, type WorktreeJanitorDeps } from '../../core/worktree-janitor.js';
import { FactoryError, isFactoryError } from '../../errors.js';
import { acquireDaemonLock, readStateStore } from '../../main.js';
import type { HeldLease } from '../../ports/lease.js';
import { flagBoolean, flagString, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { printJson, type Output } from '../output.js';

export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const runtime = runtimeFromArgs(args);
  const { config, clock, log } = runtime;
  const dryRun = flagBoolean(args, 'dry-run');
  const keepFinishedForMs = olderThan(flagString(args, 'older-than'), config.workspace.keepFinishedForMs);
  // Removing holds the daemon lock: no daemon or worker of this config starts a team (and prepares its worktree) while this decides and removes.
  let lock: HeldLease | undefined;
  if (!dryRun) {
    try {
      lock = await acquireDaemonLock(runtime);
    } catch (error) {
      if (!isFactoryError(error, 'FACTORY_DAEMON_ALREADY_RUNNING')) throw error;
      throw new FactoryError('FACTORY_DAEMON_ALREADY_RUNNING', `${error.message}; it removes finished worktrees itself every workspace.pruneIntervalMs, so nothing was removed here`, {
        details: error.details,
        hint: '`factory prune --dry-run` shows what is due; to remove now, stop the daemon or worker (`factory kill-loop`) and run `factory prune` again.',
      });
    }
  }
  try {
    const janitor = new WorktreeJanitor({
      workspace: new GitWorktreeWorkspace({ worktreesRoot: config.paths.worktreesDir }),
      ...(await claimsOfThisHost(config)),
      // No daemon or worker holds the lock, so no team runs here; a `running` claim left by a crashed daemon is active and keeps its worktree.
      teamRunning: () => false,
      clock,
      log,
    });
    const report = await janitor.prune({ keepFinishedForMs, dryRun });
    if (flagBoolean(args, 'json')) printJson(output, { dryRun, olderThanMs: keepFinishedForMs, ...report });
    else printReport(output, report, { dryRun, keepFinishedForMs });
    return report.worktrees.some((result) => result.action === 'failed') ? 1 : 0;
  } finally {
    await lock?.release();
  }
}

/**
 * The claims that vouch for this host's worktrees. With `fleet.backend`
 * "bullmq" teams run only on workers, so the worktrees under this config are
 * a fleet worker's, which keeps no claims: the pool's claims in Redis say
 * nothing about them (a run of the issue may be going on another worker), and
 * the worker's own rule applies, as its periodic pass does. Redis is then not
 * needed at all, so a worker host can be cleaned during an outage.
 */
async function claimsOfThisHost(config: FactoryConfig): Promise<Pick<WorktreeJanitorDeps, 'claimOf'>> {
  if (config.fleet.backend === 'bullmq') return {};
  const claims = new Map((await readStateStore(config, (store) => store.listClaims(), [] as IssueClaim[])).map((claim) => [claim.issueKey, claim]));
  return { claimOf: async (issueKey) => claims.get(issueKey) };
}

function olderThan(flag: string | undefined, configured: number | null): number | null {
  if (flag === undefined) return configured;
  const ms = parseDuration(flag);
  if (ms === undefined) throw new FactoryError('FACTORY_USAGE', `--older-than: expected a duration such as 3d, 12h, 30m or 0, got "${flag}"`, { hint: 'Run `factory prune --help` for its flags.' });
  return ms;
}

const LABELS: Readonly<Record<PrunedWorktree['action'], string>> = { removed: 'removed', 'would-remove': 'would remove', kept: 'kept', spared: 'kept', failed: 'failed' };

function printReport(output: Output, report: PruneReport, options: { dryRun: boolean; keepFinishedForMs: number | null }): void {
  const size = (bytes: number | undefined): string => (bytes === undefined ? '?' : formatMemory(bytes));
  const kept = new Map<string, number>();
  let acted = 0;
  for (const result of report.worktrees) {
    const { worktree } = result;
    const issue = worktree.issueKey ?? '(unknown issue)';
    if (result.action === 'kept') kept.set(result.reason, (kept.get(result.reason) ?? 0) + 1);
    else if (result.action === 'removed' || result.action === 'would-remove') {
      acted++;
      const leftover = result.action === 'removed' && result.leftoverRef ? `  uncommitted work saved at ${result.leftoverRef}` : '';
      output.out(`${LABELS[result.action]}  ${issue}  ${size(result.bytes)}  ${worktree.path}${leftover}`);
    } else output.out(`${LABELS[result.action]}  ${issue}  ${worktree.path}: ${result.action === 'failed' ? result.error : result.reason}`);
  }
  if (options.keepFinishedForMs === null) output.out('workspace.keepFinishedForMs is 0 or "never": nothing is due; pass --older-than to prune anyway');
  const keptLine = kept.size === 0 ? '' : `; kept ${[...kept].map(([reason, count]) => `${count} ${reason}`).join(', ')}`;
  output.out(`total: ${acted} worktree(s) ${options.dryRun ? 'would be removed' : 'removed'}, ${formatMemory(report.bytes)}${options.dryRun ? ' would be freed' : ' freed'}${keptLine}`);
}
