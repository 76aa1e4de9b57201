import type { MergeMethod } from '../../config/publish-schema.js';
import { isActiveClaimStatus, type FixRound, type IssueClaim } from '../../domain/claim.js';
import type { Issue } from '../../domain/issue.js';
import type { RunOutcome } from '../../domain/run.js';
import { oneLine } from '../../domain/agent-events/run-events.js';
import {
  judgePull,
  PENDING_ROUND_RESULTS,
  shortSha,
  untrustedVerdicts,
  type ReviewTrust,
  type PullObservation,
  type ShepherdRecord,
  type ShepherdRound,
  type ShepherdVerdict,
} from '../../domain/shepherd.js';
import type { Clock, TimerHandle } from '../../ports/clock.js';
import type { IssueSource } from '../../ports/issue-source.js';
import type { Logger } from '../../ports/logger.js';
import type { CodeHost, IssueProgress, PublishedChange } from '../../ports/publisher.js';

/**
 * Sees each pull request Factory opened through CI and review. Every poll
 * reads the head commit, its checks and statuses, and the reviews; the pure
 * rules (domain/shepherd.ts) say wait, fix, escalate or green. A fix round is
 * not run here: it is queued on the issue's claim (`shepherding` → `queued`
 * with the round), so the dispatcher starts it like any run of the issue (a
 * slot, supervision, the registry, one team per issue), and hands its outcome
 * back (`finishFixRound`) to push and record. The record (rounds, fingerprints,
 * the escalation) lives with the issue on the code host and the round on the
 * durable claim, so a restarted daemon picks up where the last one stopped and
 * never answers one commit twice; a pull request merged or closed while no
 * daemon ran is found through the claims still shepherding and ends them.
 */

/** What the shepherd needs of the dispatcher's claims (the claim lifecycle's shepherd transitions). */
export interface ShepherdClaims {
  claim(issueKey: string): IssueClaim | undefined;
  /** The issues whose claims are `shepherding` now. */
  shepherding(): readonly string[];
  /** succeeded → shepherding once the pull request is open. */
  markShepherding(issueKey: string, pullUrl: string): Promise<boolean>;
  /** shepherding → queued with the round; refused (with the claim's status) otherwise. */
  queueFixRound(issueKey: string, fix: FixRound): Promise<{ queued: true } | { queued: false; status: string }>;
  /** shepherding → succeeded (merged) or cancelled (closed). */
  pullClosed(issueKey: string, merged: boolean, pullUrl: string): Promise<void>;
}

export interface ShepherdOptions {
  readonly host: CodeHost;
  readonly progress?: IssueProgress;
  readonly source: IssueSource;
  readonly claims: ShepherdClaims;
  readonly policy: { readonly maxRounds: number; readonly pollIntervalMs: number; readonly merge: MergeMethod; readonly trustedReviewers?: ReviewTrust };
  readonly clock: Clock;
  readonly log: Logger;
}

/** One pull request being followed, for the API and the dashboard. */
export interface ShepherdWatch {
  readonly issueKey: string;
  readonly pullNumber: number;
  readonly pullUrl: string;
  readonly branch: string;
  readonly headSha: string;
  readonly verdict: string;
  readonly escalated: string | null;
  readonly rounds: readonly ShepherdRound[];
  /** A fix round is queued or running for this pull request. */
  readonly fixing: boolean;
  /** Why the last look at the pull request failed (the code host's error; tried again every poll); null when it worked. */
  readonly lookError: string | null;
}

interface Watch {
  issue: Issue;
  change: PublishedChange;
  record: ShepherdRecord;
  lastHeadSha: string;
  /** Why the last look at the pull request failed; null when it worked (or none was made yet). */
  lookError: null | string;
}

export class Shepherd {
  readonly #options: ShepherdOptions;
  readonly #watches = new Map<string, Watch>();
  /** Per issue, the last record change in flight: a poll, a publish and a fix round's end take turns (see #serially). */
  readonly #turns = new Map<string, Promise<void>>();
  /** Shepherding claims whose pull request is not followed yet (not found open at start, and not looked up since): each poll tries again. */
  readonly #unfollowed = new Set<string>();
  /** When a poll last warned about each issue's pull request, so a failing lookup warns at most once per poll interval. */
  readonly #warnedAtMs = new Map<string, number>();
  #timer: TimerHandle | undefined;
  #ticking: Promise<void> | undefined;
  #closed = false;
  /** Reviews already logged as not counting, so each is logged once, not every poll. */
  readonly #ignoredReviews = new Set<number>();

  constructor(options: ShepherdOptions) {
    this.#options = options;
  }

  /**
   * Finds the pull requests Factory opened before (a restart) and starts
   * polling. A claim still `shepherding` whose pull request is not among the
   * open ones was merged or closed while no daemon ran (or the list failed):
   * its pull request is looked up by the number in its record now, and again
   * on every poll until that works, so the claim never stays in play forever.
   */
  async start(): Promise<void> {
    const { host, source, log, claims } = this.#options;
    try {
      for (const watched of await host.listWatched()) {
        const issue = await source.read(watched.issueLocation).catch(() => undefined);
        if (issue === undefined) continue;
        const record = await host.loadRecord(issue);
        if (record === undefined || record.pullNumber !== watched.change.number) continue;
        this.#follow(issue, { ...watched.change, issueKey: issue.key }, record);
        // A claim that ended as succeeded before claims followed pull requests is taken over.
        if (claims.claim(issue.key)?.status === 'succeeded' && record.merged === false) await claims.markShepherding(issue.key, watched.change.url);
      }
      if (this.#watches.size > 0) log.info({ pulls: [...this.#watches.values()].map((watch) => watch.change.url) }, 'following the pull requests Factory opened before');
    } catch (error) {
      log.warn({ err: (error as Error).message }, 'could not list the pull requests Factory opened before; looking each one up by its issue instead');
    }
    for (const issueKey of claims.shepherding()) if (!this.#watches.has(issueKey)) this.#unfollowed.add(issueKey);
    await this.#followUnfollowed();
    this.#schedule();
  }

  /** Follows the pull request of `record` from now on; a round the record has pending but the claim no longer carries was lost with its daemon. */
  #follow(issue: Issue, change: PublishedChange, record: ShepherdRecord): Watch {
    const pending = this.#options.claims.claim(issue.key)?.fix?.round;
    // A round still on the claim runs (or runs again) through the dispatcher; any other unfinished round was lost with its daemon, and its commit may be answered again.
    const rounds = record.rounds.map((round) => (PENDING_ROUND_RESULTS.has(round.result) && pending !== round.round ? { ...round, result: 'interrupted' } : round));
    const watch: Watch = { issue, change, record: { ...record, rounds }, lastHeadSha: change.headSha, lookError: null };
    this.#watches.set(issue.key, watch);
    return watch;
  }

  /**
   * Looks up the pull request of each shepherding claim not followed yet, by
   * its issue's record, and judges it at once: one merged or closed ends its
   * claim, an open one is followed from now on. A lookup that fails (an API
   * error, no record) keeps the claim shepherding and is tried at the next poll.
   */
  async #followUnfollowed(): Promise<void> {
    const { host, source, claims } = this.#options;
    for (const issueKey of [...this.#unfollowed]) {
      if (this.#closed) return;
      await this.#serially(issueKey, async () => {
        // A publish may have followed it meanwhile, or the claim moved on (cancelled, requeued by hand).
        if (this.#watches.has(issueKey) || claims.claim(issueKey)?.status !== 'shepherding') {
          this.#unfollowed.delete(issueKey);
          return;
        }
        let watch: Watch;
        try {
          const issue = await source.read(issueKey);
          const record = await host.loadRecord(issue);
          if (record === undefined) throw new Error('the issue has no shepherd record naming its pull request');
          watch = this.#follow(issue, { issueKey, number: record.pullNumber, url: record.pullUrl, branch: record.branch, headSha: '', draft: false }, record);
          this.#unfollowed.delete(issueKey);
        } catch (error) {
          this.#warnEachPoll(issueKey, { err: (error as Error).message }, 'could not find the pull request of a shepherding issue; it stays shepherding and is looked up again next poll');
          return;
        }
        // Followed from now on: a look that fails is tried again at every poll, as for any followed pull request.
        await this.#lookOrWarn(watch);
      });
    }
  }

  /**
   * A successful run's publish step (called by the writeback before it
   * records the outcome on the issue): push, open or update the pull request,
   * follow it from now on, and keep the claim in play as `shepherding`.
   */
  publish(issue: Issue, outcome: RunOutcome): Promise<void> {
    return this.#serially(issue.key, () => this.#publish(issue, outcome));
  }

  async #publish(issue: Issue, outcome: RunOutcome): Promise<void> {
    const { host, claims, log } = this.#options;
    const change = await host.publish(issue, outcome);
    const loaded = (await host.loadRecord(issue)) ?? freshRecord(change);
    // A run of the issue itself replaced any round that had not ended (a new revision was queued over it).
    const superseded = loaded.rounds.some((round) => PENDING_ROUND_RESULTS.has(round.result));
    const record = superseded ? { ...loaded, rounds: loaded.rounds.map((round) => (PENDING_ROUND_RESULTS.has(round.result) ? { ...round, result: 'superseded' } : round)) } : loaded;
    const watch: Watch = { issue, change, record, lastHeadSha: change.headSha, lookError: null };
    this.#watches.set(issue.key, watch);
    if (superseded) await this.#save(watch, record);
    await claims.markShepherding(issue.key, change.url);
    log.info({ issue: issue.key, pull: change.url, head: shortSha(change.headSha), draft: change.draft }, 'branch pushed; pull request open');
  }

  /**
   * A fix round's outcome, from the dispatcher's writeback (also after a
   * restart): a succeeded round's commits are pushed to the pull request,
   * and the round's result goes into the record.
   */
  finishFixRound(issue: Issue, outcome: RunOutcome): Promise<void> {
    return this.#serially(issue.key, () => this.#finishFixRound(issue, outcome));
  }

  async #finishFixRound(issue: Issue, outcome: RunOutcome): Promise<void> {
    const { host, log } = this.#options;
    const fix = outcome.fix;
    if (!fix) return;
    const known = this.#watches.get(issue.key);
    const record = known?.record ?? (await host.loadRecord(issue));
    if (record === undefined) {
      log.warn({ issue: issue.key, round: fix.round }, 'a fix round ended for a pull request with no record; nothing to push to');
      return;
    }
    const watch: Watch = known ?? {
      issue,
      change: { issueKey: issue.key, number: record.pullNumber, url: record.pullUrl, branch: record.branch, headSha: fix.onSha, draft: true },
      record,
      lastHeadSha: fix.onSha,
      lookError: null,
    };
    this.#watches.set(issue.key, watch);
    const round = record.rounds.find((entry) => entry.round === fix.round) ?? roundOf(fix, outcome.startedAtMs);
    let finished: ShepherdRound = { ...round, result: outcome.reason, detail: oneLine(outcome.detail, ROUND_DETAIL_CHARS) };
    if (outcome.reason === 'succeeded') {
      const change = await host.publish(watch.issue, outcome, watch.record);
      watch.change = change;
      watch.lastHeadSha = change.headSha;
      // A head that did not move is no push: the next poll treats the round as one that pushed nothing.
      finished = { ...finished, pushedSha: change.headSha === fix.onSha ? null : change.headSha };
    }
    const rounds = record.rounds.some((entry) => entry.round === fix.round) ? record.rounds.map((entry) => (entry.round === fix.round ? finished : entry)) : [...record.rounds, finished];
    await this.#save(watch, {
      ...watch.record,
      rounds,
      lastVerdict: finished.pushedSha === null ? `fix round ${fix.round} ${outcome.reason}` : `pushed ${shortSha(finished.pushedSha)}; waiting for checks`,
    });
    log.info({ issue: issue.key, round: fix.round, result: outcome.reason, pushed: finished.pushedSha }, 'fix round finished');
    await this.#stage(watch.issue, watch.record.escalated === null ? 'pr-open' : 'needs-human');
  }

  snapshot(): ShepherdWatch[] {
    return [...this.#watches.values()].map((watch) => {
      const claim = this.#options.claims.claim(watch.issue.key);
      const pending = claim?.fix?.round;
      return {
        issueKey: watch.issue.key,
        pullNumber: watch.change.number,
        pullUrl: watch.change.url,
        branch: watch.change.branch,
        headSha: watch.lastHeadSha,
        verdict: watch.record.lastVerdict,
        escalated: watch.record.escalated,
        // The round on the claim shows where the dispatcher has it: queued for a slot or running.
        rounds: watch.record.rounds.map((round) =>
          round.round === pending && PENDING_ROUND_RESULTS.has(round.result) ? { ...round, result: claim?.status === 'running' ? 'running' : 'queued' } : round,
        ),
        fixing: pending !== undefined,
        lookError: watch.lookError,
      };
    });
  }

  /** Looks at every followed pull request now (a test, or a webhook about a pull request). */
  tick(): Promise<void> {
    this.#ticking ??= this.#tickAll().finally(() => {
      this.#ticking = undefined;
    });
    return this.#ticking;
  }

  /** Stops polling. Fix rounds are runs of the dispatcher, which releases them (their claims keep the round for the next start). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#options.clock.clearTimeout(this.#timer);
    await this.#ticking;
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = this.#options.clock.setTimeout(() => {
      void this.tick().finally(() => this.#schedule());
    }, this.#options.policy.pollIntervalMs);
  }

  async #tickAll(): Promise<void> {
    for (const key of [...this.#watches.keys()]) {
      if (this.#closed) return;
      await this.#serially(key, async () => {
        // Read after our turn came: a fix round's end may have just pushed and recorded, or the pull request stopped being followed.
        const watch = this.#watches.get(key);
        if (watch === undefined) return;
        // A run of the issue is queued, running or parked (a fix round or a new revision): its outcome moves the pull request; judge after it.
        const claim = this.#options.claims.claim(key);
        if (claim !== undefined && isActiveClaimStatus(claim.status) && claim.status !== 'shepherding') return;
        await this.#lookOrWarn(watch);
      });
    }
    await this.#followUnfollowed();
  }

  async #lookOrWarn(watch: Watch): Promise<void> {
    const key = watch.issue.key;
    try {
      await this.#look(watch);
      watch.lookError = null;
      this.#warnedAtMs.delete(key);
    } catch (error) {
      watch.lookError = (error as Error).message;
      this.#warnEachPoll(key, { pull: watch.change.number, err: watch.lookError }, 'could not look at the pull request; trying again next poll');
    }
  }

  /** A warning about one issue's pull request, at most once per poll interval (a webhook may make polls more often). */
  #warnEachPoll(issueKey: string, fields: Record<string, unknown>, message: string): void {
    const { clock, policy, log } = this.#options;
    const last = this.#warnedAtMs.get(issueKey);
    if (last !== undefined && clock.now() - last < policy.pollIntervalMs) return;
    this.#warnedAtMs.set(issueKey, clock.now());
    log.warn({ issue: issueKey, ...fields }, message);
  }

  /**
   * Runs `work` after every earlier record change of the issue has ended.
   * A fix round's end pushes, then records the round; a poll in between
   * would see the new head's checks against a record where the round is
   * still queued, write that to the status comment, and the two writes
   * could land in either order. One turn at a time per issue rules it out.
   */
  #serially(issueKey: string, work: () => Promise<void>): Promise<void> {
    const previous = this.#turns.get(issueKey) ?? Promise.resolve();
    const turn = previous.then(work);
    const settled = turn.catch(() => undefined);
    this.#turns.set(issueKey, settled);
    void settled.then(() => {
      if (this.#turns.get(issueKey) === settled) this.#turns.delete(issueKey);
    });
    return turn;
  }

  async #look(watch: Watch): Promise<void> {
    const { host, policy, log } = this.#options;
    const observation = await host.observe(watch.change);
    watch.lastHeadSha = observation.headSha;
    this.#logIgnoredReviews(watch, observation);
    const verdict = judgePull(observation, watch.record, { maxRounds: policy.maxRounds, ...(policy.trustedReviewers ? { trust: policy.trustedReviewers } : {}) });
    switch (verdict.kind) {
      case 'wait':
        await this.#note(watch, verdict.reason);
        return;
      case 'closed':
        this.#watches.delete(watch.issue.key);
        await this.#save(watch, { ...watch.record, merged: verdict.merged, lastVerdict: verdict.merged ? 'merged' : 'closed without merging' });
        await this.#options.claims.pullClosed(watch.issue.key, verdict.merged, watch.change.url);
        if (verdict.merged) await this.#stage(watch.issue, 'done');
        log.info({ issue: watch.issue.key, pull: watch.change.url, merged: verdict.merged }, 'pull request closed; no longer followed');
        return;
      case 'green':
        await this.#green(watch, verdict);
        return;
      case 'escalate':
        await this.#save(watch, { ...watch.record, escalated: verdict.reason, lastVerdict: `needs a person (${shortSha(verdict.onSha)})` });
        await host.escalate(watch.issue, watch.change, renderEscalation(watch.record, verdict.reason));
        log.warn({ issue: watch.issue.key, pull: watch.change.url, reason: verdict.reason }, 'pull request escalated to a person');
        return;
      case 'fix':
        await this.#queueRound(watch, verdict);
        return;
    }
  }

  /** Names each approval or change request that does not count by id, author and association; never its body, which may be hostile. */
  #logIgnoredReviews(watch: Watch, observation: PullObservation): void {
    for (const review of untrustedVerdicts(observation.reviews, this.#options.policy.trustedReviewers)) {
      if (this.#ignoredReviews.has(review.id)) continue;
      this.#ignoredReviews.add(review.id);
      this.#options.log.info(
        { issue: watch.issue.key, pull: watch.change.number, review: review.id, author: review.author, association: review.association, state: review.state, byFactory: review.byFactory },
        'ignored a review: its author is not a trusted reviewer (shepherd.trustedReviewers)',
      );
    }
  }

  async #green(watch: Watch, verdict: Extract<ShepherdVerdict, { kind: 'green' }>): Promise<void> {
    const { policy, host, log } = this.#options;
    if (policy.merge !== 'never' && verdict.approved) {
      await host.merge(watch.change, policy.merge, verdict.onSha);
      log.info({ issue: watch.issue.key, pull: watch.change.url, method: policy.merge, head: shortSha(verdict.onSha) }, 'pull request merged: CI green and approved');
      return;
    }
    await this.#note(watch, verdict.approved ? `green and approved on ${shortSha(verdict.onSha)}` : `green on ${shortSha(verdict.onSha)}; waiting for review`);
  }

  /** Records the verdict when it changed (one comment edit per change, not per poll). */
  async #note(watch: Watch, verdict: string): Promise<void> {
    if (watch.record.lastVerdict === verdict) return;
    await this.#save(watch, { ...watch.record, lastVerdict: verdict });
  }

  async #save(watch: Watch, record: ShepherdRecord): Promise<void> {
    watch.record = record;
    await this.#options.host.saveRecord(watch.issue, record);
  }

  async #stage(issue: Issue, stage: Parameters<IssueProgress['markStage']>[1]): Promise<void> {
    await this.#options.progress?.markStage(issue, stage).catch((error: Error) => this.#options.log.warn({ issue: issue.key, stage, err: error.message }, 'could not show the stage on the issue'));
  }

  /**
   * Queues the round on the claim first (durable: a crash after it still runs
   * the round once), then records it; the dispatcher starts it when a slot is free.
   */
  async #queueRound(watch: Watch, verdict: Extract<ShepherdVerdict, { kind: 'fix' }>): Promise<void> {
    const { claims, clock, log } = this.#options;
    const fix: FixRound = {
      round: watch.record.rounds.length + 1,
      trigger: verdict.trigger,
      onSha: verdict.onSha,
      failures: verdict.failures,
      fingerprints: verdict.fingerprints,
      branch: watch.change.branch,
      feedback: verdict.feedback,
    };
    const queued = await claims.queueFixRound(watch.issue.key, fix);
    if (!queued.queued) {
      log.warn({ issue: watch.issue.key, pull: watch.change.url, status: queued.status }, 'the pull request needs a fix round, but its issue is not being shepherded; not fixing it');
      await this.#note(watch, `needs a fix round on ${shortSha(verdict.onSha)}; the issue is ${queued.status}`);
      return;
    }
    log.info({ issue: watch.issue.key, pull: watch.change.url, round: fix.round, trigger: verdict.trigger, on: shortSha(verdict.onSha), failures: verdict.failures }, 'fix round queued');
    await this.#save(watch, { ...watch.record, rounds: [...watch.record.rounds, roundOf(fix, clock.now())], lastVerdict: `fix round ${fix.round}: ${fix.failures.join('; ')}` });
  }
}

/** How much of a round's outcome detail the record keeps (it lives in the status comment). */
const ROUND_DETAIL_CHARS = 300;

function roundOf(fix: FixRound, atMs: number): ShepherdRound {
  return { round: fix.round, trigger: fix.trigger as ShepherdRound['trigger'], onSha: fix.onSha, failures: fix.failures, fingerprints: fix.fingerprints, result: 'queued', pushedSha: null, atMs };
}

function freshRecord(change: PublishedChange): ShepherdRecord {
  return { pullNumber: change.number, pullUrl: change.url, branch: change.branch, rounds: [], escalated: null, lastVerdict: 'opened; waiting for checks', merged: false };
}

function renderEscalation(record: ShepherdRecord, reason: string): string {
  const lines = [`${reason}.`, '', record.rounds.length === 0 ? 'Factory made no fix round.' : 'What Factory tried:', ''];
  for (const round of record.rounds) {
    lines.push(
      `- Round ${round.round} (${round.trigger} on \`${shortSha(round.onSha)}\`): ${round.failures.join('; ')}; result ${round.result}${round.detail ? ` (${round.detail})` : ''}${round.pushedSha === null ? '' : `, pushed \`${shortSha(round.pushedSha)}\``}`,
    );
  }
  lines.push('', 'Factory stops working on this pull request: it is yours to take over.');
  return lines.join('\n');
}
