import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeClock, settle } from '../../src/adapters/clock/fake-clock.js';
import { InMemoryFleet } from '../../src/adapters/fleet/in-memory-fleet.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';
import { FileRunLogStore } from '../../src/adapters/run-logs/file-run-log-store.js';
import { InMemoryWorkspace } from '../../src/adapters/workspace/in-memory-workspace.js';
import { LocalTeamExecutor } from '../../src/core/execution/local-team-executor.js';
import { RegistryKeeper } from '../../src/core/registry-keeper.js';
import { renderOutcomeReport } from '../../src/domain/outcome-report.js';
import { raisePeak } from '../../src/domain/run.js';
import type { Fleet } from '../../src/ports/fleet.js';
import { DaemonObserver } from '../../src/http/daemon-observer.js';
import { FactoryMetrics } from '../../src/http/metrics.js';
import { planFor } from '../contracts/team-executor.contract.js';

/**
 * Per-agent memory peaks (issue 13): each supervision sample of an agent's
 * tree RSS raises that agent's peak, never lowers it; the peak is shown while
 * the agent runs and lands in its result, the outcome report and /metrics.
 */

const MB = 2 ** 20;

test('raisePeak keeps the highest sample and ignores unknown ones', () => {
  assert.equal(raisePeak(undefined, null), undefined, 'no sample, no peak');
  assert.equal(raisePeak(undefined, 50 * MB), 50 * MB);
  assert.equal(raisePeak(50 * MB, 80 * MB), 80 * MB);
  assert.equal(raisePeak(80 * MB, 30 * MB), 80 * MB, 'a lower sample does not lower the peak');
  assert.equal(raisePeak(80 * MB, null), 80 * MB, 'an unreadable sample keeps the peak');
  assert.equal(raisePeak(80 * MB, undefined), 80 * MB, 'a fleet that does not sample keeps the peak');
  assert.equal(raisePeak(80 * MB, Number.NaN), 80 * MB);
  assert.equal(raisePeak(undefined, 0), 0, 'an empty tree is a sample of 0');
});

/** The in-memory fleet with a settable tree RSS per agent name, as the local fleet reports it from /proc. */
function fleetWithRss(clock: FakeClock, workspace: InMemoryWorkspace): { fleet: InMemoryFleet; wrapped: Fleet; rss: Map<string, number | null> } {
  const fleet = new InMemoryFleet({ clock, onExit: (spec, exitCode) => exitCode === 0 && workspace.commit({ path: spec.cwd, branch: spec.env.FACTORY_BRANCH ?? '' }) });
  const rss = new Map<string, number | null>();
  const wrapped: Fleet = {
    node: fleet.node,
    spawn: async (spec) => {
      const handle = await fleet.spawn(spec);
      return { ...handle, activity: async () => ({ ...(await handle.activity()), treeRssBytes: rss.get(spec.agentName) ?? null }) };
    },
  };
  return { fleet, wrapped, rss };
}

test("an agent's peak is the highest supervision sample: shown while it runs, kept in its result, the outcome report and /metrics", async () => {
  const clock = new FakeClock();
  const workspace = new InMemoryWorkspace();
  const { fleet, wrapped, rss } = fleetWithRss(clock, workspace);
  const registry = new RegistryKeeper({ store: { write: async () => undefined }, owner: { pid: 1, startTime: 1, bootId: 'b', hostname: 'h', epoch: 1 }, clock });
  const executor = new LocalTeamExecutor({ fleet: wrapped, workspace, registry, clock, log: createSilentLogger(), runLogs: new FileRunLogStore('/logs'), killGraceMs: 100 });
  const plan = planFor('MEM-1');
  const run = executor.start(plan);
  await settle();
  const [agent] = run.runningAgents();
  assert.ok(agent, 'the implementer runs');
  assert.equal(agent.memoryPeakBytes, undefined, 'no peak before the first sample');

  for (const sample of [50 * MB, 80 * MB, null, 30 * MB]) {
    rss.set(agent.agentName, sample);
    await run.sampleActivity();
  }
  assert.equal(run.runningAgents()[0]?.memoryPeakBytes, 80 * MB, 'the running agent shows its peak so far');

  fleet.find('MEM-1', 'implementer')!.exit(0);
  const outcome = await run.outcome;
  assert.equal(outcome.reason, 'succeeded', outcome.detail);
  assert.equal(outcome.agents[0]?.memoryPeakBytes, 80 * MB, 'the result keeps the highest sample, not the last');

  const report = renderOutcomeReport(plan.issue, outcome);
  assert.match(report, /^- \*\*Memory:\*\* peak 80 MB \(sampled RSS of its process tree\)$/m, report);

  const metrics = new FactoryMetrics({ heartbeatAgeMs: async () => null, processMetrics: false });
  new DaemonObserver(metrics).hooks.onOutcome(outcome);
  // A run whose agent was never sampled (it ended within one tick) adds nothing.
  new DaemonObserver(metrics).hooks.onOutcome({ ...outcome, agents: outcome.agents.map(({ memoryPeakBytes: _unsampled, ...rest }) => rest) });
  const text = await metrics.render();
  assert.match(text, /^# TYPE factory_agent_memory_peak_bytes histogram$/m);
  assert.match(text, /^factory_agent_memory_peak_bytes_count\{role="implementer"\} 1$/m, text);
  assert.match(text, new RegExp(`^factory_agent_memory_peak_bytes_sum\\{role="implementer"\\} ${80 * MB}$`, 'm'));
  assert.match(text, new RegExp(`^factory_agent_memory_peak_bytes_bucket\\{le="${64 * MB}",role="implementer"\\} 0$`, 'm'));
  assert.match(text, new RegExp(`^factory_agent_memory_peak_bytes_bucket\\{le="${128 * MB}",role="implementer"\\} 1$`, 'm'));
});

test('an agent that ended before any sample has no peak (absent, not 0)', async () => {
  const clock = new FakeClock();
  const workspace = new InMemoryWorkspace();
  const { fleet, wrapped } = fleetWithRss(clock, workspace);
  const registry = new RegistryKeeper({ store: { write: async () => undefined }, owner: { pid: 1, startTime: 1, bootId: 'b', hostname: 'h', epoch: 1 }, clock });
  const executor = new LocalTeamExecutor({ fleet: wrapped, workspace, registry, clock, log: createSilentLogger(), runLogs: new FileRunLogStore('/logs'), killGraceMs: 100 });
  const run = executor.start(planFor('MEM-2'));
  await settle();
  fleet.find('MEM-2', 'implementer')!.exit(0);
  const outcome = await run.outcome;
  assert.equal('memoryPeakBytes' in outcome.agents[0]!, false);
  assert.doesNotMatch(renderOutcomeReport(run.plan.issue, outcome), /sampled RSS/);
});
