import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFactoryError } from '../../src/errors.js';
import type { AgentHandle, AgentSpec, Fleet } from '../../src/ports/fleet.js';
import { waitFor } from '../support/sandbox.js';

/**
 * What every (agent-level) Fleet owes a team run, run against real process
 * groups and the in-memory fleet alike. (Not named *.test.ts: a suite to call.)
 */

/** How a test agent behaves: exits 0 soon, exits 3 soon, or prints a line and waits to be stopped. */
export type AgentBehaviour = 'exit-0' | 'exit-3' | 'talk-then-wait';

export interface FleetHarness {
  readonly fleet: Fleet;
  /** A spec whose agent behaves as asked. */
  spec(behaviour: AgentBehaviour): AgentSpec;
  /** A spec whose command cannot be started. */
  unstartableSpec(): AgentSpec;
  /** Fakes act the behaviour out here (exit, print); a real agent does it by itself. */
  actOut(handle: AgentHandle, behaviour: AgentBehaviour): void;
  dispose(): Promise<void>;
}

export function describeFleetContract(name: string, makeHarness: () => Promise<FleetHarness>): void {
  describe(`Fleet contract: ${name}`, { timeout: 60_000 }, () => {
    const withHarness = (title: string, body: (h: FleetHarness) => Promise<void>): void => {
      it(title, async () => {
        const harness = await makeHarness();
        try {
          await body(harness);
        } finally {
          await harness.dispose();
        }
      });
    };

    withHarness('a spawned agent is identified by its run, role and name, placed on the fleet’s node, and reports its exit code', async (h) => {
      const spec = h.spec('exit-0');
      const handle = await h.fleet.spawn(spec);
      assert.deepEqual(
        { issueKey: handle.identity.issueKey, runId: handle.identity.runId, role: handle.identity.role, agentName: handle.identity.agentName, node: handle.identity.node },
        { issueKey: spec.issueKey, runId: spec.runId, role: spec.role, agentName: spec.agentName, node: h.fleet.node },
      );
      assert.equal(handle.identity.logPath, spec.logPath);
      h.actOut(handle, 'exit-0');
      const exit = await handle.exited;
      assert.equal(exit.exitCode, 0);
      assert.equal(exit.signal, null);
    });

    withHarness('a failing agent’s exit code comes through', async (h) => {
      const handle = await h.fleet.spawn(h.spec('exit-3'));
      h.actOut(handle, 'exit-3');
      assert.equal((await handle.exited).exitCode, 3);
    });

    withHarness('stop() ends a running agent; stopping again, or after the exit, resolves with the same exit', async (h) => {
      const handle = await h.fleet.spawn(h.spec('talk-then-wait'));
      h.actOut(handle, 'talk-then-wait');
      const stopped = await handle.stop(500);
      assert.ok(stopped.signal !== null || stopped.exitCode !== 0, `a stopped agent did not exit cleanly on its own: ${JSON.stringify(stopped)}`);
      assert.deepEqual(await handle.exited, stopped);
      assert.deepEqual(await handle.stop(500), stopped, 'idempotent');
    });

    withHarness('activity() is sampled asynchronously and counts the agent’s output', async (h) => {
      const handle = await h.fleet.spawn(h.spec('talk-then-wait'));
      const sample = handle.activity();
      assert.ok(sample instanceof Promise, 'activity() returns a promise, so a remote fleet can answer it');
      await sample;
      h.actOut(handle, 'talk-then-wait');
      await waitFor('output from the agent', async () => (await handle.activity()).outputBytes > 0);
      await handle.stop(500);
    });

    withHarness('an agent that cannot be started is refused with FACTORY_AGENT_SPAWN_FAILED', async (h) => {
      await assert.rejects(h.fleet.spawn(h.unstartableSpec()), (error) => isFactoryError(error, 'FACTORY_AGENT_SPAWN_FAILED'));
    });
  });
}
