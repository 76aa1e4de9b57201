import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '../../src/adapters/clock/fake-clock.js';
import type { TeamResources } from '../../src/ports/team-resources.js';
import { InMemoryFleet } from '../../src/adapters/fleet/in-memory-fleet.js';
import { InMemoryIssueSource } from '../../src/adapters/issue-source/in-memory-issue-source.js';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import type { TeamExecutor } from '../../src/ports/team-executor.js';
import { InMemoryWorkspace } from '../../src/adapters/workspace/in-memory-workspace.js';
import { compileConfig, type FactoryConfig } from '../../src/config/load.js';
import { FactorySession } from '../../src/core/factory-session.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';
import { FileHeartbeatStore, FileRegistryStore } from '../../src/adapters/node-state/file-node-state.js';
import { FileRunLogStore } from '../../src/adapters/run-logs/file-run-log-store.js';
import type { Heartbeat } from '../../src/domain/heartbeat.js';
import type { RegistryEntry, RegistryFile } from '../../src/domain/registry.js';
import type { IssueSubscription, IssueSubscriptionHandlers } from '../../src/ports/issue-source.js';

/** An issue source that also logs when it is subscribed, for ordering assertions. */
class LoggingIssueSource extends InMemoryIssueSource {
  constructor(
    clock: FakeClock,
    readonly events: string[],
    readonly options: HarnessSourceOptions = {},
  ) {
    super({ clock, probes: options.probes ?? false });
  }
  override async subscribe(handlers: IssueSubscriptionHandlers): Promise<IssueSubscription> {
    this.events.push('subscribe');
    const subscription = await super.subscribe(handlers);
    // A watcher that is broken for good: every new subscription is deaf too.
    if (this.options.alwaysDeaf) this.wedgeSubscriptions();
    return subscription;
  }
}

export interface HarnessSourceOptions {
  /** Offer probe() (subscription health checks). */
  readonly probes?: boolean;
  /** Every subscription silently delivers nothing, so resubscribing never heals. */
  alwaysDeaf?: boolean;
}

export interface Harness {
  readonly clock: FakeClock;
  readonly config: FactoryConfig;
  readonly source: LoggingIssueSource;
  readonly fleet: InMemoryFleet;
  readonly workspace: InMemoryWorkspace;
  /** An agent that exits 0 commits on its branch first (true by default); false: it exits 0 with no commit (`no-changes`). */
  agentsCommit: boolean;
  readonly events: string[];
  readonly heartbeats: Heartbeat[];
  readonly registries: RegistryFile[];
  readonly predecessorCalls: (readonly RegistryEntry[])[];
  /** Hold the next heartbeat write until the returned function is called. */
  holdNextHeartbeat(): () => void;
  /** A session; `executor` replaces the local one (teams on another node). */
  newSession(mode?: 'live' | 'loop' | 'once', options?: { executor?: TeamExecutor; resources?: TeamResources }): FactorySession;
  stateDb: string;
}

/**
 * A FactorySession on fakes: fake clock, in-memory source, fleet and
 * workspace, a real SQLite file in a temp folder, and recorders for every
 * heartbeat and registry write.
 */
export function createHarness(rawOverrides: Record<string, unknown> = {}, sourceOptions: HarnessSourceOptions = {}): Harness {
  const clock = new FakeClock();
  const events: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'factory-session-'));
  const config = compileConfig(
    {
      mount: { root: './issues' },
      repos: { default: '/repos/main' },
      agents: { implementer: { command: ['impl', '{{prompt}}'] }, reviewer: { command: ['review', '{{issueKey}}'] } },
      runs: { superviseIntervalMs: 3_600_000 },
      intake: { debounceMs: 10, reconcileIntervalMs: 30_000 },
      ...rawOverrides,
    },
    join(dir, 'factory.config.json'),
  );
  const source = new LoggingIssueSource(clock, events, sourceOptions);
  const workspace = new InMemoryWorkspace();
  const fleet = new InMemoryFleet({
    clock,
    events,
    onExit: (spec, exitCode) => {
      if (exitCode === 0 && harness.agentsCommit) workspace.commit({ path: spec.cwd, branch: spec.env.FACTORY_BRANCH ?? '' });
    },
  });
  const heartbeats: Heartbeat[] = [];
  const registries: RegistryFile[] = [];
  const predecessorCalls: (readonly RegistryEntry[])[] = [];
  let held: Promise<void> | undefined;
  const harness: Harness = {
    clock,
    config,
    source,
    fleet,
    workspace,
    agentsCommit: true,
    events,
    heartbeats,
    registries,
    predecessorCalls,
    stateDb: config.paths.stateDb,
    holdNextHeartbeat() {
      let release!: () => void;
      held = new Promise<void>((r) => (release = r));
      return () => release();
    },
    newSession(mode = 'live', options = {}) {
      return new FactorySession(
        {
          config,
          source,
          store: new SqliteStateStore(config.paths.stateDb),
          fleet,
          workspace,
          ...(options.executor ? { executor: options.executor } : {}),
          ...(options.resources ? { resources: options.resources } : {}),
          clock,
          log: createSilentLogger(),
          identity: { pid: 4242, startTime: 7, bootId: 'boot' },
          hostname: 'test-host',
          // Reads go to the (absent) files as in a real session; writes are recorded.
          heartbeats: {
            location: config.loop.heartbeatPath,
            read: () => new FileHeartbeatStore(config.loop.heartbeatPath).read(),
            write: async (heartbeat) => {
              const wait = held;
              held = undefined;
              if (wait) {
                events.push(`heartbeat ${heartbeat.status} (held)`);
                await wait;
              }
              heartbeats.push(heartbeat);
              events.push(`heartbeat ${heartbeat.status}`);
            },
          },
          registryStore: {
            location: config.loop.registryPath,
            read: () => new FileRegistryStore(config.loop.registryPath).read(),
            version: () => new FileRegistryStore(config.loop.registryPath).version(),
            write: async (registry) => {
              registries.push(registry);
              events.push(`registry ${registry.agents.length}`);
            },
          },
          runLogs: new FileRunLogStore(config.paths.logsDir),
          reapPredecessor: async (entries) => {
            predecessorCalls.push(entries);
            events.push(`reap predecessor ${entries.length}`);
            return { reaped: entries.length, survivors: [] };
          },
        },
        mode,
      );
    },
  };
  return harness;
}
