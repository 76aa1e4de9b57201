import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CgroupV1Hierarchy, CgroupV2Support, KillAllMethod, ResourceMechanism, ResourceSupportReport } from '../../ports/team-resources.js';

/**
 * Finds out, once at startup, what the machine offers for team budgets:
 *
 * - cgroup v2 with the memory controller in a subtree this process may write
 *   (its own group, e.g. a systemd unit with `Delegate=yes`, or the root as root);
 * - else cgroup v1 with a writable memory hierarchy (plus pids, cpu, freezer
 *   where writable), as on hybrid machines whose memory controller is bound to v1;
 * - else RSS sampling from /proc.
 *
 * "Writable" is proven by creating and removing a probe folder, not guessed
 * from permissions: read-only mounts, missing delegation and user namespaces
 * all show up as a failed mkdir.
 */

export interface DetectResourcesOptions {
  readonly mountInfoPath?: string;
  readonly selfCgroupPath?: string;
  readonly pressurePath?: string;
  /** Name of the probe folder (made unique by the caller's pid). */
  readonly probeName?: string;
}

interface CgroupMount {
  readonly mountPath: string;
  /** The part of the hierarchy mounted there (a container sees only its own subtree). */
  readonly root: string;
  readonly version: 1 | 2;
  /** v1: the controllers bound to the hierarchy (from the super options). */
  readonly controllers: readonly string[];
}

const V1_CONTROLLERS = ['memory', 'pids', 'cpu', 'freezer'] as const;

export function detectResourceSupport(options: DetectResourcesOptions = {}): ResourceSupportReport {
  const mounts = parseCgroupMounts(readOr(options.mountInfoPath ?? '/proc/self/mountinfo'));
  const ownGroups = parseSelfCgroup(readOr(options.selfCgroupPath ?? '/proc/self/cgroup'));
  const probeName = options.probeName ?? `factory-probe-${process.pid}`;

  const v2 = detectV2(mounts, ownGroups, probeName);
  const v1 = detectV1(mounts, ownGroups, probeName);
  const pressure = existsSync(options.pressurePath ?? '/proc/pressure/memory') && readOr(options.pressurePath ?? '/proc/pressure/memory').includes('avg10=');

  const v1Writable = new Set(v1.filter((hierarchy) => hierarchy.writable).map((hierarchy) => hierarchy.controller));
  const v2Usable = v2.writable && v2.controllers.includes('memory');
  const mechanism: ResourceMechanism = v2Usable ? 'cgroup-v2' : v1Writable.has('memory') ? 'cgroup-v1' : 'rss-sampling';

  const enforces =
    mechanism === 'cgroup-v2'
      ? { memory: true, pids: v2.controllers.includes('pids'), cpu: v2.controllers.includes('cpu') }
      : mechanism === 'cgroup-v1'
        ? { memory: true, pids: v1Writable.has('pids'), cpu: v1Writable.has('cpu') }
        : { memory: true, pids: false, cpu: false };
  const killAll: KillAllMethod =
    mechanism === 'cgroup-v2' ? (v2.hasKill ? 'cgroup.kill' : 'freeze-then-kill') : mechanism === 'cgroup-v1' ? (v1Writable.has('freezer') ? 'freeze-then-kill' : 'kill-loop') : 'marker-sweep';

  return { mechanism, summary: summarise(mechanism, v2, v1), v2, v1, enforces, killAll, pressure };
}

function detectV2(mounts: readonly CgroupMount[], ownGroups: ReadonlyMap<string, string>, probeName: string): CgroupV2Support {
  const mount = mounts.find((candidate) => candidate.version === 2);
  const none: CgroupV2Support = { mountPath: null, ownGroup: null, controllers: [], delegatedPath: null, writable: false, hasKill: false, reason: 'no cgroup v2 hierarchy is mounted' };
  if (!mount) return none;
  const ownGroup = ownGroups.get('') ?? null;
  if (ownGroup === null) return { ...none, mountPath: mount.mountPath, reason: 'this process has no cgroup v2 group (/proc/self/cgroup has no 0:: line)' };
  const directory = onDiskPath(mount, ownGroup);
  const controllers = readOr(join(directory, 'cgroup.controllers')).trim().split(/\s+/).filter(Boolean);
  const writable = probeWritable(directory, probeName);
  // cgroup.kill exists in every non-root group of a kernel that has it; the probe's parent may be the root, so ask a child-shaped file.
  const hasKill = existsSync(join(directory, 'cgroup.kill')) || (writable && probeHasKill(directory, probeName));
  const reason = !writable
    ? `${directory} is not writable (not root, and no delegated subtree: see docs/resources.md, systemd Delegate=yes)`
    : !controllers.includes('memory')
      ? `the v2 hierarchy offers no memory controller here (controllers: ${controllers.join(' ') || 'none'}); on a v1/v2 hybrid it is bound to v1`
      : null;
  return { mountPath: mount.mountPath, ownGroup, controllers, delegatedPath: writable ? directory : null, writable, hasKill, reason };
}

function detectV1(mounts: readonly CgroupMount[], ownGroups: ReadonlyMap<string, string>, probeName: string): CgroupV1Hierarchy[] {
  const out: CgroupV1Hierarchy[] = [];
  for (const controller of V1_CONTROLLERS) {
    const mount = mounts.find((candidate) => candidate.version === 1 && candidate.controllers.includes(controller));
    if (!mount) continue;
    const ownGroup = [...ownGroups.entries()].find(([controllers]) => controllers.split(',').includes(controller))?.[1] ?? '/';
    const parentPath = onDiskPath(mount, ownGroup);
    const writable = probeWritable(parentPath, probeName);
    out.push({ controller, mountPath: mount.mountPath, ownGroup, parentPath, writable, reason: writable ? null : `${parentPath} is not writable (team groups need root or a delegated group)` });
  }
  return out;
}

function summarise(mechanism: ResourceMechanism, v2: CgroupV2Support, v1: readonly CgroupV1Hierarchy[]): string {
  const writableV1 = v1.filter((hierarchy) => hierarchy.writable).map((hierarchy) => hierarchy.controller);
  switch (mechanism) {
    case 'cgroup-v2':
      return `cgroup v2 in ${v2.delegatedPath} (controllers: ${v2.controllers.join(' ')})`;
    case 'cgroup-v1':
      return `cgroup v1 (${writableV1.join(', ')} writable)${v2.reason ? `; v2: ${v2.reason}` : ''}`;
    case 'rss-sampling':
      return `no writable cgroup: team memory is sampled from /proc (RSS) and a team over budget is stopped${v2.reason ? `; v2: ${v2.reason}` : ''}`;
  }
}

/** Whether a folder can be made (and removed) in `directory`: the one honest test of writability. */
function probeWritable(directory: string, probeName: string): boolean {
  const probe = join(directory, probeName);
  try {
    mkdirSync(probe);
  } catch (error) {
    // A probe left by a crashed run of this very pid is still proof of writability.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return false;
  }
  try {
    rmdirSync(probe);
  } catch {
    // Removal can lag on a busy kernel; the group is empty, so the reaper sweep removes it.
  }
  return true;
}

function probeHasKill(directory: string, probeName: string): boolean {
  const probe = join(directory, `${probeName}-kill`);
  try {
    mkdirSync(probe);
    return existsSync(join(probe, 'cgroup.kill'));
  } catch {
    return false;
  } finally {
    try {
      rmdirSync(probe);
    } catch {
      // as above
    }
  }
}

/** The mounts of cgroup hierarchies, from /proc/self/mountinfo. */
export function parseCgroupMounts(mountInfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountInfo.split('\n')) {
    const [before, after] = line.split(' - ');
    if (before === undefined || after === undefined) continue;
    const fields = before.split(' ');
    const [fsType, , superOptions = ''] = after.split(' ');
    const root = unescapeMountPath(fields[3] ?? '/');
    const mountPath = unescapeMountPath(fields[4] ?? '');
    if (fsType === 'cgroup2') out.push({ mountPath, root, version: 2, controllers: [] });
    if (fsType === 'cgroup') out.push({ mountPath, root, version: 1, controllers: superOptions.split(',').filter((option) => option !== 'rw' && option !== 'ro' && !option.includes('=')) });
  }
  return out;
}

/** `controllers -> own group` from /proc/self/cgroup; the v2 line has the empty controller list. */
export function parseSelfCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (match) out.set(match[1] ?? '', match[2] ?? '/');
  }
  return out;
}

function onDiskPath(mount: CgroupMount, ownGroup: string): string {
  // Inside a container the mount shows only the subtree at `root`; a cgroup namespace already hides it from /proc/self/cgroup.
  const relative = mount.root !== '/' && (ownGroup === mount.root || ownGroup.startsWith(`${mount.root}/`)) ? ownGroup.slice(mount.root.length) : ownGroup;
  return relative === '/' || relative === '' ? mount.mountPath : join(mount.mountPath, relative);
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
