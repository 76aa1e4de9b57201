import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isValidIssueKey } from '../../src/domain/issue.js';
import { githubIssueKey, mapGitHubIssue, parseGitHubIssueReference, parseRepoSlug, type GitHubIssueMapping, type GitHubIssueRecord, type GitHubRepoRef } from '../../src/domain/github-issue.js';

const ownerArb = fc.array(fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split('')), { minLength: 1, maxLength: 39 }).chain((chars) =>
  // Insert single hyphens between characters, as GitHub allows.
  fc.array(fc.boolean(), { minLength: chars.length, maxLength: chars.length }).map((dashes) =>
    chars
      .map((c, i) => (i > 0 && dashes[i] ? `-${c}` : c))
      .join('')
      .slice(0, 39)
      .replace(/-$/, ''),
  ),
);
const nameArb = fc
  .array(fc.constantFrom(...'abcXYZ019._-'.split('')), { minLength: 1, maxLength: 100 })
  .map((chars) => chars.join(''))
  .filter((name) => name !== '.' && name !== '..');
const repoArb: fc.Arbitrary<GitHubRepoRef> = fc.record({ owner: ownerArb, name: nameArb });
const numberArb = fc.integer({ min: 1, max: 2_000_000_000 });

/** Inverse of the readable key form, to prove it loses nothing (test-only: the source never needs to decode). */
function decodeReadableKey(key: string): string {
  const separator = key.indexOf('_');
  const dash = key.lastIndexOf('-');
  const encoded = key.slice(separator + 1, dash);
  let name = '';
  for (let i = 0; i < encoded.length; i++) {
    const char = encoded[i];
    if (char === '_') {
      name += encoded[i + 1] === 'd' ? '.' : '_';
      i++;
    } else name += char;
  }
  return `${key.slice(0, separator)}/${name}#${key.slice(dash + 1)}`;
}

describe('githubIssueKey', () => {
  it('reads like the issue: acme/api#12 is acme_api-12', () => {
    assert.equal(githubIssueKey({ owner: 'Acme', name: 'API' }, 12), 'acme_api-12');
    assert.equal(githubIssueKey({ owner: 'acme', name: 'my_repo.js' }, 3), 'acme_my__repo.js-3');
    assert.equal(githubIssueKey({ owner: 'acme', name: '..x' }, 1), 'acme_._dx-1');
  });

  it('is injective on GitHub identities (names compared case-insensitively, as GitHub does)', () => {
    fc.assert(
      fc.property(repoArb, numberArb, (repo, number) => {
        const key = githubIssueKey(repo, number);
        // Identities too long for a readable key end in a hash; the pairwise property below covers them.
        if (/-h[0-9a-f]{16}-\d+$/.test(key)) return;
        assert.equal(decodeReadableKey(key), `${repo.owner.toLowerCase()}/${repo.name.toLowerCase()}#${number}`);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(repoArb, numberArb, repoArb, numberArb, (a, n, b, m) => {
        const same = a.owner.toLowerCase() === b.owner.toLowerCase() && a.name.toLowerCase() === b.name.toLowerCase() && n === m;
        assert.equal(githubIssueKey(a, n) === githubIssueKey(b, m), same);
      }),
      { numRuns: 2000 },
    );
  });

  it('always makes a valid issue key, even for the longest names', () => {
    fc.assert(
      fc.property(repoArb, numberArb, (repo, number) => {
        const key = githubIssueKey(repo, number);
        assert.ok(isValidIssueKey(key), key);
        assert.ok(key.length <= 100);
      }),
      { numRuns: 2000 },
    );
    const longest = githubIssueKey({ owner: 'o'.repeat(39), name: `${'_'.repeat(99)}.` }, 123456789);
    assert.ok(isValidIssueKey(longest) && longest.length <= 100, longest);
    assert.notEqual(longest, githubIssueKey({ owner: 'o'.repeat(39), name: `${'_'.repeat(99)}-` }, 123456789));
  });

  it('makes keys git accepts as branch names', () => {
    const samples = fc.sample(fc.tuple(repoArb, numberArb), { numRuns: 150, seed: 11 });
    samples.push([{ owner: 'a', name: '.lock' }, 1], [{ owner: 'a', name: 'x..lock' }, 2], [{ owner: 'a', name: '...' }, 3], [{ owner: 'a-b', name: '-_-' }, 4]);
    for (const [repo, number] of samples) {
      const branch = `factory/${githubIssueKey(repo, number)}`;
      assert.doesNotThrow(() => execFileSync('git', ['check-ref-format', '--branch', branch], { stdio: 'pipe' }), `git refuses ${branch}`);
    }
  });
});

describe('parseRepoSlug and parseGitHubIssueReference', () => {
  it('accepts owner/name and says what is wrong with anything else', () => {
    assert.deepEqual(parseRepoSlug('acme/api'), { ok: true, value: { owner: 'acme', name: 'api' } });
    for (const bad of ['acme', 'acme/api/x', '-acme/api', 'ac--me/api', 'acme/..', 'acme/a b', 'acme/']) {
      const result = parseRepoSlug(bad);
      assert.equal(result.ok, false, bad);
      if (!result.ok) assert.ok(result.reason.includes(JSON.stringify(bad)), result.reason);
    }
  });

  it('reads owner/name#N and issue URLs', () => {
    assert.deepEqual(parseGitHubIssueReference('acme/api#12'), { repo: { owner: 'acme', name: 'api' }, number: 12 });
    assert.deepEqual(parseGitHubIssueReference('https://github.example.com/acme/api/issues/7'), { repo: { owner: 'acme', name: 'api' }, number: 7 });
    assert.equal(parseGitHubIssueReference('acme/api#0'), undefined);
    assert.equal(parseGitHubIssueReference('FAC-1'), undefined);
  });
});

describe('mapGitHubIssue', () => {
  const repo = { owner: 'acme', name: 'api' };
  const mapping: GitHubIssueMapping = {
    scopeLabels: ['Factory'],
    priorityLabels: { P0: 0, p1: 1 },
    lifecycleLabels: ['factory:queued', 'factory:working', 'factory:done', 'factory:failed'],
  };
  const record = (overrides: Partial<GitHubIssueRecord> = {}): GitHubIssueRecord => ({
    number: 12,
    title: 'Add login',
    body: 'Use OAuth.\r\n',
    state: 'open',
    labels: [{ name: 'factory' }, { name: 'api' }],
    created_at: '2026-01-02T03:04:05Z',
    updated_at: '2026-01-03T00:00:00Z',
    ...overrides,
  });
  const issueOf = (result: ReturnType<typeof mapGitHubIssue>) => {
    assert.equal(result.kind, 'issue');
    return result.kind === 'issue' ? result.issue : assert.fail('not an issue');
  };

  it('maps key, title, body, labels, state, age and location', () => {
    const issue = issueOf(mapGitHubIssue(repo, record(), mapping));
    assert.deepEqual(
      { ...issue, revision: undefined },
      {
        key: 'acme_api-12',
        title: 'Add login',
        body: 'Use OAuth.',
        labels: ['factory', 'api'],
        state: 'ready',
        createdAtMs: Date.UTC(2026, 0, 2, 3, 4, 5),
        revision: undefined,
        location: 'acme/api#12',
      },
    );
  });

  it('is ready only when open and carrying a scope label (case-insensitive); closed is closed', () => {
    assert.equal(issueOf(mapGitHubIssue(repo, record({ labels: ['FACTORY'] }), mapping)).state, 'ready');
    assert.equal(issueOf(mapGitHubIssue(repo, record({ labels: ['api'] }), mapping)).state, 'open');
    assert.equal(issueOf(mapGitHubIssue(repo, record({ state: 'closed' }), mapping)).state, 'closed');
    assert.equal(issueOf(mapGitHubIssue(repo, record({ labels: [] }), { ...mapping, scopeLabels: [] })).state, 'ready');
  });

  it('turns priority labels into a priority and drops lifecycle labels, so neither changes the revision', () => {
    const plain = issueOf(mapGitHubIssue(repo, record(), mapping));
    const prioritized = issueOf(mapGitHubIssue(repo, record({ labels: ['factory', 'api', 'p1', 'P0', 'factory:working'] }), mapping));
    assert.equal(prioritized.priority, 0);
    assert.deepEqual(prioritized.labels, ['factory', 'api']);
    assert.equal(prioritized.revision, plain.revision);
    assert.notEqual(issueOf(mapGitHubIssue(repo, record({ title: 'Add login page' }), mapping)).revision, plain.revision);
  });

  it('says a pull request is not an issue, and names the issue and field of an unreadable record', () => {
    assert.deepEqual(mapGitHubIssue(repo, record({ pull_request: { url: 'x' } }), mapping), { kind: 'pull-request' });
    const blank = mapGitHubIssue(repo, record({ title: '  ' }), mapping);
    assert.equal(blank.kind, 'unreadable');
    if (blank.kind === 'unreadable') assert.match(blank.reason, /^acme\/api#12: title/);
  });
});
