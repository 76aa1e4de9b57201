import { test } from 'node:test';
import assert from 'node:assert/strict';
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
  for (const kept of ['nodejs_active_handles', 'nodejs_active_requests', 'nodejs_active_resources', 'process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
    assert.ok(types.has(kept), `${kept} is still exported`);
  }
  assert.equal(types.get('factory_dispatches_total'), 'counter');
  assert.equal(types.get('factory_heartbeat_age_seconds'), 'gauge');
});
