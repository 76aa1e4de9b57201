import { heartbeatAgeMs, isHeartbeatStale, type DaemonStatus, type Heartbeat } from '../../domain/heartbeat.js';
import type { ProcessIdentity, ProcessLookup, SentSignal } from '../../domain/process.js';
import { verifyDaemonIdentity, verifyProcessIdentity, type IdentityVerdict } from '../../domain/process-identity.js';
import type { RegistryParse } from '../../domain/registry.js';
import type { StoredRead } from '../../domain/stored-read.js';
import type { LeaseGrant } from '../../ports/lease.js';
import type { ProcessTable } from '../../ports/process-table.js';

/**
 * Is the daemon dead? One rule for the reaper and the liveness verdict
 * (`loop-status`, `status`, /healthz): the heartbeat is stale when it is
 * missing, unreadable, dated in the future or older than the stale window;
 * the daemon is gone when no identity on record (pid, start time, boot id)
 * is alive. Only both together let the reaper act, with one exception:
 * `explainDeadBeforeStale`.
 */

/**
 * `heartbeat-fresh`: the heartbeat is within the stale window, nothing is done.
 * `wedged`: the heartbeat is stale but the daemon's process is alive.
 * `dead`: the heartbeat is stale and no recorded daemon identity is alive.
 * `terminated`: a wedged daemon stopped by us on the caller's explicit request.
 */
export type DaemonState = 'heartbeat-fresh' | 'wedged' | 'dead' | 'terminated';

export interface DaemonIdentityReport extends ProcessIdentity {
  readonly source: 'heartbeat' | 'registry-owner';
  readonly verdict: IdentityVerdict;
  readonly reason: string;
}

export interface DaemonReport {
  readonly state: DaemonState;
  /** `alive` when any recorded identity is alive, else `mismatch` if a pid was reused, else `dead`. */
  readonly verdict: IdentityVerdict;
  readonly reason: string;
  readonly identities: readonly DaemonIdentityReport[];
  readonly signals: readonly SentSignal[];
}

export interface HeartbeatReport {
  readonly file: StoredRead<unknown>['kind'];
  readonly status: DaemonStatus | null;
  /** Null when missing, unreadable, or dated in the future (treated as infinitely old). */
  readonly ageMs: number | null;
  readonly reason: string;
}

export function assessHeartbeat(read: StoredRead<Heartbeat>, nowMs: number, staleMs: number): HeartbeatReport & { stale: boolean } {
  if (read.kind === 'missing') return { file: 'missing', status: null, ageMs: null, stale: true, reason: 'the heartbeat file is missing' };
  if (read.kind === 'unreadable') return { file: 'unreadable', status: null, ageMs: null, stale: true, reason: `the heartbeat is unreadable: ${read.reason}` };
  const age = heartbeatAgeMs(read.value, nowMs);
  const ageMs = Number.isFinite(age) ? age : null;
  const stale = isHeartbeatStale(read.value, nowMs, staleMs);
  const ageText = ageMs === null ? 'dated in the future' : `${ageMs} ms old`;
  return {
    file: 'ok',
    status: read.value.status,
    ageMs,
    stale,
    reason: `the heartbeat (status ${read.value.status}) is ${ageText}; stale after ${staleMs} ms`,
  };
}

/** The daemon identities on record: the heartbeat's writer and the registry's owner (when different). */
export function recordedDaemonIdentities(heartbeat: StoredRead<Heartbeat>, registry: StoredRead<RegistryParse>, table: ProcessLookup): DaemonIdentityReport[] {
  const recorded: { source: DaemonIdentityReport['source']; identity: ProcessIdentity }[] = [];
  if (heartbeat.kind === 'ok') recorded.push({ source: 'heartbeat', identity: heartbeat.value });
  const owner = registry.kind === 'ok' ? registry.value.file.owner : null;
  if (owner && !recorded.some((r) => r.identity.pid === owner.pid && r.identity.startTime === owner.startTime && r.identity.bootId === owner.bootId)) {
    recorded.push({ source: 'registry-owner', identity: owner });
  }
  return recorded.map(({ source, identity }) => {
    const check = verifyDaemonIdentity(identity, table);
    return { source, pid: identity.pid, startTime: identity.startTime, bootId: identity.bootId, verdict: check.verdict, reason: check.reason };
  });
}

export function aggregateVerdict(identities: readonly DaemonIdentityReport[]): IdentityVerdict {
  if (identities.some((identity) => identity.verdict === 'alive')) return 'alive';
  if (identities.some((identity) => identity.verdict === 'mismatch')) return 'mismatch';
  return 'dead';
}

/**
 * The proof a pid is the daemon beyond what a heartbeat says (a heartbeat is
 * a file anyone who can write the state folder can forge): the daemon keeps
 * its lock file open for its whole life. `undefined` when proven, else why
 * not. Required before any signal to a daemon: `reap-orphans
 * --terminate-wedged-daemon` and `kill-loop`.
 */
export function explainUnprovenDaemon(table: Pick<ProcessTable, 'holdsOpen'>, pid: number, daemonLockPath: string): string | undefined {
  if (table.holdsOpen(pid, daemonLockPath)) return undefined;
  return `pid ${pid} matches the recorded identity but does not hold the daemon lock ${daemonLockPath} open, so it is not proven to be the daemon`;
}

/**
 * A daemon that died a moment ago (kill -9, the OOM killer) leaves a heartbeat
 * that stays fresh for `loop.heartbeatStaleMs`. Waiting that long proves
 * nothing more when the death is already proven: every recorded identity is
 * gone (no process with that pid and start time on this boot) and no live
 * process holds the daemon lock, which a daemon holds for its whole life and a
 * successor takes before it writes anything. Returns why the daemon is dead
 * now, or `undefined` when that is not proven (then only staleness decides).
 * `lockHolder` is the daemon lock's current grant (null: nobody holds it).
 */
export function explainDeadBeforeStale(identities: readonly DaemonIdentityReport[], lockHolder: LeaseGrant | null, table: ProcessLookup): string | undefined {
  if (identities.length === 0 || aggregateVerdict(identities) === 'alive') return undefined;
  if (lockHolder !== null && verifyProcessIdentity(lockHolder.owner, table).verdict === 'alive') return undefined;
  const gone = identities.map((identity) => `pid ${identity.pid} (${identity.source})`).join(', ');
  const lock = lockHolder === null ? 'nobody holds the daemon lock' : `the daemon lock's holder (pid ${lockHolder.owner.pid}) is gone too`;
  return `${gone} is gone and ${lock}`;
}
