import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '../../src/adapters/clock/fake-clock.js';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { FileLease } from '../../src/adapters/lease/file-lease.js';
import { InMemoryLease, LeaseBoard } from '../../src/adapters/lease/in-memory-lease.js';
import { InMemoryProcessTable } from '../../src/adapters/process-table/in-memory-process-table.js';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { describeLeaseContract, tableAs } from './lease.contract.js';

describeLeaseContract('lock file (holders are real processes)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'factory-lease-'));
  const table = new LinuxProcessTable();
  const clock = new SystemClock();
  const children = new Map<number, ChildProcess>();
  return {
    leaseFor: (pid) => new FileLease({ path: join(dir, 'state', 'daemon.lock'), processTable: tableAs(table, pid), clock }),
    startHolder: async () => {
      const child = spawn('sleep', ['60'], { stdio: 'ignore' });
      await once(child, 'spawn');
      children.set(child.pid!, child);
      return child.pid!;
    },
    stopHolder: async (pid) => {
      const child = children.get(pid)!;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
    dispose: async () => {
      for (const child of children.values()) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describeLeaseContract('in memory (holders are fake processes)', async () => {
  const table = new InMemoryProcessTable();
  const board = new LeaseBoard();
  const clock = new FakeClock();
  let nextPid = 1_000;
  return {
    leaseFor: (pid) => new InMemoryLease({ name: 'daemon', board, processTable: tableAs(table, pid), clock }),
    startHolder: async () => {
      const pid = nextPid++;
      table.add({ pid, startTime: pid * 10 });
      return pid;
    },
    stopHolder: async (pid) => table.remove(pid),
    dispose: async () => undefined,
  };
});
