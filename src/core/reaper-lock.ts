import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import type { ProcessTable } from '../ports/process-table.js';
import type { Clock } from '../ports/clock.js';
import { FactoryError } from '../errors.js';
import { verifyProcessIdentity } from './process-identity.js';

/**
 * One reaper at a time per registry: overlapping cron runs must not fight over
 * the same trees. The lock is a file created exclusively that names its owner
 * by pid, start time and boot id, so a lock left by a crashed reaper is
 * reclaimed on proof that its owner is gone, and never because a pid merely
 * looks free (pids are reused).
 *
 * The file appears fully written or not at all: it is written to a private
 * temp file and hard-linked into place, and link(2) fails with EEXIST exactly
 * like O_EXCL. So a reader never sees a half-written lock of a live owner, and
 * an unparseable lock can only be damage, which is reclaimed.
 */

export interface ReaperLockOwner {
  readonly version: 1;
  readonly pid: number;
  readonly startTime: number;
  readonly bootId: string;
  readonly acquiredAtMs: number;
  /** Distinguishes two acquisitions by the same process, so release never removes a successor's lock. */
  readonly token: string;
}

export interface HeldReaperLock {
  readonly path: string;
  readonly owner: ReaperLockOwner;
  /** Removes the lock if it is still ours. Idempotent. */
  release(): Promise<void>;
}

export interface ReaperLockOptions {
  readonly processTable: ProcessTable;
  readonly clock: Clock;
}

/** Contention retries: each one follows a reclaim or a release we just observed. */
const MAX_ACQUIRE_ATTEMPTS = 5;

type LockFileRead =
  | { readonly kind: 'missing' }
  | { readonly kind: 'owned'; readonly text: string; readonly owner: ReaperLockOwner }
  | { readonly kind: 'damaged'; readonly text: string; readonly reason: string };

function parseLockOwner(text: string): ReaperLockOwner | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  if (typeof raw !== 'object' || raw === null) return 'expected a JSON object';
  const r = raw as Record<string, unknown>;
  if (typeof r.pid !== 'number' || !Number.isSafeInteger(r.pid) || r.pid <= 0) return 'pid: expected a positive integer';
  if (typeof r.startTime !== 'number' || !Number.isSafeInteger(r.startTime) || r.startTime < 0) return 'startTime: expected a non-negative integer';
  if (typeof r.bootId !== 'string' || r.bootId === '') return 'bootId: expected a non-empty string';
  return {
    version: 1,
    pid: r.pid,
    startTime: r.startTime,
    bootId: r.bootId,
    acquiredAtMs: typeof r.acquiredAtMs === 'number' && Number.isFinite(r.acquiredAtMs) ? r.acquiredAtMs : 0,
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
  } finally {
    await handle.close();
  }
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

/**
 * Takes the reaper lock at `path`, reclaiming it from an owner whose identity
 * is gone. Throws FACTORY_REAPER_LOCKED when a live process holds it.
 */
export async function acquireReaperLock(path: string, options: ReaperLockOptions): Promise<HeldReaperLock> {
  const table = options.processTable;
  const self = table.inspect(process.pid);
  if (!self) throw new Error(`cannot read this process's own start time (pid ${process.pid}) from the process table`);
  const owner: ReaperLockOwner = {
    version: 1,
    pid: process.pid,
    startTime: self.startTime,
    bootId: table.bootId(),
    acquiredAtMs: options.clock.now(),
    token: randomBytes(8).toString('hex'),
  };
  const text = `${JSON.stringify(owner)}\n`;
  for (let attempt = 0; attempt < MAX_ACQUIRE_ATTEMPTS; attempt++) {
    if (await createExclusively(path, text)) return heldLock(path, owner, text);
    const existing = await readLockFile(path);
    if (existing.kind === 'missing') continue; // released between our attempt and the read
    if (existing.kind === 'owned') {
      const check = verifyProcessIdentity(existing.owner, table);
      if (check.verdict === 'alive') {
        throw new FactoryError('FACTORY_REAPER_LOCKED', `the reaper lock ${path} is held by a running reaper (pid ${existing.owner.pid})`, {
          details: { path, owner: existing.owner },
        });
      }
    }
    await reclaimStaleLock(path, existing.text);
  }
  throw new FactoryError('FACTORY_REAPER_LOCKED', `the reaper lock ${path} kept changing hands; another reaper is contending for it`, {
    details: { path },
  });
}

function heldLock(path: string, owner: ReaperLockOwner, text: string): HeldReaperLock {
  let released = false;
  return {
    path,
    owner,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      const current = await readLockFile(path);
      // Never remove a lock that is no longer ours (it cannot be while we live, but a hand-edit can replace it).
      if (current.kind !== 'missing' && current.text === text) await unlink(path).catch(() => undefined);
    },
  };
}

/** Runs `work` under the reaper lock and releases it afterwards, also when `work` throws. */
export async function withReaperLock<T>(path: string, options: ReaperLockOptions, work: () => Promise<T>): Promise<T> {
  const lock = await acquireReaperLock(path, options);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}
