import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { FileHeartbeatStore } from '../../src/adapters/node-state/file-node-state.js';
import { loadConfig } from '../../src/config/load.js';
import type { StateDocument } from '../../src/http/state-document.js';
import { finishedRuns, useFleetPerTest } from '../fixtures/fleet/harness.js';
import { REPO_ROOT, waitFor } from '../support/sandbox.js';

/**
 * A claude-code driver agent running on a BullMQ worker: the worker publishes
 * its `agent-activity` events to the run's stream, and the control plane's
 * state API must show them as it does for a local run (last tool call, turns,
 * tokens) while the agent works. The agent's executable replays the real
 * Claude Code's recorded stream and holds after its Bash tool call until the
 * test releases it.
 */

const REPLAY_CLAUDE = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'replay-claude-stream.mjs');
const scratch = mkdtempSync(join(tmpdir(), 'factory-fleet-activity-'));
const release = join(scratch, 'release-the-agent');

// Registered before the fleet's hooks, so it runs before the fleet stops: a held agent ends by itself once released.
afterEach(() => writeFileSync(release, ''));
after(() => rmSync(scratch, { recursive: true, force: true }));
const fleets = useFleetPerTest();

test("a remote claude-code agent's activity reaches the control plane's state API while it works", { timeout: 90_000 }, async () => {
  const fleet = await fleets.start({
    agentWorkMs: 0,
    extraConfig: {
      agents: {
        implementer: {
          driver: 'claude-code',
          command: [process.execPath, REPLAY_CLAUDE],
          claudeCode: { model: 'claude-scripted-1' },
          env: { REPLAY_RELEASE_FILE: release, REPLAY_HOLD_AFTER: '4', REPLAY_STEP_MS: '20' },
        },
      },
      http: { port: 0 },
    },
  });
  await fleet.startWorker('w1');
  const config = loadConfig(fleet.project.configPath);
  const url = await waitFor(
    "the control plane's status server",
    async () => {
      const read = await new FileHeartbeatStore(config.loop.heartbeatPath).read();
      return read.kind === 'ok' ? read.value.http?.url : undefined;
    },
    20_000,
  );
  fleet.project.writeIssue('ACT-1');

  const state = async (): Promise<StateDocument> => (await (await fetch(`${url}/api/v1/state`)).json()) as StateDocument;
  let lastSeen: unknown;
  const agent = await waitFor(
    'the remote agent to show its Bash tool call',
    async () => {
      const document = await state();
      lastSeen = { teams: document.teams, recentOutcomes: document.recentOutcomes };
      const implementer = document.teams.find((t) => t.issueKey === 'ACT-1')?.agents.find((a) => a.role === 'implementer');
      return implementer?.activity?.lastActivity?.summary.startsWith('Bash: printf') ? implementer : undefined;
    },
    40_000,
  ).catch((error: Error) => assert.fail(`${error.message}; the state API last showed ${JSON.stringify(lastSeen)}\n${fleet.workers.get('w1')?.stderr().slice(-3000)}`));
  // The first model message of the recorded stream: 1 turn, its usage as reported at message start, no cost yet.
  const activity = agent.activity!;
  assert.equal(activity.driver, 'claude-code');
  assert.equal(activity.turns, 1);
  assert.deepEqual(activity.usage, { input: 1200, output: 1, cacheRead: 300, cacheWrite: 100 });
  assert.equal(activity.costUsd, undefined);
  assert.equal(activity.sessionId, '54ec740d-a99c-4668-8d83-0b8d357f92c2');
  assert.ok('node' in agent && agent.node === 'w1', `placed on the worker: ${JSON.stringify(agent)}`);

  writeFileSync(release, '');
  const finished = await waitFor('the run to finish', () => finishedRuns(fleet.controlPlane).find((r) => r.run.startsWith('ACT-1-')), 30_000);
  assert.equal(finished.reason, 'succeeded', fleet.controlPlane.stderr());
});
