import { z } from 'zod';
import type { CancelRequest, WorkerRunEvent } from '../../ports/team-run-queue.js';
import type { TeamPlan } from '../../ports/team-executor.js';

/**
 * The wire formats between control planes and workers: the job payload, the
 * run event stream entries and the cancel record. Everything read from Redis
 * is parsed here: a malformed entry is refused with the reason, never acted on.
 */

export const TEAM_RUN_JOB_VERSION = 1;

const agentCommandSchema = z.object({
  command: z.array(z.string()).min(1),
  env: z.record(z.string()),
  envPassthrough: z.array(z.string()).optional(),
  instruction: z.string().optional(),
});

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

const planSchema = z.object({
  runId: z.string().min(1),
  issue: issueSchema,
  attempt: z.number().int().min(1),
  repo: z.string().min(1),
  branch: z.string().min(1),
  stages: z.array(z.object({ agents: z.array(z.object({ role: z.string().min(1), slot: z.string().min(1), agent: agentCommandSchema })).min(1) })).min(1),
});

export const teamRunJobSchema = z.object({
  version: z.literal(TEAM_RUN_JOB_VERSION),
  /** The lease epoch of the control plane that queued the run. */
  epoch: z.number().int().min(0),
  enqueuedAtMs: z.number(),
  plan: planSchema,
});

export interface TeamRunJob {
  readonly version: typeof TEAM_RUN_JOB_VERSION;
  readonly epoch: number;
  readonly enqueuedAtMs: number;
  readonly plan: TeamPlan;
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

const KINDS = new Set(['stage-started', 'agent-started', 'agent-exited', 'outcome', 'picked', 'activity', 'requeued', 'refused']);

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
