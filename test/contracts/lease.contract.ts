import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFactoryError } from '../../src/errors.js';
import { withLease, type Lease } from '../../src/ports/lease.js';
import type { ProcessTable } from '../../src/ports/process-table.js';

/**
 * What every lease owes the daemon lock and the reaper lock, run against the
 * file lease and the in-memory lease alike. Holders are processes: real ones
 * for files, fake ones in memory. (Not named *.test.ts: a suite to call.)
 */
export interface LeaseHarness {
  /** The lease (one name for the whole test) as taken by process `pid`. */
  leaseFor(pid: number): Lease;
  /** A live process that can hold the lease. */
  startHolder(): Promise<number>;
  /** That process dies. */
  stopHolder(pid: number): Promise<void>;
  dispose(): Promise<void>;
}

/** The same table seen from another process: leases name `self()` as their holder. */
export function tableAs(table: ProcessTable, pid: number): ProcessTable {
  return new Proxy(table, {
    get(target, property, receiver) {
      if (property === 'self') return () => ({ pid, ppid: 1 });
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export function describeLeaseContract(name: string, makeHarness: () => Promise<LeaseHarness>): void {
  describe(`Lease contract: ${name}`, () => {
    const withHarness = (title: string, body: (h: LeaseHarness) => Promise<void>): void => {
      it(title, async () => {
        const harness = await makeHarness();
        try {
          await body(harness);
        } finally {
          await harness.dispose();
        }
      });
    };

    withHarness('a grant names its holder; inspect shows it; release is idempotent and frees the name', async (h) => {
      const a = await h.startHolder();
      const lease = h.leaseFor(a);
      assert.equal(await lease.inspect(), null);
      const held = await lease.acquire();
      assert.equal(held.owner.pid, a);
      assert.equal(await held.held(), true);
      assert.equal((await lease.inspect())?.owner.pid, a);
      await held.release();
      await held.release();
      assert.equal(await held.held(), false);
      assert.equal(await lease.inspect(), null);
    });

    withHarness('a live holder keeps it: FACTORY_LEASE_HELD names the holder, and its grant is untouched', async (h) => {
      const [a, b] = [await h.startHolder(), await h.startHolder()];
      const held = await h.leaseFor(a).acquire();
      await assert.rejects(h.leaseFor(b).acquire(), (error: unknown) => isFactoryError(error, 'FACTORY_LEASE_HELD') && (error.details.owner as { pid: number }).pid === a);
      assert.equal(await held.held(), true);
      await held.release();
      const next = await h.leaseFor(b).acquire();
      assert.equal(next.owner.pid, b);
      await next.release();
    });

    withHarness("a dead holder's lease is reclaimed with a larger epoch; the dead holder has lost it", async (h) => {
      const [a, b] = [await h.startHolder(), await h.startHolder()];
      const first = await h.leaseFor(a).acquire();
      await h.stopHolder(a);
      const second = await h.leaseFor(b).acquire();
      assert.ok(second.epoch > first.epoch, `epoch ${second.epoch} > ${first.epoch}`);
      assert.equal(await first.held(), false);
      await assert.rejects(first.renew(), (error: unknown) => isFactoryError(error, 'FACTORY_LEASE_LOST'));
      await first.release();
      assert.equal((await h.leaseFor(b).inspect())?.owner.pid, b, "the old holder's release leaves the new grant alone");
      await second.release();
    });

    withHarness('withLease releases after the work, also when it throws', async (h) => {
      const a = await h.startHolder();
      await assert.rejects(
        withLease(h.leaseFor(a), async () => Promise.reject(new Error('work failed'))),
        /work failed/,
      );
      assert.equal(await h.leaseFor(a).inspect(), null);
      assert.equal(await withLease(h.leaseFor(a), async (held) => held.owner.pid), a);
    });
  });
}
