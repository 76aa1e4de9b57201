import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { dirname, join } from 'node:path';
import { SystemClock } from '../../src/adapters/clock/system-clock.js';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import { compileConfig, type FactoryConfig } from '../../src/config/load.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';
import type { IntakePass } from '../../src/core/live-intake.js';
import { isFactoryError } from '../../src/errors.js';
import { settle } from '../../src/adapters/clock/fake-clock.js';
import { prepareDaemonHttp } from '../../src/http/daemon-http.js';
import { DaemonObserver } from '../../src/http/daemon-observer.js';
import type { DaemonView, LiveTeam } from '../../src/http/daemon-view.js';
import { FactoryMetrics } from '../../src/http/metrics.js';
import type { StateDocument } from '../../src/http/state-document.js';
import { StatusServer } from '../../src/http/status-server.js';
import { claimFor, liveAgentEntry, ownIdentity, outcomeFor, processTable, runIdFor, subscriptionHealth, tempConfig, writeHeartbeatAs, writeRegistryOf } from '../support/daemon-files.js';
import { createHarness } from '../support/session-harness.js';

/**
 * The status server against real sockets (bound to port 0), real files and
 * /proc. The heartbeat files carry this process's real identity, so
 * "alive" and "dead" are decided by /proc exactly as for a real daemon.
 */

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A raw request: the path goes on the wire exactly as given (no URL normalisation), unlike fetch. */
function get(base: string, path: string, options: { method?: string; host?: string } = {}): Promise<Reply> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: options.method ?? 'GET', headers: options.host ? { host: options.host } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function getJson<T = Record<string, unknown>>(base: string, path: string): Promise<{ status: number; json: T }> {
  const reply = await get(base, path);
  assert.match(String(reply.headers['content-type']), /^application\/json/, `${path} answers JSON`);
  return { status: reply.status, json: JSON.parse(reply.body) as T };
}

/** Opens /events and hands back each `state` event's document as it arrives. */
function openEvents(base: string): { next(timeoutMs: number): Promise<StateDocument>; close(): void } {
  const url = new URL(base);
  const frames: StateDocument[] = [];
  const waiters: ((doc: StateDocument) => void)[] = [];
  let buffer = '';
  const req = httpRequest({ host: url.hostname, port: url.port, path: '/events' }, (res) => {
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!/^event: state$/m.test(frame)) continue;
        const data = frame
          .split('\n')
          .filter((line) => line.startsWith('data: '))
          .map((line) => line.slice(6))
          .join('\n');
        const doc = JSON.parse(data) as StateDocument;
        const waiter = waiters.shift();
        if (waiter) waiter(doc);
        else frames.push(doc);
      }
    });
  });
  req.on('error', () => undefined);
  req.end();
  return {
    next(timeoutMs) {
      const ready = frames.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no state event within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((doc) => {
          clearTimeout(timer);
          resolve(doc);
        });
      });
    },
    close: () => req.destroy(),
  };
}

/** Parses Prometheus text exposition (format 0.0.4) strictly enough to catch malformed output. */
function parsePrometheusText(text: string): Map<string, { type: string; help: string; samples: { name: string; labels: Record<string, string>; value: number }[] }> {
  const families = new Map<string, { type: string; help: string; samples: { name: string; labels: Record<string, string>; value: number }[] }>();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: -?\\d+)?$`);
  const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)/;
  const familyOf = (name: string): string | undefined => {
    if (families.has(name)) return name;
    for (const suffix of ['_bucket', '_sum', '_count']) if (name.endsWith(suffix) && families.get(name.slice(0, -suffix.length))?.type === 'histogram') return name.slice(0, -suffix.length);
    return undefined;
  };
  assert.ok(text.endsWith('\n'), 'exposition ends with a newline');
  for (const [index, line] of text.split('\n').entries()) {
    const where = `line ${index + 1}: ${line}`;
    if (line === '') continue;
    const help = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line);
    const type = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (help) {
      const family = families.get(help[1]!) ?? { type: '', help: '', samples: [] };
      assert.equal(family.help, '', `${where}: HELP given twice`);
      families.set(help[1]!, { ...family, help: help[2]! });
      continue;
    }
    if (type) {
      const family = families.get(type[1]!) ?? { type: '', help: '', samples: [] };
      assert.equal(family.type, '', `${where}: TYPE given twice`);
      assert.equal(family.samples.length, 0, `${where}: TYPE after samples`);
      families.set(type[1]!, { ...family, type: type[2]! });
      continue;
    }
    assert.ok(!line.startsWith('#') || line.startsWith('# '), `${where}: malformed comment`);
    if (line.startsWith('#')) continue;
    const sample = SAMPLE.exec(line);
    assert.ok(sample, `${where}: not a valid sample`);
    const labels: Record<string, string> = {};
    let rest = sample[2] ?? '';
    while (rest.length > 0) {
      const label = LABEL.exec(rest);
      assert.ok(label, `${where}: malformed labels`);
      labels[label[1]!] = label[2]!;
      rest = rest.slice(label[0].length);
    }
    const value = sample[3] === '+Inf' ? Infinity : sample[3] === '-Inf' ? -Infinity : Number(sample[3]);
    assert.ok(sample[3] === 'NaN' || !Number.isNaN(value), `${where}: value is not a number`);
    const family = familyOf(sample[1]!);
    assert.ok(family, `${where}: sample of a family without # TYPE`);
    families.get(family)!.samples.push({ name: sample[1]!, labels, value });
  }
  for (const [name, family] of families) {
    assert.ok(family.type && family.help, `${name}: has both HELP and TYPE`);
    if (family.type !== 'histogram') continue;
    // One series per label set (apart from `le`): cumulative buckets ending at +Inf, which equals _count.
    const seriesKey = (labels: Record<string, string>): string =>
      JSON.stringify(
        Object.entries(labels)
          .filter(([k]) => k !== 'le')
          .sort(),
      );
    const series = new Map<string, typeof family.samples>();
    for (const sample of family.samples.filter((s) => s.name === `${name}_bucket`)) series.set(seriesKey(sample.labels), [...(series.get(seriesKey(sample.labels)) ?? []), sample]);
    for (const [key, buckets] of series) {
      const counts = buckets.map((b) => b.value);
      assert.deepEqual(
        counts,
        [...counts].sort((a, b) => a - b),
        `${name}${key}: buckets are cumulative`,
      );
      assert.equal(buckets.at(-1)?.labels.le, '+Inf', `${name}${key}: ends with the +Inf bucket`);
      const count = family.samples.find((s) => s.name === `${name}_count` && seriesKey(s.labels) === key);
      assert.equal(buckets.at(-1)?.value, count?.value, `${name}${key}: +Inf bucket equals _count`);
    }
  }
  return families;
}

function writeLog(config: FactoryConfig, issueKey: string, runId: string, role: string, lines: number): string {
  const path = join(config.paths.logsDir, issueKey, `${runId}-${role}.log`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, Array.from({ length: lines }, (_, i) => `${role} line ${i + 1}`).join('\n') + '\n');
  return path;
}

const servers: StatusServer[] = [];
async function startServer(config: FactoryConfig, options: Partial<Parameters<typeof StatusServer.start>[0]> = {}): Promise<StatusServer> {
  const server = await StatusServer.start({ config, processTable, clock: new SystemClock(), log: createSilentLogger(), listen: { host: '127.0.0.1', port: 0 }, ...options });
  servers.push(server);
  return server;
}
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

describe('/healthz: liveness (ok) apart from dispatch health (status)', () => {
  let config: FactoryConfig;
  let base: string;
  before(async () => {
    config = tempConfig({ loop: { heartbeatStaleMs: 30_000 } });
    base = (await startServer(config)).url;
  });

  test('a live daemon with a fresh heartbeat and a subscribed intake: 200 for liveness and readiness', async () => {
    await writeHeartbeatAs(config, { status: 'running' });
    const live = await getJson<{ ok: boolean; verdict: string; status: { state: string } }>(base, '/healthz');
    assert.equal(live.status, 200);
    assert.equal(live.json.ok, true);
    assert.equal(live.json.verdict, 'healthy');
    assert.equal(live.json.status.state, 'ready');
    assert.equal((await get(base, '/healthz?check=status')).status, 200);
    assert.equal((await get(base, '/readyz')).status, 200);
  });

  test('a stale heartbeat from a live process (wedged) fails liveness with 503', async () => {
    await writeHeartbeatAs(config, { updatedAtMs: Date.now() - 45_000 });
    const reply = await getJson<{ ok: boolean; verdict: string; status: { state: string } }>(base, '/healthz');
    assert.equal(reply.status, 503);
    assert.equal(reply.json.ok, false);
    assert.equal(reply.json.verdict, 'wedged');
    assert.equal(reply.json.status.state, 'unavailable');
  });

  test('a heartbeat whose process is gone (crashed daemon) fails liveness with 503', async () => {
    const child = spawnSync(process.execPath, ['-e', ''], {});
    assert.equal(child.status, 0);
    await writeHeartbeatAs(config, {}, { ...ownIdentity(), pid: child.pid! });
    const reply = await getJson<{ ok: boolean; verdict: string }>(base, '/healthz');
    assert.equal(reply.status, 503);
    assert.equal(reply.json.verdict, 'stale');
  });

  test('a stopping daemon is alive (200: do not restart it mid-stop) but not ready (503)', async () => {
    await writeHeartbeatAs(config, { status: 'stopping' });
    const live = await getJson<{ ok: boolean; verdict: string }>(base, '/healthz');
    assert.equal(live.status, 200);
    assert.deepEqual([live.json.ok, live.json.verdict], [true, 'stopping']);
    const ready = await getJson<{ status: { state: string; reasons: string[] } }>(base, '/healthz?check=status');
    assert.equal(ready.status, 503);
    assert.equal(ready.json.status.state, 'unavailable');
    assert.match(ready.json.status.reasons.join(' '), /stopping/);
  });

  test('a wedged subscription keeps liveness (the daemon heals or exits by itself) and fails readiness', async () => {
    await writeHeartbeatAs(config, { subscription: subscriptionHealth({ state: 'wedged', lastError: 'probe not seen back', unhealthySinceMs: Date.now() - 5_000 }) });
    const live = await getJson<{ ok: boolean; status: { state: string; lastErrors: { source: string; message: string }[] } }>(base, '/healthz');
    assert.equal(live.status, 200);
    assert.equal(live.json.status.state, 'unavailable');
    assert.deepEqual(live.json.status.lastErrors, [{ source: 'subscription', message: 'probe not seen back' }]);
    assert.equal((await get(base, '/readyz')).status, 503);
  });

  test('a reconnecting subscription is degraded: still ready (intake polls meanwhile) but reported', async () => {
    await writeHeartbeatAs(config, { subscription: subscriptionHealth({ state: 'reconnecting', lastError: 'watcher closed', unhealthySinceMs: Date.now() - 1_000 }) });
    const ready = await getJson<{ status: { state: string } }>(base, '/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.json.status.state, 'degraded');
  });

  test('no heartbeat at all: 503 with the verdict missing', async () => {
    rmSync(config.loop.heartbeatPath, { force: true });
    const reply = await getJson<{ ok: boolean; verdict: string }>(base, '/healthz');
    assert.deepEqual([reply.status, reply.json.ok, reply.json.verdict], [503, false, 'missing']);
  });

  test('an unknown check is a 400 naming the choices', async () => {
    const reply = await getJson<{ error: string }>(base, '/healthz?check=deep');
    assert.equal(reply.status, 400);
    assert.match(reply.json.error, /"ok" or "status"/);
  });
});

describe('state, metrics, logs, events and the dashboard of a daemon at work', () => {
  const config = tempConfig();
  const runningRun = runIdFor('RUN-1', 2);
  const preparingRun = runIdFor('PREP-1');
  const finishedRun = runIdFor('DONE-1');
  const hostileTitle = '<img src=x onerror="alert(1)"> Fix </script> & "quotes"';
  let server: StatusServer;
  let observer: DaemonObserver;
  let liveTeams: LiveTeam[];
  const view: DaemonView = {
    teams: () => liveTeams,
    runningTeamCount: () => liveTeams.length,
    queuedCount: () => 2,
    nextRetryAtMs: () => Date.now() + 60_000,
    subscription: () => subscriptionHealth(),
    heartbeat: () => ({ status: 'running', refreshIntervalMs: 15_000, lastWrite: { status: 'running', atMs: Date.now(), durationMs: 0.42 }, lastWriteError: null }),
    predecessor: () => ({ found: 3, reaped: 3, survivors: [], requeued: ['RUN-1'], attached: [] }),
  };

  before(async () => {
    const nowMs = Date.now();
    liveTeams = [
      { issueKey: 'RUN-1', title: hostileTitle, runId: runningRun, attempt: 2, startedAtMs: nowMs - 30_000, lastActivityAtMs: nowMs - 2_000, stopping: null, agents: [] },
      { issueKey: 'PREP-1', title: 'Worktree on its way', runId: preparingRun, attempt: 1, startedAtMs: nowMs - 100, lastActivityAtMs: nowMs - 100, stopping: null, agents: [] },
    ];
    await writeHeartbeatAs(config);
    await writeRegistryOf(config, [liveAgentEntry(config, 'RUN-1', runningRun)]);
    const store = new SqliteStateStore(config.paths.stateDb);
    const epoch = await store.beginEpoch({ ...ownIdentity(), hostname: 'test-host' }, nowMs);
    await store.apply({
      epoch,
      claims: [
        claimFor('RUN-1', { status: 'running', attempt: 2, runId: runningRun }),
        claimFor('QUEUE-1'),
        claimFor('RETRY-1', { status: 'retry-wait', attempt: 1, nextAttemptAtMs: nowMs + 60_000, lastReason: 'failed: implementer exited with code 3' }),
      ],
    });
    await store.apply({ epoch, outcome: { outcome: outcomeFor('DONE-1', finishedRun, 'failed'), nextClaim: claimFor('DONE-1', { status: 'gave-up', attempt: 2, runId: finishedRun }) } });
    await store.close();
    writeLog(config, 'RUN-1', runningRun, 'implementer', 500);
    writeLog(config, 'DONE-1', finishedRun, 'implementer', 3);
    writeLog(config, 'DONE-1', finishedRun, 'reviewer', 2);
    const metrics = new FactoryMetrics({ heartbeatAgeMs: async () => 1_500, processMetrics: false });
    observer = new DaemonObserver(metrics);
    server = await startServer(config, { view, metrics, onChange: (listener) => observer.onChange(listener), pushIntervalMs: 60_000 });
  });

  test('/api/v1/state: the status snapshot plus what only the daemon knows', async () => {
    const { status, json } = await getJson<StateDocument>(server.url, '/api/v1/state');
    assert.equal(status, 200);
    assert.equal(json.apiVersion, 1);
    assert.equal(json.health.ok, true);
    const running = json.teams.find((t) => t.issueKey === 'RUN-1');
    assert.ok(running, 'the registered team is listed');
    assert.equal(running.attempt, 2);
    assert.equal(running.title, hostileTitle, 'titles are data, passed through unchanged for the page to escape');
    assert.ok(running.lastActivityAtMs !== null);
    assert.deepEqual(
      running.agents.map((a) => [a.role, a.alive]),
      [['implementer', true]],
    );
    assert.ok(
      json.teams.some((t) => t.issueKey === 'PREP-1' && t.agents.length === 0),
      'a team still preparing its worktree is listed too',
    );
    assert.deepEqual(
      json.queue.map((c) => c.issueKey),
      ['QUEUE-1'],
    );
    assert.deepEqual(
      json.retries.map((c) => [c.issueKey, c.attempt]),
      [['RETRY-1', 1]],
    );
    assert.ok(json.retries[0]!.nextAttemptAtMs! > Date.now());
    assert.deepEqual(
      json.recentOutcomes.map((o) => [o.issueKey, o.reason]),
      [['DONE-1', 'failed']],
    );
    assert.equal(json.live?.heartbeat.refreshIntervalMs, 15_000);
    assert.deepEqual(json.live?.predecessor, { found: 3, reaped: 3, requeued: ['RUN-1'] });
  });

  test('/metrics: valid Prometheus text with every documented family, fed by the daemon', async () => {
    observer.hooks.onOutcome(outcomeFor('DONE-1', finishedRun, 'failed'));
    observer.hooks.onOutcome(outcomeFor('DONE-2', runIdFor('DONE-2'), 'succeeded'));
    const reply = await get(server.url, '/metrics');
    assert.equal(reply.status, 200);
    assert.match(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusText(reply.body);
    const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
      [...families.values()].flatMap((f) => f.samples).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    assert.equal(value('factory_teams_running'), 2);
    assert.equal(value('factory_issues_queued'), 2);
    assert.equal(value('factory_heartbeat_age_seconds'), 1.5);
    assert.ok(Math.abs(value('factory_heartbeat_refresh_duration_seconds')! - 0.00042) < 1e-9, 'the last write took 0.42 ms');
    assert.equal(value('factory_run_outcomes_total', { reason: 'failed' }), 1);
    assert.equal(value('factory_run_outcomes_total', { reason: 'stalled' }), 0, 'every reason is exported before it happens');
    assert.equal(value('factory_subscription_state', { state: 'subscribed' }), 1);
    assert.equal(value('factory_subscription_state', { state: 'wedged' }), 0);
    for (const family of ['factory_dispatches_total', 'factory_event_to_dispatch_seconds', 'factory_predecessor_agents_reaped_total', 'factory_heartbeat_refresh_failing']) {
      assert.ok(families.has(family), `${family} is exported`);
    }
  });

  test('event-to-dispatch latency counts teams the event started, measured from the event', async () => {
    const metrics = new FactoryMetrics({ heartbeatAgeMs: async () => null, processMetrics: false });
    const local = new DaemonObserver(metrics);
    const starts: ((team: { plan: { issue: { key: string } }; startedAtMs: number }) => void)[] = [];
    local.attach({ predecessor: { found: 2, reaped: 2, survivors: [], requeued: [] }, dispatcher: { observeStarts: (l: never) => (starts.push(l), () => undefined) } } as never);
    const pass = (firstEventAtMs: number | null, queued: string[]): IntakePass => ({
      kind: 'events',
      issues: queued.length,
      skippedFiles: [],
      decisions: queued.map((issueKey) => ({ issueKey, action: 'queued', reason: 'routed' })),
      durationMs: 1,
      firstEventAtMs,
    });
    starts[0]!({ plan: { issue: { key: 'A' } }, startedAtMs: 1_040 });
    local.hooks.onIntakePass(pass(1_000, ['A']));
    // A retry started between passes did not come from an event: not counted.
    starts[0]!({ plan: { issue: { key: 'B' } }, startedAtMs: 5_000 });
    local.hooks.onIntakePass(pass(4_000, ['C']));
    const text = await metrics.render();
    const families = parsePrometheusText(text);
    const samples = families.get('factory_event_to_dispatch_seconds')!.samples;
    assert.equal(samples.find((s) => s.name === 'factory_event_to_dispatch_seconds_count')?.value, 1);
    assert.equal(samples.find((s) => s.name === 'factory_event_to_dispatch_seconds_sum')?.value, 0.04);
    assert.equal(samples.find((s) => s.name === 'factory_event_to_dispatch_seconds_bucket' && s.labels.le === '0.05')?.value, 1);
    assert.equal(families.get('factory_predecessor_agents_reaped_total')!.samples[0]!.value, 2);
    assert.equal(families.get('factory_dispatches_total')!.samples[0]!.value, 2);
  });

  test('/api/v1/runs/:runId/log: the tail of each agent log of one run', async () => {
    const tail = await getJson<{ runId: string; issueKey: string; agents: { role: string; text: string; truncated: boolean }[] }>(server.url, `/api/v1/runs/${runningRun}/log?tail=3`);
    assert.equal(tail.status, 200);
    assert.equal(tail.json.issueKey, 'RUN-1');
    assert.deepEqual(
      tail.json.agents.map((a) => [a.role, a.text, a.truncated]),
      [['implementer', 'implementer line 498\nimplementer line 499\nimplementer line 500\n', true]],
    );
    const both = await getJson<{ agents: { role: string; truncated: boolean }[] }>(server.url, `/api/v1/runs/${finishedRun}/log`);
    assert.deepEqual(
      both.json.agents.map((a) => [a.role, a.truncated]),
      [
        ['implementer', false],
        ['reviewer', false],
      ],
    );
    const reviewer = await getJson<{ agents: { role: string }[] }>(server.url, `/api/v1/runs/${finishedRun}/log?role=reviewer`);
    assert.deepEqual(
      reviewer.json.agents.map((a) => a.role),
      ['reviewer'],
    );
    assert.equal((await get(server.url, `/api/v1/runs/${runIdFor('NOPE-1')}/log`)).status, 404);
    assert.equal((await get(server.url, `/api/v1/runs/${runningRun}/log?tail=0`)).status, 400);
    assert.equal((await get(server.url, `/api/v1/runs/${runningRun}/log?tail=abc`)).status, 400);
    assert.equal((await get(server.url, `/api/v1/runs/${runningRun}/log?role=../../x`)).status, 400);
  });

  test('the log endpoint cannot be walked out of the logs folder', async () => {
    const secret = join(dirname(config.paths.stateDir), 'secret.txt');
    writeFileSync(secret, 'TOP SECRET\n');
    // A symlink planted inside the logs folder, named like a real run's log.
    const plantedRun = runIdFor('EVIL-1');
    mkdirSync(join(config.paths.logsDir, 'EVIL-1'), { recursive: true });
    symlinkSync(secret, join(config.paths.logsDir, 'EVIL-1', `${plantedRun}-implementer.log`));
    const attempts = [
      `/api/v1/runs/${plantedRun}/log`,
      '/api/v1/runs/..%2F..%2Fsecret.txt/log',
      '/api/v1/runs/%2E%2E/log',
      '/api/v1/runs/..%2F..%2F..%2Fetc%2Fpasswd/log',
      `/api/v1/runs/${encodeURIComponent(`../../secret.txt${'\0'}`)}/log`,
      '/api/v1/runs/../../../../etc/passwd/log',
      `/api/v1/runs/RUN-1-e1-a1-abc%2F..%2F..%2F..%2Fsecret/log`,
      '/api/v1/runs/%ZZ/log',
    ];
    for (const path of attempts) {
      const reply = await get(server.url, path);
      assert.ok([400, 404].includes(reply.status), `${path}: refused (got ${reply.status})`);
      assert.doesNotMatch(reply.body, /TOP SECRET|root:/, `${path}: leaks nothing`);
    }
  });

  test('/events: a snapshot on connect, then one as soon as the state changes (not only on the timer)', async () => {
    const events = openEvents(server.url);
    try {
      const first = await events.next(5_000);
      assert.deepEqual(first.teams.map((t) => t.issueKey).sort(), ['PREP-1', 'RUN-1']);
      liveTeams = liveTeams.filter((t) => t.issueKey !== 'PREP-1');
      observer.hooks.onOutcome(outcomeFor('PREP-1', preparingRun, 'succeeded'));
      // The push interval is a minute here: only the change can explain a second event this soon.
      const second = await events.next(2_000);
      assert.deepEqual(
        second.teams.map((t) => t.issueKey),
        ['RUN-1'],
      );
    } finally {
      events.close();
    }
  });

  test('/: the dashboard, with a CSP that admits only its own inline script and style', async () => {
    const reply = await get(server.url, '/');
    assert.equal(reply.status, 200);
    assert.match(String(reply.headers['content-type']), /^text\/html/);
    assert.match(reply.body, /<title>Factory<\/title>/);
    const csp = String(reply.headers['content-security-policy']);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /connect-src 'self'/);
    assert.ok(!/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/.test(reply.body), 'the page never parses data as HTML');
  });

  test('unknown routes 404, other methods 405, and foreign Host headers (DNS rebinding) 403', async () => {
    assert.equal((await get(server.url, '/nope')).status, 404);
    assert.equal((await get(server.url, '/api/v1/state', { method: 'POST' })).status, 405);
    assert.equal((await get(server.url, '/api/v1/state', { host: 'attacker.example:7420' })).status, 403);
    assert.equal((await get(server.url, '/api/v1/state', { host: 'localhost:7420' })).status, 200);
  });

  test('close() ends open event streams instead of waiting for them', async () => {
    const extra = await startServer(config, { view });
    const events = openEvents(extra.url);
    await events.next(5_000);
    const closed = await Promise.race([extra.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('hung'), 3_000))]);
    assert.equal(closed, 'closed');
    events.close();
  });
});

describe('http config', () => {
  test('a non-loopback host is refused unless http.allowNonLoopback says so, naming the key', () => {
    const base = { mount: { root: './issues' }, agents: { implementer: { command: ['true'] } } };
    assert.throws(
      () => compileConfig({ ...base, http: { host: '0.0.0.0' } }, '/tmp/factory.config.json'),
      (error: unknown) => isFactoryError(error, 'FACTORY_CONFIG_INVALID') && /http\.host: expected a loopback address/.test(error.message) && /allowNonLoopback/.test(error.message),
    );
    assert.equal(compileConfig({ ...base, http: { host: '0.0.0.0', allowNonLoopback: true } }, '/tmp/factory.config.json').http.host, '0.0.0.0');
    for (const host of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', 'localhost']) assert.equal(compileConfig({ ...base, http: { host } }, '/tmp/factory.config.json').http.host, host);
    const defaults = compileConfig(base, '/tmp/factory.config.json').http;
    assert.deepEqual(defaults, { enabled: true, host: '127.0.0.1', port: 7420, allowNonLoopback: false });
  });

  test('a port in use is FACTORY_HTTP_BIND_FAILED naming http.port', async () => {
    const taken = await startServer(tempConfig());
    const port = Number(new URL(taken.url).port);
    await assert.rejects(startServer(tempConfig(), { listen: { host: '127.0.0.1', port } }), (error: unknown) => isFactoryError(error, 'FACTORY_HTTP_BIND_FAILED') && /http\.port/.test(error.message));
  });
});

describe('the status server inside a daemon session', () => {
  test('serves the session live, counts its dispatches, names itself in the heartbeat, and warns on a non-loopback bind', async () => {
    const h = createHarness({ http: { host: '0.0.0.0', port: 0, allowNonLoopback: true }, dispatch: { batchSize: 2 } });
    h.source.put({ key: 'LIVE-1', title: 'Team in a session', labels: ['factory'] });
    const session = h.newSession('live');
    await session.open();
    const warnings: string[] = [];
    const http = prepareDaemonHttp({ config: h.config, clock: h.clock, processTable, log: createSilentLogger() }, { warn: (line) => warnings.push(line) });
    try {
      const url = await http.start(session);
      assert.ok(url, 'the server started');
      assert.match(warnings.join('\n'), /^serving HTTP on 0\.0\.0\.0 \(http\.allowNonLoopback\): anyone who can reach it/);
      await session.startLive();
      await settle();
      await http.announce(session);
      assert.equal(h.heartbeats.at(-1)?.http?.url, url, 'the heartbeat names the server');

      const base = url.replace('0.0.0.0', '127.0.0.1');
      const state = await getJson<StateDocument>(base, '/api/v1/state');
      assert.equal(state.json.live?.runningTeamCount, 1);
      assert.equal(state.json.live?.heartbeat.status, 'running');
      assert.ok((state.json.live?.heartbeat.lastWrite?.durationMs ?? -1) >= 0, 'the last heartbeat write is timed');
      assert.deepEqual(
        state.json.teams.map((t) => [t.issueKey, t.title]),
        [['LIVE-1', 'Team in a session']],
      );
      const metrics = parsePrometheusText((await get(base, '/metrics')).body);
      assert.equal(metrics.get('factory_dispatches_total')?.samples[0]?.value, 1);
      assert.equal(metrics.get('factory_teams_running')?.samples[0]?.value, 1);
      assert.ok(metrics.has('process_resident_memory_bytes'), "the daemon's registry carries Node's process metrics");
    } finally {
      await session.close();
      await http.close();
    }
  });

  test('http.enabled false: no server, no hooks', async () => {
    const h = createHarness({ http: { enabled: false } });
    const http = prepareDaemonHttp({ config: h.config, clock: h.clock, processTable, log: createSilentLogger() }, { warn: () => assert.fail('no warning expected') });
    assert.deepEqual(http.hooks, {});
    const session = h.newSession('live');
    await session.open();
    assert.equal(await http.start(session), undefined);
    await session.close();
  });
});
