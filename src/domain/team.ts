import type { AgentDriverSpec } from './agent-events/agent-driver.js';

/**
 * A team as data: an ordered list of stages, each with one or more agents of a
 * named role. Stages run one after another; the agents of one stage run at
 * once. The config expands `agents` + `dispatch.teamMode` (or an explicit
 * `team.stages`) into this; nothing past that expansion names a role.
 */

/** What to run for an agent of one role, as configured. */
export interface AgentCommand {
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Daemon variables passed on besides the defaults (domain/env-passthrough.ts). */
  readonly envPassthrough?: readonly string[] | undefined;
  /** Added to the role's built-in instruction. */
  readonly instruction?: string | undefined;
  /** How it runs: absent or `command` runs `command` as is; a CLI driver runs `command` as the executable and reads its stream. */
  readonly driver?: AgentDriverSpec | undefined;
}

export interface StageAgent {
  /** The role, a key of the config's `agents`. */
  readonly role: string;
  /**
   * Unique within the team: the role, or `<role>-2`, `<role>-3` … when the
   * role appears again. Names the agent (`<KEY>-<slot>`) and its log file
   * (`<runId>-<slot>.log`).
   */
  readonly slot: string;
  readonly agent: AgentCommand;
}

export interface TeamStage {
  readonly agents: readonly StageAgent[];
  /**
   * Set on a review stage: its `reviewers` (slots) report a verdict, and
   * request-changes sends the team back to the work stages before it, up to
   * `maxRounds` reviews in all (domain/review.ts).
   */
  readonly review?: StageReviewRule;
}

export interface StageReviewRule {
  readonly maxRounds: number;
  /** Slots of this stage's agents that report a verdict. */
  readonly reviewers: readonly string[];
}

/** Which roles review, and how many rounds a review stage may take. */
export interface TeamReviewRule {
  readonly maxRounds: number;
  readonly roles: ReadonlySet<string>;
}

export type TeamStages = readonly TeamStage[];

/**
 * Builds stages from role names per stage, giving each agent its slot. The
 * roles must already be checked against `agents` (the config does that).
 */
export function buildTeamStages(rolesPerStage: readonly (readonly string[])[], agents: Readonly<Record<string, AgentCommand | undefined>>, review?: TeamReviewRule): TeamStages {
  const seen = new Map<string, number>();
  return rolesPerStage.map((roles) => {
    const stageAgents = roles.map((role) => {
      const agent = agents[role];
      if (agent === undefined) throw new Error(`team stage names role "${role}", which has no agent`);
      const count = (seen.get(role) ?? 0) + 1;
      seen.set(role, count);
      return { role, slot: count === 1 ? role : `${role}-${count}`, agent };
    });
    const reviewers = review ? stageAgents.filter((a) => review.roles.has(a.role)).map((a) => a.slot) : [];
    return reviewers.length > 0 ? { agents: stageAgents, review: { maxRounds: review!.maxRounds, reviewers } } : { agents: stageAgents };
  });
}

/** The name an agent of `slot` gets in the run of `issueKey`. */
export function agentNameFor(issueKey: string, slot: string): string {
  return `${issueKey}-${slot}`;
}

/** Every role the team uses, in first-use order. */
export function rolesOf(stages: TeamStages): string[] {
  return [...new Set(stages.flatMap((stage) => stage.agents.map((a) => a.role)))];
}
