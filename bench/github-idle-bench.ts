import { FakeClock } from '../src/adapters/clock/fake-clock.js';
import type { IssueSourceEvent } from '../src/ports/issue-source.js';
import { createSourceOverFake, startFakeGitHub } from '../test/support/fake-github/github-source-harness.js';
import { round, waitUntil } from './bench-support.js';

/**
 * What an idle GitHub source costs: a subscription watching 20 repos (25 open
 * issues each, half in scope) over simulated minutes on the fake clock, with
 * requests counted at the fake GitHub. "Counted" requests are the ones GitHub
 * charges to the rate limit: 304s answering a conditional request are free.
 * Then one label change, to show what noticing it costs and how long it waits
 * for its repository's turn when no webhook announces it.
 *
 *   node --import tsx bench/github-idle-bench.ts
 */

const REPOS = 20;
const ISSUES_PER_REPO = 25;
const SIMULATED_MINUTES = 10;

async function measure(pollIntervalMs: number, requestBudgetPerMinute: number | undefined) {
  const fake = await startFakeGitHub();
  const slugs = Array.from({ length: REPOS }, (_, i) => `acme/service-${i + 1}`);
  for (const slug of slugs) {
    fake.createRepo(slug);
    for (let n = 0; n < ISSUES_PER_REPO; n++) fake.createIssue(slug, { title: `Issue ${n + 1}`, body: 'Body', labels: n % 2 === 0 ? ['factory'] : ['bug'] });
  }
  const clock = new FakeClock(Date.now());
  const { source } = createSourceOverFake(fake, slugs, { clock, source: { pollIntervalMs, ...(requestBudgetPerMinute === undefined ? {} : { requestBudgetPerMinute }) } });
  const tickMs = source.pollTickMs;
  const events: IssueSourceEvent[] = [];
  const subscription = await source.subscribe({ onEvent: (event) => void events.push(event), onError: (error) => console.error(error) });
  const startup = { requests: fake.requests.length, counted: fake.countedRequests };

  // The first poll after start moves each repo's since-cursor onto its steady query; measure from the second.
  const advanceOnePoll = async (): Promise<void> => {
    const before = source.completedPolls;
    await clock.advance(tickMs);
    await waitUntil('a poll', () => source.completedPolls > before);
  };
  // One full turn over every repo first.
  for (let elapsed = 0; elapsed <= source.repoPollIntervalMs; elapsed += tickMs) await advanceOnePoll();
  const idleStart = { requests: fake.requests.length, counted: fake.countedRequests };
  const polls = Math.round((SIMULATED_MINUTES * 60_000) / tickMs);
  for (let i = 0; i < polls; i++) await advanceOnePoll();
  const idle = { requests: fake.requests.length - idleStart.requests, counted: fake.countedRequests - idleStart.counted };

  const beforeChange = { requests: fake.requests.length, counted: fake.countedRequests, events: events.length };
  fake.updateIssue('acme/service-7', 2, { labels: ['bug', 'factory'] });
  // Without a webhook the change waits for its repo's turn: measure how long that is.
  const changedAtMs = clock.now();
  while (!events.slice(beforeChange.events).some((event) => event.path?.includes('service-7'))) await advanceOnePoll();
  const noticedAfterMs = clock.now() - changedAtMs;
  const change = {
    noticedAfterMs,
    requests: fake.requests.length - beforeChange.requests,
    counted: fake.countedRequests - beforeChange.counted,
    events: events.slice(beforeChange.events).map((event) => `${event.kind} ${event.path}`),
  };

  await subscription.close();
  await fake.close();
  return {
    pollIntervalMs,
    requestBudgetPerMinute: requestBudgetPerMinute ?? null,
    repoPollIntervalMs: source.repoPollIntervalMs,
    startup,
    idleRequestsPerMinute: round(idle.requests / SIMULATED_MINUTES, 1),
    idleCountedRequestsPerMinute: round(idle.counted / SIMULATED_MINUTES, 1),
    idle304Share: idle.requests === 0 ? 0 : round((idle.requests - idle.counted) / idle.requests, 3),
    change,
  };
}

const results = [];
// The daemon's default (a budget of 10 requests a minute), then unbudgeted polling for comparison.
for (const [pollIntervalMs, budget] of [
  [60_000, 10],
  [60_000, undefined],
  [30_000, undefined],
] as const) {
  results.push(await measure(pollIntervalMs, budget));
}
console.log(JSON.stringify({ bench: 'github-idle', repos: REPOS, issuesPerRepo: ISSUES_PER_REPO, simulatedMinutes: SIMULATED_MINUTES, results }, null, 2));
