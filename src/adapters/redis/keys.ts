/**
 * Every Redis key Factory writes for one pool. The pool sits in a hash tag
 * (`{pool}`), so all of a pool's keys map to one cluster slot and a Lua script
 * may touch any of them in one atomic step: the lease check and the state
 * write it guards.
 */
export interface FleetKeys {
  /** `<keyPrefix>:{<pool>}:`, the namespace of everything below. */
  readonly base: string;
  /** The fencing counter: INCR on every grant, never reset, never expires. */
  readonly leaseEpoch: string;
  /** `<epoch> <token> <owner JSON>` of the holder, with the lease TTL. */
  readonly leaseOwner: string;
  /** Hash: issue key -> claim JSON. */
  readonly claims: string;
  /** Set of issue keys whose claim is in play (queued, running, retry-wait). */
  readonly activeClaims: string;
  /** Hash: issue key -> skip JSON. */
  readonly skips: string;
  /** Hash: run id -> outcome JSON (the bounded history plus anything not yet written back). */
  readonly outcomes: string;
  /** Sorted set: run id by record order; trimmed to the history limit. */
  readonly outcomeOrder: string;
  /** Sorted set: run ids recorded but not yet written back to the source; never trimmed. */
  readonly pendingWritebacks: string;
  readonly outcomeSeq: string;
  /** Outcomes ever recorded (the history is bounded, the count is not). */
  readonly outcomeTotal: string;
  /** Hash: `<runId>/<agentName>` -> agent usage record JSON (the usage ledger). */
  readonly usage: string;
}

export function fleetKeys(keyPrefix: string, pool: string): FleetKeys {
  const base = `${keyPrefix}:{${pool}}:`;
  return {
    base,
    leaseEpoch: `${base}lease:epoch`,
    leaseOwner: `${base}lease:owner`,
    claims: `${base}state:claims`,
    activeClaims: `${base}state:claims:active`,
    skips: `${base}state:skips`,
    outcomes: `${base}state:outcomes`,
    outcomeOrder: `${base}state:outcomes:order`,
    pendingWritebacks: `${base}state:outcomes:pending`,
    outcomeSeq: `${base}state:outcomes:seq`,
    outcomeTotal: `${base}state:outcomes:total`,
    usage: `${base}state:usage`,
  };
}
