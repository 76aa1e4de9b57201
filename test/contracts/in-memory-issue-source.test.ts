import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InMemoryIssueSource } from '../../src/adapters/issue-source/in-memory-issue-source.js';
import { FakeClock, settle } from '../../src/adapters/clock/fake-clock.js';
import { isFactoryError } from '../../src/errors.js';
import { describeIssueSourceContract, EventRecorder, makeOutcome } from './issue-source.contract.js';

describeIssueSourceContract('InMemoryIssueSource', async () => {
  const source = new InMemoryIssueSource({ clock: new FakeClock(), probes: true });
  return {
    source,
    putIssue: async (draft) => void source.put(draft),
    removeIssue: async (key) => void source.remove(key),
    putUnreadable: async (name) => {
      const location = source.locationOf(name);
      source.putUnreadable(location, `${name}: not valid JSON`);
      return location;
    },
    readWrittenOutcome: async (key) => {
      const last = source.writeBacks.filter((record) => record.issue.key === key).at(-1);
      return last === undefined ? undefined : JSON.stringify(last.outcome);
    },
    dispose: async () => undefined,
  };
});

describe('InMemoryIssueSource, the controls daemon tests use', () => {
  it('announces a put that changes nothing, as a touched file would, and keeps its revision', async () => {
    const source = new InMemoryIssueSource({ clock: new FakeClock() });
    const recorder = new EventRecorder();
    await source.subscribe(recorder.handlers);

    const first = source.put({ key: 'FAC-1', title: 'Add login', labels: ['factory'] });
    const second = source.put({ key: 'FAC-1', title: 'Add login', labels: ['factory'] });
    await settle();

    assert.equal(second.revision, first.revision);
    assert.equal(second.createdAtMs, first.createdAtMs, 'a re-put keeps the age of the issue');
    assert.deepEqual(
      recorder.events.map((event) => event.kind),
      ['changed', 'changed'],
    );
  });

  it('delivers events asynchronously, never inside put()', async () => {
    const source = new InMemoryIssueSource({ clock: new FakeClock() });
    const recorder = new EventRecorder();
    await source.subscribe(recorder.handlers);

    source.put({ key: 'FAC-1', title: 'Add login' });
    assert.equal(recorder.events.length, 0);
    await settle();
    assert.equal(recorder.events.length, 1);
  });

  it('records writeBacks in order and can be told to fail them', async () => {
    const clock = new FakeClock();
    const source = new InMemoryIssueSource({ clock });
    const issue = source.put({ key: 'FAC-1', title: 'Add login' });

    await source.writeBack(issue, makeOutcome(issue, { attempt: 1, reason: 'failed' }));
    await clock.advance(1000);
    await source.writeBack(issue, makeOutcome(issue, { attempt: 2 }));
    source.failWriteBacksWith(new Error('disk full'));
    await assert.rejects(source.writeBack(issue, makeOutcome(issue, { attempt: 3 })), /disk full/);

    assert.deepEqual(
      source.writeBacks.map((record) => [record.outcome.attempt, record.outcome.reason, record.atMs - source.writeBacks[0]!.atMs]),
      [
        [1, 'failed', 0],
        [2, 'succeeded', 1000],
      ],
    );
  });

  it('breaks subscriptions on demand and announces overflows', async () => {
    const source = new InMemoryIssueSource({ clock: new FakeClock() });
    const recorder = new EventRecorder();
    await source.subscribe(recorder.handlers);

    source.announceOverflow();
    await settle();
    source.breakSubscriptions(new Error('watch lost'));
    source.put({ key: 'FAC-1', title: 'After the break' });
    await settle();

    assert.deepEqual(
      recorder.events.map((event) => event.kind),
      ['overflow'],
    );
    assert.deepEqual(
      recorder.errors.map((error) => error.message),
      ['watch lost'],
    );
    assert.equal(source.openSubscriptionCount, 0);
  });

  it('offers probe() only when asked to, so daemon tests opt in to probe traffic', () => {
    assert.equal(new InMemoryIssueSource({ clock: new FakeClock() }).probe, undefined);
    assert.equal(typeof new InMemoryIssueSource({ clock: new FakeClock(), probes: true }).probe, 'function');
  });

  it('wedges open subscriptions silently, and a new subscription heals it', async () => {
    const source = new InMemoryIssueSource({ clock: new FakeClock(), probes: true });
    const wedged = new EventRecorder();
    await source.subscribe(wedged.handlers);

    source.wedgeSubscriptions();
    source.put({ key: 'FAC-1', title: 'Unheard' });
    await source.probe!('lost');
    const fresh = new EventRecorder();
    await source.subscribe(fresh.handlers);
    await source.probe!('seen');
    await settle();

    assert.deepEqual(wedged.events, []);
    assert.deepEqual(wedged.errors, [], 'a wedge is silent: no error');
    assert.deepEqual(
      fresh.events.map((event) => [event.kind, event.token]),
      [['probe', 'seen']],
    );
  });

  it('ends a subscription through onError when its handler throws', async () => {
    const source = new InMemoryIssueSource({ clock: new FakeClock() });
    const errors: Error[] = [];
    await source.subscribe({
      onEvent: () => {
        throw new Error('handler bug');
      },
      onError: (error) => void errors.push(error),
    });

    source.put({ key: 'FAC-1', title: 'One' });
    source.put({ key: 'FAC-2', title: 'Two' });
    await settle();

    assert.deepEqual(
      errors.map((error) => error.message),
      ['handler bug'],
    );
  });

  it('reports an unreadable record on read with its reason, and counts scans', async () => {
    const source = new InMemoryIssueSource({ clock: new FakeClock() });
    source.putUnreadable(source.locationOf('FAC-9'), 'FAC-9.json: title: missing; add a title');

    await assert.rejects(source.read('FAC-9'), (error) => isFactoryError(error, 'FACTORY_ISSUE_INVALID') && /title: missing/.test(error.message));
    await source.scan();
    await source.scan();
    assert.equal(source.scanCount, 2);
  });
});
