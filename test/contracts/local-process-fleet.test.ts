import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { LocalProcessFleet } from '../../src/adapters/fleet/local-process-fleet.js';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { VerifiedProcessTerminator } from '../../src/adapters/process-table/verified-process-terminator.js';
import type { AgentSpec } from '../../src/ports/fleet.js';
import { fixtureAgentCommand, killProcessesWithMarkerPrefix } from '../integration/agent-process-support.js';
import { describeFleetContract, type AgentBehaviour } from './fleet.contract.js';

const COMMANDS: Record<AgentBehaviour, string[]> = {
  'exit-0': fixtureAgentCommand('work-briefly.mjs', '40'),
  'exit-3': fixtureAgentCommand('fail-exit-3.mjs'),
  'talk-then-wait': fixtureAgentCommand('hang.mjs'),
};

let harnesses = 0;
describeFleetContract('LocalProcessFleet', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'factory-fleet-contract-'));
  const instanceId = `fleet-contract-${process.pid}-${++harnesses}`;
  const processTable = new LinuxProcessTable();
  const clock = new SystemClock();
  const fleet = new LocalProcessFleet({ instanceId, processTable, clock, terminator: new VerifiedProcessTerminator({ processTable, clock }) });
  let count = 0;
  const spec = (command: string[]): AgentSpec => {
    count++;
    return {
      issueKey: `FAC-${count}`,
      runId: `run-${count}`,
      role: 'implementer',
      agentName: `FAC-${count}-implementer`,
      command,
      cwd: scratch,
      env: {},
      logPath: join(scratch, 'logs', `run-${count}.log`),
      worktree: scratch,
    };
  };
  return {
    fleet,
    spec: (behaviour) => spec(COMMANDS[behaviour]),
    unstartableSpec: () => spec([join(scratch, 'no-such-agent')]),
    actOut: () => undefined,
    dispose: async () => {
      killProcessesWithMarkerPrefix(processTable, `factory:${instanceId}:`);
      rmSync(scratch, { recursive: true, force: true });
    },
  };
});
