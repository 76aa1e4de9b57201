import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { loadConfig } from '../../src/config/load.js';
import { FileHeartbeatStore } from '../../src/adapters/node-state/file-node-state.js';
import { markerPrefixFor } from '../../src/main.js';
import { killProcessesWithMarkerPrefix } from './agent-process-support.js';
import { createScratchProject } from '../support/sandbox.js';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import { StatusServer } from '../../src/http/status-server.js';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';
import { describePark, type ParkedRun } from '../../src/domain/budgets.js';
import type { IssueClaim } from '../../src/domain/claim.js';

/**
 * The dashboard in a real browser against a real daemon: `factory start --mode
 * live` with the HTTP server on port 0 (found through the heartbeat's
 * `http.url`), agents that work for about two seconds, and Debian's Chromium
 * driven by playwright-core. The page must show the team at work and then its
 * outcome, pushed over server-sent events, without a reload; untrusted issue
 * titles must stay text. Screenshots go to test-artifacts/.
 */

const CHROMIUM = '/usr/bin/chromium';
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
const WORK_BRIEFLY = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'work-briefly.mjs');
const REPLAY_CLAUDE = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'replay-claude-stream.mjs');
const HOSTILE_TITLE = '<img src=x onerror="window.__pwned=1">Render <b>bold</b> titles as text';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function waitForHeartbeatUrl(heartbeatPath: string, daemon: ChildProcess, log: () => string): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (daemon.exitCode !== null) throw new Error(`the daemon exited with ${daemon.exitCode}:\n${log()}`);
    const read = await new FileHeartbeatStore(heartbeatPath).read();
    if (read.kind === 'ok' && read.value.http) return read.value.http.url;
    if (Date.now() > deadline) throw new Error(`the heartbeat never named the status server:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function writeIssue(dir: string, key: string, title: string, priority: number): void {
  writeFileSync(join(dir, 'issues', `${key}.json`), JSON.stringify({ key, title, body: 'dashboard browser test', labels: ['factory'], state: 'ready', priority }));
}

test('the dashboard shows a team at work, then its outcome, without a reload', { timeout: 90_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip('chromium not installed: apt-get install chromium');
    return;
  }
  const { dir, configPath } = createScratchProject('dashboard', {
    // The implementer commits its work (a run with no commit is no-changes, not succeeded).
    agents: { implementer: { command: [process.execPath, WORK_BRIEFLY, '2000', '--commit'] }, reviewer: { command: [process.execPath, WORK_BRIEFLY, '2000'] } },
    dispatch: { teamMode: 'parallel', backoffBaseMs: 600_000 },
    runs: { killGraceMs: 1_000 },
    http: { port: 0 },
  });
  const config = loadConfig(configPath);
  cleanups.push(() => {
    killProcessesWithMarkerPrefix(new LinuxProcessTable(), markerPrefixFor(config));
    rmSync(dir, { recursive: true, force: true });
  });

  const env: NodeJS.ProcessEnv = { ...process.env, FACTORY_LOG_FORMAT: 'json' };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const daemon: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--mode', 'live', '--config', configPath], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let daemonLog = '';
  daemon.stderr!.setEncoding('utf8').on('data', (chunk: string) => (daemonLog += chunk));
  const exited = new Promise<number | null>((resolve) => daemon.once('close', (code) => resolve(code)));
  cleanups.push(() => {
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  });

  // Port 0: the heartbeat names the port the daemon got.
  const url = await waitForHeartbeatUrl(config.loop.heartbeatPath, daemon, () => daemonLog);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(daemonLog, new RegExp(`dashboard ${url.replace(/[.]/g, '\\.')}`), 'the ready line names the dashboard too');

  const profile = mkdtempSync(join(tmpdir(), 'factory-chromium-'));
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  cleanups.push(async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  let navigations = 0;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations++;
  });

  await page.goto(url);
  await page.locator('[data-testid="health"][data-state="green"]').waitFor({ timeout: 15_000 });
  const navigationsAfterLoad = navigations;

  writeIssue(dir, 'DASH-1', HOSTILE_TITLE, 1);
  writeIssue(dir, 'DASH-2-FAIL', 'Flaky migration that keeps failing', 2);

  const team = page.locator('[data-testid="team"][data-issue="DASH-1"]');
  await team.waitFor({ timeout: 15_000 });
  assert.equal(await team.locator('.title').textContent(), HOSTILE_TITLE, 'the untrusted title is shown as text');
  await page.locator('[data-testid="team"][data-issue="DASH-1"] .agent').nth(1).waitFor({ timeout: 5_000 });
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-running.png'), fullPage: true });

  // The agents exit after ~2 s; the outcome must arrive over the event stream.
  const outcome = page.locator('[data-testid="outcome"][data-issue="DASH-1"]');
  await outcome.waitFor({ timeout: 20_000 });
  assert.equal(await outcome.getAttribute('data-reason'), 'succeeded');
  await team.waitFor({ state: 'detached', timeout: 5_000 });

  // The second issue ran after the first, failed, and now waits out its backoff.
  await page.locator('[data-testid="retry"][data-issue="DASH-2-FAIL"]').waitFor({ timeout: 20_000 });
  await page.locator('[data-testid="outcome"][data-issue="DASH-2-FAIL"][data-reason="failed"]').waitFor({ timeout: 5_000 });

  // One click into a run's log tail.
  await outcome.getByRole('button', { name: 'log' }).click();
  const logText = page.locator('[data-testid="log-text"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="log-text"]')?.textContent?.includes('work-briefly: all done'), undefined, { timeout: 5_000 });
  assert.match((await logText.textContent()) ?? '', /work-briefly: (implementer|reviewer) on DASH-1/);
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-log.png') });
  await page.keyboard.press('Escape');

  assert.equal(navigations, navigationsAfterLoad, 'the page never reloaded');
  assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, 'no markup from an issue title ran');
  assert.deepEqual(pageErrors, [], 'no script errors on the page');
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

  // A narrow window still shows every section without horizontal scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scroll on a narrow window (overflow ${overflow}px)`);
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-narrow.png'), fullPage: true });

  daemon.kill('SIGTERM');
  assert.equal(await exited, 0, `the daemon stopped in order:\n${daemonLog}`);
});

test('a lost event stream dims the last snapshot and says since when; teams sort by start; times show absolute on hover', { timeout: 120_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip('chromium not installed: apt-get install chromium');
    return;
  }
  const { dir, configPath } = createScratchProject('dashboard-stale', {
    // Agents that outlive the test's checks; the daemon's ordered stop releases them.
    agents: { implementer: { command: [process.execPath, WORK_BRIEFLY, '120000'] } },
    dispatch: { batchSize: 2 },
    runs: { killGraceMs: 1_000 },
    http: { port: 0 },
  });
  const config = loadConfig(configPath);
  cleanups.push(() => {
    killProcessesWithMarkerPrefix(new LinuxProcessTable(), markerPrefixFor(config));
    rmSync(dir, { recursive: true, force: true });
  });
  const env: NodeJS.ProcessEnv = { ...process.env, FACTORY_LOG_FORMAT: 'json' };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const daemon: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--mode', 'live', '--config', configPath], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let daemonLog = '';
  daemon.stderr!.setEncoding('utf8').on('data', (chunk: string) => (daemonLog += chunk));
  const exited = new Promise<number | null>((resolve) => daemon.once('close', (code) => resolve(code)));
  cleanups.push(() => {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGCONT');
      daemon.kill('SIGKILL');
    }
  });
  const url = await waitForHeartbeatUrl(config.loop.heartbeatPath, daemon, () => daemonLog);

  const profile = mkdtempSync(join(tmpdir(), 'factory-chromium-'));
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  cleanups.push(async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(url);
  await page.locator('[data-testid="health"][data-state="green"]').waitFor({ timeout: 15_000 });
  // SORT-B's file goes in once SORT-A's team is at work, so the start order is a fact of the setup:
  // two files written back to back may be read in separate intake passes in either order.
  writeIssue(dir, 'SORT-A', 'First to start', 1);
  await page.locator('[data-testid="team"][data-issue="SORT-A"]').waitFor({ timeout: 15_000 });
  writeIssue(dir, 'SORT-B', 'Second to start', 2);
  await page.locator('[data-testid="team"]').nth(1).waitFor({ timeout: 15_000 });

  // Absolute times on hover: every age and countdown carries the instant as its title.
  const runningFor = page.locator('[data-testid="team"] .meta .t').first();
  const startedAtMs = Number(await runningFor.getAttribute('data-since'));
  const title = (await runningFor.getAttribute('title')) ?? '';
  const shownInPage = await page.evaluate((at) => new Date(at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }), startedAtMs);
  assert.equal(title, shownInPage, 'the hover text is the absolute start time');
  assert.match(title, new RegExp(String(new Date(startedAtMs).getFullYear())));

  // The page orders teams by start time itself, whatever order a snapshot lists them in: a second
  // tab gets the real state with the start times swapped, over a stream it is served once.
  const state = (await (await fetch(`${url}/api/v1/state`)).json()) as { teams: { issueKey: string; startedAtMs: number }[] };
  assert.deepEqual(
    state.teams.map((team) => team.issueKey),
    ['SORT-A', 'SORT-B'],
  );
  const [first, second] = [state.teams[0]!, state.teams[1]!];
  [first.startedAtMs, second.startedAtMs] = [second.startedAtMs + 60_000, first.startedAtMs];
  const reordered = await context.newPage();
  await reordered.route('**/events', (route) => route.fulfill({ status: 200, contentType: 'text/event-stream', body: `retry: 600000\nevent: state\ndata: ${JSON.stringify(state)}\n\n` }));
  await reordered.goto(url);
  await reordered.locator('[data-testid="team"]').nth(1).waitFor({ timeout: 10_000 });
  assert.deepEqual(await reordered.locator('[data-testid="team"]').evaluateAll((teams) => teams.map((team) => team.getAttribute('data-issue'))), ['SORT-B', 'SORT-A']);
  await reordered.close();

  // A hung daemon keeps the socket open and sends nothing: after three missed pushes the page
  // says so instead of going on showing "Healthy".
  assert.ok(daemon.kill('SIGSTOP'));
  const stoppedAt = Date.now();
  await page.locator('body[data-stale="true"]').waitFor({ timeout: 25_000 });
  // Pushes come every 5 s; the last one came at most 5 s before the stop.
  assert.ok(Date.now() - stoppedAt >= 9_000, 'one late push is not a lost stream');
  const pill = page.locator('[data-testid="health"]');
  assert.equal(await pill.getAttribute('data-state'), 'stale');
  assert.equal(await pill.textContent(), 'connection lost');
  assert.match(
    (await page.locator('[data-testid="stale-banner"]').textContent()) ?? '',
    /^Lost the connection to the daemon at \d{1,2}:\d{2}:\d{2}.*\(\d+s ago\)\. Showing the last snapshot, from \d{1,2}:\d{2}:\d{2}/,
  );
  // The dimming fades in over 0.3 s: wait (bounded) for it rather than sample mid-fade.
  await page.waitForFunction(() => Number(getComputedStyle(document.querySelector('.stats')!).opacity) < 0.6, undefined, { timeout: 5_000 }).catch(() => undefined);
  const opacity = await page.locator('.stats').evaluate((el) => Number(getComputedStyle(el).opacity));
  assert.ok(opacity < 0.6, `the stale snapshot is dimmed (opacity ${opacity})`);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-stale.png'), fullPage: true });

  // It comes back by itself once the daemon does (health may read degraded for a moment: the
  // subscription's probe was late too).
  assert.ok(daemon.kill('SIGCONT'));
  await page.locator('body:not([data-stale])').waitFor({ timeout: 15_000 });
  assert.notEqual(await pill.getAttribute('data-state'), 'stale');

  // The server stops while the page is open: stale again, with the teams of the last snapshot dimmed.
  daemon.kill('SIGTERM');
  assert.equal(await exited, 0, `the daemon stopped in order:\n${daemonLog}`);
  await page.locator('body[data-stale="true"]').waitFor({ timeout: 10_000 });
  assert.equal(await pill.textContent(), 'connection lost');
  assert.match((await page.locator('[data-testid="stale-banner"]').textContent()) ?? '', /Lost the connection to the daemon at/);
});

test("a Claude Code agent's activity while it works, then its run's usage, today's usage totals, review rounds and memory peak", { timeout: 120_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip('chromium not installed: apt-get install chromium');
    return;
  }
  // The implementer is a claude-code driver agent whose executable replays the real CLI's recorded
  // stream (test/fixtures/transcripts/claude-code-commit.jsonl): the daemon parses it as it grows and
  // the real server pushes what it read. It holds after its Bash tool call until the test releases it.
  const { dir, configPath } = createScratchProject('dashboard-usage', {});
  const release = join(dir, 'release-the-agent');
  writeFileSync(
    configPath,
    JSON.stringify({
      mount: { root: './issues' },
      repos: { default: './repo' },
      agents: {
        implementer: {
          driver: 'claude-code',
          command: [process.execPath, REPLAY_CLAUDE],
          claudeCode: { model: 'claude-scripted-1' },
          env: { REPLAY_RELEASE_FILE: release, REPLAY_HOLD_AFTER: '4', REPLAY_STEP_MS: '20' },
        },
        reviewer: { command: [process.execPath, WORK_BRIEFLY, '200'] },
      },
      // A memory budget, so the outcome carries the team's memory peak (where the machine can enforce one).
      resources: { team: { memoryMax: '1G' } },
      // Supervision samples each agent's tree RSS: often enough that the held implementer is sampled.
      runs: { killGraceMs: 1_000, superviseIntervalMs: 200 },
      http: { port: 0 },
    }),
  );
  const config = loadConfig(configPath);
  cleanups.push(() => {
    killProcessesWithMarkerPrefix(new LinuxProcessTable(), markerPrefixFor(config));
    rmSync(dir, { recursive: true, force: true });
  });
  const env: NodeJS.ProcessEnv = { ...process.env, FACTORY_LOG_FORMAT: 'json' };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const daemon: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--mode', 'live', '--config', configPath], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let daemonLog = '';
  daemon.stderr!.setEncoding('utf8').on('data', (chunk: string) => (daemonLog += chunk));
  const exited = new Promise<number | null>((resolve) => daemon.once('close', (code) => resolve(code)));
  cleanups.push(() => {
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  });
  const url = await waitForHeartbeatUrl(config.loop.heartbeatPath, daemon, () => daemonLog);

  const profile = mkdtempSync(join(tmpdir(), 'factory-chromium-'));
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  cleanups.push(async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(url);
  await page.locator('[data-testid="health"][data-state="green"]').waitFor({ timeout: 15_000 });
  assert.match((await page.locator('[data-testid="usage"]').textContent()) ?? '', /No Claude Code or Codex run has finished today/);
  writeIssue(dir, 'USE-1', 'Add hello.txt', 1);

  // While it works: the last tool call, turns, tokens so far (the first message: 1200 input, 1 output,
  // 300 cache read, 100 cache write) and no cost yet (Claude Code reports it in its result).
  const activity = page.locator('[data-testid="team"][data-issue="USE-1"] [data-testid="agent-activity"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="agent-activity"]')?.textContent?.includes('$ Bash: printf'), undefined, { timeout: 20_000 });
  const running = (await activity.textContent()) ?? '';
  assert.match(running, /^implementer claude-code 1 turn · 1\.6k tokens · no cost reported/);
  assert.match(running, /\$ Bash: printf "hello\\n" > hello\.txt && git add hello\.txt && git commit/);
  assert.equal(await activity.locator('.figures').getAttribute('title'), 'input 1200 · output 1 · cache read 300 · cache write 100');
  // Its sampled memory peak so far, on its agent row and in the state API's running team.
  const runningPeak = page.locator('[data-testid="team"][data-issue="USE-1"] [data-testid="agent-memory-peak"]');
  await runningPeak.waitFor({ timeout: 10_000 });
  assert.match((await runningPeak.textContent()) ?? '', /^peak \d+ MB$/);
  const runningState = (await (await fetch(`${url}/api/v1/state`)).json()) as { teams: { issueKey: string; agents: { role: string; memoryPeakBytes: number | null }[] }[] };
  const runningImplementer = runningState.teams.find((team) => team.issueKey === 'USE-1')?.agents.find((agent) => agent.role === 'implementer');
  assert.ok((runningImplementer?.memoryPeakBytes ?? 0) > 10 * 2 ** 20, `the state API has the running implementer's sampled peak: ${JSON.stringify(runningImplementer)}`);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-agent-activity.png'), fullPage: true });

  // Released, it finishes: the run's usage is the result's totals (2700 + 52 + 1500 + 100 tokens, $0.01264).
  writeFileSync(release, '');
  const outcome = page.locator('[data-testid="outcome"][data-issue="USE-1"]');
  await outcome.waitFor({ timeout: 30_000 });
  assert.equal(await outcome.getAttribute('data-reason'), 'succeeded', daemonLog);
  assert.equal(await outcome.locator('[data-testid="run-usage"]').textContent(), 'usage 2 turns · 4.4k tokens · $0.0126');
  const rounds = await outcome.locator('[data-testid="review-rounds"] li').allTextContents();
  assert.equal(rounds.length, 2, rounds.join('\n'));
  assert.match(rounds[0]!, /^round 1 · implementer @ [0-9a-f]{10}$/);
  assert.match(rounds[1]!, /^round 1 · reviewer: approve @ [0-9a-f]{10}$/);
  // Each sampled agent's peak (the reviewer works 200 ms and may end before a tick samples it).
  assert.match((await outcome.locator('[data-testid="agent-memory"]').textContent()) ?? '', /^agent memory peak \(sampled RSS\) implementer \d+ MB( · reviewer \d+ MB)?$/);

  // Today's totals from the usage ledger, as the state API has them.
  const state = (await (await fetch(`${url}/api/v1/state`)).json()) as { recentOutcomes: { issueKey: string; memory?: { peakBytes: number } }[] };
  await page.locator('[data-testid="usage-row"][data-role="implementer"]').waitFor({ timeout: 10_000 });
  assert.deepEqual(await page.locator('[data-testid="usage-row"]').evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((td) => td.textContent))), [
    ['implementer (claude-code)', '1', '2', '4.4k', '$0.0126'],
  ]);
  assert.deepEqual(await page.locator('[data-testid="usage-total"] td').allTextContents(), ['Total today', '1', '2', '4.4k', '$0.0126']);
  assert.equal(await page.locator('[data-testid="usage-total"] td').nth(3).getAttribute('title'), 'input 2700 · output 52 · cache read 1500 · cache write 100');
  assert.equal(await page.locator('[data-testid="usage-all-time"]').textContent(), 'All time: 1 agent run · 4.4k tokens · $0.0126');

  // The memory peak shows whenever the run had a budget the machine could measure.
  const memory = state.recentOutcomes.find((o) => o.issueKey === 'USE-1')?.memory;
  if (memory) assert.match((await outcome.locator('[data-testid="memory-peak"]').textContent()) ?? '', /^memory peak \d+ MB of a 1\.0 GB budget/);
  else t.diagnostic('no memory peak in the outcome: this machine measures no team memory');
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-usage.png'), fullPage: true });
  assert.deepEqual(pageErrors, [], 'no script errors on the page');

  daemon.kill('SIGTERM');
  assert.equal(await exited, 0, `the daemon stopped in order:\n${daemonLog}`);
});

test('the Parked panel lists each parked issue with its reason, since when, how it resumes and where its work is', { timeout: 60_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip('chromium not installed: apt-get install chromium');
    return;
  }
  const { dir, configPath } = createScratchProject('dashboard-parked', {
    agents: { implementer: { command: [process.execPath, WORK_BRIEFLY, '1'] }, reviewer: { command: [process.execPath, WORK_BRIEFLY, '1'] } },
    http: { port: 0 },
  });
  const config = loadConfig(configPath);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  // The parked claims as a daemon leaves them in the state database: the server reads them from there.
  const nowMs = Date.now();
  const store = new SqliteStateStore(config.paths.stateDb);
  const epoch = await store.beginEpoch({ pid: process.pid, startTime: 1, bootId: 'boot', hostname: 'test' }, nowMs);
  const parkedClaim = (issueKey: string, park: ParkedRun, agoMs: number): IssueClaim => ({
    issueKey,
    revision: 'r1',
    status: 'parked',
    attempt: 0,
    nextAttemptAtMs: null,
    runId: park.runId,
    repo: dir,
    priority: null,
    createdAtMs: 1,
    updatedAtMs: nowMs - agoMs,
    lastReason: describePark(park, issueKey),
    epoch,
    interruptions: 0,
    node: null,
    park,
  });
  const park = (runId: string, trigger: ParkedRun['trigger'], reason: string, resumeAtMs: number | null): ParkedRun => ({
    runId,
    ref: `refs/factory/park/${runId}`,
    commit: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
    trigger,
    reason,
    resumeAtMs,
    stage: 0,
    sessions: { implementer: 'sess-1' },
  });
  await store.apply({
    epoch,
    claims: [
      parkedClaim('BUD-1', park('BUD-1-e1-a1-aaaaaa', 'run-budget', 'used 2400000 tokens of budgets.run.maxTokens 2000000', null), 5 * 60_000),
      parkedClaim('LIM-1', park('LIM-1-e1-a1-bbbbbb', 'usage-limit', "You've hit your usage limit", nowMs + 2 * 3_600_000), 60_000),
      parkedClaim('MEM-1', park('MEM-1-e1-a1-cccccc', 'memory-pressure', "the machine's memory pressure has stayed high (PSI some avg10 45% ≥ 20% for 30 s)", null), 10_000),
    ],
  });
  await store.close();
  const server = await StatusServer.start({ config, processTable: new LinuxProcessTable(), clock: new SystemClock(), log: createSilentLogger(), listen: { host: '127.0.0.1', port: 0 } });
  cleanups.push(() => server.close());

  const profile = mkdtempSync(join(tmpdir(), 'factory-chromium-'));
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  cleanups.push(async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(server.url);
  const rows = page.locator('[data-testid="parked-issue"]');
  await rows.first().waitFor({ timeout: 15_000 });
  assert.equal(await rows.count(), 3);
  const row = (key: string) => page.locator(`[data-testid="parked-issue"][data-issue="${key}"]`);
  assert.equal(await row('BUD-1').locator('[data-testid="parked-reason"]').textContent(), 'used 2400000 tokens of budgets.run.maxTokens 2000000');
  assert.equal(await row('BUD-1').locator('[data-testid="parked-resumes"]').textContent(), 'on factory resume BUD-1');
  assert.match((await row('BUD-1').textContent()) ?? '', /5m 0\ds/, 'since when it is parked');
  assert.equal(await row('BUD-1').locator('[data-testid="parked-work"]').textContent(), 'refs/factory/park/BUD-1-e1-a1-aaaaaa @ a1b2c3d');
  assert.match((await row('LIM-1').locator('[data-testid="parked-resumes"]').textContent()) ?? '', /^in (1h 59m|2h 00m)$/);
  assert.equal(await row('MEM-1').locator('[data-testid="parked-resumes"]').textContent(), 'once memory pressure stays low');
  assert.match((await row('MEM-1').locator('[data-testid="parked-reason"]').textContent()) ?? '', /memory pressure has stayed high/);
  assert.equal(await page.locator('#c-parked').textContent(), '(3)');
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-parked.png'), fullPage: true });
  assert.deepEqual(pageErrors, []);
});
