import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resourcesSchema } from '../../src/config/resources-schema.js';
import { configSchema } from '../../src/config/schema.js';
import {
  cpuQuotaUs,
  cpuSharesForWeight,
  decideMemoryAdmission,
  formatMemory,
  isPressureLowSustained,
  isPressureSustained,
  parseSize,
  resolveTeamBudget,
  waitingForMemoryReason,
  type MemoryAdmissionInput,
} from '../../src/domain/resource-budget.js';

const GB = 2 ** 30;
const MB = 2 ** 20;

test('sizes parse the way config files write them, binary units whatever the spelling', () => {
  const table: [string | number, number | undefined][] = [
    ['4G', 4 * GB],
    ['512M', 512 * MB],
    ['1.5G', 1.5 * GB],
    ['4GiB', 4 * GB],
    ['100MB', 100 * MB],
    ['64k', 64 * 1024],
    ['1T', 2 ** 40],
    [' 2 G ', 2 * GB],
    ['1048576', 1048576],
    [1048576, 1048576],
    ['', undefined],
    ['4X', undefined],
    ['-1G', undefined],
    ['0', undefined],
    [0, undefined],
    [1.5, undefined],
    ['G', undefined],
  ];
  for (const [input, expected] of table) assert.equal(parseSize(input), expected, `parseSize(${JSON.stringify(input)})`);
});

test('memory is shown in GB with one decimal from 1 GB, in whole MB below', () => {
  assert.equal(formatMemory(4 * GB), '4.0 GB');
  assert.equal(formatMemory(2.1 * GB), '2.1 GB');
  assert.equal(formatMemory(100 * MB), '100 MB');
  assert.equal(formatMemory(-5), '0 MB');
  assert.equal(waitingForMemoryReason(4 * GB, 2.1 * GB), 'waiting for memory: need 4.0 GB, 2.1 GB free');
});

test('a budget is the team default, then the repo override, then the largest value any label asks for', () => {
  const policy = {
    team: { memoryMaxBytes: 2 * GB, pidsMax: 512, cpuWeight: 100 },
    byRepo: { '/repos/big': { memoryMaxBytes: 6 * GB }, '/repos/small': { memoryMaxBytes: 1 * GB, cpuMaxCores: 1 } },
    byLabel: { heavy: { memoryMaxBytes: 8 * GB }, light: { memoryMaxBytes: 3 * GB, pidsMax: 64 }, constructor: { pidsMax: 1 } },
  };
  assert.deepEqual(resolveTeamBudget(policy, {}), { memoryMaxBytes: 2 * GB, pidsMax: 512, cpuWeight: 100 });
  assert.deepEqual(resolveTeamBudget(policy, { repo: '/repos/small' }), { memoryMaxBytes: 1 * GB, pidsMax: 512, cpuWeight: 100, cpuMaxCores: 1 });
  assert.deepEqual(resolveTeamBudget(policy, { repo: '/repos/big', labels: ['light'] }), { memoryMaxBytes: 3 * GB, pidsMax: 64, cpuWeight: 100 });
  // Order of labels does not matter: the largest value per key wins.
  const both = resolveTeamBudget(policy, { repo: '/repos/small', labels: ['light', 'heavy'] });
  assert.deepEqual(both, resolveTeamBudget(policy, { repo: '/repos/small', labels: ['heavy', 'light'] }));
  assert.deepEqual(both, { memoryMaxBytes: 8 * GB, pidsMax: 64, cpuWeight: 100, cpuMaxCores: 1 });
  // A label named like an Object.prototype member only counts when configured.
  assert.deepEqual(resolveTeamBudget({ ...policy, byLabel: {} }, { labels: ['constructor', 'toString'] }), policy.team);
  assert.deepEqual(resolveTeamBudget(policy, { repo: '/repos/unknown', labels: ['unrouted'] }), policy.team);
});

test('admission: available minus what running teams may still claim must cover the next budget plus the reserve', () => {
  const base: MemoryAdmissionInput = { availableBytes: 10 * GB, totalBytes: 16 * GB, running: [], nextBudgetBytes: 4 * GB, reserve: { fraction: 0.1 } };
  const rows: { name: string; input: Partial<MemoryAdmissionInput>; admit: boolean; need: number; free: number }[] = [
    { name: 'empty machine', input: {}, admit: true, need: 4 * GB + 1.6 * GB, free: 10 * GB },
    { name: 'one running team with unknown usage holds its whole budget', input: { running: [{ budgetBytes: 4 * GB }] }, admit: true, need: 5.6 * GB, free: 6 * GB },
    { name: 'two running teams leave too little', input: { running: [{ budgetBytes: 4 * GB }, { budgetBytes: 2 * GB }] }, admit: false, need: 5.6 * GB, free: 4 * GB },
    {
      name: 'usage already out of MemAvailable is not counted twice',
      input: {
        running: [
          { budgetBytes: 4 * GB, usedBytes: 3 * GB },
          { budgetBytes: 2 * GB, usedBytes: 2 * GB },
        ],
      },
      admit: true,
      need: 5.6 * GB,
      free: 9 * GB,
    },
    { name: 'a team over its budget holds nothing back (never negative)', input: { running: [{ budgetBytes: 1 * GB, usedBytes: 2 * GB }] }, admit: true, need: 5.6 * GB, free: 10 * GB },
    { name: 'running teams without a budget hold nothing back', input: { running: [{ budgetBytes: undefined }] }, admit: true, need: 5.6 * GB, free: 10 * GB },
    { name: 'exactly enough is enough', input: { availableBytes: 5.6 * GB }, admit: true, need: 5.6 * GB, free: 5.6 * GB },
    { name: 'one byte short waits', input: { availableBytes: 5.6 * GB - 1 }, admit: false, need: 5.6 * GB, free: 5.6 * GB - 1 },
    { name: 'a fixed reserve', input: { reserve: { bytes: 512 * MB }, availableBytes: 4.5 * GB }, admit: true, need: 4.5 * GB, free: 4.5 * GB },
    { name: 'no reserve', input: { reserve: { fraction: 0 }, availableBytes: 4 * GB }, admit: true, need: 4 * GB, free: 4 * GB },
    { name: 'a team without a budget is admitted at once', input: { nextBudgetBytes: undefined, availableBytes: 0 }, admit: true, need: 0, free: 0 },
    { name: 'free memory is never shown negative', input: { availableBytes: 1 * GB, running: [{ budgetBytes: 8 * GB }] }, admit: false, need: 5.6 * GB, free: 0 },
  ];
  for (const row of rows) {
    const decision = decideMemoryAdmission({ ...base, ...row.input });
    assert.equal(decision.admit, row.admit, row.name);
    assert.ok(Math.abs(decision.needBytes - row.need) < 2, `${row.name}: need ${decision.needBytes} vs ${row.need}`);
    assert.ok(Math.abs(decision.freeBytes - row.free) < 2, `${row.name}: free ${decision.freeBytes} vs ${row.free}`);
    if (!decision.admit) assert.equal(decision.reason, waitingForMemoryReason(decision.needBytes, decision.freeBytes), row.name);
  }
  const held = decideMemoryAdmission({ availableBytes: 2.1 * GB, totalBytes: 16 * GB, running: [], nextBudgetBytes: 4 * GB, reserve: { bytes: 0 } });
  assert.equal(held.admit, false);
  assert.equal(!held.admit && held.reason, 'waiting for memory: need 4.0 GB, 2.1 GB free');
});

test('pressure counts as high only once it stayed at or above the threshold for the whole window', () => {
  const at = (seconds: number, someAvg10: number) => ({ atMs: seconds * 1000, someAvg10 });
  const now = 100_000;
  assert.equal(isPressureSustained([], now, 20, 30_000), false, 'no samples: no proof');
  assert.equal(isPressureSustained([at(80, 50), at(90, 50), at(100, 50)], now, 20, 30_000), false, 'window not covered yet');
  assert.equal(isPressureSustained([at(65, 50), at(75, 50), at(85, 50), at(100, 50)], now, 20, 30_000), true);
  assert.equal(isPressureSustained([at(65, 50), at(75, 5), at(85, 50), at(100, 50)], now, 20, 30_000), false, 'a dip inside the window');
  assert.equal(isPressureSustained([at(60, 5), at(69, 25), at(85, 50), at(100, 20)], now, 20, 30_000), true, 'old low samples before the anchor do not count');
  assert.equal(isPressureSustained([at(69, 5), at(85, 50), at(100, 50)], now, 20, 30_000), false, 'low at the window start');
});

test('pressure counts as low (parked work may come back) only once it stayed below the threshold for the whole window', () => {
  const at = (seconds: number, someAvg10: number) => ({ atMs: seconds * 1000, someAvg10 });
  const now = 100_000;
  assert.equal(isPressureLowSustained([], now, 20, 30_000), false, 'no samples: no proof');
  assert.equal(isPressureLowSustained([at(60, 50), at(80, 3), at(100, 3)], now, 20, 30_000), false, 'high at the window start');
  assert.equal(isPressureLowSustained([at(65, 3), at(85, 3), at(100, 19)], now, 20, 30_000), true);
  assert.equal(isPressureLowSustained([at(65, 3), at(85, 20), at(100, 3)], now, 20, 30_000), false, 'a spike inside the window');
});

test('CPU budgets convert to the units of each cgroup version', () => {
  assert.equal(cpuSharesForWeight(100), 1024);
  assert.equal(cpuSharesForWeight(1), 10);
  assert.equal(cpuSharesForWeight(10_000), 102_400);
  assert.equal(cpuQuotaUs(1.5), 150_000);
  assert.equal(cpuQuotaUs(0.001), 1_000);
});

test('config: resources is optional and its defaults limit nothing', () => {
  const parsed = resourcesSchema.parse(undefined);
  assert.deepEqual(parsed, { team: {}, byRepo: {}, byLabel: {}, reserve: { fraction: 0.1 }, onPressure: 'hold', retryOom: false });
  const full = configSchema.parse({ mount: { root: 'issues' }, agents: { implementer: { command: ['true'] } } });
  assert.deepEqual(full.resources.team, {});
});

test('config: sizes, reserve forms and overrides compile to bytes; bad values are reported per key', () => {
  const parsed = resourcesSchema.parse({
    team: { memoryMax: '4G', memoryHigh: '3.5G', cpuWeight: 200, cpuMax: 1.5, pidsMax: 512 },
    byRepo: { '/repos/big': { memoryMax: '8G' } },
    byLabel: { heavy: { memoryMax: 12 * GB } },
    reserve: '2G',
    onPressure: 'park',
  });
  assert.deepEqual(parsed.team, { memoryMaxBytes: 4 * GB, memoryHighBytes: 3.5 * GB, cpuWeight: 200, cpuMaxCores: 1.5, pidsMax: 512 });
  assert.deepEqual(parsed.byRepo['/repos/big'], { memoryMaxBytes: 8 * GB });
  assert.deepEqual(parsed.byLabel.heavy, { memoryMaxBytes: 12 * GB });
  assert.deepEqual(parsed.reserve, { bytes: 2 * GB });
  assert.deepEqual(resourcesSchema.parse({ reserve: '15%' }).reserve, { fraction: 0.15 });
  assert.deepEqual(resourcesSchema.parse({ reserve: 0.2 }).reserve, { fraction: 0.2 });

  const bad = resourcesSchema.safeParse({ team: { memoryMax: '4 gigs', memoryHigh: '5G' }, byLabel: { x: { pidsMax: 0 } }, reserve: '150%', onPressure: 'panic' });
  assert.equal(bad.success, false);
  const paths = bad.error!.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
  assert.ok(
    paths.some((line) => line.startsWith('team.memoryMax: expected a size such as "4G"')),
    paths.join('\n'),
  );
  assert.ok(
    paths.some((line) => line.startsWith('byLabel.x.pidsMax')),
    paths.join('\n'),
  );
  assert.ok(
    paths.some((line) => line.startsWith('reserve: expected a share of memory')),
    paths.join('\n'),
  );
  assert.ok(
    paths.some((line) => line.startsWith('onPressure')),
    paths.join('\n'),
  );
  const inverted = resourcesSchema.safeParse({ team: { memoryMax: '4G', memoryHigh: '5G' } });
  assert.ok(!inverted.success && inverted.error.issues.some((issue) => issue.path.join('.') === 'team.memoryHigh'));
});
