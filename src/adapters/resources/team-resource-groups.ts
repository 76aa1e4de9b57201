import type { ProcessTable } from '../../ports/process-table.js';
import type { ResourceSupportReport, TeamResourceGroups } from '../../ports/team-resources.js';
import { defaultCgroupIo, type CgroupIo } from './cgroup-files.js';
import { CgroupV1TeamGroups } from './cgroup-v1.js';
import { CgroupV2TeamGroups } from './cgroup-v2.js';
import { RssTeamGroups } from './rss-team-groups.js';

/** The prefix of this daemon instance's group names: the reaper lists and removes only these. */
export function groupNamePrefix(instanceId: string): string {
  return `factory-${instanceId}-`;
}

export interface TeamResourceGroupsOptions {
  readonly instanceId: string;
  readonly processTable: ProcessTable;
  readonly io?: Partial<CgroupIo>;
}

/** The adapter for the mechanism detection chose (see detectResourceSupport). */
export function createTeamResourceGroups(report: ResourceSupportReport, options: TeamResourceGroupsOptions): TeamResourceGroups {
  const namePrefix = groupNamePrefix(options.instanceId);
  const io = defaultCgroupIo(options.processTable, options.io);
  switch (report.mechanism) {
    case 'cgroup-v2':
      return new CgroupV2TeamGroups({ parentPath: report.v2.delegatedPath ?? '', namePrefix, io });
    case 'cgroup-v1':
      return new CgroupV1TeamGroups({ hierarchies: report.v1.filter((hierarchy) => hierarchy.writable), namePrefix, io });
    case 'rss-sampling':
      return new RssTeamGroups({ instanceId: options.instanceId, processTable: options.processTable });
  }
}
