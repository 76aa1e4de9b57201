import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { detectResourceSupport, parseCgroupMounts, parseSelfCgroup } from '../../src/adapters/resources/detect-resources.js';
import { FixedAvailableMemorySource, parseMeminfo, parsePressure, ProcAvailableMemorySource } from '../../src/adapters/resources/memory-sources.js';
import { decideMemoryAdmission, type RunningTeamMemory } from '../../src/domain/resource-budget.js';

/**
 * Detection on fake machines: a mountinfo and a /proc/self/cgroup written into
 * a temp dir, whose mount points are folders there. Writability is probed by
 * a real mkdir, so a folder that does not exist stands for "not writable".
 */

const roots: string[] = [];
after(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));
const GB = 2 ** 30;

function fakeMachine(options: { v2Controllers?: string; v2Group?: string; v1?: string[]; v1Group?: string; mountRoot?: string; missing?: string[] }) {
  const root = mkdtempSync(join(tmpdir(), 'factory-fake-machine-'));
  roots.push(root);
  const mountLines: string[] = [];
  const selfLines: string[] = [];
  let id = 30;
  for (const controller of options.v1 ?? []) {
    const mountPath = join(root, controller);
    const own = options.v1Group ?? '/';
    if (!options.missing?.includes(controller)) mkdirSync(join(mountPath, own.slice((options.mountRoot ?? '').length)), { recursive: true });
    mountLines.push(`${id++} 25 0:${id} ${options.mountRoot ?? '/'} ${mountPath} rw,relatime - cgroup cgroup rw,${controller}`);
    selfLines.push(`${id}:${controller}:${own}`);
  }
  if (options.v2Controllers !== undefined) {
    const mountPath = join(root, 'unified');
    const own = options.v2Group ?? '/';
    const directory = join(mountPath, own);
    if (!options.missing?.includes('unified')) {
      mkdirSync(directory, { recursive: true });
      writeFileSync(join(directory, 'cgroup.controllers'), `${options.v2Controllers}\n`);
    }
    mountLines.push(`${id++} 25 0:${id} / ${mountPath} rw,relatime - cgroup2 cgroup2 rw,nsdelegate`);
    selfLines.push(`0::${own}`);
  }
  mountLines.push('22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw');
  writeFileSync(join(root, 'mountinfo'), `${mountLines.join('\n')}\n`);
  writeFileSync(join(root, 'cgroup'), `${selfLines.join('\n')}\n`);
  writeFileSync(join(root, 'pressure'), 'some avg10=1.50 avg60=0.20 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n');
  return { root, detect: () => detectResourceSupport({ mountInfoPath: join(root, 'mountinfo'), selfCgroupPath: join(root, 'cgroup'), pressurePath: join(root, 'pressure') }) };
}

test('a v1/v2 hybrid whose v2 side has no memory controller uses v1, and says why not v2', () => {
  const machine = fakeMachine({ v2Controllers: 'hugetlb', v1: ['memory', 'pids', 'cpu', 'freezer'], v1Group: '/process_api/abc' });
  const report = machine.detect();
  assert.equal(report.mechanism, 'cgroup-v1');
  assert.deepEqual(
    report.v1.map((hierarchy) => [hierarchy.controller, hierarchy.writable, hierarchy.parentPath]),
    ['memory', 'pids', 'cpu', 'freezer'].map((controller) => [controller, true, join(machine.root, controller, 'process_api', 'abc')]),
  );
  assert.equal(report.killAll, 'freeze-then-kill');
  assert.deepEqual(report.enforces, { memory: true, pids: true, cpu: true });
  assert.match(report.v2.reason ?? '', /no memory controller/);
  assert.match(report.summary, /^cgroup v1 \(memory, pids, cpu, freezer writable\); v2: /);
  assert.equal(report.pressure, true);
});

test('a delegated v2 subtree with the memory controller wins over v1', () => {
  const machine = fakeMachine({ v2Controllers: 'cpu io memory pids', v2Group: '/system.slice/factory.service', v1: ['memory'] });
  const report = machine.detect();
  assert.equal(report.mechanism, 'cgroup-v2');
  assert.equal(report.v2.delegatedPath, join(machine.root, 'unified', 'system.slice', 'factory.service'));
  assert.deepEqual(report.enforces, { memory: true, pids: true, cpu: true });
  assert.equal(report.v2.reason, null);
});

test('nothing writable falls back to RSS sampling, with a reason for each hierarchy', () => {
  const machine = fakeMachine({ v2Controllers: 'memory pids', v1: ['memory', 'freezer'], missing: ['unified', 'memory', 'freezer'] });
  const report = machine.detect();
  assert.equal(report.mechanism, 'rss-sampling');
  assert.equal(report.killAll, 'marker-sweep');
  assert.deepEqual(report.enforces, { memory: true, pids: false, cpu: false });
  assert.ok(report.v1.every((hierarchy) => !hierarchy.writable && hierarchy.reason?.includes('not writable')));
  assert.match(report.v2.reason ?? '', /not writable.*Delegate=yes/);
  assert.match(report.summary, /^no writable cgroup/);
});

test('no cgroup mounted at all: RSS sampling; a container mount shows only its own subtree', () => {
  const bare = fakeMachine({});
  assert.equal(bare.detect().mechanism, 'rss-sampling');
  assert.match(bare.detect().v2.reason ?? '', /no cgroup v2 hierarchy is mounted/);

  const container = fakeMachine({ v1: ['memory'], v1Group: '/docker/abc', mountRoot: '/docker/abc' });
  const report = container.detect();
  assert.equal(report.v1[0]?.parentPath, join(container.root, 'memory'));
  assert.equal(report.mechanism, 'cgroup-v1');
});

test('mountinfo and /proc/self/cgroup parse co-mounted controllers and escaped paths', () => {
  const mounts = parseCgroupMounts('33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n41 31 0:38 / /sys/fs/cgroup/with\\040space rw - cgroup2 cgroup2 rw\n');
  assert.deepEqual(mounts[0]?.controllers, ['cpu', 'cpuacct']);
  assert.equal(mounts[1]?.mountPath, '/sys/fs/cgroup/with space');
  assert.deepEqual(
    [...parseSelfCgroup('2:cpu,cpuacct:/a\n0::/b:c\n').entries()],
    [
      ['cpu,cpuacct', '/a'],
      ['', '/b:c'],
    ],
  );
});

test('available memory: MemAvailable, or the lower limit of the daemon’s own group (a container)', () => {
  assert.deepEqual(parseMeminfo('MemTotal:       24684544 kB\nMemFree:        22155264 kB\nMemAvailable:   24003584 kB\n'), { totalBytes: 24684544 * 1024, availableBytes: 24003584 * 1024 });
  assert.deepEqual(parseMeminfo('MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 50 kB\n'), { totalBytes: 1000 * 1024, availableBytes: 150 * 1024 }, 'kernels without MemAvailable');

  const root = mkdtempSync(join(tmpdir(), 'factory-fake-meminfo-'));
  roots.push(root);
  writeFileSync(join(root, 'meminfo'), `MemTotal: ${16 * 1024 * 1024} kB\nMemAvailable: ${12 * 1024 * 1024} kB\n`);
  const group = join(root, 'own');
  mkdirSync(group);
  writeFileSync(join(group, 'memory.limit_in_bytes'), '9223372036854771712\n');
  writeFileSync(join(group, 'memory.stat'), `hierarchical_memory_limit ${4 * GB}\ntotal_inactive_file ${GB / 2}\n`);
  writeFileSync(join(group, 'memory.usage_in_bytes'), `${1.5 * GB}\n`);
  const inContainer = new ProcAvailableMemorySource({ meminfoPath: join(root, 'meminfo'), ownMemoryGroup: { path: group, version: 1 } }).read();
  assert.deepEqual(inContainer, { availableBytes: 3 * GB, totalBytes: 4 * GB, source: 'cgroup-v1-limit' });
  writeFileSync(join(group, 'memory.stat'), 'total_inactive_file 0\n');
  assert.deepEqual(
    new ProcAvailableMemorySource({ meminfoPath: join(root, 'meminfo'), ownMemoryGroup: { path: group, version: 1 } }).read(),
    { availableBytes: 12 * GB, totalBytes: 16 * GB, source: 'meminfo' },
    'an unlimited group: the machine',
  );

  const v2 = join(root, 'own2');
  mkdirSync(v2);
  writeFileSync(join(v2, 'memory.max'), `${2 * GB}\n`);
  writeFileSync(join(v2, 'memory.current'), `${GB}\n`);
  writeFileSync(join(v2, 'memory.stat'), `anon 1\ninactive_file ${GB / 4}\n`);
  assert.deepEqual(new ProcAvailableMemorySource({ meminfoPath: join(root, 'meminfo'), ownMemoryGroup: { path: v2, version: 2 } }).read(), {
    availableBytes: 1.25 * GB,
    totalBytes: 2 * GB,
    source: 'cgroup-v2-limit',
  });

  const real = new ProcAvailableMemorySource().read();
  assert.ok(real.totalBytes > 0 && real.availableBytes > 0 && real.availableBytes <= real.totalBytes, 'this machine reads sensibly');
});

test('PSI parses some/full avg10; no PSI reads as undefined', () => {
  assert.deepEqual(parsePressure('some avg10=12.50 avg60=3.00 avg300=1.00 total=99\nfull avg10=4.25 avg60=0 avg300=0 total=1\n'), { someAvg10: 12.5, fullAvg10: 4.25 });
  assert.equal(parsePressure(''), undefined);
});

test('admission with a fake memory source: a team is held while memory is short and admitted when a running team ends', () => {
  const source = new FixedAvailableMemorySource(6 * GB, 16 * GB);
  const running = new Map<string, RunningTeamMemory>([
    ['FAC-1', { budgetBytes: 4 * GB, usedBytes: 1 * GB }],
    ['FAC-2', { budgetBytes: 2 * GB, usedBytes: 1 * GB }],
  ]);
  const decide = () => {
    const memory = source.read();
    return decideMemoryAdmission({ availableBytes: memory.availableBytes, totalBytes: memory.totalBytes, running: [...running.values()], nextBudgetBytes: 2 * GB, reserve: { fraction: 0.1 } });
  };
  // 6 GB available, 3 + 1 GB still claimable by running teams: 2 GB free; need 2 + 1.6 GB.
  const held = decide();
  assert.equal(held.admit, false);
  assert.equal(!held.admit && held.reason, 'waiting for memory: need 3.6 GB, 2.0 GB free');

  // Memory moves, but not enough: still held.
  source.set(7 * GB);
  assert.equal(decide().admit, false);

  // FAC-1 ends: its 1 GB of use comes back to MemAvailable and its 3 GB of headroom is no longer held.
  running.delete('FAC-1');
  source.set(8 * GB);
  const admitted = decide();
  assert.equal(admitted.admit, true);
  assert.equal(admitted.freeBytes, 7 * GB);
});
