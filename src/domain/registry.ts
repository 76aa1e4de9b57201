import type { AgentRole } from './run.js';
import { parseJsonObject, type ParseResult } from './heartbeat.js';
import { parseProcessIdentity } from './process.js';

/**
 * The in-flight registry: every agent process a daemon owns, with enough
 * identity to prove, after a crash, that a pid still is that agent.
 * Written atomically on change (spawn, exit, release, reap), never on a timer.
 */

/** Environment variable every agent and all its descendants inherit. */
export const AGENT_MARKER_ENV = 'FACTORY_AGENT_MARKER';

export interface RegistryEntry {
  readonly issueKey: string;
  readonly runId: string;
  readonly role: AgentRole;
  readonly agentName: string;
  /** `local` for this machine; a remote fleet names its node and its pids are never signalled here. */
  readonly node: string;
  readonly pid: number;
  readonly pgid: number;
  readonly startTime: number;
  readonly bootId: string;
  /** Value of FACTORY_AGENT_MARKER in the agent's environment (unique per agent). */
  readonly marker: string;
  readonly logPath: string;
  readonly worktree: string;
  /** When this agent started. */
  readonly startedAtMs: number;
  /** When its team started (before its worktree and its first agent): how old the team is, at any stage. Absent in registries written before it was kept. */
  readonly teamStartedAtMs?: number;
}

export interface RegistryOwner {
  readonly pid: number;
  readonly startTime: number;
  readonly bootId: string;
  readonly hostname: string;
  readonly epoch: number;
}

export interface RegistryFile {
  readonly version: 1;
  readonly owner: RegistryOwner | null;
  readonly updatedAtMs: number;
  readonly agents: readonly RegistryEntry[];
}

export const LOCAL_NODE = 'local';

/** The marker is unique per agent so that one agent's reap cannot take another's tree. */
export function formatAgentMarker(instanceId: string, runId: string, agentName: string): string {
  return `factory:${instanceId}:${runId}:${agentName}`;
}

export function isFactoryMarker(value: string | undefined): value is string {
  return typeof value === 'string' && value.startsWith('factory:') && value.length > 'factory:'.length;
}

function isPositiveInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

export interface RegistryParse {
  readonly file: RegistryFile;
  /** Entries that were dropped, with the reason: malformed entries never become signals. */
  readonly rejected: readonly { readonly index: number; readonly reason: string }[];
}

function validateEntry(raw: unknown): ParseResult<RegistryEntry> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'expected an object' };
  const r = raw as Record<string, unknown>;
  for (const field of ['issueKey', 'runId', 'agentName', 'bootId', 'marker'] as const) {
    if (typeof r[field] !== 'string' || (r[field] as string).length === 0) {
      return { ok: false, reason: `${field}: expected a non-empty string` };
    }
  }
  if (typeof r.role !== 'string' || r.role.length === 0) return { ok: false, reason: `role: expected a role name (a key of the config's agents), got ${JSON.stringify(r.role)}` };
  const identity = parseProcessIdentity(r);
  if (!identity.ok) return identity;
  if (!isPositiveInt(r.pgid)) return { ok: false, reason: `pgid: expected a positive integer, got ${JSON.stringify(r.pgid)}` };
  if (!isFactoryMarker(r.marker as string)) return { ok: false, reason: 'marker: not a factory marker' };
  return {
    ok: true,
    value: {
      issueKey: r.issueKey as string,
      runId: r.runId as string,
      role: r.role,
      agentName: r.agentName as string,
      node: typeof r.node === 'string' && r.node.length > 0 ? r.node : LOCAL_NODE,
      ...identity.value,
      pgid: r.pgid,
      marker: r.marker as string,
      logPath: typeof r.logPath === 'string' ? r.logPath : '',
      worktree: typeof r.worktree === 'string' ? r.worktree : '',
      startedAtMs: typeof r.startedAtMs === 'number' && Number.isFinite(r.startedAtMs) ? r.startedAtMs : 0,
      ...(typeof r.teamStartedAtMs === 'number' && Number.isFinite(r.teamStartedAtMs) ? { teamStartedAtMs: r.teamStartedAtMs } : {}),
    },
  };
}

function parseOwner(raw: unknown): RegistryOwner | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const r = raw as Record<string, unknown>;
  if (!isPositiveInt(r.pid) || typeof r.startTime !== 'number' || typeof r.bootId !== 'string') return null;
  return {
    pid: r.pid,
    startTime: r.startTime,
    bootId: r.bootId,
    hostname: typeof r.hostname === 'string' ? r.hostname : '',
    epoch: typeof r.epoch === 'number' && Number.isFinite(r.epoch) ? r.epoch : 0,
  };
}

/**
 * Parses registry text. A file that is not a registry at all is an error;
 * individual bad entries are rejected with a reason and the rest are kept.
 * Duplicate entries (same pid and start time) are collapsed.
 */
export function parseRegistry(text: string): ParseResult<RegistryParse> {
  const parsed = parseJsonObject(text);
  if (!parsed.ok) return parsed;
  const r = parsed.value;
  if (!Array.isArray(r.agents)) return { ok: false, reason: 'agents: expected an array' };
  const agents: RegistryEntry[] = [];
  const rejected: { index: number; reason: string }[] = [];
  const seen = new Set<string>();
  r.agents.forEach((entry, index) => {
    const parsed = validateEntry(entry);
    if (!parsed.ok) {
      rejected.push({ index, reason: parsed.reason });
      return;
    }
    const identity = `${parsed.value.node}/${parsed.value.bootId}/${parsed.value.pid}/${parsed.value.startTime}`;
    if (seen.has(identity)) {
      rejected.push({ index, reason: 'duplicate of an earlier entry' });
      return;
    }
    seen.add(identity);
    agents.push(parsed.value);
  });
  return {
    ok: true,
    value: {
      file: {
        version: 1,
        owner: parseOwner(r.owner),
        updatedAtMs: typeof r.updatedAtMs === 'number' && Number.isFinite(r.updatedAtMs) ? r.updatedAtMs : 0,
        agents,
      },
      rejected,
    },
  };
}

export function emptyRegistry(owner: RegistryOwner | null, nowMs: number): RegistryFile {
  return { version: 1, owner, updatedAtMs: nowMs, agents: [] };
}
