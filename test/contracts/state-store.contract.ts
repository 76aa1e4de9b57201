import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFactoryError } from '../../src/errors.js';
import type { RunOutcome, RunOutcomeReason } from '../../src/domain/run.js';
import type { AgentUsageRecord, DaemonOwner, IssueClaim, StateStore } from '../../src/ports/state-store.js';
import { EMPTY_USAGE_SUMMARY } from '../../src/domain/agent-events/usage-records.js';
import type { TokenUsage } from '../../src/domain/agent-events/usage-ledger.js';

/**
 * The behaviour every StateStore owes the dispatcher, run against SQLite and
 * the in-memory store alike. (Not named *.test.ts: a suite to call.)
 */

export interface StateStoreHarness {
  /** A fresh, empty store. */
  open(): Promise<StateStore>;
  /** The same state seen by a new store object, as after a daemon restart; absent for stores that do not outlive their object. */
  reopen?(): Promise<StateStore>;
  dispose(): Promise<void>;
}

const OWNER: DaemonOwner = { pid: 4242, startTime: 7, bootId: 'boot', hostname: 'contract-host' };
const T0 = Date.UTC(2026, 0, 1);

export function claim(issueKey: string, epoch: number, overrides: Partial<IssueClaim> = {}): IssueClaim {
  return {
    issueKey,
    revision: `rev-${issueKey}`,
    status: 'queued',
    attempt: 0,
    nextAttemptAtMs: null,
    runId: null,
    repo: '/repos/main',
    priority: null,
    createdAtMs: T0,
    updatedAtMs: T0,
    lastReason: null,
    epoch,
    interruptions: 0,
    node: null,
    park: null,
    ...overrides,
  };
}

export function outcome(issueKey: string, runId: string, reason: RunOutcomeReason = 'succeeded', endedAtMs = T0 + 1_000): RunOutcome {
  return {
    runId,
    issueKey,
    revision: `rev-${issueKey}`,
    attempt: 1,
    reason,
    detail: `${reason} in the contract`,
    branch: `factory/${issueKey}`,
    worktree: `/worktrees/${issueKey}`,
    agents: [{ role: 'implementer', agentName: `${issueKey}-implementer`, exitCode: 0, signal: null, reason, logPath: `/logs/${runId}.log`, startedAtMs: T0, endedAtMs }],
    startedAtMs: T0,
    endedAtMs,
  };
}

const isStale = (error: unknown): boolean => isFactoryError(error, 'FACTORY_STATE_STALE_EPOCH');

export function describeStateStoreContract(name: string, makeHarness: () => Promise<StateStoreHarness>): void {
  describe(`StateStore contract: ${name}`, () => {
    const withStore = (title: string, body: (store: StateStore, harness: StateStoreHarness) => Promise<void>): void => {
      it(title, async () => {
        const harness = await makeHarness();
        const store = await harness.open();
        try {
          await body(store, harness);
        } finally {
          await store.close();
          await harness.dispose();
        }
      });
    };

    withStore('the usage ledger sums per role and driver, counts a rerecorded agent run once, and filters by end time', async (store) => {
      await store.beginEpoch(OWNER, T0);
      assert.deepEqual(await store.usageSummary(0), EMPTY_USAGE_SUMMARY);
      const usage = (input: number, output: number, cacheRead = 0, cacheWrite = 0): TokenUsage => ({ input, output, cacheRead, cacheWrite });
      const records: AgentUsageRecord[] = [
        { runId: 'run-1', issueKey: 'A', role: 'implementer', agentName: 'A-implementer', driver: 'claude-code', usage: usage(1000, 50, 300, 100), costUsd: 0.25, turns: 2, endedAtMs: T0 },
        { runId: 'run-1', issueKey: 'A', role: 'reviewer', agentName: 'A-reviewer', driver: 'codex', usage: usage(400, 20, 100), turns: 1, endedAtMs: T0 + 10 },
        { runId: 'run-2', issueKey: 'B', role: 'implementer', agentName: 'B-implementer', driver: 'claude-code', usage: usage(10, 5), costUsd: 0.5, turns: 3, endedAtMs: T0 + 86_400_000 },
      ];
      await store.recordUsage(records);
      // Recorded again (a retried write): replaced, not added.
      await store.recordUsage([records[0]!]);
      await store.recordUsage([]);
      const all = await store.usageSummary(0);
      assert.deepEqual(all.rows, [
        { role: 'implementer', driver: 'claude-code', usage: usage(1010, 55, 300, 100), costUsd: 0.75, turns: 5, runs: 2 },
        { role: 'reviewer', driver: 'codex', usage: usage(400, 20, 100), costUsd: null, turns: 1, runs: 1 },
      ]);
      assert.deepEqual(all.total, { usage: usage(1410, 75, 400, 100), costUsd: 0.75, turns: 6, runs: 3 });
      const lastDay = await store.usageSummary(T0 + 86_400_000);
      assert.deepEqual(
        lastDay.rows.map((r) => [r.role, r.runs, r.usage.input]),
        [['implementer', 1, 10]],
      );
      assert.deepEqual(await store.usageSummary(T0 + 86_400_001), EMPTY_USAGE_SUMMARY);
    });

    withStore('each beginEpoch takes the next epoch, starting at 1', async (store) => {
      assert.equal(await store.currentEpoch(), 0);
      assert.equal(await store.beginEpoch(OWNER, T0), 1);
      assert.equal(await store.beginEpoch(OWNER, T0 + 1), 2);
      assert.equal(await store.currentEpoch(), 2);
    });

    withStore('a batch from an older epoch is refused as stale and changes nothing', async (store) => {
      const first = await store.beginEpoch(OWNER, T0);
      await store.apply({ epoch: first, claims: [claim('FAC-1', first)] });
      const second = await store.beginEpoch(OWNER, T0 + 1);
      await assert.rejects(store.apply({ epoch: first, claims: [claim('FAC-1', first, { status: 'succeeded' }), claim('FAC-2', first)] }), isStale);
      await assert.rejects(store.apply({ epoch: first, skips: [{ issueKey: 'X', reason: 'r', atMs: T0 }] }), isStale);
      await assert.rejects(store.apply({ epoch: first, outcome: { outcome: outcome('FAC-1', 'run-1'), nextClaim: claim('FAC-1', first, { status: 'succeeded' }) } }), isStale);
      assert.equal((await store.getClaim('FAC-1'))?.status, 'queued');
      assert.equal(await store.getClaim('FAC-2'), undefined);
      assert.deepEqual(await store.listSkips(), []);
      assert.equal(await store.outcomeCount(), 0);
      // The owning epoch still writes.
      await store.apply({ epoch: second, claims: [claim('FAC-1', second, { status: 'running' })] });
      assert.equal((await store.getClaim('FAC-1'))?.status, 'running');
    });

    withStore('claims round-trip every field, and a later save replaces the earlier one', async (store) => {
      const epoch = await store.beginEpoch(OWNER, T0);
      const full = claim('FAC-1', epoch, {
        status: 'retry-wait',
        attempt: 2,
        nextAttemptAtMs: T0 + 60_000,
        runId: 'FAC-1-e1-a2',
        priority: 1.5,
        lastReason: 'failed: exit 3',
        interruptions: 2,
        node: 'worker-7',
        updatedAtMs: T0 + 5,
      });
      await store.apply({ epoch, claims: [full] });
      assert.deepEqual(await store.getClaim('FAC-1'), full);
      await store.apply({ epoch, claims: [claim('FAC-1', epoch, { status: 'running', attempt: 3 })] });
      assert.deepEqual(await store.getClaim('FAC-1'), claim('FAC-1', epoch, { status: 'running', attempt: 3 }));
      assert.equal(await store.getClaim('NOPE'), undefined);
    });

    withStore('listClaims lists every claim, newest update first; listActiveClaims only those in play', async (store) => {
      const epoch = await store.beginEpoch(OWNER, T0);
      await store.apply({
        epoch,
        claims: [
          claim('Q', epoch, { status: 'queued', updatedAtMs: T0 + 1 }),
          claim('R', epoch, { status: 'running', updatedAtMs: T0 + 3 }),
          claim('W', epoch, { status: 'retry-wait', updatedAtMs: T0 + 2 }),
          claim('S', epoch, { status: 'succeeded', updatedAtMs: T0 + 6 }),
          claim('G', epoch, { status: 'gave-up', updatedAtMs: T0 + 5 }),
          claim('C', epoch, { status: 'cancelled', updatedAtMs: T0 + 4 }),
          claim('P', epoch, { status: 'parked', updatedAtMs: T0 + 7 }),
        ],
      });
      assert.deepEqual(
        (await store.listClaims()).map((c) => c.issueKey),
        ['P', 'S', 'G', 'C', 'R', 'W', 'Q'],
      );
      assert.deepEqual(
        (await store.listActiveClaims()).map((c) => c.issueKey),
        ['P', 'R', 'W', 'Q'],
        'a parked claim is still in play: status shows it and a restarted daemon re-arms its resume',
      );
    });

    withStore('a parked claim keeps its park durably (work ref, reason, resume time, session ids), through an outcome write, and a later claim drops it', async (store) => {
      const epoch = await store.beginEpoch(OWNER, T0);
      const park = {
        runId: 'run-1',
        ref: 'refs/factory/park/run-1',
        commit: 'ab12cd',
        trigger: 'usage-limit' as const,
        reason: 'usage limit reached',
        resumeAtMs: T0 + 3_600_000,
        stage: 1,
        sessions: { implementer: 'sess-1', 'implementer#2': 'thread-2' },
      };
      const parkedOutcome = { ...outcome('FAC-1', 'run-1', 'parked'), park };
      const parked = claim('FAC-1', epoch, { status: 'parked', runId: 'run-1', lastReason: 'parked (usage-limit): usage limit reached', park });
      await store.apply({ epoch, outcome: { outcome: parkedOutcome, nextClaim: parked } });
      assert.deepEqual(await store.getClaim('FAC-1'), parked);
      assert.deepEqual((await store.listActiveClaims())[0], parked);
      assert.deepEqual((await store.recentOutcomes(1))[0]?.park, park);
      await store.apply({ epoch, claims: [claim('FAC-1', epoch, { status: 'succeeded' })] });
      assert.equal((await store.getClaim('FAC-1'))?.park, null);
    });

    withStore('a fix round on a claim is durable while it waits and runs; its outcome carries it; a shepherding claim is in play; the round is dropped once it ends', async (store) => {
      const epoch = await store.beginEpoch(OWNER, T0);
      const fix = {
        round: 1,
        trigger: 'ci-failed',
        onSha: 'abc1234def',
        failures: ['check test: failure'],
        fingerprints: ['test\nerror: x'],
        branch: 'factory/fac-1',
        feedback: '## Pull request feedback\n\n- **test**: failure',
      };
      const running = claim('FAC-1', epoch, { status: 'running', runId: 'run-f1', fix });
      await store.apply({ epoch, claims: [running, claim('FAC-2', epoch, { status: 'shepherding' })] });
      assert.deepEqual((await store.getClaim('FAC-1'))?.fix, fix);
      assert.deepEqual((await store.listActiveClaims()).map((c) => c.issueKey).sort(), ['FAC-1', 'FAC-2']);
      await store.apply({ epoch, outcome: { outcome: { ...outcome('FAC-1', 'run-f1'), fix }, nextClaim: claim('FAC-1', epoch, { status: 'shepherding', runId: 'run-f1', fix: null }) } });
      assert.deepEqual((await store.pendingWritebacks())[0]?.fix, fix, 'a writeback retried after a crash still knows it was a fix round');
      assert.equal((await store.getClaim('FAC-1'))?.fix ?? null, null);
    });

    withStore('an outcome is recorded with its next claim in one write, pending writeback until marked', async (store) => {
      const epoch = await store.beginEpoch(OWNER, T0);
      await store.apply({ epoch, claims: [claim('FAC-1', epoch, { status: 'running', attempt: 1, runId: 'run-1' })] });
      const done = outcome('FAC-1', 'run-1');
      await store.apply({ epoch, outcome: { outcome: done, nextClaim: claim('FAC-1', epoch, { status: 'succeeded', attempt: 1, runId: 'run-1' }) } });
      assert.equal((await store.getClaim('FAC-1'))?.status, 'succeeded');
      assert.deepEqual(await store.pendingWritebacks(), [done]);
      await store.markWrittenBack('run-1');
      assert.deepEqual(await store.pendingWritebacks(), []);
      assert.deepEqual(await store.recentOutcomes(5), [done], 'written-back outcomes stay in the history');
    });

    withStore('pending writebacks come back oldest first', async (store) => {
      const epoch = await store.beginEpoch(OWNER, T0);
      for (const [key, runId] of [
        ['A', 'run-a'],
        ['B', 'run-b'],
        ['C', 'run-c'],
      ] as const) {
        await store.apply({ epoch, outcome: { outcome: outcome(key, runId), nextClaim: claim(key, epoch, { status: 'succeeded' }) } });
      }
      await store.markWrittenBack('run-b');
      assert.deepEqual(
        (await store.pendingWritebacks()).map((o) => o.runId),
        ['run-a', 'run-c'],
      );
    });

    withStore('recent outcomes are newest first, limited, and counted', async (store) => {
      const epoch = await store.beginEpoch(OWNER, T0);
      for (let i = 1; i <= 5; i++) {
        await store.apply({ epoch, outcome: { outcome: outcome(`FAC-${i}`, `run-${i}`, i % 2 ? 'succeeded' : 'failed', T0 + i), nextClaim: claim(`FAC-${i}`, epoch, { status: 'succeeded' }) } });
      }
      assert.deepEqual(
        (await store.recentOutcomes(3)).map((o) => o.runId),
        ['run-5', 'run-4', 'run-3'],
      );
      assert.equal(await store.outcomeCount(), 5);
      assert.equal((await store.recentOutcomes(10)).length, 5);
    });

    withStore('skips are recorded, replaced and cleared, newest first', async (store) => {
      const epoch = await store.beginEpoch(OWNER, T0);
      await store.apply({
        epoch,
        skips: [
          { issueKey: 'A', reason: 'no label', atMs: T0 },
          { issueKey: 'B', reason: 'draft', atMs: T0 + 1 },
        ],
      });
      await store.apply({ epoch, skips: [{ issueKey: 'A', reason: 'closed', atMs: T0 + 2 }] });
      assert.deepEqual(await store.listSkips(), [
        { issueKey: 'A', reason: 'closed', atMs: T0 + 2 },
        { issueKey: 'B', reason: 'draft', atMs: T0 + 1 },
      ]);
      await store.apply({ epoch, clearedSkips: ['A', 'NEVER-SKIPPED'] });
      assert.deepEqual(
        (await store.listSkips()).map((s) => s.issueKey),
        ['B'],
      );
    });

    withStore('a batch of claims, skips and an outcome lands whole', async (store) => {
      const epoch = await store.beginEpoch(OWNER, T0);
      await store.apply({ epoch, skips: [{ issueKey: 'BACK', reason: 'no label', atMs: T0 }] });
      const claims = Array.from({ length: 500 }, (_, i) => claim(`BULK-${i}`, epoch));
      await store.apply({
        epoch,
        claims,
        skips: [{ issueKey: 'OUT', reason: 'closed', atMs: T0 }],
        clearedSkips: ['BACK'],
        outcome: { outcome: outcome('DONE', 'run-done'), nextClaim: claim('DONE', epoch, { status: 'succeeded' }) },
      });
      assert.equal((await store.listClaims()).length, 501);
      assert.deepEqual(
        (await store.listSkips()).map((s) => s.issueKey),
        ['OUT'],
      );
      assert.equal(await store.outcomeCount(), 1);
    });

    withStore('values read are copies: changing one does not change the store', async (store) => {
      const epoch = await store.beginEpoch(OWNER, T0);
      await store.apply({ epoch, claims: [claim('FAC-1', epoch)] });
      const read = (await store.getClaim('FAC-1')) as { status: string };
      read.status = 'succeeded';
      assert.equal((await store.getClaim('FAC-1'))?.status, 'queued');
    });

    it('what one store object wrote, the next one reads (a restart keeps claims, epochs, outcomes and skips)', async (t) => {
      const harness = await makeHarness();
      if (!harness.reopen) {
        await harness.dispose();
        t.skip('this store does not outlive its object');
        return;
      }
      const first = await harness.open();
      const epoch = await first.beginEpoch(OWNER, T0);
      await first.apply({
        epoch,
        claims: [claim('KEEP', epoch, { status: 'retry-wait', nextAttemptAtMs: T0 + 9_000, attempt: 1, node: 'local' })],
        skips: [{ issueKey: 'SKIP', reason: 'draft', atMs: T0 }],
        outcome: { outcome: outcome('DONE', 'run-done'), nextClaim: claim('DONE', epoch, { status: 'succeeded' }) },
      });
      await first.close();
      const second = await harness.reopen();
      try {
        assert.equal(await second.currentEpoch(), epoch);
        assert.equal((await second.getClaim('KEEP'))?.nextAttemptAtMs, T0 + 9_000);
        assert.equal((await second.getClaim('KEEP'))?.node, 'local');
        assert.deepEqual(
          (await second.pendingWritebacks()).map((o) => o.runId),
          ['run-done'],
        );
        assert.deepEqual(
          (await second.listSkips()).map((s) => s.issueKey),
          ['SKIP'],
        );
        assert.equal(await second.beginEpoch(OWNER, T0 + 1), epoch + 1);
      } finally {
        await second.close();
        await harness.dispose();
      }
    });
  });
}
