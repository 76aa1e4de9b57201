import { FLEET_WORKER_TRANSPORT, isReconcileStalled, type Heartbeat } from '../domain/heartbeat.js';
import type { ProcessLookup } from '../domain/process.js';
import { verifyProcessIdentity } from '../domain/process-identity.js';
import type { StoredRead } from '../domain/stored-read.js';
import { assessHeartbeat } from './reaper/verdict.js';

/**
 * The liveness verdict `loop-status`, `status` and the health endpoint share.
 * Only `healthy` is healthy; every other verdict makes `loop-status` exit
 * non-zero so cron can alert.
 */
export type LivenessVerdict =
  | 'healthy'
  | 'stale' // heartbeat too old and its process is gone: a crashed daemon
  | 'wedged' // heartbeat too old but its process is alive: hung or SIGSTOPped
  | 'stopping'
  | 'standby' // alive and waiting for the fleet's leader lease: healthy, dispatches nothing
  | 'stopped' // exited in order (stopped, failed, idle and gone)
  | 'missing'
  | 'unreadable'
  | 'subscription-unhealthy';

export interface Liveness {
  readonly verdict: LivenessVerdict;
  readonly healthy: boolean;
  readonly detail: string;
  readonly ageMs: number | null;
  readonly processAlive: boolean | null;
  readonly heartbeat: Heartbeat | null;
}

export function judgeLiveness(read: StoredRead<Heartbeat>, options: { nowMs: number; staleMs: number; processTable: ProcessLookup }): Liveness {
  if (read.kind === 'missing')
    return {
      verdict: 'missing',
      healthy: false,
      detail: 'no heartbeat file: the daemon has never run with this config, or its state folder was removed',
      ageMs: null,
      processAlive: null,
      heartbeat: null,
    };
  if (read.kind === 'unreadable') return { verdict: 'unreadable', healthy: false, detail: read.reason, ageMs: null, processAlive: null, heartbeat: null };
  const heartbeat = read.value;
  // The reaper's rule: one notion of a stale heartbeat for every reader.
  const { ageMs, stale } = assessHeartbeat(read, options.nowMs, options.staleMs);
  const processAlive = verifyProcessIdentity(heartbeat, options.processTable).verdict === 'alive';
  const base = { ageMs, processAlive, heartbeat };
  const ageText = ageMs !== null ? `${Math.round(ageMs / 1000)}s old` : 'dated in the future';
  if (heartbeat.status === 'stopping' && !stale) return { ...base, verdict: 'stopping', healthy: false, detail: `the daemon (pid ${heartbeat.pid}) is stopping` };
  if (!processAlive && (heartbeat.status === 'stopped' || heartbeat.status === 'failed' || heartbeat.status === 'idle')) {
    return { ...base, verdict: 'stopped', healthy: false, detail: `the last daemon (pid ${heartbeat.pid}) ended with status ${heartbeat.status}` };
  }
  if (stale) {
    return processAlive
      ? { ...base, verdict: 'wedged', healthy: false, detail: `heartbeat is ${ageText} (limit ${options.staleMs}ms) but pid ${heartbeat.pid} is alive: hung or stopped` }
      : { ...base, verdict: 'stale', healthy: false, detail: `heartbeat is ${ageText} (limit ${options.staleMs}ms) and pid ${heartbeat.pid} is gone: the daemon crashed` };
  }
  if (!processAlive) return { ...base, verdict: 'stale', healthy: false, detail: `heartbeat is fresh but pid ${heartbeat.pid} is gone or is another process now` };
  if (heartbeat.status === 'standby') return { ...base, verdict: 'standby', healthy: true, detail: `pid ${heartbeat.pid} stands by for the leader lease, heartbeat ${ageText}` };
  const sub = heartbeat.subscription;
  if (sub.transport === FLEET_WORKER_TRANSPORT && heartbeat.status === 'running') {
    return { ...base, verdict: 'healthy', healthy: true, detail: `fleet worker pid ${heartbeat.pid} running, heartbeat ${ageText}` };
  }
  if (heartbeat.mode === 'live' && (sub.state === 'wedged' || sub.state === 'not-listening')) {
    return { ...base, verdict: 'subscription-unhealthy', healthy: false, detail: `the daemon is alive but its issue subscription is ${sub.state}${sub.lastError ? `: ${sub.lastError}` : ''}` };
  }
  if (heartbeat.mode === 'live' && isReconcileStalled(sub, options.nowMs)) {
    return {
      ...base,
      verdict: 'subscription-unhealthy',
      healthy: false,
      detail: `a reconcile pass has been in flight for ${Math.round((options.nowMs - sub.reconcileStartedAtMs!) / 1000)}s: stalled`,
    };
  }
  return { ...base, verdict: 'healthy', healthy: true, detail: `pid ${heartbeat.pid} ${heartbeat.status}, heartbeat ${ageText}` };
}
