import { randomBytes } from 'node:crypto';
import type { Issue } from '../../src/domain/issue.js';
import type { RunOutcome } from '../../src/domain/run.js';
import type { PullCheck, PullObservation, PullReview, ShepherdRecord } from '../../src/domain/shepherd.js';
import type { CodeHost, IssueProgress, IssueStage, PublishedChange, WatchedChange } from '../../src/ports/publisher.js';

/**
 * A code host in memory, for sessions on fakes: each publish "pushes" a new
 * head commit to the issue's one pull request (opened on the first publish,
 * found again after), checks and reviews are set by the test per commit, and
 * the shepherd's record is kept per issue as the status comment keeps it.
 */

interface Pull {
  change: PublishedChange;
  state: 'open' | 'closed' | 'merged';
  issueLocation: string;
  checks: Map<string, PullCheck[]>;
  reviews: PullReview[];
}

export class InMemoryCodeHost implements CodeHost, IssueProgress {
  readonly #pulls = new Map<string, Pull>();
  readonly #records = new Map<string, ShepherdRecord>();
  #nextNumber = 1;
  #nextReviewId = 1;
  /** Every publish in order: which run pushed which head. */
  readonly publishes: { issueKey: string; runId: string; headSha: string; fixRound: number | null }[] = [];
  readonly stages: { issueKey: string; stage: IssueStage }[] = [];
  readonly escalations: { issueKey: string; text: string }[] = [];
  /** Every record saved, in order (what the status comment showed over time). */
  readonly savedRecords: { issueKey: string; record: ShepherdRecord }[] = [];
  /** While set, a publish makes its push visible at once but returns only when released (a slow push or API call). */
  #publishGate: Promise<void> | undefined;
  /** Per issue, the error every look at its pull request fails with (the code host's API answers errors for it). */
  readonly observeErrors = new Map<string, Error>();
  /** Per issue, the error every read of its record fails with. */
  readonly loadRecordErrors = new Map<string, Error>();

  /** Holds every publish after its push until the returned function is called. */
  holdPublishes(): () => void {
    let release!: () => void;
    this.#publishGate = new Promise((resolve) => (release = resolve));
    return () => {
      this.#publishGate = undefined;
      release();
    };
  }

  async publish(issue: Issue, outcome: RunOutcome): Promise<PublishedChange> {
    const headSha = randomBytes(20).toString('hex');
    const existing = this.#pulls.get(issue.key);
    const change: PublishedChange = {
      issueKey: issue.key,
      number: existing?.change.number ?? this.#nextNumber++,
      url: `https://code.test/pull/${existing?.change.number ?? this.#nextNumber - 1}`,
      branch: outcome.branch,
      headSha,
      draft: true,
    };
    if (existing) existing.change = change;
    else this.#pulls.set(issue.key, { change, state: 'open', issueLocation: issue.location, checks: new Map(), reviews: [] });
    // As GitHub's publish does, with the status comment it writes: a new pull request starts a fresh record.
    if (this.#records.get(issue.key)?.pullNumber !== change.number) {
      this.#records.set(issue.key, { pullNumber: change.number, pullUrl: change.url, branch: change.branch, rounds: [], escalated: null, lastVerdict: 'opened; waiting for checks', merged: false });
    }
    this.publishes.push({ issueKey: issue.key, runId: outcome.runId, headSha, fixRound: outcome.fix?.round ?? null });
    await this.#publishGate;
    return change;
  }

  async listWatched(): Promise<WatchedChange[]> {
    return [...this.#pulls.values()].filter((pull) => pull.state === 'open').map((pull) => ({ change: pull.change, issueLocation: pull.issueLocation }));
  }

  async observe(change: PublishedChange): Promise<PullObservation> {
    const failure = this.observeErrors.get(change.issueKey);
    if (failure) throw failure;
    const pull = this.#pull(change.issueKey);
    const headSha = pull.change.headSha;
    return { number: pull.change.number, state: pull.state, draft: pull.change.draft, headSha, checks: pull.checks.get(headSha) ?? [], reviews: pull.reviews };
  }

  async merge(change: PublishedChange): Promise<void> {
    this.#pull(change.issueKey).state = 'merged';
  }

  async loadRecord(issue: Issue): Promise<ShepherdRecord | undefined> {
    const failure = this.loadRecordErrors.get(issue.key);
    if (failure) throw failure;
    return this.#records.get(issue.key);
  }

  async saveRecord(issue: Issue, record: ShepherdRecord): Promise<void> {
    this.#records.set(issue.key, record);
    this.savedRecords.push({ issueKey: issue.key, record });
  }

  async escalate(issue: Issue, _change: PublishedChange, text: string): Promise<void> {
    this.escalations.push({ issueKey: issue.key, text });
    this.stages.push({ issueKey: issue.key, stage: 'needs-human' });
  }

  async markStage(issue: Issue, stage: IssueStage): Promise<void> {
    this.stages.push({ issueKey: issue.key, stage });
  }

  /** The pull request's head commit now. */
  head(issueKey: string): string {
    return this.#pull(issueKey).change.headSha;
  }

  record(issueKey: string): ShepherdRecord | undefined {
    return this.#records.get(issueKey);
  }

  /** A person merged the pull request, or closed it without merging, on the code host. */
  closeByHand(issueKey: string, merged: boolean): void {
    this.#pull(issueKey).state = merged ? 'merged' : 'closed';
  }

  /** A check on the pull request's current head (CI reporting). */
  setCheck(issueKey: string, check: PullCheck): void {
    const pull = this.#pull(issueKey);
    const checks = pull.checks.get(pull.change.headSha) ?? [];
    pull.checks.set(pull.change.headSha, [...checks.filter((known) => known.name !== check.name), check]);
  }

  /** A review on the pull request's current head; by `reviewer`, a MEMBER, unless the test says otherwise. */
  addReview(issueKey: string, review: Pick<PullReview, 'state' | 'body'> & Partial<Pick<PullReview, 'author' | 'association' | 'byFactory' | 'submittedAtMs'>>): void {
    const pull = this.#pull(issueKey);
    pull.reviews.push({
      id: this.#nextReviewId++,
      author: 'reviewer',
      association: 'MEMBER',
      byFactory: false,
      submittedAtMs: pull.reviews.length,
      ...review,
      commitId: pull.change.headSha,
    });
  }

  #pull(issueKey: string): Pull {
    const pull = this.#pulls.get(issueKey);
    if (!pull) throw new Error(`no pull request for ${issueKey}`);
    return pull;
  }
}
