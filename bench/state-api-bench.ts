import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { SystemClock } from '../src/adapters/clock/system-clock.js';
import { SqliteStateStore } from '../src/adapters/state-store/sqlite-state-store.js';
import { createSilentLogger } from '../src/adapters/logging/pino-logger.js';
import type { DaemonView, LiveTeam } from '../src/http/daemon-view.js';
import { StatusServer } from '../src/http/status-server.js';
import { claimFor, liveAgentEntry, ownIdentity, outcomeFor, processTable, runIdFor, subscriptionHealth, tempConfig, writeHeartbeatAs, writeRegistryOf } from '../test/support/daemon-files.js';
import { median, percentile, round } from './bench-support.js';

/**
 * `GET /api/v1/state` latency on a busy factory: 100 teams at work (200
 * agents in the registry, each identity-checked against /proc, as the real
 * endpoint does) and 10,000 finished runs in the state database (each with its
 * claim), with the server in-process on a real socket and the live view
 * merged in. Sequential requests on a keep-alive connection.
 */
export async function benchStateApi(options: { teams?: number; historyRows?: number; requests?: number } = {}) {
  const teams = options.teams ?? 100;
  const historyRows = options.historyRows ?? 10_000;
  const requests = options.requests ?? 200;
  const config = tempConfig({ dispatch: { batchSize: teams } });
  const nowMs = Date.now();
  const identity = ownIdentity();

  await writeHeartbeatAs(config);
  const runs = Array.from({ length: teams }, (_, i) => ({ issueKey: `BUSY-${i}`, runId: runIdFor(`BUSY-${i}`) }));
  await writeRegistryOf(
    config,
    runs.flatMap((run) => [liveAgentEntry(config, run.issueKey, run.runId, 'implementer', identity), liveAgentEntry(config, run.issueKey, run.runId, 'reviewer', identity)]),
  );
  const store = new SqliteStateStore(config.paths.stateDb);
  const epoch = await store.beginEpoch({ ...identity, hostname: 'bench' }, nowMs);
  await store.apply({ epoch, claims: runs.map((run) => claimFor(run.issueKey, { status: 'running', attempt: 1, runId: run.runId })) });
  for (let i = 0; i < historyRows; i++) {
    const issueKey = `DONE-${i}`;
    const runId = runIdFor(issueKey);
    await store.apply({
      epoch,
      outcome: {
        outcome: outcomeFor(issueKey, runId, i % 7 === 0 ? 'failed' : 'succeeded', nowMs - (historyRows - i) * 1_000),
        nextClaim: claimFor(issueKey, { status: i % 7 === 0 ? 'gave-up' : 'succeeded', attempt: 1, runId }),
      },
    });
  }
  await store.close();

  const liveTeams: LiveTeam[] = runs.map((run) => ({
    ...run,
    title: `Busy issue ${run.issueKey}`,
    attempt: 1,
    startedAtMs: nowMs - 60_000,
    lastActivityAtMs: nowMs - 1_000,
    stopping: null,
    agents: [],
  }));
  const view: DaemonView = {
    teams: () => liveTeams,
    runningTeamCount: () => teams,
    queuedCount: () => 0,
    nextRetryAtMs: () => null,
    subscription: () => subscriptionHealth(),
    heartbeat: () => ({ status: 'running', refreshIntervalMs: 15_000, lastWrite: null, lastWriteError: null }),
    predecessor: () => undefined,
  };
  const server = await StatusServer.start({ config, processTable, clock: new SystemClock(), log: createSilentLogger(), view, listen: { host: '127.0.0.1', port: 0 } });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL('/api/v1/state', server.url);
  const fetchState = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = request(url, { agent }, (res) => {
        let bytes = 0;
        res.on('data', (chunk: Buffer) => (bytes += chunk.length));
        res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error(`state API answered ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });

  const latencies: number[] = [];
  let bytes = 0;
  try {
    for (let i = 0; i < 20; i++) await fetchState();
    for (let i = 0; i < requests; i++) {
      const started = performance.now();
      bytes = await fetchState();
      latencies.push(performance.now() - started);
    }
  } finally {
    agent.destroy();
    await server.close();
    rmSync(dirname(config.configPath), { recursive: true, force: true });
  }
  return {
    name: '/api/v1/state latency',
    teams,
    historyRows,
    requests,
    p50Ms: round(median(latencies), 2),
    p95Ms: round(percentile(latencies, 95), 2),
    responseKiB: round(bytes / 1024, 1),
  };
}
