import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RunOutcome, RunOutcomeReason } from '../../src/domain/run.js';
import { DaemonObserver } from '../../src/http/daemon-observer.js';
import { FactoryMetrics } from '../../src/http/metrics.js';

/**
 * The `/metrics` exposition as Prometheus tooling reads it. `promtool check
 * metrics` (run by test/integration/ops-tools.test.ts when installed) refuses a
 * gauge whose name ends in `_total`, because that suffix promises a counter;
 * this checks the same rule without promtool, on every machine.
 */

function metricTypes(exposition: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(match[1]!, match[2]!);
  return types;
}

test('only counters are named *_total, and Node process metrics are still exported', async () => {
  const metrics = new FactoryMetrics({ heartbeatAgeMs: async () => 1_500 });
  const types = metricTypes(await metrics.render());

  const misnamed = [...types].filter(([name, type]) => name.endsWith('_total') && type !== 'counter').map(([name, type]) => `${name} (${type})`);
  assert.deepEqual(misnamed, [], 'a *_total series that is not a counter fails `promtool check metrics`');

  // The per-type gauges stay (sum() over them gives the dropped totals), and so does the rest of Node's set.
  for (const kept of [
    'nodejs_active_handles',
    'nodejs_active_requests',
    'nodejs_active_resources',
    'process_cpu_user_seconds_total',
    'process_resident_memory_bytes',
    'nodejs_eventloop_lag_seconds',
    'nodejs_heap_size_used_bytes',
  ]) {
    assert.ok(types.has(kept), `${kept} is still exported`);
  }
  assert.equal(types.get('factory_dispatches_total'), 'counter');
  assert.equal(types.get('factory_heartbeat_age_seconds'), 'gauge');
});

test('team memory: each budgeted run adds its peak to factory_team_memory_peak_bytes, an oom run counts in factory_team_oom_total and as reason oom', async () => {
  const metrics = new FactoryMetrics({ heartbeatAgeMs: async () => 1_500, processMetrics: false });
  const observer = new DaemonObserver(metrics);
  const MB = 2 ** 20;
  const outcome = (reason: RunOutcomeReason, memory?: RunOutcome['memory']): RunOutcome => ({
    runId: `run-${reason}`,
    issueKey: 'MEM-1',
    revision: 'r1',
    attempt: 1,
    reason,
    detail: '',
    branch: 'b',
    worktree: 'w',
    agents: [],
    startedAtMs: 0,
    endedAtMs: 1,
    ...(memory ? { memory } : {}),
  });
  const before = await metrics.render();
  assert.match(before, /^factory_team_oom_total 0$/m, 'exported from 0 so alerts work before the first oom');
  assert.match(before, /^factory_team_memory_peak_bytes_count 0$/m);
  assert.match(before, /^factory_issues_held_for_memory 0$/m);

  observer.hooks.onOutcome(outcome('oom', { peakBytes: 98 * MB, oomKills: 1, limitBytes: 100 * MB, mechanism: 'cgroup-v1' }));
  observer.hooks.onOutcome(outcome('succeeded', { peakBytes: 700 * MB, oomKills: 0, limitBytes: 4096 * MB, mechanism: 'cgroup-v1' }));
  observer.hooks.onOutcome(outcome('failed')); // no budget: no peak
  const text = await metrics.render();
  assert.match(text, /^factory_team_oom_total 1$/m);
  assert.match(text, /^factory_run_outcomes_total\{reason="oom"\} 1$/m);
  assert.match(text, /^factory_team_memory_peak_bytes_count 2$/m);
  assert.match(text, new RegExp(`^factory_team_memory_peak_bytes_sum ${798 * MB}$`, 'm'));
  assert.match(text, new RegExp(`^factory_team_memory_peak_bytes_bucket\\{le="${128 * MB}"\\} 1$`, 'm'), 'the 98 MB peak falls in the 128 MB bucket');
  assert.match(text, new RegExp(`^factory_team_memory_peak_bytes_bucket\\{le="${1024 * MB}"\\} 2$`, 'm'));
  assert.equal(metricTypes(text).get('factory_team_memory_peak_bytes'), 'histogram');
});
