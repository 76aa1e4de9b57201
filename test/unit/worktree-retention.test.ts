import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock, settle } from '../../src/adapters/clock/fake-clock.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';
import { InMemoryWorkspace } from '../../src/adapters/workspace/in-memory-workspace.js';
import { compileConfig } from '../../src/config/load.js';
import { WorktreeJanitor } from '../../src/core/worktree-janitor.js';
import { CLAIM_STATUSES, isActiveClaimStatus, type ClaimStatus, type IssueClaim } from '../../src/domain/claim.js';
import { parseDuration } from '../../src/domain/duration.js';
import { decideWorktreeRetention, leftoverRefFor, type WorktreeRetentionFacts } from '../../src/domain/worktree-retention.js';
import { isFactoryError } from '../../src/errors.js';
import type { WorktreeRecord } from '../../src/ports/workspace.js';
import { createHarness } from '../support/session-harness.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = 100 * DAY;

describe('the worktree retention rule', () => {
  const base: WorktreeRetentionFacts = {
    issueKey: 'FAC-1',
    claim: { status: 'succeeded', updatedAtMs: NOW - 8 * DAY },
    teamRunning: false,
    lastModifiedMs: NOW - 8 * DAY,
    nowMs: NOW,
    keepFinishedForMs: 7 * DAY,
  };
  const cases: { name: string; facts: Partial<WorktreeRetentionFacts>; expected: ReturnType<typeof decideWorktreeRetention> }[] = [
    { name: 'finished and untouched for longer than the period: removed', facts: {}, expected: { remove: true } },
    { name: 'no claim at all and untouched: removed', facts: { claim: undefined }, expected: { remove: true } },
    { name: 'touched within the period: kept', facts: { lastModifiedMs: NOW - 6 * DAY }, expected: { remove: false, reason: 'recent' } },
    {
      name: 'exactly the period ago: kept (more than, not at least)',
      facts: { lastModifiedMs: NOW - 7 * DAY, claim: { status: 'succeeded', updatedAtMs: 0 } },
      expected: { remove: false, reason: 'recent' },
    },
    {
      name: 'the claim finished within the period (a merge yesterday), the worktree untouched for long: kept',
      facts: { claim: { status: 'succeeded', updatedAtMs: NOW - DAY } },
      expected: { remove: false, reason: 'recent' },
    },
    { name: 'a team of the issue runs: kept, whatever the claim says', facts: { teamRunning: true, claim: undefined }, expected: { remove: false, reason: 'team-running' } },
    { name: 'folder name is not an issue key: kept', facts: { issueKey: undefined, claim: undefined }, expected: { remove: false, reason: 'issue-unknown' } },
    { name: 'retention off ("never" or 0): kept', facts: { keepFinishedForMs: null }, expected: { remove: false, reason: 'retention-off' } },
    {
      name: '--older-than 0: any finished worktree touched before now',
      facts: { keepFinishedForMs: 0, lastModifiedMs: NOW - 1, claim: { status: 'gave-up', updatedAtMs: NOW - 1 } },
      expected: { remove: true },
    },
  ];
  for (const { name, facts, expected } of cases) test(name, () => assert.deepEqual(decideWorktreeRetention({ ...base, ...facts }), expected));

  for (const status of CLAIM_STATUSES) {
    const active = isActiveClaimStatus(status);
    test(`a ${status} claim untouched for a year: ${active ? 'kept' : 'removed'}`, () => {
      const decision = decideWorktreeRetention({ ...base, claim: { status, updatedAtMs: NOW - 365 * DAY }, lastModifiedMs: NOW - 365 * DAY });
      assert.deepEqual(decision, active ? { remove: false, reason: 'claim-active' } : { remove: true });
    });
  }
  test('every claim status of ACTIVE_CLAIM_STATUSES is one the brief names as in play', () => {
    assert.deepEqual(
      CLAIM_STATUSES.filter((status) => isActiveClaimStatus(status)),
      ['queued', 'running', 'retry-wait', 'parked', 'shepherding'],
    );
  });
});

test('leftover refs name the issue and the UTC second, in a form git accepts', () => {
  assert.equal(leftoverRefFor('acme_api-12', Date.UTC(2025, 2, 1, 12, 0, 5, 789)), 'refs/factory/leftover/acme_api-12-20250301T120005Z');
});

test('durations a person types: 3d, 12h, 30m, 45s, 2w, 0; anything else is undefined', () => {
  assert.deepEqual(['3d', '12h', '30m', '45s', '2w', '0', '250ms'].map(parseDuration), [3 * DAY, 12 * HOUR, 30 * 60_000, 45_000, 14 * DAY, 0, 250]);
  for (const bad of ['', 'soon', '3', '-1d', '1.5h', '3 days', '9999999999999999w']) assert.equal(parseDuration(bad), undefined, bad);
});

describe('workspace config', () => {
  const compile = (workspace?: Record<string, unknown>) =>
    compileConfig({ mount: { root: '.' }, agents: { implementer: { command: ['x'] } }, ...(workspace ? { workspace } : {}) }, '/cfg/factory.config.json');
  test('defaults: a week, checked hourly', () => {
    assert.deepEqual(compile().workspace, { keepFinishedForMs: 7 * DAY, pruneIntervalMs: HOUR });
  });
  test('0 and "never" turn automatic removal off', () => {
    assert.equal(compile({ keepFinishedForMs: 0 }).workspace.keepFinishedForMs, null);
    assert.equal(compile({ keepFinishedForMs: 'never' }).workspace.keepFinishedForMs, null);
  });
  test('a negative period or another word is refused', () => {
    for (const keepFinishedForMs of [-1, 'always', '7d'])
      assert.throws(
        () => compile({ keepFinishedForMs }),
        (error) => isFactoryError(error, 'FACTORY_CONFIG_INVALID'),
      );
  });
});

describe('the janitor', () => {
  function janitorOver(statuses: (ClaimStatus | undefined)[]) {
    const clock = new FakeClock(NOW);
    const workspace = new InMemoryWorkspace({ now: () => clock.now() - 30 * DAY });
    let asked = 0;
    const janitor = new WorktreeJanitor({
      workspace,
      // Each question gets the next answer: the first decides, the second is the re-check under the lock.
      claimOf: async (issueKey) => {
        const status = statuses[Math.min(asked++, statuses.length - 1)];
        return status && ({ issueKey, status, updatedAtMs: 0 } as IssueClaim);
      },
      teamRunning: () => false,
      clock,
      log: createSilentLogger(),
    });
    return { workspace, janitor };
  }

  test('an issue that becomes active between the decision and the removal keeps its worktree (the re-check under the lock)', async () => {
    const { workspace, janitor } = janitorOver(['succeeded', 'queued']);
    const prepared = await workspace.prepare({ repo: '/r', issueKey: 'RACE-1', branch: 'factory/RACE-1' });
    const report = await janitor.prune({ keepFinishedForMs: 7 * DAY, dryRun: false });
    assert.equal(report.worktrees[0]?.action, 'spared');
    assert.deepEqual(
      (await workspace.listWorktrees()).map((record: WorktreeRecord) => record.path),
      [prepared.path],
    );
  });

  test('a dry run measures and removes nothing; the real run frees the same bytes', async () => {
    const { workspace, janitor } = janitorOver(['succeeded']);
    const prepared = await workspace.prepare({ repo: '/r', issueKey: 'DRY-1', branch: 'factory/DRY-1' });
    workspace.setDiskUsage(prepared.path, 3 * 2 ** 30);
    const dry = await janitor.prune({ keepFinishedForMs: 7 * DAY, dryRun: true });
    assert.deepEqual(
      dry.worktrees.map((result) => result.action),
      ['would-remove'],
    );
    assert.equal(dry.bytes, 3 * 2 ** 30);
    assert.equal((await workspace.listWorktrees()).length, 1);
    const real = await janitor.prune({ keepFinishedForMs: 7 * DAY, dryRun: false });
    assert.equal(real.bytes, 3 * 2 ** 30);
    assert.equal((await workspace.listWorktrees()).length, 0);
  });
});

describe('the live daemon', () => {
  const config = {
    agents: { implementer: { command: ['impl', '{{prompt}}'] } },
    team: { stages: [['implementer']] },
    dispatch: { batchSize: 2 },
    // BUSY-1 runs for the whole test: not stopped as stalled or over time.
    runs: { superviseIntervalMs: HOUR, maxRuntimeMs: 100 * HOUR, stallLimitMs: 100 * HOUR },
    workspace: { keepFinishedForMs: 2 * HOUR, pruneIntervalMs: HOUR },
  };

  test("removes a finished issue's worktree once the period has passed, hourly, and never a running issue's", async () => {
    const h = createHarness(config);
    h.source.put({ key: 'DONE-1', title: 'finishes', labels: ['factory'] });
    h.source.put({ key: 'BUSY-1', title: 'keeps running', labels: ['factory'] });
    const session = h.newSession();
    await session.open();
    await session.startLive();
    await h.settle();
    h.fleet.find('DONE-1', 'implementer')!.exit(0);
    await h.settle();
    assert.equal(session.dispatcher.claim('DONE-1')?.status, 'succeeded');
    h.workspace.leaveChanges({ path: '/worktrees/DONE-1' });
    const listed = async () => (await h.workspace.listWorktrees()).map((record) => record.issueKey).sort();
    assert.deepEqual(await listed(), ['BUSY-1', 'DONE-1']);

    await h.clock.advance(2 * HOUR);
    assert.deepEqual(await listed(), ['BUSY-1', 'DONE-1'], 'two hours have not passed since it was touched');
    await h.clock.advance(HOUR);
    await h.settle();
    assert.deepEqual(await listed(), ['BUSY-1'], 'the next hourly pass removed it');
    assert.deepEqual(
      [...h.workspace.leftovers.keys()].map((ref) => ref.replace(/\d{8}T\d{6}Z$/, '<time>')),
      ['refs/factory/leftover/DONE-1-<time>'],
    );

    await h.clock.advance(10 * HOUR);
    assert.equal(session.dispatcher.claim('BUSY-1')?.status, 'running');
    assert.deepEqual(await listed(), ['BUSY-1'], 'a running issue keeps its worktree however old');
    await session.close();
  });

  test('a slow retention pass does not hold up dispatch, and the stop waits for it', async () => {
    const h = createHarness(config);
    let finishListing!: () => void;
    const listing = new Promise<void>((resolve) => (finishListing = resolve));
    const list = h.workspace.listWorktrees.bind(h.workspace);
    h.workspace.listWorktrees = async () => {
      await listing;
      return list();
    };
    const session = h.newSession();
    await session.open();
    await session.startLive();
    h.source.put({ key: 'NEW-1', title: 'arrives during the pass', labels: ['factory'] });
    await h.clock.advance(20);
    await h.settle();
    assert.ok(h.fleet.find('NEW-1', 'implementer'), 'dispatched while the pass is still listing');
    let closed = false;
    const closing = session.close().then(() => (closed = true));
    await settle();
    assert.equal(closed, false, 'the stop waits for the pass under way');
    finishListing();
    await closing;
  });

  test('keepFinishedForMs "never": no pass at all', async () => {
    const h = createHarness({ ...config, workspace: { keepFinishedForMs: 'never' } });
    let passes = 0;
    h.workspace.listWorktrees = async () => {
      passes++;
      return [];
    };
    const session = h.newSession();
    await session.open();
    await session.startLive();
    await h.clock.advance(3 * HOUR);
    assert.equal(passes, 0);
    await session.close();
  });
});

describe("a fleet worker's retention (no claims: its own runs and the touch time decide)", () => {
  /** A worker's janitor as `factory worker` wires it: no claimOf, and the issues of the runs it holds. */
  function workerJanitor() {
    const clock = new FakeClock(NOW);
    const workspace = new InMemoryWorkspace({ now: () => clock.now() });
    const runsHere = new Set<string>();
    const janitor = new WorktreeJanitor({ workspace, teamRunning: (issueKey) => runsHere.has(issueKey), clock, log: createSilentLogger() });
    const listed = async () => (await workspace.listWorktrees()).map((record) => record.issueKey).sort();
    return { clock, workspace, runsHere, janitor, listed };
  }

  test('at start and every interval: an old worktree of an issue not run here goes (its uncommitted work to a leftover ref); a running or recent one stays', async () => {
    const { clock, workspace, runsHere, janitor, listed } = workerJanitor();
    const old = await workspace.prepare({ repo: '/cache/app', issueKey: 'OLD-1', branch: 'factory/OLD-1' });
    await workspace.prepare({ repo: '/cache/app', issueKey: 'RUN-1', branch: 'factory/RUN-1' });
    workspace.leaveChanges(old);
    await clock.advance(8 * DAY);
    await workspace.prepare({ repo: '/cache/app', issueKey: 'NEW-1', branch: 'factory/NEW-1' });
    runsHere.add('RUN-1');

    janitor.start({ intervalMs: HOUR, keepFinishedForMs: 7 * DAY });
    await settle();
    assert.deepEqual(await listed(), ['NEW-1', 'RUN-1'], 'the pass at start removed the old one only');
    assert.deepEqual(
      [...workspace.leftovers.keys()].map((ref) => ref.replace(/\d{8}T\d{6}Z$/, '<time>')),
      ['refs/factory/leftover/OLD-1-<time>'],
    );

    await clock.advance(7 * DAY);
    await settle();
    assert.deepEqual(await listed(), ['NEW-1', 'RUN-1'], 'exactly the period since NEW-1 was touched: kept');
    await clock.advance(HOUR);
    await settle();
    assert.deepEqual(await listed(), ['RUN-1'], 'the next hourly pass removed NEW-1; RUN-1 runs here, however old');

    runsHere.delete('RUN-1');
    await clock.advance(HOUR);
    await settle();
    assert.deepEqual(await listed(), [], 'once its run ended here, its untouched worktree goes too');
    await janitor.close();
  });

  test('a run of the issue handed to the worker between the decision and the removal keeps the worktree (asked again under the lock)', async () => {
    const { clock, workspace, runsHere, janitor, listed } = workerJanitor();
    await workspace.prepare({ repo: '/cache/app', issueKey: 'RACE-1', branch: 'factory/RACE-1' });
    await clock.advance(8 * DAY);
    const remove = workspace.removeWorktree.bind(workspace);
    // The run arrives after the pass decided, before the removal takes the repository lock and asks again.
    workspace.removeWorktree = (worktree, options) => {
      runsHere.add('RACE-1');
      return remove(worktree, options);
    };
    const report = await janitor.prune({ keepFinishedForMs: 7 * DAY, dryRun: false });
    assert.deepEqual(
      report.worktrees.map((result) => result.action),
      ['spared'],
    );
    assert.deepEqual(await listed(), ['RACE-1']);
  });
});
