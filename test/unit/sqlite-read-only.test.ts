import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import { isFactoryError } from '../../src/errors.js';

/**
 * `factory status` opens the state read-only, possibly while a daemon is still
 * creating it, or on a file an older Factory wrote: either way a coded error
 * or an answer, never "internal error: no such table" (exit 70).
 */
const dir = mkdtempSync(join(tmpdir(), 'factory-sqlite-ro-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a reader that opens the file before the daemon created its tables waits for them and reads an empty state', async () => {
  const path = join(dir, 'racing.db');
  new Database(path).close(); // the daemon has created the file, not yet its tables
  // The reader's wait blocks its thread (the constructor is synchronous), so the "daemon" is a child
  // process: once loaded it says so, then creates the tables 300 ms later, while the reader waits.
  const module = join(import.meta.dirname, '../../src/adapters/state-store/sqlite-state-store.ts');
  const daemon = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      `const { SqliteStateStore } = await import(${JSON.stringify(module)}); console.log('ready'); setTimeout(() => new SqliteStateStore(${JSON.stringify(path)}).close(), 300);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => daemon.stdout.once('data', () => resolve()));
  const store = SqliteStateStore.openReadOnly(path);
  try {
    assert.deepEqual(await store.listClaims(), []);
  } finally {
    await store.close();
    await new Promise((resolve) => daemon.once('exit', resolve));
  }
});

test('a database without Factory tables is a coded error naming the file and the fix', async () => {
  const path = join(dir, 'foreign.db');
  const db = new Database(path);
  db.exec('CREATE TABLE something_else (x INTEGER)');
  db.close();
  assert.throws(
    () => SqliteStateStore.openReadOnly(path),
    (error: unknown) => isFactoryError(error, 'FACTORY_STATE_UNREADABLE') && error.message.includes(path) && /claims/.test(error.message) && /upgrade/.test(error.hint),
  );
});
