import { z } from 'zod';
import type { CancelRequest, WorkerRunEvent, WorkerRunEventKind } from '../../ports/team-run-queue.js';
import type { TeamPlan } from '../../ports/team-executor.js';
import type { ParkTriggerKind } from '../../domain/budgets.js';
import type { AgentCommand, StageReviewRule } from '../../domain/team.js';

/**
 * The wire formats between control planes and workers: the job payload, the
 * run event stream entries and the cancel record. Everything read from Redis
 * is parsed here: a malformed entry is refused with the reason, never acted on.
 */

export const TEAM_RUN_JOB_VERSION = 1;

/** A review stage's rule (StageReviewRule): without it a worker would not read the reviewers' verdicts. */
const stageReviewSchema = z.object({ maxRounds: z.number().int().min(1), reviewers: z.array(z.string().min(1)) });

const issueSchema = z.object({
  key: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/),
  title: z.string(),
  body: z.string(),
  labels: z.array(z.string()),
  state: z.string(),
  priority: z.number().optional(),
  createdAtMs: z.number(),
  revision: z.string(),
  location: z.string(),
});

/** Every park trigger, as a record over the kind type: a new trigger fails to compile until a job can carry it. */
const PARK_TRIGGERS: Readonly<Record<ParkTriggerKind, true>> = { 'run-budget': true, 'daily-budget': true, 'usage-limit': true, 'memory-pressure': true };

/** A parked run the job continues (ParkedRun): without it a worker would start a resumed issue over, its paid-for sessions lost. */
const parkedRunSchema = z.object({
  runId: z.string().min(1),
  ref: z.string().regex(/^refs\/factory\/park\/[A-Za-z0-9._-]+$/),
  commit: z.string().min(1).nullable(),
  trigger: z.enum(Object.keys(PARK_TRIGGERS) as [ParkTriggerKind, ...ParkTriggerKind[]]),
  reason: z.string(),
  resumeAtMs: z.number().nullable(),
  stage: z.number().int().min(0),
  sessions: z.record(z.string().min(1)),
  review: z.object({ round: z.number().int().min(1), changesRequested: z.record(z.number().int().min(0)), comments: z.string().optional() }).optional(),
  startCommit: z.string().min(1).optional(),
  placement: z.object({ node: z.string().min(1), pushed: z.boolean(), pushError: z.string().optional() }).optional(),
});

/** The control plane's `budgets.run` (RunBudget): the worker parks the run over it, as a local run is parked. */
const runBudgetSchema = z.object({ maxTokens: z.number().positive().optional(), maxCostUsd: z.number().positive().optional(), maxTurns: z.number().int().positive().optional() });

const planSchema = z.object({
  runId: z.string().min(1),
  issue: issueSchema,
  attempt: z.number().int().min(1),
  repo: z.string().min(1),
  branch: z.string().min(1),
  // Roles and slots only: how each role runs (command, env, envPassthrough, instruction, driver) is the worker's own config.
  stages: z.array(z.object({ agents: z.array(z.object({ role: z.string().min(1), slot: z.string().min(1) })).min(1), review: stageReviewSchema.optional() })).min(1),
  resume: parkedRunSchema.optional(),
  runBudget: runBudgetSchema.optional(),
});

export const teamRunJobSchema = z.object({
  version: z.literal(TEAM_RUN_JOB_VERSION),
  /** The lease epoch of the control plane that queued the run. */
  epoch: z.number().int().min(0),
  enqueuedAtMs: z.number(),
  plan: planSchema,
});

/** A team stage as a job carries it: which roles run, in which slots, and the review rule; never how a role runs. */
export interface JobStage {
  readonly agents: readonly { readonly role: string; readonly slot: string }[];
  readonly review?: StageReviewRule;
}

/**
 * A plan as it travels through Redis: what the control plane decides (the
 * issue, the stages by role, the run budget, the resume record) and nothing
 * its config holds for the agents. `agents.<role>.env` is where API keys live,
 * and a job sits in Redis (and its AOF) for hours: the worker takes each
 * role's command, env, envPassthrough, instruction and driver from its own
 * config by role name (teamPlanFromJob).
 */
export type JobPlan = Omit<TeamPlan, 'stages'> & { readonly stages: readonly JobStage[] };

export interface TeamRunJob {
  readonly version: typeof TEAM_RUN_JOB_VERSION;
  readonly epoch: number;
  readonly enqueuedAtMs: number;
  readonly plan: JobPlan;
}

/** The plan a job carries: every stage agent reduced to its role and slot (fields are picked, so nothing new slips through). */
export function jobPlanOf(plan: TeamPlan): JobPlan {
  const { stages, ...decided } = plan;
  return {
    ...decided,
    stages: stages.map((stage) => ({
      agents: stage.agents.map(({ role, slot }) => ({ role, slot })),
      ...(stage.review ? { review: { maxRounds: stage.review.maxRounds, reviewers: [...stage.review.reviewers] } } : {}),
    })),
  };
}

/** The agents of a config by role (`agents.<role>`), as the receiving side has them. */
export type AgentsByRole = Readonly<Record<string, AgentCommand | undefined>>;

/**
 * The runnable plan of a job, each role's agent taken from `agents` (the
 * receiver's own config). A role the config lacks is refused with the reason:
 * running it with a guessed command or without its env would be wrong.
 */
export function teamPlanFromJob(plan: JobPlan, agents: AgentsByRole): { ok: true; plan: TeamPlan } | { ok: false; reason: string } {
  const missing = new Set<string>();
  const stages = plan.stages.map((stage) => ({
    ...stage,
    agents: stage.agents.map(({ role, slot }) => {
      // Own keys only: a role named "constructor" must not find Object.prototype's.
      const agent = Object.hasOwn(agents, role) ? agents[role] : undefined;
      if (agent === undefined) missing.add(role);
      return { role, slot, agent: agent! };
    }),
  }));
  if (missing.size > 0) {
    const roles = [...missing].map((role) => `"${role}"`).join(', ');
    return { ok: false, reason: `the run needs role(s) ${roles}, which this config has no agents.<role> for (a worker runs each role as its own config says)` };
  }
  return { ok: true, plan: { ...plan, stages } };
}

export type ParsedJob = { ok: true; job: TeamRunJob } | { ok: false; reason: string };

export function parseTeamRunJob(data: unknown): ParsedJob {
  const parsed = teamRunJobSchema.safeParse(data);
  if (!parsed.success) return { ok: false, reason: parsed.error.issues.map((i) => `${i.path.join('.') || '(job)'}: ${i.message}`).join('; ') };
  return { ok: true, job: parsed.data as TeamRunJob };
}

/** A stream entry is two fields: `kind` (for XRANGE readers that filter) and `event` (the JSON). */
export function encodeRunEvent(event: WorkerRunEvent): [kind: string, json: string] {
  return [event.kind, JSON.stringify(event)];
}

/**
 * Every kind a worker publishes. A record over the kind type, so a kind added
 * to WorkerRunEvent (or RunEvent) fails to compile until it is listed here:
 * an unlisted kind would be dropped by the decoder without a word.
 */
const KNOWN_KINDS: Readonly<Record<WorkerRunEventKind, true>> = {
  'stage-started': true,
  'agent-started': true,
  'agent-activity': true,
  'agent-exited': true,
  outcome: true,
  picked: true,
  activity: true,
  requeued: true,
  refused: true,
};
const KINDS: ReadonlySet<string> = new Set(Object.keys(KNOWN_KINDS));

export function decodeRunEvent(fields: readonly string[]): WorkerRunEvent | undefined {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
  const json = map.get('event');
  if (json === undefined) return undefined;
  try {
    const event = JSON.parse(json) as WorkerRunEvent;
    return typeof event === 'object' && event !== null && KINDS.has(event.kind) && typeof event.runId === 'string' ? event : undefined;
  } catch {
    return undefined;
  }
}

const stopReasons = z.enum(['timed-out', 'stalled', 'cancelled', 'released']);
const cancelSchema = z.object({ runId: z.string().min(1), reason: stopReasons, epoch: z.number().int().min(0) });

export function parseCancelRequest(text: string | null): CancelRequest | null {
  if (text === null) return null;
  try {
    const parsed = cancelSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
