import { verifyProcessIdentity } from '../../domain/process-identity.js';
import { FactoryError } from '../../errors.js';
import type { Clock } from '../../ports/clock.js';
import type { HeldLease, Lease, LeaseGrant, LeaseOwner } from '../../ports/lease.js';
import type { ProcessTable } from '../../ports/process-table.js';

/**
 * Leases in memory, with the file lease's rules: the holder is named by pid,
 * start time and boot id; a holder the process table proves gone is replaced,
 * a live one turns others away (FACTORY_LEASE_HELD); every grant gets a larger
 * epoch than the one before. Leases on one `LeaseBoard` contend for its names.
 */
export class LeaseBoard {
  readonly grants = new Map<string, { readonly grant: LeaseGrant; readonly token: number }>();
  readonly #epochs = new Map<string, number>();
  #tokens = 0;

  nextEpoch(name: string): number {
    const epoch = (this.#epochs.get(name) ?? 0) + 1;
    this.#epochs.set(name, epoch);
    return epoch;
  }

  nextToken(): number {
    return ++this.#tokens;
  }
}

export interface InMemoryLeaseOptions {
  readonly name: string;
  readonly board: LeaseBoard;
  /** Whose lease it is (`self()`) and whether a holder still lives. */
  readonly processTable: ProcessTable;
  readonly clock: Clock;
}

export class InMemoryLease implements Lease {
  readonly name: string;
  readonly #options: InMemoryLeaseOptions;

  constructor(options: InMemoryLeaseOptions) {
    this.name = options.name;
    this.#options = options;
  }

  async inspect(): Promise<LeaseGrant | null> {
    return this.#options.board.grants.get(this.name)?.grant ?? null;
  }

  async acquire(): Promise<HeldLease> {
    const { board, processTable: table, clock } = this.#options;
    const current = board.grants.get(this.name);
    if (current && verifyProcessIdentity(current.grant.owner, table).verdict === 'alive') {
      throw new FactoryError('FACTORY_LEASE_HELD', `the lease ${this.name} is held by a running process (pid ${current.grant.owner.pid})`, {
        details: { name: this.name, owner: current.grant.owner },
      });
    }
    const selfPid = table.self().pid;
    const self = table.inspect(selfPid);
    if (!self) throw new Error(`cannot read this process's own start time (pid ${selfPid}) from the process table`);
    const owner: LeaseOwner = { pid: selfPid, startTime: self.startTime, bootId: table.bootId(), acquiredAtMs: clock.now() };
    const entry = { grant: { name: this.name, owner, epoch: board.nextEpoch(this.name), expiresAtMs: null }, token: board.nextToken() };
    board.grants.set(this.name, entry);
    let released = false;
    const isStillOurs = (): boolean => !released && board.grants.get(this.name)?.token === entry.token;
    const held: HeldLease = {
      ...entry.grant,
      held: async () => isStillOurs(),
      renew: async () => {
        if (!isStillOurs()) throw new FactoryError('FACTORY_LEASE_LOST', `the lease ${this.name} is no longer held by this process`, { details: { name: this.name } });
        return held;
      },
      release: async () => {
        if (isStillOurs()) board.grants.delete(this.name);
        released = true;
      },
    };
    return held;
  }
}
