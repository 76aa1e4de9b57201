import type { Issue } from '../../domain/issue.js';
import type { RunOutcome } from '../../domain/run.js';
import type { IssueSource } from '../../ports/issue-source.js';
import type { Logger } from '../../ports/logger.js';
import type { StateStore } from '../../ports/state-store.js';
import { maybeCrash } from '../fault-injection.js';

/**
 * Writes outcomes back to the source, after they are recorded in the store.
 * A crash in between leaves an outcome pending; the next daemon writes it
 * again at startup (`retryPending`), so no outcome is lost.
 */
export class Writeback {
  readonly #source: IssueSource;
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #publish: ((issue: Issue, outcome: RunOutcome) => Promise<void>) | undefined;
  readonly #finishFixRound: ((issue: Issue, outcome: RunOutcome) => Promise<void>) | undefined;

  /**
   * `publish`: for a source with a code host, pushes a succeeded run's branch and opens its pull request before the outcome is written back.
   * `finishFixRound`: a fix round's outcome goes there (push, the round in the shepherd's record) instead: the issue's own outcome stays the one shown.
   */
  constructor(options: {
    source: IssueSource;
    store: StateStore;
    log: Logger;
    publish?: (issue: Issue, outcome: RunOutcome) => Promise<void>;
    finishFixRound?: (issue: Issue, outcome: RunOutcome) => Promise<void>;
  }) {
    this.#source = options.source;
    this.#store = options.store;
    this.#log = options.log;
    this.#publish = options.publish;
    this.#finishFixRound = options.finishFixRound;
  }

  /** Writes one recorded outcome back, then marks it done. A failure is logged; the outcome stays pending. */
  async writeBack(issue: Issue, outcome: RunOutcome): Promise<void> {
    try {
      if (outcome.fix && this.#finishFixRound) {
        await this.#finishFixRound(issue, outcome);
        await this.#store.markWrittenBack(outcome.runId);
        return;
      }
      // Publishing is part of the writeback: a crash or a failure leaves the outcome pending, and the next start publishes again (find-first, so no second pull request).
      if (outcome.reason === 'succeeded' && this.#publish) {
        await this.#publish(issue, outcome);
        maybeCrash('after-publish');
      }
      await this.#source.writeBack(issue, outcome);
      await this.#store.markWrittenBack(outcome.runId);
    } catch (error) {
      this.#log.warn({ issue: outcome.issueKey, err: (error as Error).message }, 'writeback failed; the outcome is kept in the state store and written back at the next start');
    }
  }

  /** Writes back outcomes a previous daemon recorded but did not write back before it died. Returns how many. */
  async retryPending(): Promise<number> {
    let written = 0;
    for (const outcome of await this.#store.pendingWritebacks()) {
      // A release is the daemon's own stop, not a result to tell the issue about.
      if (outcome.reason === 'released') {
        await this.#store.markWrittenBack(outcome.runId);
        continue;
      }
      let issue: Issue;
      try {
        issue = await this.#source.read(outcome.issueKey);
      } catch (error) {
        // The issue is gone from the source: nothing to write next to.
        this.#log.warn({ issue: outcome.issueKey, err: (error as Error).message }, 'pending writeback dropped: the issue is no longer in the source');
        await this.#store.markWrittenBack(outcome.runId);
        continue;
      }
      await this.writeBack(issue, outcome);
      written++;
    }
    return written;
  }
}
