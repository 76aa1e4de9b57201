import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { FileLease } from '../../src/adapters/lease/file-lease.js';
import { withLease } from '../../src/ports/lease.js';
import { isFactoryError, type FactoryError } from '../../src/errors.js';
import { identityOf, REAPER_FIXTURES, ReaperWorld } from '../fixtures/reaper/harness.js';

/** The reaper lock on real files, with owners that are real live or dead processes. */

const table = new LinuxProcessTable();
const options = { processTable: table, clock: new SystemClock() };
const acquireReaperLock = (path: string, lockOptions: typeof options) => new FileLease({ path, ...lockOptions }).acquire();
const dirs: string[] = [];
const worlds: ReaperWorld[] = [];
after(async () => {
  await Promise.all(worlds.map((world) => world.cleanup()));
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function lockPath(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'factory-reaper-lock-'));
  dirs.push(dir);
  return join(dir, 'state', 'reaper.lock');
}

async function world(): Promise<ReaperWorld> {
  const created = await ReaperWorld.create();
  worlds.push(created);
  return created;
}

async function writeLock(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

const isLocked = (error: unknown): error is FactoryError => isFactoryError(error, 'FACTORY_LEASE_HELD');

describe('reaper lock', () => {
  test('names its owner by pid, start time and boot id, and is gone after release', async () => {
    const path = await lockPath();
    const lock = await acquireReaperLock(path, options);
    const owner = JSON.parse(await readFile(path, 'utf8'));
    assert.deepEqual({ pid: owner.pid, startTime: owner.startTime, bootId: owner.bootId }, identityOf(table, process.pid));
    await lock.release();
    await lock.release(); // idempotent
    await assert.rejects(access(path));
    assert.deepEqual(await readdir(join(path, '..')), [], 'no temp files left behind');
  });

  test('a live owner keeps it: FACTORY_LEASE_HELD names the owner', async () => {
    const path = await lockPath();
    const live = (await world()).spawnBystander().identity;
    await writeLock(path, JSON.stringify({ ...live, acquiredAtMs: 1, token: 'x' }));
    await assert.rejects(acquireReaperLock(path, options), (error: unknown) => isLocked(error) && (error.details.owner as { pid: number }).pid === live.pid);
    assert.equal(JSON.parse(await readFile(path, 'utf8')).pid, live.pid, "the live owner's lock is untouched");
  });

  const reclaimable: { name: string; content: (w: ReaperWorld) => Promise<string> }[] = [
    { name: 'its owner is dead', content: async (w) => JSON.stringify(await w.deadIdentity()) },
    { name: 'its pid is alive but is another process (start time differs)', content: async (w) => JSON.stringify({ ...w.spawnBystander().identity, startTime: 1 }) },
    { name: 'its owner is from another boot', content: async (w) => JSON.stringify({ ...w.spawnBystander().identity, bootId: 'another-boot' }) },
    { name: 'it is torn', content: async () => '{"pid": 12' },
    { name: 'it is empty', content: async () => '' },
    { name: 'it names pid 0', content: async () => JSON.stringify({ pid: 0, startTime: 0, bootId: table.bootId() }) },
  ];
  for (const { name, content } of reclaimable) {
    test(`is reclaimed when ${name}`, async () => {
      const path = await lockPath();
      await writeLock(path, await content(await world()));
      const lock = await acquireReaperLock(path, options);
      assert.equal(JSON.parse(await readFile(path, 'utf8')).pid, process.pid);
      await lock.release();
    });
  }

  test('withLease releases the lock when the work throws, and rethrows', async () => {
    const path = await lockPath();
    await assert.rejects(
      withLease(new FileLease({ path, ...options }), async () => {
        await access(path);
        throw new Error('boom');
      }),
      /boom/,
    );
    await assert.rejects(access(path));
  });

  test('release leaves a lock that is no longer ours', async () => {
    const path = await lockPath();
    const lock = await acquireReaperLock(path, options);
    await writeFile(path, '{"replaced": true}');
    await lock.release();
    assert.equal(await readFile(path, 'utf8'), '{"replaced": true}');
  });

  test('concurrent acquisitions in one process: exactly one wins', async () => {
    const path = await lockPath();
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => acquireReaperLock(path, options)));
    const won = results.filter((result) => result.status === 'fulfilled');
    assert.equal(won.length, 1);
    for (const result of results) if (result.status === 'rejected') assert.ok(isLocked(result.reason), String(result.reason));
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireReaperLock>>>).value.release();
  });

  test("processes racing to reclaim a dead owner's lock never hold it at the same time", async () => {
    const path = await lockPath();
    await writeLock(path, JSON.stringify(await (await world()).deadIdentity()));
    const contenders = Array.from({ length: 4 }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(REAPER_FIXTURES, 'contend-lock.ts'), path, '700'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      return new Promise<{ won: boolean; from?: number; to?: number; code?: string }>((resolve) => child.once('close', () => resolve(JSON.parse(out.trim() || '{"won":false,"code":"crashed"}'))));
    });
    const results = await Promise.all(contenders);
    const holds = results.filter((result) => result.won).sort((a, b) => (a.from ?? 0) - (b.from ?? 0));
    assert.ok(holds.length >= 1, JSON.stringify(results));
    for (const result of results) if (!result.won) assert.equal(result.code, 'FACTORY_LEASE_HELD');
    for (let i = 1; i < holds.length; i++) assert.ok((holds[i]?.from ?? 0) >= (holds[i - 1]?.to ?? 0), `holds overlap: ${JSON.stringify(holds)}`);
    await assert.rejects(access(path));
  });
});
