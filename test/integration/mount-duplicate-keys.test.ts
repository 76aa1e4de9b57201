import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalMountIssueSource } from '../../src/adapters/issue-source/local-mount-issue-source.js';
import { openInProcessSession } from '../support/in-process-session.js';
import { waitFor } from '../support/sandbox.js';

/**
 * A live daemon on a real mount folder (real watch, real SQLite, agents that
 * succeed at once): what a user sees when they add a second file with a key
 * already in use, and when they edit an issue back and forth.
 */

async function liveMount() {
  const dir = mkdtempSync(join(tmpdir(), 'factory-dup-'));
  mkdirSync(join(dir, 'issues'));
  const { session, fleet } = await openInProcessSession(dir, {
    // No timer reconcile during the test: only the live events act (the test reconciles by hand).
    config: { intake: { reconcileIntervalMs: 600_000, debounceMs: 10 } },
    source: (config, clock) => new LocalMountIssueSource({ root: config.mount.root, clock }),
  });
  fleet.autoSucceed = true;
  const write = (file: string, fields: Record<string, unknown>): void => writeFileSync(join(dir, 'issues', file), JSON.stringify({ labels: ['factory'], state: 'ready', ...fields }));
  const runsOf = (key: string): string[] => fleet.agents.filter((agent) => agent.spec.issueKey === key).map((agent) => agent.spec.env.FACTORY_ISSUE_TITLE ?? '');
  const dispose = async (): Promise<void> => {
    await session.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, session, fleet, write, runsOf, dispose };
}

test('a file added with a key another file holds is skipped at once, never takes the issue over, and removing it re-runs nothing', async () => {
  const m = await liveMount();
  try {
    m.write('CASE-1.json', { key: 'CASE-1', title: 'the real one' });
    await m.session.startLive();
    await waitFor('CASE-1 to run and end', () => m.runsOf('CASE-1').length === 1 && m.fleet.running().length === 0 && m.session.dispatcher.claim('CASE-1')?.status === 'succeeded');

    // Sorts before CASE-1.json: by name it would have won.
    m.write('AAA.json', { key: 'CASE-1', title: 'an impostor' });
    const reason = 'AAA.json: duplicate key "CASE-1", already used by CASE-1.json; give one of them another key';
    await waitFor('the duplicate to be reported', () => m.session.intake!.skippedFiles().some((file) => file.reason === reason));
    await m.session.intake!.reconcile();
    assert.deepEqual(m.runsOf('CASE-1').length, 1, 'the duplicate did not run');
    assert.equal(m.session.dispatcher.claim('CASE-1')?.status, 'succeeded');
    assert.deepEqual(
      m.session.intake!.skippedFiles().map((file) => file.reason),
      [reason],
      'a reconcile keeps the file that held the key',
    );

    unlinkSync(join(m.dir, 'issues', 'AAA.json'));
    await waitFor('the removed duplicate to leave the skipped files', () => m.session.intake!.skippedFiles().length === 0);
    await m.session.intake!.reconcile();
    assert.equal(m.runsOf('CASE-1').length, 1, 'the revision that already ran is not run again');
    assert.equal(m.session.dispatcher.claim('CASE-1')?.status, 'succeeded');
  } finally {
    await m.dispose();
  }
});

test('an edit back to an earlier text after another revision ran is a new change and runs again; saving the same text does not', async () => {
  const m = await liveMount();
  try {
    await m.session.startLive();
    const settledAfter = async (runs: number): Promise<void> => {
      await waitFor(`${runs} run(s) of EDIT-1`, () => m.runsOf('EDIT-1').length === runs && m.fleet.running().length === 0 && m.session.dispatcher.claim('EDIT-1')?.status === 'succeeded');
    };
    m.write('EDIT-1.json', { key: 'EDIT-1', title: 'alpha' });
    await settledAfter(1);
    m.write('EDIT-1.json', { key: 'EDIT-1', title: 'alpha' });
    await m.session.intake!.reconcile();
    m.write('EDIT-1.json', { key: 'EDIT-1', title: 'beta' });
    await settledAfter(2);
    m.write('EDIT-1.json', { key: 'EDIT-1', title: 'alpha' });
    await settledAfter(3);
    await m.session.intake!.reconcile();
    assert.deepEqual(m.runsOf('EDIT-1'), ['alpha', 'beta', 'alpha']);
  } finally {
    await m.dispose();
  }
});
