import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REPO_ROOT } from '../support/sandbox.js';

/**
 * The fallback where no cgroup is writable: the driver runs as `nobody` (via
 * setpriv), so every cgroup mkdir is refused, detection picks RSS sampling,
 * and a team whose marked processes (escapee included) sum over its budget
 * is stopped by Factory instead of the kernel.
 */

const MB = 2 ** 20;
const DRIVER = join(REPO_ROOT, 'test', 'fixtures', 'resources', 'rss-fallback-driver.ts');

function cannotRunAsNobody(): string | false {
  if (process.getuid?.() !== 0) return 'needs root to drop to nobody with setpriv';
  try {
    execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'true']);
    return false;
  } catch (error) {
    return `setpriv cannot drop to nobody here (${(error as Error).message.split('\n')[0]})`;
  }
}

const scratch = mkdtempSync(join(tmpdir(), 'factory-rss-fallback-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('without a writable cgroup, RSS sampling stops a team over its budget, escapee included, and leaves the sibling team running', { skip: cannotRunAsNobody() }, async () => {
  chmodSync(scratch, 0o777);
  const driver = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '--import', 'tsx', DRIVER, scratch], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, HOME: scratch },
  });
  let output = '';
  driver.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise((resolve) => driver.once('exit', resolve));
  assert.equal(code, 0, output);
  const result = JSON.parse(output.trim().split('\n').pop()!) as {
    uid: number;
    mechanism: string;
    memoryHierarchyWritable: boolean | null;
    stop?: { rssBytes: number; limitBytes: number; result: { killed: number; survivors: number[] } };
    hogSignal: string | null;
    hogMemory: { peakBytes: number; oomKills: number };
    escapeeAlive: boolean;
    siblingAlive: boolean;
    siblingMemory: { oomKills: number; currentBytes: number };
    medianSampleMs: number;
  };
  assert.equal(result.uid, 65534, 'the driver ran as nobody');
  assert.equal(result.mechanism, 'rss-sampling');
  assert.notEqual(result.memoryHierarchyWritable, true, 'no cgroup was writable for it');
  assert.ok(result.stop, 'the hog team was stopped for its budget');
  assert.equal(result.stop.limitBytes, 150 * MB);
  assert.ok(result.stop.rssBytes > 150 * MB, `stopped over budget (${(result.stop.rssBytes / MB).toFixed(0)} MB)`);
  assert.ok(result.stop.result.killed >= 2, 'the hog and its escapee were both killed');
  assert.deepEqual(result.stop.result.survivors, []);
  assert.equal(result.hogSignal, 'SIGKILL');
  assert.equal(result.escapeeAlive, false, 'the setsid escapee carried the marker and died with its team');
  assert.ok(result.hogMemory.peakBytes > 150 * MB && result.hogMemory.oomKills === 1, JSON.stringify(result.hogMemory));
  assert.equal(result.siblingAlive, true, 'the sibling team keeps running');
  assert.equal(result.siblingMemory.oomKills, 0);
  assert.ok(result.siblingMemory.currentBytes > 0, 'the sibling team is sampled too');
});
