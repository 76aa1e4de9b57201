import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock, settle as settleTurns } from '../../src/adapters/clock/fake-clock.js';
import type { TeamResources } from '../../src/ports/team-resources.js';
import { InMemoryFleet } from '../../src/adapters/fleet/in-memory-fleet.js';
import { InMemoryIssueSource } from '../../src/adapters/issue-source/in-memory-issue-source.js';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import type { TeamExecutor } from '../../src/ports/team-executor.js';
import type { AgentCliHost } from '../../src/ports/agent-cli.js';
import type { ResumeRequests } from '../../src/ports/resume-requests.js';
import type { CodeHost, IssueProgress } from '../../src/ports/publisher.js';
import type { LogFields, Logger } from '../../src/ports/logger.js';
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

/** How long the harness waits for the session's real I/O before it fails the test, naming what is still pending. */
const IO_DEADLINE_MS = 10_000;

/**
 * Real I/O the session under test started and has not finished. The session
 * runs on fakes except its run-log store (a real folder: a reviewer's verdict
 * file is read from it after every review), and that read finishes on the
 * thread pool after however many event loop turns the machine needs; a fixed
 * number of turns made teams look unfinished under load.
 */
class PendingIo {
  readonly #pending = new Map<Promise<unknown>, string>();

  track<T>(what: string, io: Promise<T>): Promise<T> {
    this.#pending.set(io, what);
    const done = (): void => void this.#pending.delete(io);
    io.then(done, done);
    return io;
  }

  get idle(): boolean {
    return this.#pending.size === 0;
  }

  /** Resolves when everything pending now has finished (failed ones too); throws past `deadlineMs` (wall clock). */
  async drained(deadlineMs: number): Promise<void> {
    const pending = [...this.#pending.keys()].map((io) => io.catch(() => undefined));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), Math.max(0, deadlineMs - Date.now()))));
    const result = await Promise.race([Promise.all(pending), late]);
    clearTimeout(timer);
    if (result === 'late') throw new Error(`the session's I/O did not finish within ${IO_DEADLINE_MS}ms: ${[...this.#pending.values()].join(', ')}`);
  }
}

/** The real run-log store, with every read it starts tracked. */
class TrackedRunLogStore extends FileRunLogStore {
  constructor(
    logsDir: string,
    readonly io: PendingIo,
  ) {
    super(logsDir);
  }
  override listIssueRuns(...args: Parameters<FileRunLogStore['listIssueRuns']>): ReturnType<FileRunLogStore['listIssueRuns']> {
    return this.io.track(`list runs of ${args[0]}`, super.listIssueRuns(...args));
  }
  override findRun(...args: Parameters<FileRunLogStore['findRun']>): ReturnType<FileRunLogStore['findRun']> {
    return this.io.track(`find run ${args[0]}`, super.findRun(...args));
  }
  override tail(...args: Parameters<FileRunLogStore['tail']>): ReturnType<FileRunLogStore['tail']> {
    return this.io.track(`tail ${args[0].path}`, super.tail(...args));
  }
  override readFrom(...args: Parameters<FileRunLogStore['readFrom']>): ReturnType<FileRunLogStore['readFrom']> {
    return this.io.track(`read ${args[0].path}`, super.readFrom(...args));
  }
  override readSideFile(...args: Parameters<FileRunLogStore['readSideFile']>): ReturnType<FileRunLogStore['readSideFile']> {
    return this.io.track(`read side file ${args[0]}`, super.readSideFile(...args));
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
  /**
   * Lets everything the session started finish: promise chains and the real
   * I/O it is waiting on (with a deadline), then the chains that I/O resumed.
   * The fake clock settles the same way between timers.
   */
  settle(): Promise<void>;
  /** Hold the next heartbeat write until the returned function is called. */
  holdNextHeartbeat(): () => void;
  /** A session; `executor` replaces the local one (teams on another node). */
  newSession(
    mode?: 'live' | 'loop' | 'once',
    options?: { executor?: TeamExecutor; resources?: TeamResources; agentCli?: AgentCliHost; resumeRequests?: ResumeRequests; codeHost?: CodeHost; progress?: IssueProgress; log?: Logger },
  ): FactorySession;
  stateDb: string;
}

export interface LoggedRecord {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly fields: LogFields;
  readonly message: string | undefined;
}

/** A logger that keeps every record (with its child bindings), for assertions on what the daemon logs and at which level. */
export function createRecordingLogger(records: LoggedRecord[] = [], bindings: LogFields = {}): Logger & { readonly records: LoggedRecord[] } {
  const record =
    (level: LoggedRecord['level']) =>
    (fields: LogFields, message?: string): void =>
      void records.push({ level, fields: { ...bindings, ...fields }, message });
  return { records, debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error'), child: (more) => createRecordingLogger(records, { ...bindings, ...more }) };
}

/**
 * A FactorySession on fakes: fake clock, in-memory source, fleet and
 * workspace, a real SQLite file in a temp folder, and recorders for every
 * heartbeat and registry write.
 */
export function createHarness(rawOverrides: Record<string, unknown> = {}, sourceOptions: HarnessSourceOptions = {}): Harness {
  const io = new PendingIo();
  const settleAll = async (): Promise<void> => {
    const deadlineMs = Date.now() + IO_DEADLINE_MS;
    for (;;) {
      await settleTurns();
      if (io.idle) return;
      await io.drained(deadlineMs);
    }
  };
  const clock = new FakeClock(undefined, { settle: settleAll });
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
  const workspace = new InMemoryWorkspace({ now: () => clock.now() });
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
    settle: settleAll,
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
          ...(options.agentCli ? { agentCli: options.agentCli } : {}),
          ...(options.resumeRequests ? { resumeRequests: options.resumeRequests } : {}),
          ...(options.codeHost ? { codeHost: options.codeHost } : {}),
          ...(options.progress ? { progress: options.progress } : {}),
          clock,
          log: options.log ?? createSilentLogger(),
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
          runLogs: new TrackedRunLogStore(config.paths.logsDir, io),
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
