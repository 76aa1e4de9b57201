import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InMemoryStateStore } from '../../src/adapters/state-store/in-memory-state-store.js';
import { ClaimBook } from '../../src/core/dispatch/claim-book.js';
import { CLAIM_STATUSES, isActiveClaimStatus, type ClaimStatus, type IssueClaim } from '../../src/domain/claim.js';

/**
 * Dispatch and the shepherd walk only the claims still in play, through the
 * book's indexes. Whatever sequence of writes (and refused writes) reaches
 * the book, the indexes must name exactly the claims a full scan would: an
 * index that missed a claim would leave a queued issue never dispatched.
 */

function claim(issueKey: string, status: ClaimStatus, epoch: number): IssueClaim {
  return {
    issueKey,
    revision: 'r1',
    status,
    attempt: 0,
    nextAttemptAtMs: status === 'retry-wait' ? 1_000 : null,
    runId: null,
    repo: '/repos/api',
    priority: null,
    createdAtMs: 0,
    updatedAtMs: 0,
    lastReason: 'test',
    epoch,
    interruptions: 0,
    node: null,
  };
}

function keys(claims: Iterable<IssueClaim>): string[] {
  return [...claims].map((c) => c.issueKey).sort();
}

function assertIndexesMatchScan(book: ClaimBook, step: string): void {
  const all = [...book.values()];
  assert.deepEqual(keys(book.waiting()), keys(all.filter((c) => c.status === 'queued' || c.status === 'retry-wait')), `waiting index after ${step}`);
  assert.deepEqual(keys(book.active()), keys(all.filter((c) => isActiveClaimStatus(c.status))), `active index after ${step}`);
  assert.equal(book.waitingCount, keys(book.waiting()).length, `waiting count after ${step}`);
}

test('the waiting and active indexes follow every status change, a load and an undone write', async () => {
  const store = new InMemoryStateStore();
  const epoch = await store.beginEpoch({ pid: 1, startTime: 1, bootId: 'b', hostname: 'h' }, 0);
  await store.apply({ epoch, claims: [claim('OLD-1', 'succeeded', epoch), claim('OLD-2', 'queued', epoch), claim('OLD-3', 'parked', epoch)] });
  const book = await ClaimBook.load(store, epoch);
  assertIndexesMatchScan(book, 'load');
  assert.deepEqual(keys(book.waiting()), ['OLD-2']);

  // A deterministic walk through every status for a handful of issues.
  let seed = 7;
  const next = (n: number): number => (seed = (seed * 48_271) % 2_147_483_647) % n; // Park–Miller: exact in doubles
  for (let step = 0; step < 300; step++) {
    const batch = book.batch();
    for (let i = 0; i < 1 + next(3); i++) batch.saveClaim(claim(`FAC-${next(8)}`, CLAIM_STATUSES[next(CLAIM_STATUSES.length)]!, epoch));
    await batch.commit();
    assertIndexesMatchScan(book, `step ${step}`);
  }

  // A write the store refuses (a newer epoch took over) is undone in memory, indexes included.
  const before = { waiting: keys(book.waiting()), active: keys(book.active()) };
  await store.beginEpoch({ pid: 2, startTime: 2, bootId: 'b', hostname: 'h' }, 0);
  const refused = book.batch();
  refused.saveClaim(claim('NEW-1', 'queued', epoch));
  for (const key of before.active) refused.saveClaim(claim(key, 'cancelled', epoch));
  await assert.rejects(refused.commit());
  assertIndexesMatchScan(book, 'the refused write');
  assert.deepEqual({ waiting: keys(book.waiting()), active: keys(book.active()) }, before);
});
