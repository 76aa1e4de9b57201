import { InMemoryStateStore } from '../src/adapters/state-store/in-memory-state-store.js';
import { admit, earliestRetryAtMs } from '../src/core/dispatch/admission.js';
import { ClaimBook } from '../src/core/dispatch/claim-book.js';
import type { ClaimStatus, IssueClaim } from '../src/domain/claim.js';
import type { Issue } from '../src/domain/issue.js';
import { median, round, timeRuns } from './bench-support.js';

/**
 * What a dispatch pass costs as history grows: the selection every pump and
 * every retry-wake makes (admit over the claim book's waiting claims, plus
 * the earliest retry deadline), with 20 issues waiting, once with no
 * finished claims and once with a long history of them. The ratio is the
 * figure: history a daemon has accumulated should not slow dispatch.
 */

function claimOf(issueKey: string, status: ClaimStatus, index: number): IssueClaim {
  return {
    issueKey,
    revision: 'r1',
    status,
    attempt: status === 'retry-wait' ? 1 : 0,
    nextAttemptAtMs: status === 'retry-wait' ? 10_000 + index : null,
    runId: null,
    repo: '/repos/api',
    priority: index % 3,
    createdAtMs: index,
    updatedAtMs: index,
    lastReason: 'bench',
    epoch: 1,
    interruptions: 0,
    node: null,
  };
}

async function bookWith(history: number, waiting: number): Promise<{ book: ClaimBook; issues: Map<string, Issue> }> {
  const store = new InMemoryStateStore();
  const epoch = await store.beginEpoch({ pid: 1, startTime: 1, bootId: 'bench', hostname: 'bench' }, 0);
  const claims: IssueClaim[] = [];
  for (let i = 0; i < history; i++) claims.push(claimOf(`OLD-${i}`, i % 10 === 0 ? 'gave-up' : 'succeeded', i));
  const issues = new Map<string, Issue>();
  for (let i = 0; i < waiting; i++) {
    const key = `NEW-${i}`;
    claims.push(claimOf(key, i % 4 === 0 ? 'retry-wait' : 'queued', history + i));
    issues.set(key, { key, revision: 'r1', title: key, body: '', labels: [], createdAtMs: i } as unknown as Issue);
  }
  for (let i = 0; i < claims.length; i += 5_000) await store.apply({ epoch, claims: claims.slice(i, i + 5_000) });
  return { book: await ClaimBook.load(store, epoch), issues };
}

async function selectionMs(history: number): Promise<number> {
  const { book, issues } = await bookWith(history, 20);
  const durations = await timeRuns(() => {
    admit({ claims: book.waiting(), issues, busy: () => false, freeSlots: 4, nowMs: 20_000 });
    earliestRetryAtMs(book.waiting());
  }, 2_000);
  return median(durations);
}

export async function benchDispatchSelection(history = 50_000): Promise<Record<string, unknown>> {
  const baseline = await selectionMs(0);
  const withHistory = await selectionMs(history);
  return {
    name: 'dispatch-selection',
    waitingIssues: 20,
    finishedClaimsInHistory: history,
    selectionUsMedianNoHistory: round(baseline * 1000, 1),
    selectionUsMedianWithHistory: round(withHistory * 1000, 1),
    ratioWithHistoryToNone: round(withHistory / baseline, 2),
  };
}
