import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import { isFactoryError } from '../../src/errors.js';
import { claim, describeStateStoreContract } from './state-store.contract.js';

function scratchDb(): { path: string; dispose: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'factory-state-'));
  return { path: join(dir, 'state', 'state.db'), dispose: async () => rmSync(dir, { recursive: true, force: true }) };
}

describeStateStoreContract('SqliteStateStore', async () => {
  const db = scratchDb();
  return { open: async () => new SqliteStateStore(db.path), reopen: async () => new SqliteStateStore(db.path), dispose: db.dispose };
});

it('SqliteStateStore: a read-only open reads what the daemon wrote and refuses every write with a coded error', async () => {
  const db = scratchDb();
  const writer = new SqliteStateStore(db.path);
  const epoch = await writer.beginEpoch({ pid: 1, startTime: 1, bootId: 'b', hostname: 'h' }, 0);
  await writer.apply({ epoch, claims: [claim('FAC-1', epoch)] });
  const reader = SqliteStateStore.openReadOnly(db.path);
  try {
    assert.equal((await reader.getClaim('FAC-1'))?.status, 'queued');
    await assert.rejects(reader.apply({ epoch, claims: [claim('FAC-2', epoch)] }), (error) => isFactoryError(error, 'FACTORY_STATE_READ_ONLY'));
    await assert.rejects(reader.beginEpoch({ pid: 1, startTime: 1, bootId: 'b', hostname: 'h' }, 0), (error) => isFactoryError(error, 'FACTORY_STATE_READ_ONLY'));
  } finally {
    await reader.close();
    await writer.close();
    await db.dispose();
  }
});

it('SqliteStateStore: a database written before claims had a placement opens, and its claims read with no node', async () => {
  const db = scratchDb();
  const writer = new SqliteStateStore(db.path);
  await writer.close();
  // Rebuild the claims table as v0.1 had it (no node column), with one row.
  const raw = new Database(db.path);
  raw.exec(`DROP TABLE claims; CREATE TABLE claims (issue_key TEXT PRIMARY KEY, revision TEXT NOT NULL, status TEXT NOT NULL, attempt INTEGER NOT NULL,
    next_attempt_at_ms INTEGER, run_id TEXT, repo TEXT NOT NULL, priority REAL, created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL,
    last_reason TEXT, epoch INTEGER NOT NULL, interruptions INTEGER NOT NULL DEFAULT 0);
    INSERT INTO claims VALUES ('OLD-1', 'r', 'queued', 0, NULL, NULL, '/repo', NULL, 1, 1, NULL, 1, 0);`);
  raw.close();
  const store = new SqliteStateStore(db.path);
  try {
    assert.equal((await store.getClaim('OLD-1'))?.node, null);
    await store.apply({ epoch: 1, claims: [claim('NEW-1', 1, { node: 'local' })] });
    assert.equal((await store.getClaim('NEW-1'))?.node, 'local');
  } finally {
    await store.close();
    await db.dispose();
  }
});
