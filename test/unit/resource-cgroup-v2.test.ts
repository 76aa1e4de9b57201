import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { defaultCgroupIo, JOIN_FAILED_EXIT_CODE, joinCommandFor } from '../../src/adapters/resources/cgroup-files.js';
import { CgroupV2TeamGroups } from '../../src/adapters/resources/cgroup-v2.js';
import { isFactoryError } from '../../src/errors.js';
import { waitFor } from '../support/sandbox.js';

/**
 * The cgroup v2 file protocol on a fake tree: plain folders and files in a
 * temp dir stand in for cgroupfs. The kernel's side (enforcing, counting,
 * killing on cgroup.kill) is absent, so these tests prove what Factory writes
 * and reads, and that a real process joins by writing its own pid before it
 * execs. test/integration/cgroup-v2.test.ts runs the same adapter for real
 * where a writable v2 memory controller exists.
 */

const MB = 2 ** 20;
const table = new LinuxProcessTable();
const roots: string[] = [];
const children: ChildProcess[] = [];

after(() => {
  for (const child of children) child.kill('SIGKILL');
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

function fakeTree(controllers = 'cpuset cpu io memory pids'): string {
  const root = mkdtempSync(join(tmpdir(), 'factory-fake-cgroup2-'));
  roots.push(root);
  writeFileSync(join(root, 'cgroup.controllers'), `${controllers}\n`);
  writeFileSync(join(root, 'cgroup.subtree_control'), '\n');
  writeFileSync(join(root, 'cgroup.procs'), '');
  return root;
}

function groupsOn(root: string): CgroupV2TeamGroups {
  // On a plain filesystem a group folder holds real files, so removal is recursive (cgroupfs rmdir needs none).
  return new CgroupV2TeamGroups({ parentPath: root, namePrefix: 'factory-abc123-', io: defaultCgroupIo(table, { removeDirectory: (path) => rmSync(path, { recursive: true }), settleMs: 300 }) });
}

const read = (path: string): string => readFileSync(path, 'utf8').trim();

test('create enables the controllers for the children once and writes every budget key in v2 units', () => {
  const root = fakeTree();
  const groups = groupsOn(root);
  const group = groups.create('FAC-1/odd name', { memoryMaxBytes: 100 * MB, memoryHighBytes: 80 * MB, pidsMax: 64, cpuWeight: 50, cpuMaxCores: 1.5 });
  assert.equal(group.name, 'factory-abc123-FAC-1_odd_name', 'a team id cannot reach outside its folder');
  assert.equal(read(join(root, 'cgroup.subtree_control')), '+memory +pids +cpu');
  const directory = join(root, group.name);
  assert.equal(read(join(directory, 'memory.max')), String(100 * MB));
  assert.equal(read(join(directory, 'memory.high')), String(80 * MB));
  assert.equal(read(join(directory, 'memory.swap.max')), '0');
  assert.equal(read(join(directory, 'pids.max')), '64');
  assert.equal(read(join(directory, 'cpu.weight')), '50');
  assert.equal(read(join(directory, 'cpu.max')), '150000 100000');

  // An empty budget writes no limit at all.
  const free = groups.create('FAC-2', {});
  assert.equal(existsSync(join(root, free.name, 'memory.max')), false);
});

test('a process joins by writing its own pid before exec: the agent keeps that pid and is listed', async () => {
  const root = fakeTree();
  const group = groupsOn(root).create('FAC-3', { memoryMaxBytes: 64 * MB });
  const [program, ...args] = group.joinCommand(['sleep', '600']);
  const child = spawn(program!, args, { detached: true, stdio: 'ignore' });
  children.push(child);
  const listed = await waitFor('the wrapper to write its pid', () => (group.pids().length > 0 ? group.pids() : undefined));
  assert.deepEqual(listed, [child.pid]);
  await waitFor('the exec into sleep', () => table.inspect(child.pid!)?.comm === 'sleep');
});

test('the join wrapper fails closed: when a group cannot be joined the command never runs', async () => {
  const root = fakeTree();
  const marker = join(root, 'ran');
  const [program, ...args] = joinCommandFor([join(root, 'missing', 'cgroup.procs')], ['touch', marker]);
  const child = spawn(program!, args, { stdio: 'ignore' });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, JOIN_FAILED_EXIT_CODE);
  assert.equal(existsSync(marker), false);
  // Arguments that look like shell are passed through as data.
  const [p2, ...a2] = joinCommandFor([join(root, 'cgroup.procs')], ['sh', '-c', 'printf "%s" "$1" > "$2"', 'x', '$(touch pwned); `id`', marker]);
  const second = spawn(p2!, a2, { stdio: 'ignore', cwd: root });
  await new Promise((resolve) => second.once('exit', resolve));
  assert.equal(readFileSync(marker, 'utf8'), '$(touch pwned); `id`');
  assert.equal(existsSync(join(root, 'pwned')), false);
});

test('memory reads current, the kernel peak and oom_kill from memory.events; without memory.peak the highest reading stands in', () => {
  const root = fakeTree();
  const group = groupsOn(root).create('FAC-4', { memoryMaxBytes: 100 * MB });
  const directory = join(root, group.name);
  writeFileSync(join(directory, 'memory.current'), `${50 * MB}\n`);
  writeFileSync(join(directory, 'memory.events'), 'low 0\nhigh 3\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n');
  assert.deepEqual(group.memory(), { currentBytes: 50 * MB, peakBytes: 50 * MB, oomKills: 1, limitBytes: 100 * MB });
  writeFileSync(join(directory, 'memory.current'), `${20 * MB}\n`);
  assert.equal(group.memory().peakBytes, 50 * MB, 'highest reading seen, on kernels before 5.19');
  writeFileSync(join(directory, 'memory.peak'), `${73 * MB}\n`);
  assert.equal(group.memory().peakBytes, 73 * MB, "the kernel's own peak once it has one");
  writeFileSync(join(directory, 'memory.max'), 'max\n');
  assert.equal(group.memory().limitBytes, null);
});

test('kill-all writes cgroup.kill where the kernel has it, and every member ends dead even when nothing acts on the file', async () => {
  const root = fakeTree();
  const group = groupsOn(root).create('FAC-5', {});
  const directory = join(root, group.name);
  writeFileSync(join(directory, 'cgroup.kill'), '');
  const [program, ...args] = group.joinCommand(['sleep', '600']);
  const child = spawn(program!, args, { detached: true, stdio: 'ignore' });
  children.push(child);
  const exited = new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  await waitFor('the member to join', () => group.pids().length === 1);
  const result = await group.killAll();
  assert.equal(read(join(directory, 'cgroup.kill')), '1');
  assert.equal(result.method, 'cgroup.kill');
  assert.deepEqual(result.survivors, []);
  assert.equal(await exited, 'SIGKILL');
});

test('kill-all freezes, kills and thaws on kernels without cgroup.kill', async () => {
  const root = fakeTree();
  const group = groupsOn(root).create('FAC-6', {});
  const directory = join(root, group.name);
  writeFileSync(join(directory, 'cgroup.events'), 'populated 1\nfrozen 1\n');
  const [program, ...args] = group.joinCommand(['sleep', '600']);
  const child = spawn(program!, args, { detached: true, stdio: 'ignore' });
  children.push(child);
  const exited = new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  await waitFor('the member to join', () => group.pids().length === 1);
  const result = await group.killAll();
  assert.equal(result.method, 'freeze-then-kill');
  assert.equal(read(join(directory, 'cgroup.freeze')), '0', 'thawed after the kill');
  assert.equal(await exited, 'SIGKILL');
});

test('the daemon itself is never killed, even if it is listed in a team group', async () => {
  const root = fakeTree();
  const group = groupsOn(root).create('FAC-7', {});
  writeFileSync(join(root, group.name, 'cgroup.procs'), `${process.pid}\n`);
  const result = await group.killAll();
  assert.equal(result.killed, 0);
});

test('leftovers are the groups with this prefix (not the daemon leaf, not other instances); adopt, kill-all and remove clears them', async () => {
  const root = fakeTree();
  const groups = groupsOn(root);
  groups.create('FAC-8', {});
  groups.create('FAC-9', {});
  mkdirSync(join(root, 'factory-abc123-daemon'));
  mkdirSync(join(root, 'factory-other-FAC-1'));
  writeFileSync(join(root, 'factory-abc123-FAC-9', 'cgroup.procs'), '');
  const leftovers = groupsOn(root).listLeftovers();
  assert.deepEqual(
    leftovers.map((leftover) => leftover.teamId),
    ['FAC-8', 'FAC-9'],
  );
  for (const leftover of leftovers) {
    const group = groupsOn(root).adopt(leftover);
    await group.killAll();
    await group.remove();
    await group.remove();
  }
  assert.deepEqual(groupsOn(root).listLeftovers(), []);
  assert.ok(existsSync(join(root, 'factory-other-FAC-1')), "another instance's group is left alone");
});

test('a tree without the memory controller fails with a coded error; a parent that refuses to enable controllers gets the daemon moved into a leaf first', () => {
  const noMemory = fakeTree('cpu pids');
  assert.throws(
    () => groupsOn(noMemory).create('FAC-10', { memoryMaxBytes: MB }),
    (error: unknown) => isFactoryError(error, 'FACTORY_RESOURCES_GROUP_FAILED') && /memory controller/.test(error.message),
  );
  assert.deepEqual(groupsOn(noMemory).listLeftovers(), [], 'no half-made group');

  // A folder in place of cgroup.subtree_control refuses every write, as EBUSY would on a parent holding processes.
  const busy = fakeTree();
  rmSync(join(busy, 'cgroup.subtree_control'));
  mkdirSync(join(busy, 'cgroup.subtree_control'));
  assert.throws(
    () => groupsOn(busy).create('FAC-11', {}),
    (error: unknown) => isFactoryError(error, 'FACTORY_RESOURCES_GROUP_FAILED') && /subtree_control/.test(error.message),
  );
  assert.equal(read(join(busy, 'factory-abc123-daemon', 'cgroup.procs')), String(process.pid), 'the daemon moved itself into its leaf before retrying');
});
