import { markerPrefixFor, reapOrphans, teamResourcesFor } from '../../main.js';
import { flagBoolean, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { printJson, type Output } from '../output.js';

/** `factory reap-orphans` (its usage and flags are in reap-orphans.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const { config, processTable, clock, log } = runtimeFromArgs(args);
  const report = await reapOrphans({
    heartbeatPath: config.loop.heartbeatPath,
    registryPath: config.loop.registryPath,
    staleMs: config.loop.heartbeatStaleMs,
    graceMs: config.reaper.graceMs,
    dryRun: flagBoolean(args, 'dry-run'),
    terminateWedgedDaemon: flagBoolean(args, 'terminate-wedged-daemon'),
    processTable,
    clock,
    lockPath: config.paths.reaperLock,
    daemonLockPath: config.paths.daemonLock,
    markerPrefix: markerPrefixFor(config),
    // A dead daemon's team groups (cgroups) are killed and removed before the registry reap.
    resourceGroups: teamResourcesFor({ config, processTable }).groups,
    log,
  });
  printJson(output, report);
  return report.exitCode;
}
