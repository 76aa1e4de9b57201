import { join } from 'node:path';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { InMemoryFleet } from '../../src/adapters/fleet/in-memory-fleet.js';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import { InMemoryWorkspace } from '../../src/adapters/workspace/in-memory-workspace.js';
import { compileConfig, type FactoryConfig } from '../../src/config/load.js';
import { FactorySession } from '../../src/core/factory-session.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';
import { FileHeartbeatStore, FileRegistryStore } from '../../src/adapters/node-state/file-node-state.js';
import { FileRunLogStore } from '../../src/adapters/run-logs/file-run-log-store.js';
import type { IssueSource } from '../../src/ports/issue-source.js';

/**
 * A real-time FactorySession with real files (heartbeat, registry, SQLite) and
 * an in-memory fleet, for benches and tests that measure the daemon's own work
 * without paying for agent processes or git. `config` is merged over a minimal
 * one whose mount is `<dir>/issues`.
 */
export async function openInProcessSession(dir: string, options: { config?: Record<string, unknown>; source: (config: FactoryConfig, clock: SystemClock) => IssueSource }) {
  const clock = new SystemClock();
  const config = compileConfig({ mount: { root: './issues' }, repos: { default: '/repo' }, agents: { implementer: { command: ['agent'] } }, ...options.config }, join(dir, 'factory.config.json'));
  const workspace = new InMemoryWorkspace();
  // An agent that exits 0 has committed, as one that did its work has (else the run ends no-changes).
  const fleet = new InMemoryFleet({ clock, onExit: (spec, exitCode) => exitCode === 0 && workspace.commit({ path: spec.cwd, branch: spec.env.FACTORY_BRANCH ?? '' }) });
  const session = new FactorySession(
    {
      config,
      source: options.source(config, clock),
      store: new SqliteStateStore(config.paths.stateDb),
      fleet,
      workspace,
      clock,
      log: createSilentLogger(),
      identity: { pid: process.pid, startTime: 1, bootId: 'in-process' },
      hostname: 'in-process',
      heartbeats: new FileHeartbeatStore(config.loop.heartbeatPath),
      registryStore: new FileRegistryStore(config.loop.registryPath),
      runLogs: new FileRunLogStore(config.paths.logsDir),
      reapPredecessor: async () => ({ reaped: 0, survivors: [] }),
    },
    'live',
  );
  await session.open();
  return { session, fleet, config, clock };
}
