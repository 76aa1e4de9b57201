import type { AgentRole } from '../domain/run.js';
import type { RegistryEntry } from '../domain/registry.js';
import type { TeamResourceGroup } from './team-resources.js';

/** What to run for one agent of a team. */
export interface AgentSpec {
  readonly issueKey: string;
  readonly runId: string;
  readonly role: AgentRole;
  /** Unique within the run, e.g. `FAC-1-implementer`. */
  readonly agentName: string;
  /** argv, already rendered: no shell is involved. */
  readonly command: readonly string[];
  readonly cwd: string;
  /** Extra environment, set over the allowed part of the daemon's own. The marker is added by the fleet. */
  readonly env: Readonly<Record<string, string>>;
  /** Which of the daemon's (or worker's) own variables the agent gets: names and `PREFIX_*` globs; default domain/env-passthrough.ts. */
  readonly envPassthrough?: readonly string[];
  /** Files the agent reads (issue body, prompt), written before it starts, outside its worktree. */
  readonly files?: readonly { readonly path: string; readonly content: string }[];
  /** Where stdout and stderr go (appended). */
  readonly logPath: string;
  readonly worktree: string;
  /**
   * The team's resource group, when it has a budget: the agent is started
   * through the group's join wrapper, so it and every descendant are inside
   * before the agent runs anything. Absent: started as before, no wrapper.
   */
  readonly resourceGroup?: Pick<TeamResourceGroup, 'joinCommand'>;
}

export interface AgentExit {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly endedAtMs: number;
}

/** A running agent. Identity is what goes into the registry. */
export interface AgentHandle {
  readonly identity: RegistryEntry;
  /** Resolves once the agent's leader process has exited. Never rejects. */
  readonly exited: Promise<AgentExit>;
  /**
   * Terminates the agent's whole tree: SIGTERM to its group, a grace period,
   * then SIGKILL. Idempotent; resolves when the leader has exited.
   */
  stop(graceMs: number): Promise<AgentExit>;
  /** Signs of work for stall detection (bytes of output so far, CPU ticks of the tree) and the tree's resident memory now. */
  activity(): Promise<AgentActivity>;
}

export interface AgentActivity {
  readonly outputBytes: number;
  /** Total CPU ticks of every live process in the agent's tree (group + marker), or null when unknown. */
  readonly treeCpuTicks: number | null;
  /**
   * Resident memory of every live process in the agent's tree, summed, in bytes: a sample, not an
   * exact peak (shared pages count once per process). Null when unknown; absent from fleets that do not sample it.
   */
  readonly treeRssBytes?: number | null;
}

/**
 * Runs agents. The local fleet spawns process trees on this machine; a remote
 * fleet (BullMQ workers) would return handles whose identity names another
 * node, and whose pids are never signalled locally.
 */
export interface Fleet {
  readonly node: string;
  spawn(spec: AgentSpec): Promise<AgentHandle>;
}
