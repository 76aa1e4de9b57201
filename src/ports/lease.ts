import type { ProcessIdentity } from '../domain/process.js';

/**
 * Mutual exclusion with proof of ownership: one daemon per config, one reaper
 * per registry. A file on this host today (adapters/lease/file-lease.ts); a
 * Redis key with a TTL when daemons run on several machines (issue 12).
 *
 * - `owner` names the holder strongly enough to survive pid reuse, so a lease
 *   left by a dead holder is reclaimed on proof that it is gone, never because
 *   a pid looks free.
 * - `epoch` is a fencing token: every grant gets a larger one than the grant
 *   it replaced, so a paused holder that wakes up can be told apart from its
 *   successor by whatever it writes to.
 * - `expiresAtMs` is null for a lock held until released (the file lease);
 *   a networked lease expires unless renewed, and its holder checks `held()`
 *   before acting on what the lease protects.
 */

export interface LeaseOwner extends ProcessIdentity {
  readonly acquiredAtMs: number;
}

export interface LeaseGrant {
  /** What is leased: the lock file, the Redis key. */
  readonly name: string;
  readonly owner: LeaseOwner;
  readonly epoch: number;
  readonly expiresAtMs: number | null;
}

export interface HeldLease extends LeaseGrant {
  /** Whether the lease is still ours now (not released, expired or taken over). */
  held(): Promise<boolean>;
  /** Extends the expiry; a lease without expiry is returned as it is. Throws FACTORY_LEASE_LOST when the lease was lost. */
  renew(): Promise<HeldLease>;
  /** Gives the lease up if it is still ours. Idempotent. */
  release(): Promise<void>;
}

export interface Lease {
  readonly name: string;
  /**
   * Takes the lease, reclaiming it from a holder whose identity is gone.
   * Throws FACTORY_LEASE_HELD (details.owner names the holder) when a live
   * holder has it; callers say what that means to the user (another daemon,
   * another reaper).
   */
  acquire(): Promise<HeldLease>;
  /** The current grant, or null when nobody holds it (or what is there cannot be read). */
  inspect(): Promise<LeaseGrant | null>;
}

/** Runs `work` under the lease and releases it afterwards, also when `work` throws. */
export async function withLease<T>(lease: Lease, work: (held: HeldLease) => Promise<T>): Promise<T> {
  const held = await lease.acquire();
  try {
    return await work(held);
  } finally {
    await held.release();
  }
}
