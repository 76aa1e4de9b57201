import type { Logger } from '../../ports/logger.js';
import type { TeamResourceGroups } from '../../ports/team-resources.js';

/**
 * A crashed daemon's team groups: every process still in one is killed at
 * once (the group needs no identity proof: only this instance's teams were
 * ever started inside groups with its prefix), then the group is removed.
 * Runs before the registry reap and the marker sweep, which stay the fallback
 * for whatever is not in a group. Under the RSS sampler a "group" is only the
 * marker sweep again, so it is left to the proven path.
 */

export interface ReapedGroup {
  readonly name: string;
  readonly teamId: string;
  /** Processes in the group when it was found. */
  readonly pids: readonly number[];
  readonly outcome: 'removed' | 'would-remove' | 'failed';
  readonly killed: number;
  readonly survivors: readonly number[];
  readonly error?: string;
}

export async function reapLeftoverGroups(groups: TeamResourceGroups | undefined, options: { readonly dryRun: boolean; readonly log: Logger }): Promise<ReapedGroup[]> {
  if (!groups || groups.mechanism === 'rss-sampling') return [];
  const reaped: ReapedGroup[] = [];
  for (const leftover of groups.listLeftovers()) {
    const base = { name: leftover.name, teamId: leftover.teamId, pids: leftover.pids };
    if (options.dryRun) {
      reaped.push({ ...base, outcome: 'would-remove', killed: 0, survivors: [] });
      continue;
    }
    const group = groups.adopt(leftover);
    try {
      const result = await group.killAll();
      await group.remove();
      reaped.push({ ...base, outcome: 'removed', killed: result.killed, survivors: result.survivors });
      options.log.info({ group: leftover.name, killed: result.killed }, "removed a previous daemon's team group");
    } catch (error) {
      const message = (error as Error).message;
      reaped.push({ ...base, outcome: 'failed', killed: 0, survivors: group.pids(), error: message });
      options.log.warn({ group: leftover.name, err: message }, "could not remove a previous daemon's team group; the marker sweep still runs");
    }
  }
  return reaped;
}
