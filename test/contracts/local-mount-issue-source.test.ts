import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalMountIssueSource } from '../../src/adapters/issue-source/local-mount-issue-source.js';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { isFactoryError } from '../../src/errors.js';
import { describeIssueSourceContract, EventRecorder, makeOutcome } from './issue-source.contract.js';
import { waitFor } from '../support/sandbox.js';

/** A skip as a person reads it; its revision is tested on its own. */
const pathAndReason = ({ path, reason }: { path: string; reason: string }): { path: string; reason: string } => ({ path, reason });

async function makeMount(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'factory-mount-'));
}

describeIssueSourceContract('LocalMountIssueSource', async () => {
  const root = await makeMount();
  const source = new LocalMountIssueSource({ root, clock: new SystemClock() });
  return {
    source,
    putIssue: (draft) => writeFile(join(root, `${draft.key}.json`), JSON.stringify({ state: 'ready', ...draft })),
    removeIssue: (key) => rm(join(root, `${key}.json`)),
    putUnreadable: async (name) => {
      const path = join(root, `${name}.json`);
      // A torn write: the first half of a JSON issue.
      await writeFile(path, '{"key": "FAC-2", "tit');
      return path;
    },
    readWrittenOutcome: (key) => readFile(source.outcomePathFor(key), 'utf8').catch(() => undefined),
    dispose: () => rm(root, { recursive: true, force: true }),
  };
});

describe('LocalMountIssueSource', () => {
  let root: string;
  let source: LocalMountIssueSource;
  const put = (name: string, content: unknown): Promise<void> => writeFile(join(root, name), typeof content === 'string' ? content : JSON.stringify(content, null, 2));

  before(async () => {
    root = await makeMount();
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Each test gets an empty mount and a fresh source (no cache carried over). */
  const freshMount = async (): Promise<void> => {
    for (const entry of await readdir(root)) await rm(join(root, entry), { recursive: true, force: true });
    source = new LocalMountIssueSource({ root, clock: new SystemClock() });
  };

  describe('scan', () => {
    it('reads JSON and Markdown issues with the same fields', async () => {
      await freshMount();
      await put('FAC-1.json', { key: 'FAC-1', title: 'Add login', body: 'Use OAuth.', labels: ['factory'], state: 'ready', priority: 2, createdAt: '2026-01-02T03:04:05Z' });
      await put('FAC-2.md', ['---', 'key: FAC-2', 'title: "Fix #12: footer"', 'labels:', '  - factory', '  - web', 'state: ready', 'priority: 1', '---', '', 'The footer overlaps.', ''].join('\n'));

      const { issues, skipped } = await source.scan();

      assert.deepEqual(skipped, []);
      assert.deepEqual(
        issues.map(({ key, title, body, labels, state, priority, createdAtMs, location }) => ({ key, title, body, labels, state, priority, createdAtMs, location })),
        [
          { key: 'FAC-1', title: 'Add login', body: 'Use OAuth.', labels: ['factory'], state: 'ready', priority: 2, createdAtMs: Date.UTC(2026, 0, 2, 3, 4, 5), location: join(root, 'FAC-1.json') },
          {
            key: 'FAC-2',
            title: 'Fix #12: footer',
            body: 'The footer overlaps.',
            labels: ['factory', 'web'],
            state: 'ready',
            priority: 1,
            createdAtMs: issues[1]!.createdAtMs,
            location: join(root, 'FAC-2.md'),
          },
        ],
      );
    });

    it('skips malformed files with a reason naming the file and field, and loads the rest', async () => {
      await freshMount();
      await put('FAC-1.json', { key: 'FAC-1', title: 'Good', state: 'ready' });
      await put('FAC-2.json', { key: 'FAC-2', title: 'Bad labels', labels: 'x', state: 'ready' });
      await put('FAC-3.json', '');
      await put('FAC-4.md', 'Just text, no front matter.');
      await put('FAC-5.md', '---\ntitle: Good too\nstate: ready\n---\nBody.');

      const { issues, skipped } = await source.scan();

      assert.deepEqual(
        issues.map((issue) => issue.key),
        ['FAC-1', 'FAC-5'],
      );
      assert.deepEqual(skipped.map(pathAndReason), [
        { path: join(root, 'FAC-2.json'), reason: 'FAC-2.json: labels: expected an array of strings, got a string' },
        { path: join(root, 'FAC-3.json'), reason: 'FAC-3.json: file is empty' },
        {
          path: join(root, 'FAC-4.md'),
          reason: 'FAC-4.md: expected front matter: the first line must be --- followed by fields such as "title: ..." and a closing ---',
        },
      ]);
    });

    it('keeps the revision across a whitespace-only reformat and a touch', async () => {
      await freshMount();
      const issue = { key: 'FAC-1', title: 'Add login', body: 'Use OAuth.', labels: ['factory', 'api'], state: 'ready' };
      await put('FAC-1.json', JSON.stringify(issue));
      const before = (await source.scan()).issues[0]!.revision;

      await put('FAC-1.json', `\n\n${JSON.stringify(issue, null, 4).replace(/\n/g, '\r\n')}\n\n`);
      const afterReformat = (await source.scan()).issues[0]!.revision;
      const later = new Date(Date.now() + 60_000);
      await utimes(join(root, 'FAC-1.json'), later, later);
      const afterTouch = (await source.scan()).issues[0]!.revision;
      await put('FAC-1.json', { ...issue, title: 'Add login page' });
      const afterEdit = (await source.scan()).issues[0]!.revision;

      assert.equal(afterReformat, before);
      assert.equal(afterTouch, before);
      assert.notEqual(afterEdit, before);
    });

    it('sees a same-size edit made right after a scan, even with its mtime set back', async () => {
      await freshMount();
      await put('FAC-1.json', { key: 'FAC-1', title: 'AAAA', state: 'ready' });
      const path = join(root, 'FAC-1.json');
      const pinned = new Date('2026-01-01T00:00:00Z');
      await utimes(path, pinned, pinned);
      assert.equal((await source.scan()).issues[0]!.title, 'AAAA');

      // Same size and mtime as the cached read: a cache keyed on those alone would serve the old title.
      await put('FAC-1.json', { key: 'FAC-1', title: 'BBBB', state: 'ready' });
      await utimes(path, pinned, pinned);

      assert.equal((await source.scan()).issues[0]!.title, 'BBBB');
    });

    it('skips the later file by name when two files claim one key, naming both', async () => {
      await freshMount();
      await put('FAC-1.json', { key: 'FAC-1', title: 'First', state: 'ready' });
      await put('FAC-1.md', '---\nkey: FAC-1\ntitle: Second\nstate: ready\n---\n');

      const { issues, skipped } = await source.scan();

      assert.deepEqual(
        issues.map((issue) => issue.title),
        ['First'],
      );
      assert.deepEqual(skipped.map(pathAndReason), [{ path: join(root, 'FAC-1.md'), reason: 'FAC-1.md: duplicate key "FAC-1", already used by FAC-1.json; give one of them another key' }]);
    });

    it('applies the duplicate rule when a file is read by path, as the daemon does on events', async () => {
      await freshMount();
      await put('FAC-1.json', { key: 'FAC-1', title: 'First', state: 'ready' });
      await put('FAC-1.md', '---\nkey: FAC-1\ntitle: Second\nstate: ready\n---\n');

      // No scan yet: the first read learns who holds which key.
      await assert.rejects(
        source.read(join(root, 'FAC-1.md')),
        (error) => isFactoryError(error, 'FACTORY_ISSUE_INVALID') && error.message === 'FAC-1.md: duplicate key "FAC-1", already used by FAC-1.json; give one of them another key',
      );
      assert.equal((await source.read(join(root, 'FAC-1.json'))).title, 'First');

      // Once the earlier file gives the key up, the later one holds it.
      await put('FAC-1.json', { key: 'FAC-2', title: 'First, renumbered', state: 'ready' });
      assert.equal((await source.read(join(root, 'FAC-1.md'))).title, 'Second');
    });

    it('a file added with a key another file holds is the duplicate, whatever its name; a fresh start gives the key to the file named after it', async () => {
      await freshMount();
      await put('CASE-1.json', { key: 'CASE-1', title: 'First', state: 'ready' });
      assert.equal((await source.read(join(root, 'CASE-1.json'))).title, 'First');
      await put('AAA.json', { key: 'CASE-1', title: 'Added later', state: 'ready' });
      const reason = 'AAA.json: duplicate key "CASE-1", already used by CASE-1.json; give one of them another key';

      await assert.rejects(source.read(join(root, 'AAA.json')), (error) => isFactoryError(error, 'FACTORY_ISSUE_INVALID') && error.message === reason);
      const { issues, skipped } = await source.scan();
      assert.deepEqual(
        issues.map((issue) => issue.title),
        ['First'],
      );
      assert.deepEqual(skipped.map(pathAndReason), [{ path: join(root, 'AAA.json'), reason }]);

      const restarted = new LocalMountIssueSource({ root, clock: new SystemClock() });
      assert.deepEqual(
        (await restarted.scan()).issues.map((issue) => issue.title),
        ['First'],
      );
    });

    it('ignores dotfiles, temp and backup files, subfolders, other extensions and its own outcome files', async () => {
      await freshMount();
      await put('FAC-1.json', { title: 'Keyed by file name', state: 'ready' });
      const wouldBeValid = { title: 'Must be ignored', state: 'ready' };
      await put('.FAC-2.json', wouldBeValid);
      await put('.FAC-3.json.1234.ab12.tmp', wouldBeValid);
      await put('FAC-4.json~', wouldBeValid);
      await put('FAC-5.json.swp', wouldBeValid);
      await put('notes.txt', 'not an issue');
      await put('FAC-1.outcome.md', '# FAC-1: succeeded\n');
      await mkdir(join(root, 'archive'));
      await writeFile(join(root, 'archive', 'FAC-6.json'), JSON.stringify(wouldBeValid));
      await mkdir(join(root, 'folder.json'));

      const { issues, skipped } = await source.scan();

      assert.deepEqual(
        issues.map((issue) => issue.key),
        ['FAC-1'],
      );
      assert.deepEqual(skipped, []);
    });

    it('derives a missing key from the file name only when the name is a valid key', async () => {
      await freshMount();
      await put('FAC-7.md', '---\ntitle: Keyed by name\nstate: ready\n---\n');
      await put('my issue.json', { title: 'No key, bad name', state: 'ready' });

      const { issues, skipped } = await source.scan();

      assert.deepEqual(
        issues.map((issue) => issue.key),
        ['FAC-7'],
      );
      assert.equal(skipped.length, 1);
      assert.match(skipped[0]!.reason, /^my issue\.json: key: missing, and the file name is not a valid key/);
    });

    it('skips a file over the size limit without reading it into an issue', async () => {
      await freshMount();
      await put('FAC-1.json', JSON.stringify({ key: 'FAC-1', title: 'Huge', state: 'ready', body: 'x'.repeat(1024 * 1024) }));
      await put('FAC-2.json', { key: 'FAC-2', title: 'Small', state: 'ready' });

      const { issues, skipped } = await source.scan();

      assert.deepEqual(
        issues.map((issue) => issue.key),
        ['FAC-2'],
      );
      assert.match(skipped[0]?.reason ?? '', /^FAC-1\.json: file is \d+ bytes, larger than the 1048576-byte limit/);
    });

    it('does not follow links out of the mount, and never quotes a file in a reason', async () => {
      await freshMount();
      const outside = await mkdtemp(join(tmpdir(), 'factory-outside-'));
      try {
        const secret = 'TOKEN-do-not-leak-4711';
        // A well-formed issue outside the mount: following the link would dispatch it.
        await writeFile(join(outside, 'issue.json'), JSON.stringify({ key: 'SEC-1', title: secret, state: 'ready', labels: ['factory'] }));
        // Not JSON: the parser's own message would quote these bytes.
        await writeFile(join(outside, 'shadow'), `root:${secret}:19000:0:99999:7:::\n`);
        await symlink(join(outside, 'issue.json'), join(root, 'LEAK-1.json'));
        await symlink(join(outside, 'shadow'), join(root, 'LEAK-2.json'));
        await symlink(join(outside, 'shadow'), join(root, 'LEAK-3.md'));
        // A relative link, and a link to a link: what counts is where the chain ends.
        await symlink(relative(root, join(outside, 'issue.json')), join(root, 'LEAK-4.json'));
        await symlink('LEAK-1.json', join(root, 'LEAK-5.json'));
        // Links that stay inside the mount are followed.
        await mkdir(join(root, 'drafts'));
        await put('drafts/IN-1.json', { key: 'IN-1', title: 'Inside', state: 'ready' });
        await symlink(join('drafts', 'IN-1.json'), join(root, 'IN-1.json'));

        const { issues, skipped } = await source.scan();

        assert.deepEqual(
          issues.map((issue) => issue.key),
          ['IN-1'],
        );
        const refused = 'links outside the mount are not followed';
        assert.deepEqual(
          skipped.map(pathAndReason),
          ['LEAK-1.json', 'LEAK-2.json', 'LEAK-3.md', 'LEAK-4.json', 'LEAK-5.json'].map((name) => ({ path: join(root, name), reason: `${name}: ${refused}` })),
        );
        await assert.rejects(source.read(join(root, 'LEAK-2.json')), (error) => isFactoryError(error, 'FACTORY_ISSUE_INVALID') && error.message === `LEAK-2.json: ${refused}`);
        await assert.rejects(source.read('SEC-1'), (error) => isFactoryError(error, 'FACTORY_ISSUE_NOT_FOUND') && !error.message.includes(secret));

        // A mount whose own path is a link is still the mount.
        const linkedRoot = join(outside, 'mount-link');
        await symlink(root, linkedRoot);
        const viaLink = await new LocalMountIssueSource({ root: linkedRoot, clock: new SystemClock() }).scan();
        assert.deepEqual(
          viaLink.issues.map((issue) => issue.key),
          ['IN-1'],
        );
        assert.equal(viaLink.skipped.length, 5);
        assert.ok(!JSON.stringify([skipped, viaLink.skipped]).includes(secret));
      } finally {
        await rm(outside, { recursive: true, force: true });
      }
    });

    it('scans 1,000 files correctly, and again from its cache', async () => {
      await freshMount();
      const count = 1000;
      const names: string[] = [];
      for (let batch = 0; batch < count; batch += 100) {
        await Promise.all(
          Array.from({ length: 100 }, (_, offset) => {
            const n = batch + offset;
            const name = n % 2 === 0 ? `BULK-${n}.json` : `BULK-${n}.md`;
            names.push(name);
            return n % 2 === 0
              ? put(name, { key: `BULK-${n}`, title: `Issue ${n}`, labels: ['factory'], state: 'ready', priority: n % 5 })
              : put(name, `---\nkey: BULK-${n}\ntitle: Issue ${n}\nlabels: [factory]\nstate: ready\npriority: ${n % 5}\n---\nBody of ${n}.\n`);
          }),
        );
      }
      await put('BULK-broken.json', '{"key": ');

      const first = await source.scan();
      const second = await source.scan();

      for (const scan of [first, second]) {
        assert.equal(scan.issues.length, count);
        assert.deepEqual(new Set(scan.issues.map((issue) => issue.key)), new Set(Array.from({ length: count }, (_, n) => `BULK-${n}`)));
        assert.ok(scan.issues.every((issue) => issue.title === `Issue ${issue.key.slice('BULK-'.length)}` && issue.labels[0] === 'factory'));
        assert.deepEqual(
          scan.skipped.map((entry) => relative(root, entry.path)),
          ['BULK-broken.json'],
        );
      }
      assert.deepEqual(second.issues, first.issues);
    });

    it('fails with a coded error naming the folder when the mount is missing', async () => {
      const missing = new LocalMountIssueSource({ root: join(root, 'nope'), clock: new SystemClock() });
      await assert.rejects(missing.scan(), (error) => isFactoryError(error, 'FACTORY_ISSUE_SOURCE_UNAVAILABLE') && error.message.includes(join(root, 'nope')));
    });
  });

  describe('read', () => {
    it('reads by absolute path, by path relative to the current folder, and by bare file name in the mount', async () => {
      await freshMount();
      await put('FAC-1.json', { key: 'FAC-1', title: 'Add login', state: 'ready' });
      const absolute = join(root, 'FAC-1.json');

      assert.equal((await source.read(absolute)).key, 'FAC-1');
      assert.equal((await source.read(relative(process.cwd(), absolute))).key, 'FAC-1');
      assert.equal((await source.read('FAC-1.json')).location, absolute);
    });

    it('refuses outcome files and dotfiles as issues, and reports missing files', async () => {
      await freshMount();
      await put('FAC-1.outcome.md', '# FAC-1: succeeded\n');
      await put('.FAC-2.json', { key: 'FAC-2', title: 'Hidden', state: 'ready' });

      await assert.rejects(source.read(join(root, 'FAC-1.outcome.md')), (error) => isFactoryError(error, 'FACTORY_ISSUE_INVALID'));
      await assert.rejects(source.read(join(root, '.FAC-2.json')), (error) => isFactoryError(error, 'FACTORY_ISSUE_INVALID'));
      await assert.rejects(source.read(join(root, 'FAC-3.json')), (error) => isFactoryError(error, 'FACTORY_ISSUE_NOT_FOUND'));
    });

    it('gives a skipped file the same revision on every scan and on read, and a new one when the file changes', async () => {
      await put('REV-1.json', '{"key": "REV-1", "title": ');
      const first = (await source.scan()).skipped.find((entry) => entry.path === join(root, 'REV-1.json'));
      const again = (await source.scan()).skipped.find((entry) => entry.path === join(root, 'REV-1.json'));
      assert.ok(first?.revision, 'a skipped file carries its revision');
      assert.equal(again?.revision, first.revision, 'an unchanged file keeps its revision');
      await assert.rejects(source.read(join(root, 'REV-1.json')), (error) => isFactoryError(error, 'FACTORY_ISSUE_INVALID') && error.details.revision === first.revision);
      await put('REV-1.json', '{"key": "REV-1", "title": "longer but still broken",');
      const edited = (await source.scan()).skipped.find((entry) => entry.path === join(root, 'REV-1.json'));
      assert.ok(edited?.revision && edited.revision !== first.revision, 'a changed file has a new revision');
      await rm(join(root, 'REV-1.json'));
    });

    it('explains why a key cannot be read when its file was skipped', async () => {
      await freshMount();
      await put('FAC-1.json', { key: 'FAC-1', state: 'ready' });

      await assert.rejects(source.read('FAC-1'), (error) => isFactoryError(error, 'FACTORY_ISSUE_INVALID') && error.message === 'FAC-1.json: title: missing; add a title');
    });
  });

  describe('subscribe', () => {
    it('announces a Markdown issue and stays silent for temp files, dotfiles and outcome files', async () => {
      await freshMount();
      const recorder = new EventRecorder();
      const subscription = await source.subscribe(recorder.handlers);
      try {
        await put('.FAC-1.json.99.ab.tmp', '{}');
        await put('.probe', 'x');
        await put('FAC-1.json.swp', 'x');
        await put('FAC-1.outcome.md', '# report');
        await put('.FAC-3.json', '{}');
        await rm(join(root, '.FAC-1.json.99.ab.tmp'));
        await put('FAC-2.md', '---\ntitle: Live\nstate: ready\n---\n');

        const events = await recorder.until(join(root, 'FAC-2.md'), 'changed');

        assert.deepEqual(new Set(events.map((event) => event.path)), new Set([join(root, 'FAC-2.md')]));
      } finally {
        await subscription.close();
      }
    });

    it('delivers events in the order the files were written', async () => {
      await freshMount();
      const recorder = new EventRecorder();
      const subscription = await source.subscribe(recorder.handlers);
      try {
        const paths = Array.from({ length: 40 }, (_, n) => join(root, `ORDER-${String(n).padStart(2, '0')}.json`));
        for (const path of paths) await writeFile(path, '{}');

        await recorder.until(paths.at(-1)!);

        const firstSeen = [...new Set(recorder.events.map((event) => event.path))];
        assert.deepEqual(firstSeen, paths);
      } finally {
        await subscription.close();
      }
    });

    it('keeps at most one probe file while subscribed, and none after close', async () => {
      await freshMount();
      const recorder = new EventRecorder();
      const subscription = await source.subscribe(recorder.handlers);
      try {
        await source.probe('first');
        await source.probe('second');
        await waitFor('the second probe echoed back', () => recorder.events.some((event) => event.token === 'second'), 3_000, 5);
        assert.deepEqual(await readdir(root), ['.factory-probe-second']);
      } finally {
        await subscription.close();
      }
      assert.deepEqual(await readdir(root), []);
      await assert.rejects(source.probe('../escape'), TypeError);
    });

    it('reports a removed mount folder through onError instead of going quiet', async () => {
      const mount = await makeMount();
      const recorder = new EventRecorder();
      const subscription = await new LocalMountIssueSource({ root: mount, clock: new SystemClock() }).subscribe(recorder.handlers);
      try {
        await rm(mount, { recursive: true });

        const error = await waitFor('onError after the folder was removed', () => recorder.errors[0], 3_000, 5);

        assert.ok(isFactoryError(error, 'FACTORY_SUBSCRIPTION_FAILED'), `expected FACTORY_SUBSCRIPTION_FAILED, got ${String(error)}`);
        assert.match(error.message, /removed or replaced/);
      } finally {
        await subscription.close();
      }
    });

    it('refuses to subscribe to a folder that does not exist', async () => {
      const missing = new LocalMountIssueSource({ root: join(root, 'nope'), clock: new SystemClock() });
      await assert.rejects(missing.subscribe(new EventRecorder().handlers), (error) => isFactoryError(error, 'FACTORY_SUBSCRIPTION_FAILED'));
    });
  });

  describe('writeBack', () => {
    it('writes <KEY>.outcome.md next to the issue with what a person needs to follow up', async () => {
      await freshMount();
      await put('FAC-1.json', { key: 'FAC-1', title: 'Add login', state: 'ready' });
      const issue = await source.read('FAC-1');
      const outcome = makeOutcome(issue, {
        reason: 'failed',
        attempt: 2,
        detail: 'reviewer rejected the change\nsee the review log',
        agents: [{ ...makeOutcome(issue).agents[0]!, role: 'reviewer', agentName: 'FAC-1-reviewer', exitCode: null, signal: 'SIGKILL', reason: 'timed-out' }],
      });

      await source.writeBack(issue, outcome);
      const report = await readFile(join(root, 'FAC-1.outcome.md'), 'utf8');

      for (const expected of [
        '# FAC-1: failed',
        '**Attempt:** 2',
        '`factory/FAC-1`',
        '`/tmp/worktrees/FAC-1`',
        '### reviewer: `FAC-1-reviewer`',
        'timed-out (killed by SIGKILL)',
        '`/tmp/logs/FAC-1-implementer.log`',
        'reviewer rejected the change\nsee the review log',
        '2026-01-01T09:06:00.000Z (6m00s)',
      ]) {
        assert.ok(report.includes(expected), `report should contain ${JSON.stringify(expected)}:\n${report}`);
      }
      assert.deepEqual((await readdir(root)).sort(), ['FAC-1.json', 'FAC-1.outcome.md'], 'no temp file left behind');
      assert.deepEqual(await source.scan(), { issues: [issue], skipped: [] });
    });

    it('writes no outcome for an issue whose file is gone, or now holds another issue', async () => {
      await freshMount();
      await put('FAC-1.json', { key: 'FAC-1', title: 'Add login', state: 'ready' });
      const deleted = await source.read('FAC-1');
      await rm(join(root, 'FAC-1.json'));
      await source.writeBack(deleted, makeOutcome(deleted));
      assert.deepEqual(await readdir(root), [], 'no report for a deleted issue');

      // The same file name, now another issue's: a report beside it would describe an issue that is not there.
      await put('FAC-2.json', { key: 'FAC-2', title: 'Fix footer', state: 'ready' });
      const replaced = await source.read('FAC-2');
      await rm(join(root, 'FAC-2.json'));
      await put('FAC-2.json', { key: 'FAC-9', title: 'Something else', state: 'ready' });
      await source.writeBack(replaced, makeOutcome(replaced));
      assert.deepEqual(await readdir(root), ['FAC-2.json']);

      // Renamed, with its key kept: still the same issue, so it gets its report.
      await put('draft.json', { key: 'FAC-3', title: 'Renamed', state: 'ready' });
      const renamed = await source.read('FAC-3');
      await rename(join(root, 'draft.json'), join(root, 'final.json'));
      await source.writeBack(renamed, makeOutcome(renamed));
      assert.deepEqual((await readdir(root)).sort(), ['FAC-2.json', 'FAC-3.outcome.md', 'final.json']);
    });

    it('refuses a key that would escape the mount', async () => {
      await freshMount();
      await put('FAC-1.json', { key: 'FAC-1', title: 'Add login', state: 'ready' });
      const hostile = { ...(await source.read('FAC-1')), key: '../escape' };

      await assert.rejects(source.writeBack(hostile, makeOutcome(hostile)), (error) => isFactoryError(error, 'FACTORY_ISSUE_INVALID'));
      await assert.rejects(readFile(join(root, '..', 'escape.outcome.md')), { code: 'ENOENT' });
    });
  });
});
