import { FactoryError } from '../../errors.js';
import { isStatusComment, renderStatusComment, STATUS_COMMENT_MARKER, type GitHubRepoRef } from '../../domain/github-issue.js';
import type { Issue } from '../../domain/issue.js';
import type { RunOutcome } from '../../domain/run.js';
import type { GitHubRepoClient } from './github-repo-client.js';

/** Factory's lifecycle labels on an issue; each name is configurable. */
export interface LifecycleLabelNames {
  readonly queued: string;
  readonly working: string;
  readonly done: string;
  readonly failed: string;
}

export type LifecycleStage = keyof LifecycleLabelNames;

export const DEFAULT_LIFECYCLE_LABELS: LifecycleLabelNames = {
  queued: 'factory:queued',
  working: 'factory:working',
  done: 'factory:done',
  failed: 'factory:failed',
};

const LABEL_LOOK: Record<LifecycleStage, { color: string; description: string }> = {
  queued: { color: 'c5def5', description: 'Factory has queued this issue' },
  working: { color: 'fbca04', description: 'A Factory team is working on this issue' },
  done: { color: '0e8a16', description: 'Factory finished this issue' },
  failed: { color: 'd93f0b', description: 'Factory gave this issue up; see its status comment' },
};

/**
 * What Factory writes on a GitHub issue: one lifecycle label at a time,
 * verified by reading the labels back, and one status comment edited in place.
 * The comment is found by its hidden marker, never by memory alone, so a retry
 * or a restarted daemon edits the same comment instead of adding another.
 */
export class GitHubIssueWriteback {
  /** Status comment ids seen, to skip a listing when the comment is known; the listing stays the truth. */
  readonly #commentIds = new Map<string, number>();
  readonly #labelsEnsured = new Set<string>();

  constructor(
    private readonly repoClient: GitHubRepoClient,
    readonly labels: LifecycleLabelNames = DEFAULT_LIFECYCLE_LABELS,
  ) {}

  /** Sets `stage`'s label and removes the other lifecycle labels; throws unless a read-back shows exactly that. */
  async setStage(repo: GitHubRepoRef, number: number, stage: LifecycleStage): Promise<void> {
    await this.#ensureLabels(repo);
    const target = this.labels[stage];
    const others = (Object.keys(this.labels) as LifecycleStage[]).filter((other) => other !== stage).map((other) => this.labels[other].toLowerCase());
    let current = await this.repoClient.listIssueLabels(repo, number);
    for (let attempt = 1; attempt <= 2; attempt++) {
      if (!current.some((label) => label.toLowerCase() === target.toLowerCase())) await this.repoClient.addIssueLabels(repo, number, [target]);
      for (const label of current.filter((name) => others.includes(name.toLowerCase()))) await this.repoClient.removeIssueLabel(repo, number, label);
      current = await this.repoClient.listIssueLabels(repo, number);
      const lower = current.map((label) => label.toLowerCase());
      if (lower.includes(target.toLowerCase()) && !lower.some((label) => others.includes(label))) return;
    }
    throw new FactoryError('FACTORY_GITHUB_WRITEBACK_UNVERIFIED', `${repo.owner}/${repo.name}#${number} should carry ${target} and no other lifecycle label, but reads back ${JSON.stringify(current)}`, {
      details: { issue: `${repo.owner}/${repo.name}#${number}`, expected: target, found: current },
    });
  }

  /**
   * Creates or edits the issue's one status comment. Duplicates (two daemons
   * raced, or a create whose answer was lost landed twice) are folded into the
   * oldest, which is kept.
   */
  async upsertStatusComment(repo: GitHubRepoRef, number: number, text: string): Promise<number> {
    const body = isStatusComment(text) ? text : `${STATUS_COMMENT_MARKER}\n${text}`;
    const cacheKey = `${repo.owner}/${repo.name}#${number}`.toLowerCase();
    const known = this.#commentIds.get(cacheKey);
    if (known !== undefined && (await this.repoClient.updateIssueComment(repo, known, body))) return known;

    const existing = await this.#findStatusComment(repo, number);
    if (existing !== undefined) {
      await this.repoClient.updateIssueComment(repo, existing, body);
      this.#commentIds.set(cacheKey, existing);
      return existing;
    }
    let created: number;
    try {
      created = await this.repoClient.createIssueComment(repo, number, body);
    } catch (error) {
      // The create may have landed with its answer lost: look before anyone tries again.
      const landed = await this.#findStatusComment(repo, number).catch(() => undefined);
      if (landed === undefined) throw error;
      await this.repoClient.updateIssueComment(repo, landed, body);
      created = landed;
    }
    this.#commentIds.set(cacheKey, created);
    return created;
  }

  /** Records a run's outcome: done or failed label, and the status comment. */
  async recordOutcome(repo: GitHubRepoRef, number: number, issue: Issue, outcome: RunOutcome): Promise<void> {
    await this.setStage(repo, number, outcome.reason === 'succeeded' ? 'done' : 'failed');
    await this.upsertStatusComment(repo, number, renderStatusComment(issue.key, outcome));
  }

  async #findStatusComment(repo: GitHubRepoRef, number: number): Promise<number | undefined> {
    const marked = (await this.repoClient.listIssueComments(repo, number)).filter((comment) => isStatusComment(comment.body)).sort((a, b) => a.createdAtMs - b.createdAtMs || a.id - b.id);
    const [keep, ...extras] = marked;
    for (const extra of extras) await this.repoClient.deleteIssueComment(repo, extra.id);
    return keep?.id;
  }

  async #ensureLabels(repo: GitHubRepoRef): Promise<void> {
    const key = `${repo.owner}/${repo.name}`.toLowerCase();
    if (this.#labelsEnsured.has(key)) return;
    for (const stage of Object.keys(this.labels) as LifecycleStage[]) {
      await this.repoClient.ensureLabel(repo, this.labels[stage], LABEL_LOOK[stage].color, LABEL_LOOK[stage].description);
    }
    this.#labelsEnsured.add(key);
  }
}
