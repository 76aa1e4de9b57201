import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InMemoryIssueSource } from '../src/adapters/issue-source/in-memory-issue-source.js';
import { runCycle } from '../src/core/bounded-run.js';
import { openInProcessSession } from '../test/support/in-process-session.js';
import { median, round, timeRuns, waitUntil } from './bench-support.js';

/**
 * Heartbeat refresh cost with 0 and with 1,000 in-flight agents, through the
 * daemon's real refresh path (HeartbeatKeeper writing the real file
 * atomically). Target: ratio ≤ 1.2, because the refresh must not grow with the
 * fleet.
 */
async function sessionWithAgents(agentCount: number) {
  const dir = mkdtempSync(join(tmpdir(), 'factory-bench-hb-'));
  const { session } = await openInProcessSession(dir, {
    config: { dispatch: { batchSize: Math.max(1, agentCount) }, runs: { superviseIntervalMs: 3_600_000 } },
    source: (_config, clock) => {
      const source = new InMemoryIssueSource({ clock });
      for (let i = 0; i < agentCount; i++) source.put({ key: `B-${i}`, title: `bench ${i}`, labels: ['factory'] });
      return source;
    },
  });
  const cycle = runCycle(session); // starts the teams; they stay running until released
  await waitUntil(`${agentCount} agents running`, () => session.registry.size === agentCount);
  await session.registry.flush(); // let the spawn-time registry writes settle before measuring
  return {
    session,
    async close() {
      await session.close();
      await cycle;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function benchHeartbeatRefresh(rounds = 8, runsPerRound = 60) {
  // Both sessions stay open and are measured in alternating rounds, so disk
  // and CPU drift during the run hit both sides alike.
  const idle = await sessionWithAgents(0);
  const busy = await sessionWithAgents(1000);
  const registryWritesBefore = busy.session.registry.writeCount;
  const samples = { idle: [] as number[], busy: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    samples.idle.push(...(await timeRuns(() => idle.session.heartbeat.write('running'), runsPerRound)));
    samples.busy.push(...(await timeRuns(() => busy.session.heartbeat.write('running'), runsPerRound)));
  }
  if (busy.session.registry.writeCount !== registryWritesBefore) throw new Error('bench: the heartbeat refresh rewrote the registry');
  await idle.close();
  await busy.close();
  const ratio = median(samples.busy) / median(samples.idle);
  return {
    name: 'heartbeat refresh (real atomic file write)',
    refreshesMeasured: samples.idle.length + samples.busy.length,
    medianMsWith0Agents: round(median(samples.idle)),
    medianMsWith1000Agents: round(median(samples.busy)),
    ratio: round(ratio),
    target: 'ratio <= 1.2',
    met: ratio <= 1.2,
  };
}
