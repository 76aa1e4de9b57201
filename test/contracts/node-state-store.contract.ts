import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Heartbeat } from '../../src/domain/heartbeat.js';
import type { RegistryEntry, RegistryFile } from '../../src/domain/registry.js';
import type { HeartbeatStore, RegistryStore } from '../../src/ports/node-state-store.js';

/**
 * What every heartbeat and registry store owes its readers (status, the
 * reaper, kill-loop), run against the files and the in-memory stores alike.
 * (Not named *.test.ts: a suite to call.)
 */
export interface NodeStateHarness {
  /** A writer and a second reader of the same records (another process, for files). */
  readonly heartbeats: HeartbeatStore;
  readonly heartbeatReader: HeartbeatStore;
  readonly registry: RegistryStore;
  readonly registryReader: RegistryStore;
  dispose(): Promise<void>;
}

function heartbeat(overrides: Partial<Heartbeat> = {}): Heartbeat {
  return {
    version: 1,
    pid: 4242,
    startTime: 777,
    bootId: 'boot-1',
    hostname: 'node-a',
    status: 'running',
    mode: 'live',
    iteration: 3,
    maxIterations: 0,
    startedAtMs: 1_000,
    updatedAt: new Date(2_000).toISOString(),
    updatedAtMs: 2_000,
    registryPath: 'registry.json',
    statePath: 'state.db',
    configPath: 'factory.config.json',
    epoch: 7,
    inFlightTeams: 1,
    queuedIssues: 2,
    subscription: {
      state: 'subscribed',
      transport: 'watch',
      lastEventAtMs: 1_500,
      lastProgressAtMs: 1_900,
      reconcileStartedAtMs: null,
      reconcileStalledAfterMs: 90_000,
      unhealthySinceMs: null,
      lastError: null,
    },
    ...overrides,
  };
}

const agent: RegistryEntry = {
  issueKey: 'FAC-1',
  runId: 'FAC-1-e7-a1-abc',
  role: 'implementer',
  agentName: 'FAC-1-implementer',
  node: 'local',
  pid: 5151,
  pgid: 5151,
  startTime: 888,
  bootId: 'boot-1',
  marker: 'factory:abc:FAC-1-e7-a1-abc:FAC-1-implementer',
  logPath: 'logs/FAC-1/FAC-1-e7-a1-abc-implementer.log',
  worktree: 'worktrees/FAC-1',
  startedAtMs: 1_200,
};

function registry(agents: readonly RegistryEntry[]): RegistryFile {
  return { version: 1, owner: { pid: 4242, startTime: 777, bootId: 'boot-1', hostname: 'node-a', epoch: 7 }, updatedAtMs: 2_000, agents };
}

export function describeNodeStateContract(name: string, makeHarness: () => Promise<NodeStateHarness>): void {
  describe(`Node-state store contract: ${name}`, () => {
    const withHarness = (title: string, body: (h: NodeStateHarness) => Promise<void>): void => {
      it(title, async () => {
        const harness = await makeHarness();
        try {
          await body(harness);
        } finally {
          await harness.dispose();
        }
      });
    };

    withHarness('nothing written yet reads as missing, never as an error', async (h) => {
      assert.deepEqual(await h.heartbeatReader.read(), { kind: 'missing' });
      assert.deepEqual(await h.registryReader.read(), { kind: 'missing' });
    });

    withHarness('a written heartbeat reads back whole, and the next write replaces it', async (h) => {
      await h.heartbeats.write(heartbeat());
      assert.deepEqual(await h.heartbeatReader.read(), { kind: 'ok', value: heartbeat() });
      await h.heartbeats.write(heartbeat({ status: 'stopping', updatedAtMs: 3_000, updatedAt: new Date(3_000).toISOString() }));
      const read = await h.heartbeatReader.read();
      assert.equal(read.kind === 'ok' && read.value.status, 'stopping');
    });

    withHarness('a written registry reads back with its agents, and its version changes with every write', async (h) => {
      const before = await h.registryReader.version();
      await h.registry.write(registry([agent]));
      const first = await h.registryReader.version();
      assert.notEqual(first, before);
      const read = await h.registryReader.read();
      assert.deepEqual(read.kind === 'ok' && read.value, { file: registry([agent]), rejected: [] });
      await h.registry.write(registry([]));
      assert.notEqual(await h.registryReader.version(), first);
      const emptied = await h.registryReader.read();
      assert.deepEqual(emptied.kind === 'ok' && emptied.value.file.agents, []);
    });
  });
}
