import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalMountIssueSource } from '../../src/adapters/issue-source/local-mount-issue-source.js';
import { openInProcessSession } from '../support/in-process-session.js';
import { waitFor } from '../support/sandbox.js';

/** A live session on the real local mount and SQLite, with agents that succeed at once. */
async function liveSession(dir: string, batchSize: number) {
  const { session, fleet } = await openInProcessSession(dir, {
    config: { dispatch: { batchSize }, intake: { reconcileIntervalMs: 600_000 } },
    source: (config, clock) => new LocalMountIssueSource({ root: config.mount.root, clock }),
  });
  fleet.autoSucceed = true;
  return { session, fleet };
}

function writeIssue(dir: string, key: string, fields: Record<string, unknown> = {}): void {
  writeFileSync(join(dir, 'issues', `${key}.json`), JSON.stringify({ key, title: key, body: '', labels: ['factory'], state: 'ready', ...fields }));
}

test('a backlog of 1,000 issue files is drained in order of priority, then age, none lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factory-burst-'));
  mkdirSync(join(dir, 'issues'));
  const expected: { key: string; priority: number; createdAtMs: number }[] = [];
  for (let i = 0; i < 1_000; i++) {
    const issue = { key: `B-${String(i).padStart(4, '0')}`, priority: (i * 7) % 5, createdAtMs: Date.UTC(2026, 0, 1) + ((i * 7919) % 1_000) * 1_000 };
    expected.push(issue);
    writeIssue(dir, issue.key, { priority: issue.priority, createdAt: new Date(issue.createdAtMs).toISOString() });
  }
  expected.sort((a, b) => a.priority - b.priority || a.createdAtMs - b.createdAtMs || a.key.localeCompare(b.key));
  const { session, fleet } = await liveSession(dir, 1);
  try {
    await session.startLive();
    await waitFor('1,000 teams', () => fleet.agents.length === 1_000 && fleet.running().length === 0, 60_000);
    assert.deepEqual(
      fleet.agents.map((a) => a.spec.issueKey),
      expected.map((e) => e.key),
    );
  } finally {
    await session.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('1,000 files landing in a burst while the daemon runs are each dispatched exactly once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'factory-burst-'));
  mkdirSync(join(dir, 'issues'));
  const { session, fleet } = await liveSession(dir, 8);
  try {
    await session.startLive();
    for (let i = 0; i < 1_000; i++) writeIssue(dir, `L-${i}`);
    // Touch a tenth of them again: more events for the same revisions.
    for (let i = 0; i < 1_000; i += 10) writeIssue(dir, `L-${i}`);
    await waitFor('1,000 teams', () => new Set(fleet.agents.map((a) => a.spec.issueKey)).size === 1_000, 60_000);
    await waitFor('teams to finish', () => fleet.running().length === 0, 10_000);
    // A final full reconcile must not find anything left to dispatch, nor dispatch anything again.
    await session.intake!.reconcile();
    const perIssue = new Map<string, number>();
    for (const agent of fleet.agents) perIssue.set(agent.spec.issueKey, (perIssue.get(agent.spec.issueKey) ?? 0) + 1);
    assert.equal(perIssue.size, 1_000);
    assert.deepEqual(
      [...perIssue.values()].filter((n) => n !== 1),
      [],
      'an issue was dispatched more than once',
    );
  } finally {
    await session.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
