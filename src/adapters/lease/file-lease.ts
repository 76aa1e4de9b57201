import { link, mkdir, open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { parseJsonObject } from '../../domain/heartbeat.js';
import { parseProcessIdentity } from '../../domain/process.js';
import { verifyProcessIdentity } from '../../domain/process-identity.js';
import { FactoryError, filesystemError } from '../../errors.js';
import type { Clock } from '../../ports/clock.js';
import type { HeldLease, Lease, LeaseGrant, LeaseOwner } from '../../ports/lease.js';
import type { ProcessTable } from '../../ports/process-table.js';

/**
 * A lease as a file on this host: the daemon lock and the reaper lock. The
 * file is created exclusively and names its owner by pid, start time and boot
 * id, so a lock left by a crashed owner is reclaimed on proof that its owner
 * is gone, and never because a pid merely looks free (pids are reused).
 *
 * The file appears fully written or not at all: it is written to a private
 * temp file and hard-linked into place, and link(2) fails with EEXIST exactly
 * like O_EXCL. So a reader never sees a half-written lock of a live owner, and
 * an unparseable lock can only be damage, which is reclaimed.
 *
 * Held until released (no expiry). The epoch is the acquisition time, bumped
 * past the epoch of a reclaimed lock: a released lock leaves no file, so
 * across a release it is as monotonic as the wall clock (good enough on one
 * host, where the state store's epoch fences the writes that matter).
 */

interface LockFileOwner extends LeaseOwner {
  readonly version: 1;
  readonly epoch: number;
  /** Distinguishes two acquisitions by the same process, so release never removes a successor's lock. */
  readonly token: string;
}

export interface FileLeaseOptions {
  readonly path: string;
  readonly processTable: ProcessTable;
  readonly clock: Clock;
  /**
   * Keep the lock file open while it is held. The daemon does: a pid that
   * holds its lock open is proven to be the daemon beyond what a (possibly
   * forged) heartbeat says (`reap-orphans --terminate-wedged-daemon` checks it).
   */
  readonly keepOpenWhileHeld?: boolean;
}

/** Contention retries: each one follows a reclaim or a release we just observed. */
const MAX_ACQUIRE_ATTEMPTS = 5;

type LockFileRead =
  { readonly kind: 'missing' } | { readonly kind: 'owned'; readonly text: string; readonly owner: LockFileOwner } | { readonly kind: 'damaged'; readonly text: string; readonly reason: string };

function parseLockOwner(text: string): LockFileOwner | string {
  const parsed = parseJsonObject(text);
  if (!parsed.ok) return parsed.reason;
  const identity = parseProcessIdentity(parsed.value);
  if (!identity.ok) return identity.reason;
  const r = parsed.value;
  const acquiredAtMs = typeof r.acquiredAtMs === 'number' && Number.isFinite(r.acquiredAtMs) ? r.acquiredAtMs : 0;
  return {
    version: 1,
    ...identity.value,
    acquiredAtMs,
    epoch: typeof r.epoch === 'number' && Number.isSafeInteger(r.epoch) ? r.epoch : acquiredAtMs,
    token: typeof r.token === 'string' ? r.token : '',
  };
}

async function readLockFile(path: string): Promise<LockFileRead> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw error;
  }
  const owner = parseLockOwner(text);
  return typeof owner === 'string' ? { kind: 'damaged', text, reason: owner } : { kind: 'owned', text, owner };
}

function privateSiblingPath(path: string, purpose: string): string {
  return `${path}.${purpose}.${process.pid}.${randomBytes(6).toString('hex')}`;
}

/** Publishes `text` at `path` only if nothing is there; false when something is. */
async function createExclusively(path: string, text: string): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true });
  const temp = privateSiblingPath(path, 'new');
  const handle = await open(temp, 'wx', 0o644);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (error) {
    // A full disk must not leave a temp file behind on every retry.
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/**
 * Removes a lock judged stale, but only if the file is still the one judged:
 * it is first renamed to a private name (atomic, so exactly one reclaimer gets
 * it), then compared. If a competitor replaced it in between, the live lock we
 * moved is linked straight back. Known limit: a third reaper creating a lock in
 * that instant would leave two holders; each still signals only proven trees.
 */
async function reclaimStaleLock(path: string, judgedText: string): Promise<void> {
  const aside = privateSiblingPath(path, 'stale');
  try {
    await rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else reclaimed or released it
    throw error;
  }
  try {
    const movedText = await readFile(aside, 'utf8');
    if (movedText !== judgedText) await link(aside, path).catch(() => undefined);
  } finally {
    await unlink(aside).catch(() => undefined);
  }
}

function grantOf(path: string, owner: LockFileOwner): LeaseGrant {
  return { name: path, owner: { pid: owner.pid, startTime: owner.startTime, bootId: owner.bootId, acquiredAtMs: owner.acquiredAtMs }, epoch: owner.epoch, expiresAtMs: null };
}

export class FileLease implements Lease {
  readonly name: string;
  readonly #options: FileLeaseOptions;

  constructor(options: FileLeaseOptions) {
    this.name = options.path;
    this.#options = options;
  }

  async inspect(): Promise<LeaseGrant | null> {
    const read = await readLockFile(this.name);
    return read.kind === 'owned' ? grantOf(this.name, read.owner) : null;
  }

  async acquire(): Promise<HeldLease> {
    try {
      return await this.#acquire();
    } catch (error) {
      // A lock folder the user made unwritable (or a path through a file) is theirs to fix: say which lock and why.
      throw filesystemError(error, { path: this.name, action: 'take the lock', access: 'write' }) ?? error;
    }
  }

  async #acquire(): Promise<HeldLease> {
    const { path, processTable: table, clock } = this.#options;
    const selfPid = table.self().pid;
    const self = table.inspect(selfPid);
    if (!self) throw new Error(`cannot read this process's own start time (pid ${selfPid}) from the process table`);
    let lastEpoch = 0;
    for (let attempt = 0; attempt < MAX_ACQUIRE_ATTEMPTS; attempt++) {
      const acquiredAtMs = clock.now();
      const owner: LockFileOwner = {
        version: 1,
        pid: selfPid,
        startTime: self.startTime,
        bootId: table.bootId(),
        acquiredAtMs,
        epoch: Math.max(acquiredAtMs, lastEpoch + 1),
        token: randomBytes(8).toString('hex'),
      };
      const text = `${JSON.stringify(owner)}\n`;
      if (await createExclusively(path, text)) return this.#held(owner, text);
      const existing = await readLockFile(path);
      if (existing.kind === 'missing') continue; // released between our attempt and the read
      if (existing.kind === 'owned') {
        if (verifyProcessIdentity(existing.owner, table).verdict === 'alive') {
          throw new FactoryError('FACTORY_LEASE_HELD', `the lock ${path} is held by a running process (pid ${existing.owner.pid})`, {
            details: { path, owner: existing.owner },
          });
        }
        lastEpoch = Math.max(lastEpoch, existing.owner.epoch);
      }
      await reclaimStaleLock(path, existing.text);
    }
    throw new FactoryError('FACTORY_LEASE_HELD', `the lock ${path} kept changing hands; another process is contending for it`, {
      details: { path },
    });
  }

  async #held(owner: LockFileOwner, text: string): Promise<HeldLease> {
    const path = this.name;
    let openHandle: FileHandle | undefined;
    if (this.#options.keepOpenWhileHeld) openHandle = await open(path, 'r');
    let released = false;
    const isStillOurs = async (): Promise<boolean> => {
      const current = await readLockFile(path);
      return current.kind !== 'missing' && current.text === text;
    };
    const held: HeldLease = {
      ...grantOf(path, owner),
      held: async () => !released && (await isStillOurs()),
      renew: async () => {
        if (released || !(await isStillOurs())) throw new FactoryError('FACTORY_LEASE_LOST', `the lock ${path} is no longer held by this process`, { details: { path } });
        return held;
      },
      release: async () => {
        if (released) return;
        released = true;
        await openHandle?.close().catch(() => undefined);
        // Never remove a lock that is no longer ours (it cannot be while we live, but a hand-edit can replace it).
        if (await isStillOurs()) await unlink(path).catch(() => undefined);
      },
    };
    return held;
  }
}
