import { randomBytes } from 'node:crypto';
import type { MergeMethod } from '../../config/publish-schema.js';
import type { Issue } from '../../domain/issue.js';
import type { RunOutcome } from '../../domain/run.js';
import { judgePull, shortSha, type ShepherdRecord, type ShepherdRound, type ShepherdVerdict } from '../../domain/shepherd.js';
import type { TeamStages } from '../../domain/team.js';
import { triageIssue, type TriageRules } from '../../domain/triage.js';
import type { Clock, TimerHandle } from '../../ports/clock.js';
import type { IssueSource } from '../../ports/issue-source.js';
import type { Logger } from '../../ports/logger.js';
import type { CodeHost, IssueProgress, PublishedChange } from '../../ports/publisher.js';
import type { TeamExecution, TeamExecutor } from '../../ports/team-executor.js';

/**
 * Sees each pull request Factory opened through CI and review. Every poll
 * reads the head commit, its checks and statuses, and the reviews; the pure
 * rules (domain/shepherd.ts) say wait, fix, escalate or green. A fix round
 * sends the team back to the same worktree and branch with the failures in
 * the issue text, then pushes again. The record (rounds, fingerprints, the
 * escalation) lives with the issue on the code host, so a restarted daemon
 * picks up where the last one stopped, and never answers one commit twice.
 */

export interface ShepherdOptions {
  readonly host: CodeHost;
  readonly progress?: IssueProgress;
  readonly source: IssueSource;
  readonly executor: TeamExecutor;
  readonly stages: TeamStages;
  readonly triage: TriageRules;
  readonly policy: { readonly maxRounds: number; readonly pollIntervalMs: number; readonly merge: MergeMethod };
  readonly epoch: number;
  readonly clock: Clock;
  readonly log: Logger;
  /** Whether the dispatcher runs a team for this issue now (the shepherd then waits its turn). */
  readonly isBusy: (issueKey: string) => boolean;
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
  readonly fixing: boolean;
}

interface Watch {
  issue: Issue;
  change: PublishedChange;
  record: ShepherdRecord;
  /** A fix round's team, while it works. */
  fixing: TeamExecution | undefined;
  lastHeadSha: string;
}

export class Shepherd {
  readonly #options: ShepherdOptions;
  readonly #watches = new Map<string, Watch>();
  #timer: TimerHandle | undefined;
  #ticking: Promise<void> | undefined;
  #closed = false;
  readonly #rounds = new Set<Promise<void>>();

  constructor(options: ShepherdOptions) {
    this.#options = options;
  }

  /** Finds the pull requests Factory opened before (a restart) and starts polling. */
  async start(): Promise<void> {
    const { host, source, log } = this.#options;
    try {
      for (const watched of await host.listWatched()) {
        const issue = await source.read(watched.issueLocation).catch(() => undefined);
        if (issue === undefined) continue;
        const record = await host.loadRecord(issue);
        if (record === undefined || record.pullNumber !== watched.change.number) continue;
        // A round the previous daemon did not finish: its commit may be answered again.
        const rounds = record.rounds.map((round) => (round.result === 'running' ? { ...round, result: 'interrupted' } : round));
        this.#watches.set(issue.key, { issue, change: { ...watched.change, issueKey: issue.key }, record: { ...record, rounds }, fixing: undefined, lastHeadSha: watched.change.headSha });
      }
      if (this.#watches.size > 0) log.info({ pulls: [...this.#watches.values()].map((watch) => watch.change.url) }, 'following the pull requests Factory opened before');
    } catch (error) {
      log.warn({ err: (error as Error).message }, 'could not list the pull requests Factory opened before; the next publish adds them back');
    }
    this.#schedule();
  }

  /**
   * A successful run's publish step (called by the writeback before it
   * records the outcome on the issue): push, open or update the pull request,
   * and follow it from now on.
   */
  async publish(issue: Issue, outcome: RunOutcome): Promise<void> {
    const change = await this.#options.host.publish(issue, outcome);
    const record = (await this.#options.host.loadRecord(issue)) ?? freshRecord(change);
    const existing = this.#watches.get(issue.key);
    this.#watches.set(issue.key, { issue, change, record, fixing: existing?.fixing, lastHeadSha: change.headSha });
    this.#options.log.info({ issue: issue.key, pull: change.url, head: shortSha(change.headSha), draft: change.draft }, 'branch pushed; pull request open');
  }

  snapshot(): ShepherdWatch[] {
    return [...this.#watches.values()].map((watch) => ({
      issueKey: watch.issue.key,
      pullNumber: watch.change.number,
      pullUrl: watch.change.url,
      branch: watch.change.branch,
      headSha: watch.lastHeadSha,
      verdict: watch.record.lastVerdict,
      escalated: watch.record.escalated,
      rounds: watch.record.rounds,
      fixing: watch.fixing !== undefined,
    }));
  }

  /** Looks at every followed pull request now (a test, or a webhook about a pull request). */
  tick(): Promise<void> {
    this.#ticking ??= this.#tickAll().finally(() => {
      this.#ticking = undefined;
    });
    return this.#ticking;
  }

  /** Stops polling and releases fix rounds in flight (their commit is answered again after a restart). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#options.clock.clearTimeout(this.#timer);
    await this.#ticking;
    for (const watch of this.#watches.values()) await watch.fixing?.cancel('released');
    await Promise.all(this.#rounds);
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = this.#options.clock.setTimeout(() => {
      void this.tick().finally(() => this.#schedule());
    }, this.#options.policy.pollIntervalMs);
  }

  async #tickAll(): Promise<void> {
    for (const watch of [...this.#watches.values()]) {
      if (this.#closed) return;
      if (watch.fixing !== undefined || this.#options.isBusy(watch.issue.key)) continue;
      try {
        await this.#look(watch);
      } catch (error) {
        this.#options.log.warn({ issue: watch.issue.key, pull: watch.change.number, err: (error as Error).message }, 'could not look at the pull request; trying again next poll');
      }
    }
  }

  async #look(watch: Watch): Promise<void> {
    const { host, policy, log } = this.#options;
    const observation = await host.observe(watch.change);
    watch.lastHeadSha = observation.headSha;
    const verdict = judgePull(observation, watch.record, { maxRounds: policy.maxRounds });
    switch (verdict.kind) {
      case 'wait':
        await this.#note(watch, verdict.reason);
        return;
      case 'closed':
        this.#watches.delete(watch.issue.key);
        await this.#save(watch, { ...watch.record, merged: verdict.merged, lastVerdict: verdict.merged ? 'merged' : 'closed without merging' });
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
        this.#startRound(watch, verdict);
        return;
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

  #startRound(watch: Watch, verdict: Extract<ShepherdVerdict, { kind: 'fix' }>): void {
    const { executor, stages, triage, epoch, log } = this.#options;
    const decision = triageIssue(watch.issue, triage);
    if (decision.verdict !== 'dispatch') {
      log.warn({ issue: watch.issue.key, reason: decision.reason }, 'the issue no longer routes to a checkout; not fixing its pull request');
      return;
    }
    const round: ShepherdRound = { round: watch.record.rounds.length + 1, trigger: verdict.trigger, onSha: verdict.onSha, failures: verdict.failures, fingerprints: verdict.fingerprints, result: 'running', pushedSha: null, atMs: this.#options.clock.now() };
    const runId = `${watch.issue.key}-e${epoch}-r${round.round}-${randomBytes(3).toString('hex')}`;
    const fixIssue: Issue = { ...watch.issue, body: `${watch.issue.body}\n\n${verdict.feedback}` };
    const team = executor.start({ issue: fixIssue, runId, attempt: round.round, repo: decision.repo, branch: watch.change.branch, stages });
    watch.fixing = team;
    log.info({ issue: watch.issue.key, pull: watch.change.url, round: round.round, trigger: verdict.trigger, on: shortSha(verdict.onSha), failures: verdict.failures }, 'fix round started');
    const work = this.#runRound(watch, round, team).finally(() => {
      watch.fixing = undefined;
      this.#rounds.delete(work);
    });
    this.#rounds.add(work);
  }

  async #runRound(watch: Watch, round: ShepherdRound, team: TeamExecution): Promise<void> {
    const { host, log } = this.#options;
    try {
      await this.#stage(watch.issue, 'working');
      await this.#save(watch, { ...watch.record, rounds: [...watch.record.rounds, round], lastVerdict: `fix round ${round.round}: ${round.failures.join('; ')}` });
      const outcome = await team.outcome;
      if (outcome.reason === 'released') return;
      let finished: ShepherdRound = { ...round, result: outcome.reason };
      if (outcome.reason === 'succeeded') {
        const change = await host.publish(watch.issue, outcome, watch.record);
        watch.change = change;
        watch.lastHeadSha = change.headSha;
        finished = { ...finished, pushedSha: change.headSha };
      }
      const rounds = watch.record.rounds.map((entry) => (entry.round === round.round ? finished : entry));
      await this.#save(watch, { ...watch.record, rounds, lastVerdict: finished.pushedSha === null ? `fix round ${round.round} ${outcome.reason}` : `pushed ${shortSha(finished.pushedSha)}; waiting for checks` });
      log.info({ issue: watch.issue.key, round: round.round, result: outcome.reason, pushed: finished.pushedSha }, 'fix round finished');
    } catch (error) {
      log.warn({ issue: watch.issue.key, round: round.round, err: (error as Error).message }, 'fix round failed; the commit is answered again at the next start');
    } finally {
      await this.#stage(watch.issue, watch.record.escalated === null ? 'pr-open' : 'needs-human');
    }
  }
}

function freshRecord(change: PublishedChange): ShepherdRecord {
  return { pullNumber: change.number, pullUrl: change.url, branch: change.branch, rounds: [], escalated: null, lastVerdict: 'opened; waiting for checks', merged: false };
}

function renderEscalation(record: ShepherdRecord, reason: string): string {
  const lines = [`${reason}.`, '', record.rounds.length === 0 ? 'Factory made no fix round.' : 'What Factory tried:', ''];
  for (const round of record.rounds) {
    lines.push(`- Round ${round.round} (${round.trigger} on \`${shortSha(round.onSha)}\`): ${round.failures.join('; ')}; result ${round.result}${round.pushedSha === null ? '' : `, pushed \`${shortSha(round.pushedSha)}\``}`);
  }
  lines.push('', 'Factory stops working on this pull request: it is yours to take over.');
  return lines.join('\n');
}
