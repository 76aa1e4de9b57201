import { FakeClock } from '../../src/adapters/clock/fake-clock.js';
import { InMemoryFleet } from '../../src/adapters/fleet/in-memory-fleet.js';
import type { AgentSpec } from '../../src/ports/fleet.js';
import { describeFleetContract } from './fleet.contract.js';

describeFleetContract('InMemoryFleet', async () => {
  const fleet = new InMemoryFleet({ clock: new FakeClock() });
  fleet.failSpawnOf = 'no-such-agent';
  let count = 0;
  const spec = (command: string): AgentSpec => {
    count++;
    return {
      issueKey: `FAC-${count}`,
      runId: `run-${count}`,
      role: 'implementer',
      agentName: `FAC-${count}-implementer`,
      command: [command],
      cwd: '/w',
      env: {},
      logPath: `/logs/run-${count}.log`,
      worktree: '/w',
    };
  };
  return {
    fleet,
    spec: (behaviour) => spec(behaviour),
    unstartableSpec: () => spec('no-such-agent'),
    actOut: (handle, behaviour) => {
      const agent = fleet.agents.find((a) => a.handle === handle)!;
      if (behaviour === 'exit-0') agent.exit(0);
      else if (behaviour === 'exit-3') agent.exit(3);
      else agent.touch(12);
    },
    dispose: async () => undefined,
  };
});
