import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_REVIEW_TRUST, judgePull, untrustedVerdicts, type PullReview, type ReviewTrust, type ShepherdRecord } from '../../src/domain/shepherd.js';

/**
 * Whose reviews move a pull request: only an owner's, a member's or a
 * collaborator's (or a login named in shepherd.trustedReviewers) approve it
 * or send the implementer back; a stranger's review and Factory's own never
 * do. The latest counting review of each reviewer on the head commit wins.
 */

const HEAD = 'b'.repeat(40);
const OLD = 'a'.repeat(40);
const record: ShepherdRecord = { pullNumber: 7, pullUrl: 'https://github.test/acme/api/pull/7', branch: 'factory/x', rounds: [], escalated: null, lastVerdict: '', merged: false };

type Review = [author: string, association: string, state: string, options?: { byFactory?: boolean; commitId?: string }];

function judge(reviews: readonly Review[], trust?: ReviewTrust): string {
  const observed: PullReview[] = reviews.map(([author, association, state, options], index) => ({
    id: index + 1,
    author,
    association,
    state,
    byFactory: options?.byFactory ?? false,
    body: `${author} says ${state}`,
    commitId: options?.commitId ?? HEAD,
    submittedAtMs: index * 1000,
  }));
  const verdict = judgePull({ number: 7, state: 'open', draft: false, headSha: HEAD, checks: [{ name: 'test', state: 'passed', conclusion: 'success', output: '' }], reviews: observed }, record, {
    maxRounds: 3,
    ...(trust ? { trust } : {}),
  });
  if (verdict.kind === 'green') return verdict.approved ? 'approved' : 'not approved';
  if (verdict.kind === 'fix') return `fix: ${verdict.failures.join('; ')}`;
  return verdict.kind;
}

const cases: [string, Review[], string, ReviewTrust?][] = [
  ['an owner approves', [['alice', 'OWNER', 'APPROVED']], 'approved'],
  ['a member approves', [['alice', 'MEMBER', 'APPROVED']], 'approved'],
  ['a collaborator approves', [['alice', 'COLLABORATOR', 'APPROVED']], 'approved'],
  ['a stranger approves', [['mallory', 'NONE', 'APPROVED']], 'not approved'],
  ['a contributor approves', [['mallory', 'CONTRIBUTOR', 'APPROVED']], 'not approved'],
  ['a first-time contributor approves', [['mallory', 'FIRST_TIME_CONTRIBUTOR', 'APPROVED']], 'not approved'],
  ["Factory's own login approves, even as the owner", [['factory-bot', 'OWNER', 'APPROVED', { byFactory: true }]], 'not approved'],
  ['a stranger requests changes', [['mallory', 'NONE', 'CHANGES_REQUESTED']], 'not approved'],
  [
    'a member approved, then a stranger requests changes',
    [
      ['alice', 'MEMBER', 'APPROVED'],
      ['mallory', 'NONE', 'CHANGES_REQUESTED'],
    ],
    'approved',
  ],
  ['a member requests changes', [['alice', 'MEMBER', 'CHANGES_REQUESTED']], 'fix: review by alice: changes requested'],
  [
    'a member requested changes, then approved',
    [
      ['alice', 'MEMBER', 'CHANGES_REQUESTED'],
      ['alice', 'MEMBER', 'APPROVED'],
    ],
    'approved',
  ],
  [
    'a member approved, then requested changes',
    [
      ['alice', 'MEMBER', 'APPROVED'],
      ['alice', 'MEMBER', 'CHANGES_REQUESTED'],
    ],
    'fix: review by alice: changes requested',
  ],
  [
    'a member requested changes, then only commented',
    [
      ['alice', 'MEMBER', 'CHANGES_REQUESTED'],
      ['alice', 'MEMBER', 'COMMENTED'],
    ],
    'fix: review by alice: changes requested',
  ],
  [
    "a member's approval was dismissed",
    [
      ['alice', 'MEMBER', 'APPROVED'],
      ['alice', 'MEMBER', 'DISMISSED'],
    ],
    'not approved',
  ],
  ['a member approved an older commit', [['alice', 'MEMBER', 'APPROVED', { commitId: OLD }]], 'not approved'],
  ['a login named in logins approves whatever its association', [['Renovate[bot]', 'NONE', 'APPROVED']], 'approved', { associations: DEFAULT_REVIEW_TRUST.associations, logins: ['renovate[bot]'] }],
  ['only owners are trusted: a member approves', [['alice', 'MEMBER', 'APPROVED']], 'not approved', { associations: ['OWNER'], logins: [] }],
  ['only owners are trusted: a member requests changes', [['alice', 'MEMBER', 'CHANGES_REQUESTED']], 'not approved', { associations: ['OWNER'], logins: [] }],
  ["Factory's own login named in logins still never counts", [['factory-bot', 'OWNER', 'APPROVED', { byFactory: true }]], 'not approved', { associations: ['OWNER'], logins: ['factory-bot'] }],
];

for (const [what, reviews, expected, trust] of cases) {
  test(`review trust: ${what} → ${expected}`, () => {
    assert.equal(judge(reviews, trust), expected);
  });
}

test('the approvals and change requests that do not count are named for the log; comments and trusted reviews are not', () => {
  const review = (id: number, author: string, association: string, state: string): PullReview => ({ id, author, association, state, byFactory: false, body: 'x', commitId: HEAD, submittedAtMs: id });
  const ignored = untrustedVerdicts([
    review(1, 'mallory', 'NONE', 'APPROVED'),
    review(2, 'mallory', 'NONE', 'COMMENTED'),
    review(3, 'eve', 'CONTRIBUTOR', 'CHANGES_REQUESTED'),
    review(4, 'alice', 'MEMBER', 'APPROVED'),
  ]);
  assert.deepEqual(
    ignored.map((entry) => entry.id),
    [1, 3],
  );
});
