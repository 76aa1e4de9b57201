import { DEFAULT_MAX_REVIEW_ROUNDS } from '../domain/review.js';
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

/**
 * The roles that report a review verdict: `agents.<role>.reviews`, which is
 * on by default for the built-in reviewer role only.
 */
export function reviewingRoles(agents: Readonly<Record<string, { readonly reviews?: boolean | undefined } | undefined>>): Set<string> {
  return new Set(Object.entries(agents).flatMap(([role, agent]) => ((agent?.reviews ?? role === DEFAULT_REVIEW_ROLE) ? [role] : [])));
}

/** The team every run of this config uses; stages with a reviewing role are review stages (domain/review.ts). */
export function teamStagesFor(config: {
  readonly agents: Readonly<Record<string, (AgentCommand & { readonly reviews?: boolean | undefined }) | undefined>>;
  readonly dispatch: { readonly teamMode: 'sequential' | 'parallel' };
  readonly team?: { readonly stages?: readonly (readonly string[])[] | undefined } | undefined;
  readonly review?: { readonly maxRounds: number } | undefined;
}): TeamStages {
  const rolesPerStage = config.team?.stages ?? defaultRolesPerStage(config.agents, config.dispatch.teamMode);
  return buildTeamStages(rolesPerStage, config.agents, { maxRounds: config.review?.maxRounds ?? DEFAULT_MAX_REVIEW_ROUNDS, roles: reviewingRoles(config.agents) });
}
