import { FakeClock, settle } from '../../src/adapters/clock/fake-clock.js';
import { InMemoryFleet } from '../../src/adapters/fleet/in-memory-fleet.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';
import { InMemoryTeamExecutor, type InMemoryTeamRun } from '../../src/adapters/team-executor/in-memory-team-executor.js';
import { InMemoryWorkspace } from '../../src/adapters/workspace/in-memory-workspace.js';
import { FileRunLogStore } from '../../src/adapters/run-logs/file-run-log-store.js';
import { LocalTeamExecutor } from '../../src/core/execution/local-team-executor.js';
import { RegistryKeeper } from '../../src/core/registry-keeper.js';
import { describeTeamExecutorContract } from './team-executor.contract.js';

describeTeamExecutorContract('LocalTeamExecutor (on the in-memory fleet)', async () => {
  const clock = new FakeClock();
  const fleet = new InMemoryFleet({ clock });
  const registry = new RegistryKeeper({ store: { write: async () => undefined }, owner: { pid: 1, startTime: 1, bootId: 'b', hostname: 'h', epoch: 1 }, clock });
  const executor = new LocalTeamExecutor({ fleet, workspace: new InMemoryWorkspace(), registry, clock, log: createSilentLogger(), runLogs: new FileRunLogStore('/logs'), killGraceMs: 100 });
  return {
    executor,
    endStage: async (run, exitCode) => {
      for (const agent of fleet.running().filter((a) => a.spec.runId === run.plan.runId)) agent.exit(exitCode);
      await settle();
    },
    dispose: async () => undefined,
  };
});

describeTeamExecutorContract('InMemoryTeamExecutor', async () => {
  const executor = new InMemoryTeamExecutor({ node: 'worker-a', clock: new FakeClock() });
  return {
    executor,
    endStage: async (run, exitCode) => {
      (run as InMemoryTeamRun).finish(exitCode === 0 ? 'succeeded' : 'failed');
      await settle();
    },
    dispose: async () => undefined,
  };
});
