import { FactoryError } from '../../errors.js';
import { isStatusComment, renderStatusComment, STATUS_COMMENT_MARKER, type GitHubRepoRef } from '../../domain/github-issue.js';
import type { Issue } from '../../domain/issue.js';
import type { RunOutcome } from '../../domain/run.js';
import { decodeShepherdRecord, encodeShepherdRecord, renderShepherdSection, type ShepherdRecord } from '../../domain/shepherd.js';
import type { IssueStage } from '../../ports/publisher.js';
import type { GitHubIdentity } from './github-identity.js';
import type { GitHubRepoClient, IssueComment } from './github-repo-client.js';

/** Factory's lifecycle labels on an issue; each name is configurable. */
export interface LifecycleLabelNames {
  readonly queued: string;
  readonly working: string;
  readonly done: string;
  readonly failed: string;
  readonly parked: string;
  readonly prOpen: string;
  readonly needsHuman: string;
}

export type LifecycleStage = keyof LifecycleLabelNames;

export const DEFAULT_LIFECYCLE_LABELS: LifecycleLabelNames = {
  queued: 'factory:queued',
  working: 'factory:working',
  done: 'factory:done',
  failed: 'factory:failed',
  parked: 'factory:parked',
  prOpen: 'factory:pr-open',
  needsHuman: 'factory:needs-human',
};

/** The port's stage names (`pr-open`) → the label keys of the config (`prOpen`). */
export function lifecycleStageOf(stage: IssueStage): LifecycleStage {
  return stage === 'pr-open' ? 'prOpen' : stage === 'needs-human' ? 'needsHuman' : stage;
}

/** The outcome's label: a published success is `pr-open` (the shepherd takes it from there), a run stopped for review or budget is parked. */
function stageForOutcome(outcome: RunOutcome, published: boolean): LifecycleStage {
  if (outcome.reason === 'succeeded') return published ? 'prOpen' : 'done';
  if (outcome.reason === 'changes-requested' || (outcome.reason as string) === 'parked') return 'parked';
  return 'failed';
}

const OUTCOME_OPEN = '<!-- factory:outcome -->';
const OUTCOME_CLOSE = '<!-- /factory:outcome -->';

/** What the one status comment shows: the last run's outcome and the pull request with its rounds. */
interface StatusParts {
  outcome: string | undefined;
  shepherd: ShepherdRecord | undefined;
}

const LABEL_LOOK: Record<LifecycleStage, { color: string; description: string }> = {
  queued: { color: 'c5def5', description: 'Factory has queued this issue' },
  working: { color: 'fbca04', description: 'A Factory team is working on this issue' },
  done: { color: '0e8a16', description: 'Factory finished this issue' },
  failed: { color: 'd93f0b', description: 'Factory gave this issue up; see its status comment' },
  parked: { color: 'bfd4f2', description: 'Factory stopped for a person (review rounds or budget); see its status comment' },
  prOpen: { color: '1d76db', description: 'Factory opened a pull request and follows it through CI and review' },
  needsHuman: { color: 'b60205', description: 'Factory tried and needs a person; see its status comment' },
};

/**
 * What Factory writes on a GitHub issue: one lifecycle label at a time,
 * verified by reading the labels back, and one status comment edited in place.
 * The comment is found by its hidden marker, never by memory alone, so a retry
 * or a restarted daemon edits the same comment instead of adding another; only
 * a marked comment Factory's own login wrote counts (anyone can paste the
 * marker, and a shepherd record with it).
 */
export class GitHubIssueWriteback {
  /** Status comment ids seen, to skip a listing when the comment is known; the listing stays the truth. */
  readonly #commentIds = new Map<string, number>();
  readonly #labelsEnsured = new Set<string>();
  /** The status comment's parts per issue, read back from the comment once per daemon. */
  readonly #status = new Map<string, StatusParts>();
  readonly #statusWrites = new Map<string, Promise<void>>();

  constructor(
    private readonly repoClient: GitHubRepoClient,
    private readonly identity: Pick<GitHubIdentity, 'ownMarkedComments'>,
    readonly labels: LifecycleLabelNames = DEFAULT_LIFECYCLE_LABELS,
    private readonly options: { readonly shepherdMaxRounds?: number } = {},
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
    throw new FactoryError(
      'FACTORY_GITHUB_WRITEBACK_UNVERIFIED',
      `${repo.owner}/${repo.name}#${number} should carry ${target} and no other lifecycle label, but reads back ${JSON.stringify(current)}`,
      {
        details: { issue: `${repo.owner}/${repo.name}#${number}`, expected: target, found: current },
      },
    );
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

  /** Records a run's outcome: its label (pr-open when the branch was published, done, failed or parked) and the status comment. */
  async recordOutcome(repo: GitHubRepoRef, number: number, issue: Issue, outcome: RunOutcome): Promise<void> {
    const parts = await this.#partsOf(repo, number);
    const published = parts.shepherd !== undefined && parts.shepherd.branch === outcome.branch && !parts.shepherd.merged;
    await this.setStage(repo, number, stageForOutcome(outcome, published));
    parts.outcome = renderStatusComment(issue.key, outcome).replace(`${STATUS_COMMENT_MARKER}\n`, '');
    await this.#writeStatus(repo, number, parts);
  }

  /** The shepherd's record as the status comment holds it (after a restart too). */
  async shepherdRecord(repo: GitHubRepoRef, number: number): Promise<ShepherdRecord | undefined> {
    return (await this.#partsOf(repo, number)).shepherd;
  }

  /** Keeps the record for the next status comment write; with `write`, writes the comment now. */
  async setShepherdRecord(repo: GitHubRepoRef, number: number, record: ShepherdRecord, write: boolean): Promise<void> {
    const parts = await this.#partsOf(repo, number);
    parts.shepherd = record;
    if (write) await this.#writeStatus(repo, number, parts);
  }

  async #partsOf(repo: GitHubRepoRef, number: number): Promise<StatusParts> {
    const key = `${repo.owner}/${repo.name}#${number}`.toLowerCase();
    const known = this.#status.get(key);
    if (known !== undefined) return known;
    const body = (await this.#statusComments(repo, number))[0]?.body ?? '';
    const start = body.indexOf(OUTCOME_OPEN);
    const end = body.indexOf(OUTCOME_CLOSE);
    const parts: StatusParts = {
      outcome: start >= 0 && end > start ? body.slice(start + OUTCOME_OPEN.length, end).trim() : undefined,
      shepherd: decodeShepherdRecord(body),
    };
    // A concurrent caller may have filled it while the listing ran: keep theirs.
    const raced = this.#status.get(key);
    if (raced !== undefined) return raced;
    this.#status.set(key, parts);
    return parts;
  }

  /** Status writes for one issue go one at a time: two concurrent first writes would each create a comment. */
  #writeStatus(repo: GitHubRepoRef, number: number, parts: StatusParts): Promise<void> {
    const key = `${repo.owner}/${repo.name}#${number}`.toLowerCase();
    const previous = this.#statusWrites.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.#writeStatusNow(repo, number, parts));
    this.#statusWrites.set(key, next);
    return next;
  }

  async #writeStatusNow(repo: GitHubRepoRef, number: number, parts: StatusParts): Promise<void> {
    const sections = [STATUS_COMMENT_MARKER];
    if (parts.outcome !== undefined) sections.push(OUTCOME_OPEN, parts.outcome.trim(), OUTCOME_CLOSE);
    if (parts.shepherd !== undefined) sections.push('', '---', '', renderShepherdSection(parts.shepherd, this.options.shepherdMaxRounds ?? 3), '', encodeShepherdRecord(parts.shepherd));
    await this.upsertStatusComment(repo, number, `${sections.join('\n')}\n`);
  }

  async #findStatusComment(repo: GitHubRepoRef, number: number): Promise<number | undefined> {
    const [keep, ...extras] = await this.#statusComments(repo, number);
    for (const extra of extras) await this.repoClient.deleteIssueComment(repo, extra.id);
    return keep?.id;
  }

  /** Factory's own status comments on the issue, oldest first. */
  async #statusComments(repo: GitHubRepoRef, number: number): Promise<IssueComment[]> {
    const comments = await this.repoClient.listIssueComments(repo, number);
    const own = await this.identity.ownMarkedComments(comments, isStatusComment, `${repo.owner}/${repo.name}#${number}`);
    return own.sort((a, b) => a.createdAtMs - b.createdAtMs || a.id - b.id);
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
