import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFactoryError } from '../../src/errors.js';
import type { Issue } from '../../src/domain/issue.js';
import type { RunOutcome } from '../../src/domain/run.js';
import type { IssueSource, IssueSourceEvent, IssueSubscription } from '../../src/ports/issue-source.js';
import { waitFor } from '../support/sandbox.js';

/**
 * The behaviour every IssueSource owes the daemon, run against the real
 * adapter and the in-memory one alike, so daemon tests on the fake mean
 * something. (Not named *.test.ts: it is a suite to call, not a test file.)
 */

export interface IssueDraft {
  readonly key: string;
  readonly title: string;
  readonly body?: string;
  readonly labels?: readonly string[];
  readonly state?: string;
  readonly priority?: number;
}

/** One fresh, empty source plus the means to change what it holds, as a user (or remote system) would. */
export interface IssueSourceHarness {
  readonly source: IssueSource;
  /** Adds the issue, or replaces the one with the same key. */
  putIssue(draft: IssueDraft): Promise<void>;
  removeIssue(key: string): Promise<void>;
  /** Adds a record the source cannot read; returns the path scans must report it under. */
  putUnreadable(name: string): Promise<string>;
  /**
   * The key the source gives the issue put as `draftKey` (default: the same).
   * Sources whose keys come from the remote system (GitHub's `owner/name#N`)
   * cannot honour a chosen key; the suite compares through this mapping.
   */
  keyFor?(draftKey: string): string;
  /** The outcome last written back for `key`, as text, or undefined when there is none. */
  readWrittenOutcome(key: string): Promise<string | undefined>;
  dispose(): Promise<void>;
}

/** Collects events from a subscription for assertions. */
export class EventRecorder {
  readonly events: IssueSourceEvent[] = [];
  readonly errors: Error[] = [];
  readonly handlers = {
    onEvent: (event: IssueSourceEvent): void => void this.events.push(event),
    onError: (error: Error): void => void this.errors.push(error),
  };

  /** Waits for an event about `path` and returns the events that arrived up to and including it. */
  async until(path: string, kind?: IssueSourceEvent['kind']): Promise<IssueSourceEvent[]> {
    const index = await waitFor(
      `a ${kind ?? 'any'} event for ${path}`,
      () => {
        const found = this.events.findIndex((event) => event.path === path && (kind === undefined || event.kind === kind));
        return found === -1 ? undefined : found + 1;
      },
      3_000,
      5,
    );
    return this.events.slice(0, index);
  }
}

export function makeOutcome(issue: Issue, overrides: Partial<RunOutcome> = {}): RunOutcome {
  return {
    runId: `run-${issue.key}-1`,
    issueKey: issue.key,
    revision: issue.revision,
    attempt: 1,
    reason: 'succeeded',
    detail: 'implementer and reviewer exited 0',
    branch: `factory/${issue.key}`,
    worktree: `/tmp/worktrees/${issue.key}`,
    agents: [
      {
        role: 'implementer',
        agentName: `${issue.key}-implementer`,
        exitCode: 0,
        signal: null,
        reason: 'succeeded',
        logPath: `/tmp/logs/${issue.key}-implementer.log`,
        startedAtMs: Date.UTC(2026, 0, 1, 9, 0, 0),
        endedAtMs: Date.UTC(2026, 0, 1, 9, 4, 5),
      },
    ],
    startedAtMs: Date.UTC(2026, 0, 1, 9, 0, 0),
    endedAtMs: Date.UTC(2026, 0, 1, 9, 6, 0),
    ...overrides,
  };
}

function findIssueWithKey(issues: readonly Issue[], key: string): Issue {
  const issue = issues.find((candidate) => candidate.key === key);
  assert.ok(issue, `expected an issue with key ${key}, got keys ${JSON.stringify(issues.map((i) => i.key))}`);
  return issue;
}

export function describeIssueSourceContract(name: string, createHarness: () => Promise<IssueSourceHarness>): void {
  describe(`IssueSource contract: ${name}`, () => {
    let harness: IssueSourceHarness;
    const subscriptions: IssueSubscription[] = [];
    const sourceKey = (draftKey: string): string => harness.keyFor?.(draftKey) ?? draftKey;
    const sourceKeys = (...draftKeys: string[]): string[] => draftKeys.map(sourceKey).sort();
    const issueWithKey = (issues: readonly Issue[], draftKey: string): Issue => findIssueWithKey(issues, sourceKey(draftKey));
    const subscribe = async (recorder: EventRecorder): Promise<IssueSubscription> => {
      const subscription = await harness.source.subscribe(recorder.handlers);
      subscriptions.push(subscription);
      return subscription;
    };

    // A fresh source per test keeps events and files of one test out of the next.
    const withFreshHarness = (title: string, body: () => Promise<void>): void => {
      it(title, async () => {
        harness = await createHarness();
        try {
          await body();
        } finally {
          await Promise.all(subscriptions.splice(0).map((subscription) => subscription.close()));
          await harness.dispose();
        }
      });
    };

    withFreshHarness('scan returns every issue with the fields it was given', async () => {
      await harness.putIssue({ key: 'FAC-1', title: 'Add login', body: 'Use OAuth.', labels: ['factory', 'api'], state: 'ready', priority: 2 });
      await harness.putIssue({ key: 'FAC-2', title: 'Fix footer', labels: [], state: 'backlog' });

      const { issues, skipped } = await harness.source.scan();

      assert.deepEqual(skipped, []);
      assert.deepEqual(issues.map((issue) => issue.key).sort(), sourceKeys('FAC-1', 'FAC-2'));
      const first = issueWithKey(issues, 'FAC-1');
      assert.equal(first.title, 'Add login');
      assert.equal(first.body, 'Use OAuth.');
      assert.deepEqual([...first.labels].sort(), ['api', 'factory']);
      assert.equal(first.state, 'ready');
      assert.equal(first.priority, 2);
      assert.match(first.revision, /^[0-9a-f]{64}$/);
      assert.ok(first.location.length > 0);
      assert.equal(issueWithKey(issues, 'FAC-2').priority, undefined);
    });

    withFreshHarness('an unreadable record is skipped with a reason while the others load', async () => {
      await harness.putIssue({ key: 'FAC-1', title: 'One', state: 'ready' });
      const brokenPath = await harness.putUnreadable('FAC-2');
      await harness.putIssue({ key: 'FAC-3', title: 'Three', state: 'ready' });

      const { issues, skipped } = await harness.source.scan();

      assert.deepEqual(issues.map((issue) => issue.key).sort(), sourceKeys('FAC-1', 'FAC-3'));
      assert.equal(skipped.length, 1);
      assert.equal(skipped[0]?.path, brokenPath);
      assert.ok((skipped[0]?.reason ?? '').length > 0, 'a skip must say why');
    });

    withFreshHarness('the revision changes exactly when a field that affects a run changes', async () => {
      const base = { key: 'FAC-1', title: 'Add login', body: 'Use OAuth.', labels: ['factory', 'api'], state: 'ready' };
      const revisionAfter = async (draft: IssueDraft): Promise<string> => {
        await harness.putIssue(draft);
        return issueWithKey((await harness.source.scan()).issues, 'FAC-1').revision;
      };

      const original = await revisionAfter(base);
      assert.equal(await revisionAfter(base), original, 'rewriting the same content must keep the revision');
      assert.equal(await revisionAfter({ ...base, labels: ['api', 'factory'] }), original, 'label order is not content');
      assert.equal(await revisionAfter({ ...base, priority: 1 }), original, 'priority orders runs but does not change one');

      const changed = [
        await revisionAfter({ ...base, title: 'Add login page' }),
        await revisionAfter({ ...base, body: 'Use OAuth 2.1.' }),
        await revisionAfter({ ...base, labels: ['factory'] }),
        await revisionAfter({ ...base, state: 'in-review' }),
      ];
      assert.equal(new Set([original, ...changed]).size, 5, 'each change must make a revision never seen before');
    });

    withFreshHarness('read finds an issue by key and by location, and names what it cannot find', async () => {
      await harness.putIssue({ key: 'FAC-1', title: 'Add login', state: 'ready' });
      const scanned = issueWithKey((await harness.source.scan()).issues, 'FAC-1');

      assert.deepEqual(await harness.source.read(sourceKey('FAC-1')), scanned);
      assert.deepEqual(await harness.source.read(scanned.location), scanned);
      await assert.rejects(harness.source.read(sourceKey('FAC-404')), (error) => isFactoryError(error, 'FACTORY_ISSUE_NOT_FOUND') && error.message.includes(sourceKey('FAC-404')));
    });

    withFreshHarness('a removed issue leaves the scan', async () => {
      await harness.putIssue({ key: 'FAC-1', title: 'One', state: 'ready' });
      await harness.putIssue({ key: 'FAC-2', title: 'Two', state: 'ready' });
      await harness.removeIssue('FAC-1');

      assert.deepEqual(
        (await harness.source.scan()).issues.map((issue) => issue.key),
        sourceKeys('FAC-2'),
      );
    });

    withFreshHarness('a subscription announces a new, a changed and a removed issue, naming where it lives', async () => {
      const recorder = new EventRecorder();
      await subscribe(recorder);

      await harness.putIssue({ key: 'FAC-1', title: 'Add login', state: 'ready' });
      const location = issueWithKey((await harness.source.scan()).issues, 'FAC-1').location;
      await recorder.until(location, 'changed');

      const seenBeforeEdit = recorder.events.length;
      await harness.putIssue({ key: 'FAC-1', title: 'Add login page', state: 'ready' });
      await waitFor('an event for the edit', () => recorder.events.slice(seenBeforeEdit).some((event) => event.path === location && event.kind === 'changed'), 3_000, 5);

      await harness.removeIssue('FAC-1');
      await recorder.until(location, 'removed');
      assert.deepEqual(recorder.errors, []);
    });

    withFreshHarness('writeBack records the outcome without announcing it to subscribers', async () => {
      await harness.putIssue({ key: 'FAC-1', title: 'Add login', state: 'ready' });
      const issue = await harness.source.read(sourceKey('FAC-1'));
      const recorder = new EventRecorder();
      await subscribe(recorder);

      await harness.source.writeBack(issue, makeOutcome(issue, { reason: 'failed', detail: 'implementer exited 3' }));
      // Events arrive in order, so once an event for a later change is in,
      // any event the writeback caused would be in too.
      await harness.putIssue({ key: 'FAC-SENTINEL', title: 'Sentinel', state: 'backlog' });
      const sentinel = issueWithKey((await harness.source.scan()).issues, 'FAC-SENTINEL');
      const events = await recorder.until(sentinel.location);

      assert.deepEqual(
        events.filter((event) => event.path !== sentinel.location),
        [],
        'the writeback must not produce an event the daemon would act on',
      );
      const written = await harness.readWrittenOutcome('FAC-1');
      assert.ok(written, 'the outcome must be written back');
      assert.match(written, /failed/);
      assert.match(written, /implementer exited 3/);
      assert.ok(written.includes(`run-${issue.key}-1`), 'the written outcome names the run');
      assert.deepEqual((await harness.source.scan()).issues.map((scanned) => scanned.key).sort(), sourceKeys('FAC-1', 'FAC-SENTINEL'));
    });

    withFreshHarness('a probe, when the source offers one, comes back as a probe event and nothing else', async () => {
      const { source } = harness;
      if (source.probe === undefined) return;
      await harness.putIssue({ key: 'FAC-1', title: 'Add login', state: 'ready' });
      const before = await source.scan();
      const recorder = new EventRecorder();
      await subscribe(recorder);

      await source.probe('probe-token-1');
      await waitFor('the probe echoed back', () => recorder.events.some((event) => event.kind === 'probe' && event.token === 'probe-token-1'), 3_000, 5);

      assert.deepEqual(
        recorder.events.filter((event) => event.kind !== 'probe'),
        [],
        'a probe must not look like an issue change',
      );
      assert.deepEqual(await source.scan(), before, 'a probe must not show up as an issue or a skipped file');
    });

    withFreshHarness('close() is idempotent and stops delivery', async () => {
      const closed = new EventRecorder();
      const subscription = await subscribe(closed);
      await subscription.close();
      await subscription.close();
      const stillOpen = new EventRecorder();
      await subscribe(stillOpen);

      await harness.putIssue({ key: 'FAC-1', title: 'Add login', state: 'ready' });
      const location = issueWithKey((await harness.source.scan()).issues, 'FAC-1').location;
      await stillOpen.until(location);

      assert.deepEqual(closed.events, []);
      assert.deepEqual(closed.errors, []);
    });
  });
}
