import { buildTeamStages, type AgentCommand, type TeamStages } from '../domain/team.js';

/**
 * The one place that knows the built-in team shape. Without `team.stages`,
 * `agents.implementer` then `agents.reviewer` (when configured) form the team:
 * one stage each in `sequential` mode, one shared stage in `parallel` mode.
 */
export const DEFAULT_LEAD_ROLE = 'implementer';
export const DEFAULT_REVIEW_ROLE = 'reviewer';

export function defaultRolesPerStage(agents: Readonly<Record<string, unknown>>, teamMode: 'sequential' | 'parallel'): string[][] {
  const roles = [DEFAULT_LEAD_ROLE, ...(agents[DEFAULT_REVIEW_ROLE] !== undefined ? [DEFAULT_REVIEW_ROLE] : [])];
  return teamMode === 'parallel' ? [roles] : roles.map((role) => [role]);
}

/** The team every run of this config uses. */
export function teamStagesFor(config: {
  readonly agents: Readonly<Record<string, AgentCommand | undefined>>;
  readonly dispatch: { readonly teamMode: 'sequential' | 'parallel' };
  readonly team?: { readonly stages?: readonly (readonly string[])[] | undefined } | undefined;
}): TeamStages {
  const rolesPerStage = config.team?.stages ?? defaultRolesPerStage(config.agents, config.dispatch.teamMode);
  return buildTeamStages(rolesPerStage, config.agents);
}
