import { isWaiting } from '../../domain/claim-lifecycle.js';
import { isActiveClaimStatus } from '../../domain/claim.js';
import type { RunOutcome } from '../../domain/run.js';
import type { IssueClaim, SkipRecord, StateBatch, StateStore } from '../../ports/state-store.js';

/**
 * The dispatcher's view of every claim, kept in memory and written through to
 * the state store. A change is visible in memory at once (so a decision made
 * while a write is in flight sees it) and durable once `commit` resolves; a
 * write the store refuses is undone in memory. Callers await `commit` before
 * acting on a claim outside the process (claim before spawn).
 *
 * Finished claims outnumber the rest as history grows, so the claims still
 * in play are indexed: dispatch and the shepherd walk those, not every claim.
 */
export class ClaimBook {
  readonly #store: StateStore;
  readonly #epoch: number;
  readonly #claims = new Map<string, IssueClaim>();
  readonly #skipReasons = new Map<string, string>();
  /** Claims queued or waiting for their retry, by issue key. */
  readonly #waiting = new Map<string, IssueClaim>();
  /** Claims still in play (waiting, running, parked, shepherding): a superset of #waiting. */
  readonly #active = new Map<string, IssueClaim>();

  private constructor(store: StateStore, epoch: number) {
    this.#store = store;
    this.#epoch = epoch;
  }

  static async load(store: StateStore, epoch: number): Promise<ClaimBook> {
    const book = new ClaimBook(store, epoch);
    const [claims, skips] = await Promise.all([store.listClaims(), store.listSkips()]);
    for (const claim of claims) book.#set(claim);
    for (const skip of skips) book.#skipReasons.set(skip.issueKey, internReason(skip.reason));
    return book;
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** O(1): claims queued or waiting for their retry (read by the heartbeat refresh). */
  get waitingCount(): number {
    return this.#waiting.size;
  }

  get(issueKey: string): IssueClaim | undefined {
    return this.#claims.get(issueKey);
  }

  values(): IterableIterator<IssueClaim> {
    return this.#claims.values();
  }

  /** Claims queued or waiting for their retry: the only ones dispatch can start. */
  waiting(): IterableIterator<IssueClaim> {
    return this.#waiting.values();
  }

  /** Claims still in play (not succeeded, gave-up or cancelled). */
  active(): IterableIterator<IssueClaim> {
    return this.#active.values();
  }

  skipReason(issueKey: string): string | undefined {
    return this.#skipReasons.get(issueKey);
  }

  /** Starts a batch: changes are visible in memory as they are staged, durable once the batch commits. */
  batch(): ClaimBatch {
    return new ClaimBatch(this);
  }

  /** Records a finished run with its issue's next claim in one write; memory follows once it is durable. */
  async recordOutcome(outcome: RunOutcome, nextClaim: IssueClaim): Promise<void> {
    await this.#store.apply({ epoch: this.#epoch, outcome: { outcome, nextClaim } });
    this.#set(nextClaim);
  }

  /** @internal ClaimBatch's write-through. */
  async apply(batch: StateBatch, undo: () => void): Promise<void> {
    try {
      await this.#store.apply(batch);
    } catch (error) {
      undo();
      throw error;
    }
  }

  /** @internal Sets a claim in memory; returns the undo. */
  stage(claim: IssueClaim): () => void {
    const previous = this.#claims.get(claim.issueKey);
    this.#set(claim);
    return () => {
      if (this.#claims.get(claim.issueKey) !== claim) return; // changed again since: leave it
      if (previous) this.#set(previous);
      else this.#delete(claim.issueKey);
    };
  }

  /** @internal */
  stageSkip(issueKey: string, reason: string | undefined): () => void {
    const previous = this.#skipReasons.get(issueKey);
    if (reason === undefined) this.#skipReasons.delete(issueKey);
    else this.#skipReasons.set(issueKey, internReason(reason));
    return () => {
      if (previous === undefined) this.#skipReasons.delete(issueKey);
      else this.#skipReasons.set(issueKey, previous);
    };
  }

  #set(claim: IssueClaim): void {
    const key = claim.issueKey;
    this.#claims.set(key, claim);
    if (isWaiting(claim.status)) this.#waiting.set(key, claim);
    else this.#waiting.delete(key);
    if (isActiveClaimStatus(claim.status)) this.#active.set(key, claim);
    else this.#active.delete(key);
  }

  #delete(issueKey: string): void {
    this.#claims.delete(issueKey);
    this.#waiting.delete(issueKey);
    this.#active.delete(issueKey);
  }
}

/** Claims and skips decided together, written in one atomic store batch. */
export class ClaimBatch {
  readonly #book: ClaimBook;
  readonly #claims = new Map<string, IssueClaim>();
  readonly #skips = new Map<string, SkipRecord>();
  readonly #clearedSkips = new Set<string>();
  readonly #undo: (() => void)[] = [];

  constructor(book: ClaimBook) {
    this.#book = book;
  }

  get isEmpty(): boolean {
    return this.#claims.size === 0 && this.#skips.size === 0 && this.#clearedSkips.size === 0;
  }

  saveClaim(claim: IssueClaim): void {
    this.#claims.set(claim.issueKey, claim);
    this.#undo.push(this.#book.stage(claim));
  }

  /** Records why an issue is skipped, unless that is already the recorded reason. */
  recordSkip(skip: SkipRecord): void {
    if (this.#book.skipReason(skip.issueKey) === skip.reason) return;
    this.#clearedSkips.delete(skip.issueKey);
    this.#skips.set(skip.issueKey, skip);
    this.#undo.push(this.#book.stageSkip(skip.issueKey, skip.reason));
  }

  /** Clears an issue's skip record, if it has one. */
  clearSkip(issueKey: string): void {
    if (this.#book.skipReason(issueKey) === undefined) return;
    this.#skips.delete(issueKey);
    this.#clearedSkips.add(issueKey);
    this.#undo.push(this.#book.stageSkip(issueKey, undefined));
  }

  /** Makes the batch durable; on failure every staged change is undone in memory and the error is thrown. */
  async commit(): Promise<void> {
    if (this.isEmpty) return;
    await this.#book.apply({ epoch: this.#book.epoch, claims: [...this.#claims.values()], skips: [...this.#skips.values()], clearedSkips: [...this.#clearedSkips] }, () => {
      for (const undo of this.#undo.reverse()) undo();
    });
  }
}

/** Skip reasons repeat across thousands of issues; keep one copy of each text. */
const internedReasons = new Map<string, string>();
function internReason(reason: string): string {
  const known = internedReasons.get(reason);
  if (known !== undefined) return known;
  if (internedReasons.size < 10_000) internedReasons.set(reason, reason);
  return reason;
}
