import { basename } from 'node:path';
import { readStatusSnapshot, type StatusSnapshot } from '../../core/status-snapshot.js';
import { statusSourcesFor } from '../../main.js';
import { flagBoolean, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { formatDuration } from '../../domain/duration.js';
import type { HeartbeatResources } from '../../domain/heartbeat.js';
import type { FleetStatus } from '../../ports/team-run-queue.js';
import { formatMemory } from '../../domain/resource-budget.js';
import { formatAge, formatTable, printJson, type Output } from '../output.js';

export function formatStatus(s: StatusSnapshot): string {
  const now = s.generatedAtMs;
  const hb = s.liveness.heartbeat;
  const lines = [`daemon: ${s.liveness.verdict.toUpperCase()}: ${s.liveness.detail}`];
  if (hb) {
    lines.push(
      `  pid ${hb.pid} on ${hb.hostname || '?'}, mode ${hb.mode}, status ${hb.status}, epoch ${hb.epoch}, up ${formatDuration(now - hb.startedAtMs)}`,
      `  heartbeat ${formatAge(hb.updatedAtMs, now)}; subscription ${hb.subscription.state} (${hb.subscription.transport || '-'}), last event ${formatAge(hb.subscription.lastEventAtMs, now)}, last progress ${formatAge(hb.subscription.lastProgressAtMs, now)}`,
    );
    if (hb.subscription.lastError) lines.push(`  subscription error: ${hb.subscription.lastError}`);
    if (hb.http) lines.push(`  dashboard and API: ${hb.http.url}`);
  }
  if (s.resources) lines.push(...formatResources(s.resources));
  if (s.fleet) lines.push(...formatFleet(s.fleet));
  lines.push(`registry: ${s.registry.state}: ${s.registry.detail}${s.registry.rejectedEntries ? ` (${s.registry.rejectedEntries} malformed entries ignored)` : ''}`);
  // In fleet mode the control plane runs no agents itself: its teams are the runs placed on workers.
  const placed = s.fleet?.placements ?? [];
  if (placed.length > 0)
    lines.push(
      '',
      `runs on workers (${placed.length}):`,
      formatTable(
        ['ISSUE', 'RUN', 'WORKER'],
        placed.map((p) => [p.issueKey, p.runId, p.node]),
      ),
    );
  lines.push('', `running teams (${s.teams.length}):`);
  lines.push(
    formatTable(
      ['ISSUE', 'RUN', 'ATTEMPT', 'RUNNING FOR', 'AGENTS'],
      s.teams.map((t) => [t.issueKey, t.runId, String(t.attempt ?? '?'), formatDuration(now - t.startedAtMs), t.agents.map((a) => `${a.role} pid ${a.pid}${a.alive ? '' : ' (gone)'}`).join(', ')]),
    ),
  );
  // In the order the issues will start (priority, then age), each with why it has not yet.
  lines.push(
    '',
    `queue (${s.queue.length}):`,
    formatTable(
      ['#', 'ISSUE', 'PRIORITY', 'ATTEMPTS', 'REPO', 'WHY'],
      s.queue.map((c, i) => [String(i + 1), c.issueKey, c.priority === null ? '-' : String(c.priority), String(c.attempt), c.repo, c.why]),
    ),
  );
  lines.push(
    '',
    `retries (${s.retries.length}):`,
    formatTable(
      ['ISSUE', 'DUE', 'WHY', 'LAST FAILURE'],
      s.retries.map((c) => [c.issueKey, c.nextAttemptAtMs ? `in ${formatDuration(c.nextAttemptAtMs - now)}` : '-', c.why, c.lastReason ?? '']),
    ),
  );
  if (s.parked.length > 0)
    lines.push(
      '',
      `parked (${s.parked.length}):`,
      formatTable(
        ['ISSUE', 'RESUMES', 'WHY'],
        s.parked.map((c) => [
          c.issueKey,
          c.park?.resumeAtMs ? `in ${formatDuration(Math.max(0, c.park.resumeAtMs - now))}` : c.park?.trigger === 'memory-pressure' ? 'when pressure is low' : 'by hand',
          c.why,
        ]),
      ),
    );
  lines.push(
    '',
    `recent outcomes (${s.recentOutcomes.length} of ${s.outcomeCount}):`,
    formatTable(
      ['ISSUE', 'OUTCOME', 'ENDED', 'DETAIL'],
      s.recentOutcomes.map((o) => [o.issueKey, o.reason, formatAge(o.endedAtMs, now), o.memory ? `${o.detail} (memory peak ${formatMemory(o.memory.peakBytes)})` : o.detail]),
    ),
  );
  if (s.skipped.length > 0)
    lines.push(
      '',
      `skipped issues (${s.skipped.length}):`,
      formatTable(
        ['ISSUE', 'WHY'],
        s.skipped.slice(0, 20).map((k) => [k.issueKey ?? basename(k.path ?? ''), k.reason]),
      ),
    );
  return lines.join('\n');
}

/** fleet.backend "bullmq": the leader, each worker and where each run is placed, the queue, Redis's memory. */
function formatFleet(f: FleetStatus): string[] {
  const leader = f.leader
    ? `leader ${f.leader.hostname} pid ${f.leader.pid}, epoch ${f.leader.epoch}${f.leader.expiresInMs === null ? '' : `, lease ${formatDuration(f.leader.expiresInMs)} left`}`
    : `no leader (epoch ${f.epoch})`;
  return [
    `fleet: ${leader}; queue ${f.queue.waiting} waiting, ${f.queue.active} active; Redis ${formatMemory(f.redis.usedMemoryBytes)} in ${f.redis.keys} keys`,
    '',
    `workers (${f.workers.length}):`,
    formatTable(
      ['WORKER', 'HOST', 'SLOTS', 'RUNS', 'HEARTBEAT', 'REDIS', 'STATUS'],
      f.workers.map((w) => [
        w.node,
        `${w.hostname} pid ${w.pid}`,
        String(w.slots),
        w.runs.map((r) => r.issueKey).join(', ') || '-',
        `${formatDuration(Math.max(0, w.heartbeatAgeMs))} ago`,
        w.redis,
        w.status,
      ]),
    ),
  ];
}

/** Detection's report and admission's state; held claims show their reason in the queue's WHY column. */
function formatResources(r: HeartbeatResources): string[] {
  const enforced = (['memory', 'pids', 'cpu'] as const).filter((key) => r.enforces[key]).join(', ') || 'nothing';
  const pressure = !r.pressure.readable
    ? 'PSI not readable'
    : `PSI some avg10 ${r.pressure.someAvg10 === null ? '-' : `${r.pressure.someAvg10}%`}${r.pressure.holding ? ', sustained: new teams held' : ''}`;
  return [`resources: ${r.mechanism}: ${r.summary}`, `  enforces ${enforced}; kill-all ${r.killAll}; ${pressure}; ${r.budgeted ? `${r.held.length} held for memory` : 'no budget configured'}`];
}

/** `factory status` (its usage and flags are in status.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const { config, processTable, clock } = runtimeFromArgs(args);
  const snapshot = await readStatusSnapshot(statusSourcesFor(config, processTable), { nowMs: clock.now() });
  if (flagBoolean(args, 'json')) printJson(output, snapshot);
  else output.out(formatStatus(snapshot));
  return 0;
}
