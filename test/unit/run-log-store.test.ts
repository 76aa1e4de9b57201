import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync, appendFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FileRunLogStore } from '../../src/adapters/run-logs/file-run-log-store.js';
import { armCrashPoint, maybeCrash, parseCrashSetting } from '../../src/core/fault-injection.js';

function storeWithLogs(): { store: FileRunLogStore; logsDir: string } {
  const logsDir = join(mkdtempSync(join(tmpdir(), 'factory-run-logs-')), 'logs');
  mkdirSync(logsDir, { recursive: true });
  return { store: new FileRunLogStore(logsDir), logsDir };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('FileRunLogStore', () => {
  test('agents with any role name are found, configured ones in stage order, others as they started; old names still read', async () => {
    const { store } = storeWithLogs();
    const run = 'FOO-1-e2-a1-0a1b2c';
    // The team run asks the store where each agent writes, as the fleet will.
    for (const agent of ['planner', 'implementer', 'reviewer-2']) {
      const { logPath } = store.locateAgentLog('FOO-1', run, agent);
      mkdirSync(join(logPath, '..'), { recursive: true });
      writeFileSync(logPath, `${agent} says hi\n`);
      await sleep(15);
    }
    const old = 'FOO-1-e1-a1-ffee';
    writeFileSync(store.locateAgentLog('FOO-1', old, 'implementer').logPath, 'old implementer\n');
    const runs = await store.listIssueRuns('FOO-1');
    assert.deepEqual(
      runs.map((r) => r.run.runId),
      [run, old],
      'newest epoch first',
    );
    assert.deepEqual(
      runs[0]!.files.map((f) => f.agent),
      ['planner', 'implementer', 'reviewer-2'],
    );
    const configured = new FileRunLogStore(store.logsDir, { agentOrder: ['implementer', 'reviewer-2'] });
    assert.deepEqual(
      (await configured.findRun(run))?.files.map((f) => f.agent),
      ['implementer', 'reviewer-2', 'planner'],
    );
    assert.deepEqual(
      (await store.findRun(old))?.files.map((f) => f.agent),
      ['implementer'],
    );
    assert.equal(await store.findRun('not-a-run'), undefined);
    assert.equal(await store.findRun('../../etc-e1-a1-ab'), undefined);
  });

  test('side files sit beside the log and are never listed as logs', async () => {
    const { store, logsDir } = storeWithLogs();
    const location = store.locateAgentLog('BAR-2', 'BAR-2-e1-a1-abc', 'implementer');
    assert.equal(location.sideFilesDir, join(logsDir, 'BAR-2'));
    mkdirSync(location.sideFilesDir, { recursive: true });
    writeFileSync(location.logPath, 'x\n');
    writeFileSync(join(location.sideFilesDir, `${location.sideFileStem}.prompt.md`), 'prompt');
    assert.deepEqual(
      (await store.findRun('BAR-2-e1-a1-abc'))?.files.map((f) => f.path),
      [location.logPath],
    );
  });

  test('a link out of the logs folder is not a log', async () => {
    const { store, logsDir } = storeWithLogs();
    const secret = join(logsDir, '..', 'secret.txt');
    writeFileSync(secret, 'TOP SECRET\n');
    mkdirSync(join(logsDir, 'EVIL-1'));
    symlinkSync(secret, join(logsDir, 'EVIL-1', 'EVIL-1-e1-a1-ab-implementer.log'));
    assert.equal(await store.findRun('EVIL-1-e1-a1-ab'), undefined);
    assert.deepEqual(await store.listIssueRuns('EVIL-1'), []);
  });

  test('tail reads the last lines; readFrom follows a growing log and restarts on a replaced one', async () => {
    const { store } = storeWithLogs();
    const { logPath } = store.locateAgentLog('T-1', 'T-1-e1-a1-ab', 'fixer');
    mkdirSync(join(logPath, '..'), { recursive: true });
    writeFileSync(logPath, 'one\ntwo\nthree\n');
    const file = (await store.findRun('T-1-e1-a1-ab'))!.files[0]!;
    assert.deepEqual(await store.tail(file, { lines: 2 }), { text: 'two\nthree\n', truncated: true, sizeBytes: 14 });
    const first = await store.readFrom(file, 0);
    assert.equal(first.chunk.toString(), 'one\ntwo\nthree\n');
    appendFileSync(logPath, 'four\n');
    const next = await store.readFrom(file, first.nextOffset);
    assert.equal(next.chunk.toString(), 'four\n');
    truncateSync(logPath, 0);
    writeFileSync(logPath, 'new\n');
    assert.equal((await store.readFrom(file, next.nextOffset)).chunk.toString(), 'new\n');
  });
});

describe('crash points (fault injection)', () => {
  test('the setting names a point and a hit; an unknown point or count arms nothing', () => {
    assert.deepEqual(parseCrashSetting('after-spawn:2'), { point: 'after-spawn', onHit: 2 });
    assert.deepEqual(parseCrashSetting('after-claim'), { point: 'after-claim', onHit: 1 });
    assert.equal(parseCrashSetting('after-lunch'), undefined);
    assert.equal(parseCrashSetting('after-claim:0'), undefined);
    assert.equal(parseCrashSetting(undefined), undefined);
  });

  test('the injected crash runs on the Nth hit of its point only', () => {
    const crashes: string[] = [];
    const record = (what: string) => () => void crashes.push(what);
    armCrashPoint({ point: 'after-spawn', onHit: 2 }, record('crash'));
    maybeCrash('after-claim');
    maybeCrash('after-spawn');
    assert.deepEqual(crashes, []);
    maybeCrash('after-spawn');
    maybeCrash('after-spawn');
    assert.deepEqual(crashes, ['crash']);
    armCrashPoint(undefined, record('never'));
    maybeCrash('after-spawn');
    assert.deepEqual(crashes, ['crash']);
  });
});
