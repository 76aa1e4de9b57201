import type { AgentActivity, AgentExit, AgentHandle, AgentSpec, Fleet } from '../../ports/fleet.js';
import type { Clock } from '../../ports/clock.js';
import { formatAgentMarker, type RegistryEntry } from '../../domain/registry.js';
import { FactoryError } from '../../errors.js';

/** One agent the in-memory fleet "runs": the test decides when and how it ends. */
export interface InMemoryAgent {
  readonly spec: AgentSpec;
  readonly handle: AgentHandle;
  /** Ends the agent as if its process exited. */
  exit(exitCode: number | null, signal?: NodeJS.Signals | null): void;
  /** Pretends the agent produced output or burned CPU. */
  touch(outputBytes?: number, cpuTicks?: number): void;
  readonly stopRequests: number;
  readonly ended: boolean;
}

/**
 * A Fleet with no processes, for unit tests of the dispatcher and the daemon:
 * spawns are recorded, exits are driven by the test, and stop() ends the agent
 * at once (as SIGTERM would). `events` records spawn/stop in order, for stop
 * ordering assertions shared with other fakes.
 */
export class InMemoryFleet implements Fleet {
  readonly node = 'local';
  readonly agents: InMemoryAgent[] = [];
  readonly #clock: Clock;
  readonly #events: string[];
  #nextPid = 10_000;
  /** When set, spawn() of this command name rejects (a missing executable). */
  failSpawnOf: string | undefined;
  /** When true, agents exit 0 right after spawning. */
  autoSucceed = false;
  /**
   * Called as an agent exits, before its exit is seen: a test wires it to its
   * fake workspace so that an agent exiting 0 has committed, as a real agent
   * that did its work has (a team without a commit ends `no-changes`).
   */
  onExit: ((spec: AgentSpec, exitCode: number | null) => void) | undefined;

  constructor(options: { clock: Clock; events?: string[]; onExit?: (spec: AgentSpec, exitCode: number | null) => void }) {
    this.#clock = options.clock;
    this.#events = options.events ?? [];
    this.onExit = options.onExit;
  }

  running(): InMemoryAgent[] {
    return this.agents.filter((a) => !a.ended);
  }

  find(issueKey: string, role: string): InMemoryAgent | undefined {
    return [...this.agents].reverse().find((a) => a.spec.issueKey === issueKey && a.spec.role === role);
  }

  async spawn(spec: AgentSpec): Promise<AgentHandle> {
    if (this.failSpawnOf !== undefined && spec.command[0] === this.failSpawnOf) {
      throw new FactoryError('FACTORY_AGENT_SPAWN_FAILED', `cannot start agent ${spec.agentName}: ${spec.command[0]} not found`);
    }
    const clock = this.#clock;
    const events = this.#events;
    const pid = this.#nextPid++;
    const identity: RegistryEntry = {
      issueKey: spec.issueKey,
      runId: spec.runId,
      role: spec.role,
      agentName: spec.agentName,
      node: 'local',
      pid,
      pgid: pid,
      startTime: pid * 10,
      bootId: 'in-memory-boot',
      marker: formatAgentMarker('test', spec.runId, spec.agentName),
      logPath: spec.logPath,
      worktree: spec.worktree,
      startedAtMs: clock.now(),
    };
    let resolveExit!: (exit: AgentExit) => void;
    const exited = new Promise<AgentExit>((resolve) => (resolveExit = resolve));
    let ended = false;
    let activity: AgentActivity = { outputBytes: 0, treeCpuTicks: 0 };
    let stopRequests = 0;
    const end = (exitCode: number | null, signal: NodeJS.Signals | null): void => {
      if (ended) return;
      ended = true;
      agent.ended = true;
      this.onExit?.(spec, exitCode);
      resolveExit({ exitCode, signal, endedAtMs: clock.now() });
    };
    const handle: AgentHandle = {
      identity,
      exited,
      stop: async () => {
        stopRequests++;
        events.push(`stop ${spec.agentName}`);
        end(null, 'SIGTERM');
        return exited;
      },
      activity: async () => activity,
    };
    const agent: InMemoryAgent & { ended: boolean } = {
      spec,
      handle,
      ended: false,
      exit: (exitCode, signal = null) => end(exitCode, signal),
      touch: (outputBytes = 1, cpuTicks = 0) => {
        activity = { outputBytes: activity.outputBytes + outputBytes, treeCpuTicks: (activity.treeCpuTicks ?? 0) + cpuTicks };
      },
      get stopRequests() {
        return stopRequests;
      },
    };
    this.agents.push(agent);
    events.push(`spawn ${spec.agentName}`);
    if (this.autoSucceed) queueMicrotask(() => end(0, null));
    return handle;
  }
}
