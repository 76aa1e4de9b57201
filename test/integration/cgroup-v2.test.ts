import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { defaultCgroupIo } from '../../src/adapters/resources/cgroup-files.js';
import { CgroupV2TeamGroups } from '../../src/adapters/resources/cgroup-v2.js';
import { detectResourceSupport } from '../../src/adapters/resources/detect-resources.js';
import { REPO_ROOT, waitFor } from '../support/sandbox.js';

/**
 * Real cgroup v2 groups, where this process can write a v2 subtree that has
 * the memory controller (root on a pure v2 machine, or a systemd unit with
 * Delegate=yes). Elsewhere (e.g. a v1/v2 hybrid whose memory controller is
 * bound to v1) it is skipped with the reason; the file protocol is covered
 * by test/unit/resource-cgroup-v2.test.ts on a fake tree.
 */

const MB = 2 ** 20;
const report = detectResourceSupport();
const skip = report.mechanism === 'cgroup-v2' ? false : `needs a writable cgroup v2 subtree with the memory controller; this machine offers: ${report.summary}`;
const table = new LinuxProcessTable();
const HOG = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'memory-hog.mjs');

describe('cgroup v2 team groups (real)', { skip }, () => {
  const scratch = mkdtempSync(join(tmpdir(), 'factory-cgroup-v2-'));
  const groups = new CgroupV2TeamGroups({ parentPath: report.v2.delegatedPath ?? '', namePrefix: `factory-test${process.pid}-`, io: defaultCgroupIo(table) });

  after(async () => {
    for (const leftover of groups.listLeftovers()) {
      const group = groups.adopt(leftover);
      await group.killAll();
      await group.remove();
    }
    rmSync(scratch, { recursive: true, force: true });
  });

  test('a memory hog with a 100 MB budget is OOM-killed in its group; its setsid escapee is inside and dies with cgroup.kill; the sibling keeps running', async () => {
    const hogGroup = groups.create('hog', { memoryMaxBytes: 100 * MB });
    const siblingGroup = groups.create('sibling', { memoryMaxBytes: 100 * MB });
    const [sp, ...sa] = siblingGroup.joinCommand(['sleep', '600']);
    const sibling = spawn(sp!, sa, { detached: true, stdio: 'ignore' });

    const escapeeFile = join(scratch, 'escapee.pid');
    const [hp, ...ha] = hogGroup.joinCommand([process.execPath, HOG, '--step-mb', '8', '--escapee', escapeeFile]);
    const hog = spawn(hp!, ha, { detached: true, stdio: 'ignore' });
    const exit = await new Promise<NodeJS.Signals | null>((resolve) => hog.once('exit', (_code, signal) => resolve(signal)));
    assert.equal(exit, 'SIGKILL');

    const escapee = await waitFor('the escapee pid', () => (existsSync(escapeeFile) ? Number(readFileSync(escapeeFile, 'utf8').trim()) || undefined : undefined));
    assert.ok(readFileSync(`/proc/${escapee}/cgroup`, 'utf8').includes(`/${hogGroup.name}\n`), 'the escapee is inside the team group');
    const memory = hogGroup.memory();
    assert.ok(memory.oomKills > 0, JSON.stringify(memory));
    assert.ok(memory.peakBytes > 60 * MB && memory.peakBytes <= 100 * MB, `peak ${(memory.peakBytes / MB).toFixed(1)} MB`);

    const killed = await hogGroup.killAll();
    assert.equal(killed.method, report.v2.hasKill ? 'cgroup.kill' : 'freeze-then-kill');
    assert.deepEqual(killed.survivors, []);
    assert.equal(table.inspect(escapee), undefined);
    await hogGroup.remove();
    assert.equal(existsSync(join(report.v2.delegatedPath ?? '', hogGroup.name)), false);

    assert.notEqual(table.inspect(sibling.pid!), undefined, 'the sibling team keeps running');
    await siblingGroup.killAll();
    await siblingGroup.remove();
  });
});
