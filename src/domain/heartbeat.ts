import { parseProcessIdentity, PID_MAX_LIMIT } from './process.js';

/**
 * The heartbeat file: one JSON object that proves a daemon is alive and says
 * who it is. Readers (status, loop-status, kill-loop, the reaper) must treat it
 * as untrusted input: it may be torn, empty, hand-edited or hostile.
 */

/** `standby`: a fleet control plane waiting for the leader lease (docs/fleet.md); it dispatches nothing. */
export const DAEMON_STATUSES = ['starting', 'standby', 'running', 'idle', 'stopping', 'stopped', 'failed'] as const;
export type DaemonStatus = (typeof DAEMON_STATUSES)[number];
export const DAEMON_MODES = ['live', 'loop', 'once'] as const;
export type DaemonMode = (typeof DAEMON_MODES)[number];

export const SUBSCRIPTION_STATES = ['starting', 'subscribed', 'polling', 'reconnecting', 'wedged', 'not-listening'] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

export interface SubscriptionHealth {
  readonly state: SubscriptionState;
  readonly transport: string;
  /** Last event the subscription delivered, if any. */
  readonly lastEventAtMs: number | null;
  /** Last time an end-to-end check proved events flow (probe seen, reconcile completed). */
  readonly lastProgressAtMs: number | null;
  /** Start of a reconcile pass that has not finished yet. */
  readonly reconcileStartedAtMs: number | null;
  /** A pass in flight longer than this reads as stalled. */
  readonly reconcileStalledAfterMs: number | null;
  /** Since when the subscription has been unhealthy (wedged, reconnecting, failing), if it is. */
  readonly unhealthySinceMs: number | null;
  readonly lastError: string | null;
}

/** The subscription transport a fleet worker's heartbeat carries: it takes runs from the queue and subscribes to no issues, so `not-listening` is its normal state. */
export const FLEET_WORKER_TRANSPORT = 'bullmq';

/** The subscription block of a daemon that is not listening (bounded modes, or before intake starts). */
export function notListening(transport = 'none'): SubscriptionHealth {
  return { state: 'not-listening', transport, lastEventAtMs: null, lastProgressAtMs: null, reconcileStartedAtMs: null, reconcileStalledAfterMs: null, unhealthySinceMs: null, lastError: null };
}

/** A reconcile pass in flight much longer than its interval is stalled, not healthy. */
export function isReconcileStalled(subscription: Pick<SubscriptionHealth, 'reconcileStartedAtMs' | 'reconcileStalledAfterMs'>, nowMs: number): boolean {
  const { reconcileStartedAtMs: startedAt, reconcileStalledAfterMs: limit } = subscription;
  return startedAt !== null && limit !== null && nowMs - startedAt > limit;
}

export interface Heartbeat {
  readonly version: 1;
  readonly pid: number;
  readonly startTime: number;
  readonly bootId: string;
  readonly hostname: string;
  readonly status: DaemonStatus;
  readonly mode: DaemonMode;
  readonly iteration: number;
  readonly maxIterations: number;
  readonly startedAtMs: number;
  readonly updatedAt: string;
  readonly updatedAtMs: number;
  readonly registryPath: string;
  readonly statePath: string;
  readonly configPath: string;
  readonly epoch: number;
  readonly inFlightTeams: number;
  readonly queuedIssues: number;
  readonly subscription: SubscriptionHealth;
  /** The daemon's status server, when it runs one (`factory start` with `http.enabled`). */
  readonly http?: { readonly url: string };
  /** What the machine offers for team budgets and which claims wait for memory (docs/resources.md); absent from daemons that do not detect it. */
  readonly resources?: HeartbeatResources;
  /** Issue files the intake cannot read as issues right now (malformed, duplicate keys, links out of the mount); absent when there are none. */
  readonly skippedFiles?: readonly SkippedIssueFileStatus[];
}

/** An issue file skipped by intake, and since when this version of it is. */
export interface SkippedIssueFileStatus {
  readonly path: string;
  readonly reason: string;
  readonly sinceMs: number;
}

/**
 * The resource part of the heartbeat: detection's report (fixed at startup)
 * and admission's state now. Small by construction: `held` lists only claims
 * that had a slot (at most dispatch.batchSize).
 */
export interface HeartbeatResources {
  /** `cgroup-v2`, `cgroup-v1` or `rss-sampling`. */
  readonly mechanism: string;
  readonly summary: string;
  readonly enforces: { readonly memory: boolean; readonly pids: boolean; readonly cpu: boolean };
  /** `cgroup.kill`, `freeze-then-kill`, `kill-loop` or `marker-sweep`. */
  readonly killAll: string;
  /** Whether the config sets any budget (without one, detection is reported but nothing is limited or held). */
  readonly budgeted: boolean;
  /** PSI memory pressure: whether it can be read, its last `some avg10` sample, and whether it holds new starts now. */
  readonly pressure: { readonly readable: boolean; readonly someAvg10: number | null; readonly holding: boolean };
  /** Claims memory admission holds, with the reason shown for them (`waiting for memory: need 4.0 GB, 2.1 GB free`). */
  readonly held: readonly HeldClaim[];
}

export interface HeldClaim {
  readonly issueKey: string;
  readonly reason: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Untrusted file text to a plain JSON object, or the reason it is not one. */
export function parseJsonObject(text: string): ParseResult<Record<string, unknown>> {
  if (text.trim() === '') return { ok: false, reason: 'the file is empty' };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: `not valid JSON (${(error as Error).message})` };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'expected a JSON object' };
  return { ok: true, value: raw as Record<string, unknown> };
}

function finiteOr<T>(value: unknown, fallback: T): number | T {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

/** A hostile timestamp (1e300, -1e300) is a valid number but not a valid Date: never let it throw. */
function isoTimeOrEmpty(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

/**
 * Parses heartbeat text. Identity fields must be well formed or the heartbeat
 * is rejected as a whole: a heartbeat that cannot prove who wrote it can never
 * justify a signal.
 */
export function parseHeartbeat(text: string): ParseResult<Heartbeat> {
  const parsed = parseJsonObject(text);
  if (!parsed.ok) return parsed;
  const r = parsed.value;
  const identity = parseProcessIdentity(r, { maxPid: PID_MAX_LIMIT });
  if (!identity.ok) return identity;
  if (typeof r.updatedAtMs !== 'number' || !Number.isFinite(r.updatedAtMs)) {
    return { ok: false, reason: `updatedAtMs: expected a number, got ${JSON.stringify(r.updatedAtMs)}` };
  }
  const status = DAEMON_STATUSES.includes(r.status as DaemonStatus) ? (r.status as DaemonStatus) : undefined;
  if (!status) return { ok: false, reason: `status: expected one of ${DAEMON_STATUSES.join(', ')}, got ${JSON.stringify(r.status)}` };
  const sub = (typeof r.subscription === 'object' && r.subscription !== null ? r.subscription : {}) as Record<string, unknown>;
  return {
    ok: true,
    value: {
      version: 1,
      ...identity.value,
      hostname: stringOr(r.hostname, ''),
      status,
      mode: DAEMON_MODES.includes(r.mode as DaemonMode) ? (r.mode as DaemonMode) : 'live',
      iteration: finiteOr(r.iteration, 0),
      maxIterations: finiteOr(r.maxIterations, 0),
      startedAtMs: finiteOr(r.startedAtMs, 0),
      updatedAt: stringOr(r.updatedAt, isoTimeOrEmpty(r.updatedAtMs)),
      updatedAtMs: r.updatedAtMs,
      registryPath: stringOr(r.registryPath, ''),
      statePath: stringOr(r.statePath, ''),
      configPath: stringOr(r.configPath, ''),
      epoch: finiteOr(r.epoch, 0),
      inFlightTeams: finiteOr(r.inFlightTeams, 0),
      queuedIssues: finiteOr(r.queuedIssues, 0),
      subscription: {
        state: stringOr(sub.state, 'not-listening') as SubscriptionState,
        transport: stringOr(sub.transport, ''),
        lastEventAtMs: finiteOr(sub.lastEventAtMs, null),
        lastProgressAtMs: finiteOr(sub.lastProgressAtMs, null),
        reconcileStartedAtMs: finiteOr(sub.reconcileStartedAtMs, null),
        reconcileStalledAfterMs: finiteOr(sub.reconcileStalledAfterMs, null),
        unhealthySinceMs: finiteOr(sub.unhealthySinceMs, null),
        lastError: typeof sub.lastError === 'string' ? sub.lastError : null,
      },
      ...parseHttpEndpoint(r.http),
      ...parseResources(r.resources),
      ...parseSkippedFiles(r.skippedFiles),
    },
  };
}

/** Bounds on what a hostile heartbeat can make readers print. */
const MAX_HELD_SHOWN = 200;
const MAX_TEXT = 500;

function boundedText(value: unknown): string | undefined {
  return typeof value === 'string' ? value.slice(0, MAX_TEXT) : undefined;
}

/** The resources block, or nothing when it is missing or malformed (it only informs; it never justifies an action). */
function parseResources(raw: unknown): { resources?: HeartbeatResources } {
  if (typeof raw !== 'object' || raw === null) return {};
  const r = raw as Record<string, unknown>;
  const mechanism = boundedText(r.mechanism);
  if (mechanism === undefined) return {};
  const flags = (typeof r.enforces === 'object' && r.enforces !== null ? r.enforces : {}) as Record<string, unknown>;
  const pressure = (typeof r.pressure === 'object' && r.pressure !== null ? r.pressure : {}) as Record<string, unknown>;
  const held: HeldClaim[] = [];
  for (const entry of Array.isArray(r.held) ? r.held.slice(0, MAX_HELD_SHOWN) : []) {
    const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    const issueKey = boundedText(e.issueKey);
    const reason = boundedText(e.reason);
    if (issueKey !== undefined && reason !== undefined) held.push({ issueKey, reason });
  }
  return {
    resources: {
      mechanism,
      summary: boundedText(r.summary) ?? '',
      enforces: { memory: flags.memory === true, pids: flags.pids === true, cpu: flags.cpu === true },
      killAll: boundedText(r.killAll) ?? '',
      budgeted: r.budgeted === true,
      pressure: { readable: pressure.readable === true, someAvg10: finiteOr(pressure.someAvg10, null), holding: pressure.holding === true },
      held,
    },
  };
}

/** The skipped files, bounded like every list a reader prints; nothing when absent or empty. */
function parseSkippedFiles(raw: unknown): { skippedFiles?: SkippedIssueFileStatus[] } {
  if (!Array.isArray(raw)) return {};
  const files: SkippedIssueFileStatus[] = [];
  for (const entry of raw.slice(0, MAX_HELD_SHOWN)) {
    const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    const path = boundedText(e.path);
    const reason = boundedText(e.reason);
    if (path !== undefined && reason !== undefined) files.push({ path, reason, sinceMs: finiteOr(e.sinceMs, 0) });
  }
  return files.length > 0 ? { skippedFiles: files } : {};
}

/** Only an http(s) URL is believed: the value is shown to people and handed to tools. */
function parseHttpEndpoint(raw: unknown): { http?: { url: string } } {
  const url = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>).url : undefined;
  return typeof url === 'string' && /^https?:\/\/[^\s]+$/.test(url) && url.length < 300 ? { http: { url } } : {};
}

/** Small clock steps between writer and reader are tolerated as "just now". */
export const FUTURE_TOLERANCE_MS = 5_000;

/**
 * How old a heartbeat is. A timestamp far in the future (clock jump, hostile
 * file) is treated as infinitely old rather than as eternally fresh.
 */
export function heartbeatAgeMs(heartbeat: Pick<Heartbeat, 'updatedAtMs'>, nowMs: number): number {
  const age = nowMs - heartbeat.updatedAtMs;
  if (age < -FUTURE_TOLERANCE_MS) return Number.POSITIVE_INFINITY;
  return Math.max(0, age);
}

export function isHeartbeatStale(heartbeat: Pick<Heartbeat, 'updatedAtMs'>, nowMs: number, staleMs: number): boolean {
  return heartbeatAgeMs(heartbeat, nowMs) > staleMs;
}

/** The refresh interval: the configured one, capped so at least three refreshes fit in one stale window. */
export function computeRefreshIntervalMs(configuredMs: number, staleMs: number): number {
  return Math.max(1, Math.min(configuredMs, Math.floor(staleMs / 3)));
}
