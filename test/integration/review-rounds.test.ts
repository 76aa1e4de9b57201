import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ReviewRoundEntry } from '../../src/domain/review.js';
import type { RunOutcome } from '../../src/domain/run.js';
import { dispatchForOutcome, runFactoryCli } from '../support/factory-cli.js';
import { createScratchProject, git, REPO_ROOT, type ScratchProject } from '../support/sandbox.js';

/**
 * Review rounds end to end with the command driver: the real CLI (`factory
 * dispatch`), a real git repo and worktree, and fixture agents. The reviewer
 * writes its verdict to FACTORY_REVIEW_FILE; request-changes sends the
 * implementer back with the comments, up to review.maxRounds.
 */

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'agents');
const projects: ScratchProject[] = [];
after(() => {
  for (const project of projects) rmSync(project.dir, { recursive: true, force: true });
});

function projectWithReviewer(name: string, reviewerMode: string, extra: Record<string, unknown> = {}): ScratchProject {
  const project = createScratchProject(name, {
    agents: {
      implementer: { command: [process.execPath, join(FIXTURES, 'review-implementer.mjs')] },
      reviewer: { command: [process.execPath, join(FIXTURES, 'scripted-reviewer.mjs'), reviewerMode] },
    },
    runs: { killGraceMs: 500, superviseIntervalMs: 200 },
    http: { enabled: false },
    ...extra,
  });
  projects.push(project);
  return project;
}

async function dispatch(project: ScratchProject, key: string): Promise<{ code: number | null; outcome: RunOutcome; stderr: string }> {
  project.writeIssue(key, { title: `Do ${key}` });
  return dispatchForOutcome(project.configPath, key);
}

function branchCommits(project: ScratchProject, branch: string): string[] {
  return git(project.repo, 'log', '--format=%H', `main..${branch}`).split('\n').filter(Boolean).reverse();
}

const summary = (rounds: readonly ReviewRoundEntry[] | undefined): string[] => (rounds ?? []).map((r) => `${r.round} ${r.role}${r.verdict ? ` ${r.verdict}` : ''}`);

describe('review rounds (command driver)', { timeout: 90_000 }, () => {
  it('a reviewer that requests changes once sends the implementer back with its comments, then approves: succeeded after 2 rounds', async () => {
    const project = projectWithReviewer('review-once', 'once');
    const { code, outcome, stderr } = await dispatch(project, 'REV-1');
    assert.equal(outcome.reason, 'succeeded', `${outcome.detail}\n${stderr}`);
    assert.equal(code, 0);
    assert.deepEqual(summary(outcome.reviewRounds), ['1 implementer', '1 reviewer request-changes', '2 implementer', '2 reviewer approve']);

    // The implementer really got the comments and committed a fix; each entry names the branch head after its stage.
    const work = git(project.repo, 'show', 'factory/REV-1:WORK.md');
    assert.match(work, /round 2: addressed "round 1: add a test for the empty input"/);
    const commits = branchCommits(project, 'factory/REV-1');
    assert.equal(commits.length, 2);
    const rounds = outcome.reviewRounds!;
    assert.equal(rounds[0]!.commit, commits[0]);
    assert.equal(rounds[1]!.commit, commits[0], 'the reviewer of round 1 saw the first commit');
    assert.equal(rounds[3]!.commit, commits[1]);
    assert.equal(rounds[1]!.commentsSummary, 'round 1: add a test for the empty input');
    assert.equal(rounds[3]!.verdictSource, 'file');

    // The report next to the issue and the state (status --json reads the same store as /api/v1/state) carry the history.
    const report = readFileSync(join(project.issuesDir, 'REV-1.outcome.md'), 'utf8');
    assert.match(report, /## Review rounds/);
    assert.match(report, /round 1, reviewer: \*\*request-changes\*\* "round 1: add a test for the empty input" at `[0-9a-f]{12}`/);
    assert.match(report, /round 2, reviewer: \*\*approve\*\*/);
    const status = await runFactoryCli(['status', '--json', '--config', project.configPath]);
    const state = JSON.parse(status.stdout) as { recentOutcomes: RunOutcome[] };
    assert.deepEqual(summary(state.recentOutcomes[0]?.reviewRounds), summary(outcome.reviewRounds));
    // Verdict files live beside the logs, never in the worktree.
    assert.equal(existsSync(join(outcome.worktree, 'review.json')), false);
    assert.equal(git(project.repo, 'status', '--porcelain').trim(), '');
  });

  it('a reviewer that always requests changes ends the run changes-requested after review.maxRounds, and it is not retried', async () => {
    const project = projectWithReviewer('review-always', 'always', { review: { maxRounds: 3 }, dispatch: { maxAttempts: 3, backoffBaseMs: 10, backoffMaxMs: 10 } });
    const { code, outcome } = await dispatch(project, 'REV-2');
    assert.equal(outcome.reason, 'changes-requested');
    assert.equal(code, 1);
    assert.match(outcome.detail, /after 3 review round\(s\) \(review\.maxRounds 3\): round 3: add a test/);
    assert.deepEqual(summary(outcome.reviewRounds), ['1 implementer', '1 reviewer request-changes', '2 implementer', '2 reviewer request-changes', '3 implementer', '3 reviewer request-changes']);
    // Not retried: nothing waits in the queue or for a retry, and it ran once.
    const status = JSON.parse((await runFactoryCli(['status', '--json', '--config', project.configPath])).stdout) as {
      queue: unknown[];
      retries: unknown[];
      outcomeCount: number;
      recentOutcomes: RunOutcome[];
    };
    assert.deepEqual([status.queue.length, status.retries.length, status.outcomeCount], [0, 0, 1]);
    assert.equal(status.recentOutcomes[0]?.reason, 'changes-requested');
  });

  it('a verdict file that is not a verdict fails the run with the reason; no verdict file at all approves (reviewers from before verdicts)', async () => {
    const garbage = projectWithReviewer('review-garbage', 'garbage', { dispatch: { maxAttempts: 1 } });
    const bad = await dispatch(garbage, 'REV-3');
    assert.equal(bad.outcome.reason, 'failed');
    assert.match(bad.outcome.detail, /reviewer wrote an invalid verdict to FACTORY_REVIEW_FILE: not JSON: looks fine to me/);

    const silent = projectWithReviewer('review-silent', 'silent');
    const ok = await dispatch(silent, 'REV-4');
    assert.equal(ok.outcome.reason, 'succeeded', ok.outcome.detail);
    assert.deepEqual(summary(ok.outcome.reviewRounds), ['1 implementer', '1 reviewer approve']);
    assert.equal(ok.outcome.reviewRounds![1]!.verdictSource, 'exit-code');
  });
});
