import { hasAnyLimit, outcomeWithMemory, resolveTeamBudget, type ResourcesPolicy } from '../../domain/resource-budget.js';
import type { RunOutcome } from '../../domain/run.js';
import type { Logger } from '../../ports/logger.js';
import type { TeamPlan } from '../../ports/team-executor.js';
import type { TeamResourceGroup, TeamResourceGroups } from '../../ports/team-resources.js';

/**
 * A team's resource group over its run: created before its first agent (so
 * every agent is started inside it), killed as a whole when the team stops,
 * measured and removed when the team ends. Without a budget there is no group
 * and nothing changes.
 */

export interface TeamRunResources {
  readonly groups: TeamResourceGroups;
  readonly policy: Pick<ResourcesPolicy, 'team' | 'byRepo' | 'byLabel'>;
}

/** The team's group with its resolved budget, or undefined when the config sets no limit for it. Throws FACTORY_RESOURCES_GROUP_FAILED. */
export function openTeamGroup(resources: TeamRunResources | undefined, plan: TeamPlan): TeamResourceGroup | undefined {
  if (!resources) return undefined;
  const budget = resolveTeamBudget(resources.policy, { repo: plan.repo, labels: plan.issue.labels });
  if (!hasAnyLimit(budget)) return undefined;
  return resources.groups.create(plan.runId, budget);
}

/** Kills whatever is still in the group (escapees, dev servers), without throwing: a stop must carry on. */
export async function killTeamGroup(group: TeamResourceGroup | undefined, log: Logger): Promise<void> {
  if (!group) return;
  try {
    const result = await group.killAll();
    if (result.survivors.length > 0) log.warn({ group: group.name, survivors: result.survivors }, 'processes of the team group survived kill-all (stuck in the kernel?)');
  } catch (error) {
    log.warn({ group: group.name, err: (error as Error).message }, 'could not kill the team group');
  }
}

/**
 * The team's end: nothing of it may outlive it, so the group is killed,
 * measured (peak, OOM kills) and removed. The outcome carries the figures and
 * becomes `oom` when the group was killed for its memory.
 */
export async function closeTeamGroup(group: TeamResourceGroup | undefined, mechanism: string, outcome: RunOutcome, log: Logger): Promise<RunOutcome> {
  if (!group) return outcome;
  await killTeamGroup(group, log);
  const figures = group.memory();
  try {
    await group.remove();
  } catch (error) {
    // Left for the reaper's leftover sweep at the next start.
    log.warn({ group: group.name, err: (error as Error).message }, 'could not remove the team group');
  }
  return outcomeWithMemory(outcome, figures, mechanism);
}
