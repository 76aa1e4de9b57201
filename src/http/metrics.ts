import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { SUBSCRIPTION_STATES } from '../domain/heartbeat.js';
import { RUN_OUTCOME_REASONS, type RunOutcome, type RunOutcomeReason } from '../domain/run.js';
import { usageRecordsOf } from '../domain/agent-events/usage-records.js';
import { TOKEN_KINDS } from '../domain/agent-events/usage-ledger.js';
import type { DaemonView } from './daemon-view.js';
import type { ControlPlaneFleetStatus } from '../adapters/team-executor/bullmq-team-executor.js';

/**
 * The daemon's Prometheus metrics, in a registry of its own (never
 * prom-client's global one, so two daemons in one process, or a test beside a
 * daemon, never share or double-register series). Counters are fed by the
 * DaemonObserver; gauges are read from the daemon view at scrape time, so a
 * scrape costs nothing between scrapes. docs/observability.md lists them all.
 */

/** prom-client's default gauges named like counters; dropped (see the constructor). */
const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

export interface MetricsOptions {
  /** Age of the heartbeat file in ms (null when there is none), read at scrape time. */
  readonly heartbeatAgeMs: () => Promise<number | null>;
  /** Node's process metrics (CPU, RSS, event loop lag). Off in tests and benches that build many registries. */
  readonly processMetrics?: boolean;
}

export class FactoryMetrics {
  readonly registry = new Registry();
  #view: DaemonView | undefined;
  readonly #dispatches: Counter;
  readonly #outcomes: Counter<'reason'>;
  readonly #eventToDispatch: Histogram;
  readonly #reaped: Counter;
  readonly #agentTokens: Counter<'role' | 'driver' | 'kind'>;
  readonly #agentCost: Counter<'role' | 'driver'>;
  readonly #agentTurns: Counter<'role' | 'driver'>;
  readonly #teamMemoryPeak: Histogram;
  readonly #agentMemoryPeak: Histogram<'role'>;
  readonly #teamOoms: Counter;

  constructor(options: MetricsOptions) {
    const registers = [this.registry];
    const view = (): DaemonView | undefined => this.#view;
    this.#dispatches = new Counter({ name: 'factory_dispatches_total', help: 'Teams started (one per run attempt).', registers });
    this.#outcomes = new Counter({ name: 'factory_run_outcomes_total', help: 'Runs ended, by outcome reason.', labelNames: ['reason'], registers });
    // Every reason is exported from the start, at 0, so rate() and alerts work before the first failure.
    for (const reason of RUN_OUTCOME_REASONS) this.#outcomes.inc({ reason }, 0);
    this.#eventToDispatch = new Histogram({
      name: 'factory_event_to_dispatch_seconds',
      help: 'From the source event that announced an issue to its team starting, for teams the event started at once.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#agentTokens = new Counter({
      name: 'factory_agent_tokens_total',
      help: 'Tokens CLI-driver agents used, as they reported them, by role, driver and kind (input, output, cacheRead, cacheWrite).',
      labelNames: ['role', 'driver', 'kind'],
      registers,
    });
    this.#agentCost = new Counter({
      name: 'factory_agent_cost_usd_total',
      help: 'US dollars CLI-driver agents reported spending (Claude Code reports a cost; Codex does not).',
      labelNames: ['role', 'driver'],
      registers,
    });
    this.#agentTurns = new Counter({ name: 'factory_agent_turns_total', help: 'Model turns CLI-driver agents took.', labelNames: ['role', 'driver'], registers });
    this.#reaped = new Counter({ name: 'factory_predecessor_agents_reaped_total', help: 'Agents of a crashed predecessor daemon reaped at startup.', registers });
    // Powers of two from 64 MB to 32 GB: an agent takes 1.5-2 GB, a team with dev servers several.
    this.#teamMemoryPeak = new Histogram({
      name: 'factory_team_memory_peak_bytes',
      help: "Peak memory of each ended team that ran with a resources budget (its group's own peak, or the highest RSS sample).",
      buckets: Array.from({ length: 10 }, (_, i) => 2 ** (26 + i)),
      registers,
    });
    // From 16 MB: a command agent can be small, a CLI agent takes 1.5-2 GB.
    this.#agentMemoryPeak = new Histogram({
      name: 'factory_agent_memory_peak_bytes',
      help: "Each ended agent's highest sampled RSS of its process tree (sampled on the supervision tick, not exact), by role.",
      labelNames: ['role'],
      buckets: Array.from({ length: 12 }, (_, i) => 2 ** (24 + i)),
      registers,
    });
    this.#teamOoms = new Counter({ name: 'factory_team_oom_total', help: 'Teams that ended oom: killed by the kernel inside their group, or stopped by Factory for their memory budget.', registers });
    new Gauge({
      name: 'factory_teams_running',
      help: 'Teams at work now.',
      registers,
      collect() {
        this.set(view()?.runningTeamCount() ?? 0);
      },
    });
    new Gauge({
      name: 'factory_issues_queued',
      help: 'Issues waiting for a team: queued, or waiting out a retry backoff.',
      registers,
      collect() {
        this.set(view()?.queuedCount() ?? 0);
      },
    });
    new Gauge({
      name: 'factory_issues_held_for_memory',
      help: 'Issues with a free slot that memory admission holds (short of memory, or sustained PSI pressure).',
      registers,
      collect() {
        this.set(view()?.heldForMemory?.() ?? 0);
      },
    });
    new Gauge({
      name: 'factory_heartbeat_age_seconds',
      help: 'Age of the heartbeat file; alert when it nears loop.heartbeatStaleMs. -1 when there is no readable heartbeat.',
      registers,
      async collect() {
        const ageMs = await options.heartbeatAgeMs();
        this.set(ageMs === null ? -1 : ageMs / 1000);
      },
    });
    new Gauge({
      name: 'factory_heartbeat_refresh_duration_seconds',
      help: 'How long the last successful heartbeat write took (it writes one small file; a rise means a slow disk).',
      registers,
      collect() {
        const write = view()?.heartbeat().lastWrite;
        if (write) this.set(write.durationMs / 1000);
      },
    });
    new Gauge({
      name: 'factory_heartbeat_refresh_failing',
      help: '1 while the last heartbeat write failed (it is retried every refresh interval).',
      registers,
      collect() {
        this.set(view()?.heartbeat().lastWriteError ? 1 : 0);
      },
    });
    new Gauge({
      name: 'factory_subscription_state',
      help: 'The issue subscription state: 1 for the current state, 0 for the others.',
      labelNames: ['state'],
      registers,
      collect() {
        const current = view()?.subscription()?.state ?? 'not-listening';
        for (const state of SUBSCRIPTION_STATES) this.set({ state }, state === current ? 1 : 0);
      },
    });
    this.#registerFleetMetrics(registers, view);
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // Gauges whose names end in _total read as counters to Prometheus tooling (`promtool check
      // metrics` rejects them, rate() on them is meaningless). Each is the sum of the per-type gauge
      // kept beside it: sum(nodejs_active_handles) gives the same number.
      for (const name of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(name);
    }
  }

  /**
   * fleet.backend "bullmq": the workers' own counters (from their entries in
   * Redis) and the control plane's, read once per scrape. Nothing is exported
   * in local mode.
   */
  #registerFleetMetrics(registers: Registry[], view: () => DaemonView | undefined): void {
    let last: { atMs: number; value: Promise<ControlPlaneFleetStatus | null> } | undefined;
    // One Redis read per scrape, shared by every fleet series.
    const fleet = (): Promise<ControlPlaneFleetStatus | null> => {
      const nowMs = Date.now();
      if (!last || nowMs - last.atMs > 1_000)
        last = {
          atMs: nowMs,
          value:
            view()
              ?.fleet?.()
              .catch(() => null) ?? Promise.resolve(null),
        };
      return last.value;
    };
    type Fleet = ControlPlaneFleetStatus;
    const perWorker = (name: string, help: string, kind: 'counter' | 'gauge', pick: (worker: Fleet['workers'][number]) => number): void => {
      const collect = async function (this: Gauge<'node'>): Promise<void> {
        this.reset();
        for (const worker of (await fleet())?.workers ?? []) this.set({ node: worker.node }, pick(worker));
      };
      // Workers report counts since they started: exported as reported (a restarted worker starts again at 0).
      new Gauge({ name, help: kind === 'counter' ? `${help} (since the worker started)` : help, labelNames: ['node'], registers, collect });
    };
    const single = (name: string, help: string, pick: (status: Fleet) => number | null): void => {
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          const status = await fleet();
          const value = status ? pick(status) : null;
          if (value === null) this.reset();
          else this.set(value);
        },
      });
    };
    perWorker('factory_fleet_worker_slots', 'Team runs a worker takes at once.', 'gauge', (w) => w.slots);
    perWorker('factory_fleet_worker_runs', 'Team runs a worker holds now.', 'gauge', (w) => w.runs.length);
    perWorker('factory_fleet_worker_heartbeat_age_seconds', "Age of a worker's entry in Redis; a worker that died or lost Redis stops refreshing it.", 'gauge', (w) => w.heartbeatAgeMs / 1000);
    perWorker('factory_fleet_lock_renewals', 'Run lock renewals a worker made.', 'counter', (w) => w.counters.lockRenewals);
    perWorker('factory_fleet_lock_renewal_failures', 'Run lock renewals that failed or were refused.', 'counter', (w) => w.counters.lockRenewalFailures);
    perWorker('factory_fleet_self_fences', 'Runs a worker fenced itself off (lock lost: agents killed, nothing reported).', 'counter', (w) => w.counters.selfFences);
    perWorker('factory_fleet_worker_stale_refusals', 'Runs and cancels a worker refused for an older control-plane epoch.', 'counter', (w) => w.counters.staleRefusals);
    single('factory_fleet_workers', 'Workers whose entry in Redis is fresh.', (s) => s.workers.filter((w) => w.redis === 'connected').length);
    single('factory_fleet_runs_lost', 'Runs this control plane declared lost (worker died, froze or lost Redis: lock lapsed plus a stalled interval), since it started.', (s) => s.controlPlane.lost);
    single(
      'factory_fleet_stale_rejections',
      'Control-plane writes refused because the leader lease was no longer held (cancels, queued runs), since it started.',
      (s) => s.controlPlane.staleRejections,
    );
    single('factory_fleet_pickup_latency_p50_seconds', 'Median time from queueing a run to a worker picking it (last 1,000 pickups).', (s) =>
      s.controlPlane.pickupP50Ms === null ? null : s.controlPlane.pickupP50Ms / 1000,
    );
    single('factory_fleet_pickup_latency_p90_seconds', '90th percentile of the pickup latency (last 1,000 pickups).', (s) =>
      s.controlPlane.pickupP90Ms === null ? null : s.controlPlane.pickupP90Ms / 1000,
    );
    single('factory_fleet_queue_depth', 'Team runs waiting in the queue for a worker.', (s) => s.queue.waiting);
    single('factory_fleet_leader_epoch', 'The leader lease epoch now.', (s) => s.epoch);
    single('factory_fleet_redis_used_memory_bytes', "Redis's used_memory (the fleet needs noeviction: watch it against maxmemory).", (s) => s.redis.usedMemoryBytes);
  }

  /** Gauges read from `view` from now on. */
  attach(view: DaemonView): void {
    this.#view = view;
  }

  countDispatch(): void {
    this.#dispatches.inc();
  }

  /** Adds a finished run's agent usage (the same records the usage ledger keeps). */
  countAgentUsage(outcome: RunOutcome): void {
    for (const record of usageRecordsOf(outcome)) {
      const labels = { role: record.role, driver: record.driver };
      for (const kind of TOKEN_KINDS) this.#agentTokens.inc({ ...labels, kind }, record.usage[kind]);
      this.#agentTurns.inc(labels, record.turns);
      if (record.costUsd !== undefined) this.#agentCost.inc(labels, record.costUsd);
    }
  }

  countOutcome(reason: RunOutcomeReason): void {
    this.#outcomes.inc({ reason });
  }

  /** A team's memory at its end: its peak (budgeted teams only) and whether it ran out. */
  observeTeamMemory(outcome: Pick<RunOutcome, 'reason' | 'memory'>): void {
    if (outcome.memory) this.#teamMemoryPeak.observe(outcome.memory.peakBytes);
    if (outcome.reason === 'oom') this.#teamOoms.inc();
  }

  /** Each agent of an ended run that a supervision tick sampled: its peak, by role. */
  observeAgentMemory(outcome: Pick<RunOutcome, 'agents'>): void {
    for (const agent of outcome.agents) if (agent.memoryPeakBytes !== undefined) this.#agentMemoryPeak.observe({ role: agent.role }, agent.memoryPeakBytes);
  }

  observeEventToDispatch(ms: number): void {
    this.#eventToDispatch.observe(Math.max(0, ms) / 1000);
  }

  countPredecessorReaps(agents: number): void {
    if (agents > 0) this.#reaped.inc(agents);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async render(): Promise<string> {
    // prom-client writes NaN as "Nan" (e.g. event loop lag before its first sample); the
    // exposition format spells it "NaN", and strict parsers reject anything else.
    return (await this.registry.metrics()).replace(/ Nan$/gm, ' NaN');
  }
}
