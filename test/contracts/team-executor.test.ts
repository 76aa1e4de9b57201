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
  const workspace = new InMemoryWorkspace();
  // An agent that exits 0 has committed on its branch, as one that did its work has.
  const fleet = new InMemoryFleet({ clock, onExit: (spec, exitCode) => exitCode === 0 && workspace.commit({ path: spec.cwd, branch: spec.env.FACTORY_BRANCH ?? '' }) });
  const registry = new RegistryKeeper({ store: { write: async () => undefined }, owner: { pid: 1, startTime: 1, bootId: 'b', hostname: 'h', epoch: 1 }, clock });
  const executor = new LocalTeamExecutor({ fleet, workspace, registry, clock, log: createSilentLogger(), runLogs: new FileRunLogStore('/logs'), killGraceMs: 100 });
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
