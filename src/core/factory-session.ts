import type { FactoryConfig } from '../config/load.js';
import { claimAfterCrash, claimOnOpen } from '../domain/claim-lifecycle.js';
import type { IssueClaim } from '../domain/claim.js';
import { notListening, type DaemonMode, type DaemonStatus, type HeartbeatResources } from '../domain/heartbeat.js';
import type { Issue } from '../domain/issue.js';
import { LOCAL_NODE, type RegistryEntry, type RegistryOwner } from '../domain/registry.js';
import type { RunOutcome } from '../domain/run.js';
import { FactoryError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { Fleet } from '../ports/fleet.js';
import type { IssueSource } from '../ports/issue-source.js';
import type { Logger } from '../ports/logger.js';
import type { HeartbeatStore, RegistryStore } from '../ports/node-state-store.js';
import type { RunLogStore } from '../ports/run-log-store.js';
import { triageRulesFor } from '../domain/triage.js';
import type { ProcessIdentity } from '../ports/process-table.js';
import type { StateStore } from '../ports/state-store.js';
import type { TeamExecution, TeamExecutor } from '../ports/team-executor.js';
import type { Workspace } from '../ports/workspace.js';
import type { CodeHost, IssueProgress } from '../ports/publisher.js';
import { Shepherd } from './shepherd/shepherd.js';
import type { AgentCliHost } from '../ports/agent-cli.js';
import type { TeamResources, TeamResourceGroup, TeamResourceGroups } from '../ports/team-resources.js';
import { admissionBudgetBytes, hasAnyLimit, resolveTeamBudget } from '../domain/resource-budget.js';
import type { RunBudget } from '../domain/budgets.js';
import { MemoryAdmissionGate } from './dispatch/memory-admission.js';
import { PressureParking } from './dispatch/pressure-parking.js';
import { DailyBudgetGate, DailySpend } from './dispatch/daily-budget.js';
import type { ResumeRequests } from '../ports/resume-requests.js';
import { Dispatcher, type IntakeDecision } from './dispatch/dispatcher.js';
import { LocalTeamExecutor } from './execution/local-team-executor.js';
import { HeartbeatKeeper } from './heartbeat-keeper.js';
import { LiveIntake, type IntakePass } from './live-intake.js';
import { RegistryKeeper } from './registry-keeper.js';
import { WorktreeJanitor } from './worktree-janitor.js';

/** What the previous daemon left behind, and what became of it. */
export interface PredecessorReport {
  readonly found: number;
  readonly reaped: number;
  /** Local agents that could not be proven dead or reaped: dispatch must not start over them. */
  readonly survivors: readonly RegistryEntry[];
  readonly requeued: readonly string[];
  /** Runs still going on another node that this session took over. */
  readonly attached: readonly string[];
}

export interface FactorySessionDeps {
  readonly config: FactoryConfig;
  readonly source: IssueSource;
  readonly store: StateStore;
  /** The local fleet and workspace, for the local team executor. */
  readonly fleet: Fleet;
  readonly workspace: Workspace;
  /**
   * Where teams run. Absent: on this machine (LocalTeamExecutor over `fleet`
   * and `workspace`, its agents in this session's registry).
   */
  readonly executor?: TeamExecutor;
  readonly clock: Clock;
  readonly log: Logger;
  readonly identity: ProcessIdentity;
  /** This machine's name, recorded with the daemon's identity. */
  readonly hostname: string;
  readonly heartbeats: HeartbeatStore;
  readonly registryStore: RegistryStore;
  /** Where the local team executor's agents write their logs. */
  readonly runLogs: Pick<RunLogStore, 'locateAgentLog' | 'readSideFile'>;
  /**
   * Deals with a dead predecessor's agents before anything is dispatched:
   * reaps every listed entry (identity-checked) and any process carrying this
   * factory's marker prefix that no registry lists (a crash between spawn and
   * registry write). Returns the entries that survived.
   */
  readonly reapPredecessor: (entries: readonly RegistryEntry[]) => Promise<{ reaped: number; survivors: readonly RegistryEntry[] }>;
  readonly onOutcome?: (outcome: RunOutcome) => void;
  readonly onIntakePass?: (pass: IntakePass) => void;
  /**
   * Budgets and memory admission (docs/resources.md), built once by main.ts
   * from detection. Used only when `resources` sets a limit; absent or unused,
   * teams start as before: no group, no wrapper, slots alone decide.
   */
  readonly resources?: TeamResources;
  /** Command lines and log following for CLI drivers (`agents.<role>.driver`); absent, only command agents can run. */
  readonly agentCli?: AgentCliHost;
  /**
   * Teams run on other machines and outlive this session (the BullMQ fleet): a
   * graceful stop leaves them going for the next leader to attach to, instead
   * of cancelling them.
   */
  readonly runsOutliveSession?: boolean;
  /** The source's code host (GitHub): succeeded runs are published as pull requests and shepherded. Absent for the local mount. */
  readonly codeHost?: CodeHost;
  /** Shows an issue's stage on the issue (GitHub labels). Absent for the local mount. */
  readonly progress?: IssueProgress;
  /** `factory resume` requests left for this daemon (taken on each supervision pass); absent: only resumes by timer or in-process. */
  readonly resumeRequests?: ResumeRequests;
}

/**
 * Where a session is in its life. `new` → `opening` → `open` (bounded runs)
 * or `live` (after startLive) → `closing` → `closed`. An open that fails goes
 * to `closing` when the caller closes it.
 */
export const SESSION_STATES = ['new', 'opening', 'open', 'live', 'closing', 'closed'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

const TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = {
  new: ['opening', 'closing'],
  opening: ['open', 'closing'],
  open: ['live', 'closing'],
  live: ['closing'],
  closing: ['closed'],
  closed: [],
};

/** In-memory counts for status readers (the dispatch verb, the status API); O(1) apart from `teams`. */
export interface SessionStatus {
  readonly state: SessionState;
  readonly epoch: number;
  readonly runningTeams: number;
  readonly queued: number;
  readonly nextRetryAtMs: number | null;
}

/**
 * One daemon run: an epoch, a heartbeat, a registry, a dispatcher and (in live
 * mode) a live intake. `open()` does the restart-safe part (take the epoch,
 * deal with the predecessor) before anything can dispatch; `close()` is the
 * ordered stop. Live, loop and once modes share it.
 */
export class FactorySession {
  readonly deps: FactorySessionDeps;
  readonly mode: DaemonMode;
  #state: SessionState = 'new';
  #epoch = 0;
  #heartbeat: HeartbeatKeeper | undefined;
  #registry: RegistryKeeper | undefined;
  #dispatcher: Dispatcher | undefined;
  #intake: LiveIntake | undefined;
  #superviseTimer: ReturnType<Clock['setTimeout']> | undefined;
  #iteration = 0;
  #closing: Promise<void> | undefined;
  #predecessor: PredecessorReport | undefined;
  #fatalReported = false;
  /** Live team groups by run id (for admission's usage figures), and the memory gate; both only when budgets are configured. */
  readonly #teamGroups = new Map<string, TeamResourceGroup>();
  #memoryGate: MemoryAdmissionGate | undefined;
  /** `onPressure: "park"`: parks the newest team under sustained pressure and resumes pressure-parked work once it stays low. */
  #pressureParking: PressureParking | undefined;
  #shepherd: Shepherd | undefined;
  /** Removes finished issues' worktrees on a schedule (live mode, teams on this machine, retention on). */
  #worktreeJanitor: WorktreeJanitor | undefined;
  /** Today's spending (`budgets.daily`), from the ledger. */
  #dailySpend: DailySpend | undefined;
  /** Where unrecoverable errors go: set by startLive; bounded runs surface them as thrown errors instead. */
  #onFatal: (error: FactoryError) => void = (error) => this.deps.log.error({ code: error.code }, error.message);

  constructor(
    deps: FactorySessionDeps,
    mode: DaemonMode,
    readonly maxIterations = 0,
  ) {
    this.deps = deps;
    this.mode = mode;
  }

  get state(): SessionState {
    return this.#state;
  }

  /** The one place the state changes: illegal transitions are refused with a typed error, legal ones logged. */
  #transition(to: SessionState): void {
    const from = this.#state;
    if (!TRANSITIONS[from].includes(to)) {
      throw new FactoryError('FACTORY_SESSION_STATE', `the factory session cannot go from ${from} to ${to}`, { details: { from, to } });
    }
    this.#state = to;
    this.deps.log.debug({ from, to }, 'factory session state');
  }

  /** Refuses use of a part that exists only while the session is open. */
  #require<T>(part: T | undefined, what: string): T {
    if (part === undefined) {
      throw new FactoryError('FACTORY_SESSION_STATE', `the factory session is ${this.#state}: ${what} needs an open session`, { details: { state: this.#state } });
    }
    return part;
  }

  get epoch(): number {
    return this.#epoch;
  }
  get dispatcher(): Dispatcher {
    return this.#require(this.#dispatcher, 'the dispatcher');
  }
  get heartbeat(): HeartbeatKeeper {
    return this.#require(this.#heartbeat, 'the heartbeat');
  }
  get registry(): RegistryKeeper {
    return this.#require(this.#registry, 'the registry');
  }
  get intake(): LiveIntake | undefined {
    return this.#intake;
  }
  /** Follows the pull requests Factory opened (only with a code host). */
  get shepherd(): Shepherd | undefined {
    return this.#shepherd;
  }
  get predecessor(): PredecessorReport | undefined {
    return this.#predecessor;
  }
  set iteration(value: number) {
    this.#iteration = value;
  }

  /** Counts only: no store read, no process lookup. */
  status(): SessionStatus {
    const dispatcher = this.#dispatcher;
    return {
      state: this.#state,
      epoch: this.#epoch,
      runningTeams: dispatcher?.runningTeamCount ?? 0,
      queued: dispatcher?.queuedCount ?? 0,
      nextRetryAtMs: dispatcher?.nextRetryAtMs() ?? null,
    };
  }

  /** Teams running now, for status views. */
  teams(): TeamExecution[] {
    return this.#dispatcher?.teams() ?? [];
  }

  owner(): RegistryOwner {
    return { pid: this.deps.identity.pid, startTime: this.deps.identity.startTime, bootId: this.deps.identity.bootId, hostname: this.deps.hostname, epoch: this.#epoch };
  }

  /**
   * Takes a new epoch, writes `running`, resolves the predecessor's agents and
   * claims, and only then writes our own (empty) registry.
   */
  async open(): Promise<void> {
    this.#transition('opening');
    const { config, store, clock, log } = this.deps;
    this.#epoch = await store.beginEpoch({ pid: this.deps.identity.pid, startTime: this.deps.identity.startTime, bootId: this.deps.identity.bootId, hostname: this.deps.hostname }, clock.now());
    this.#heartbeat = new HeartbeatKeeper({
      store: this.deps.heartbeats,
      hostname: this.deps.hostname,
      registryPath: config.loop.registryPath,
      statePath: config.paths.stateDb,
      configPath: config.configPath,
      mode: this.mode,
      maxIterations: this.maxIterations,
      identity: this.deps.identity,
      epoch: this.#epoch,
      intervalMs: config.loop.heartbeatIntervalMs,
      staleMs: config.loop.heartbeatStaleMs,
      clock,
      log,
      gauges: {
        inFlightTeams: () => this.#dispatcher?.runningTeamCount ?? 0,
        queuedIssues: () => this.#dispatcher?.queuedCount ?? 0,
        iteration: () => this.#iteration,
        subscription: () => this.#intake?.health() ?? notListening(),
        skippedFiles: () => this.#intake?.skippedFiles() ?? [],
        ...this.#resourcesGauge(),
      },
    });
    // `running` goes out before the subscription exists, so a slow subscribe never reads as a dead daemon.
    await this.#heartbeat.write('running');
    // Bounded runs refresh too: one iteration can run a team for longer than
    // heartbeatStaleMs, and a busy loop must not read as wedged. Live mode
    // starts its refresh in startLive().
    if (this.mode !== 'live') this.#heartbeat.startRefreshing();
    this.#registry = new RegistryKeeper({ store: this.deps.registryStore, owner: this.owner(), clock });
    const dailySpend = new DailySpend(store, clock);
    this.#dailySpend = dailySpend;
    await dailySpend.refresh().catch((error: Error) => log.warn({ err: error.message }, "could not read today's spending from the usage ledger; counting from 0"));
    const executor =
      (this.deps.executor && withRunBudget(this.deps.executor, config.budgets.run)) ??
      new LocalTeamExecutor({
        fleet: this.deps.fleet,
        workspace: this.deps.workspace,
        registry: this.#registry,
        clock,
        log,
        runLogs: this.deps.runLogs,
        killGraceMs: config.runs.killGraceMs,
        noChanges: config.runs,
        ...(this.deps.agentCli ? { agentCli: this.deps.agentCli } : {}),
        budgets: { run: config.budgets.run, daily: config.budgets.daily, spentTodayUsd: () => dailySpend.spentTodayUsd() },
        ...(this.#budgetsConfigured() ? { resources: { groups: this.#trackedGroups(this.deps.resources!.groups), policy: config.resources } } : {}),
      });
    this.#memoryGate = this.#budgetsConfigured() ? this.#createMemoryGate(this.deps.resources!) : undefined;
    if (this.#memoryGate) this.#pressureParking = this.#createPressureParking(this.#memoryGate);
    const { report, attached } = await this.#resolvePredecessor(executor);
    this.#predecessor = report;
    if (report.survivors.length > 0) {
      throw new FactoryError(
        'FACTORY_PREDECESSOR_UNRESOLVED',
        `${report.survivors.length} agent(s) of the previous daemon are still alive and could not be reaped (${report.survivors.map((e) => `${e.agentName} pid ${e.pid}`).join(', ')})`,
      );
    }
    await this.#registry.flush();
    const codeHost = this.deps.codeHost;
    // Fix rounds are runs of the dispatcher: the shepherd queues them on the issue's claim (slots, supervision, one team per issue).
    this.#shepherd = codeHost
      ? new Shepherd({
          host: codeHost,
          ...(this.deps.progress ? { progress: this.deps.progress } : {}),
          source: this.deps.source,
          claims: {
            claim: (issueKey) => this.#dispatcher?.claim(issueKey),
            shepherding: () => this.#dispatcher?.shepherdingIssues() ?? [],
            markShepherding: (issueKey, pullUrl) => this.dispatcher.markShepherding(issueKey, pullUrl),
            queueFixRound: (issueKey, fix) => this.dispatcher.queueFixRound(issueKey, fix),
            pullClosed: (issueKey, merged, pullUrl) => this.dispatcher.pullClosed(issueKey, merged, pullUrl),
          },
          policy: { maxRounds: config.shepherd.maxRounds, pollIntervalMs: config.shepherd.pollIntervalMs, merge: config.publish.merge, trustedReviewers: config.shepherd.trustedReviewers },
          clock,
          log: log.child({ component: 'shepherd' }),
        })
      : undefined;
    const shepherd = this.#shepherd;
    this.#dispatcher = await Dispatcher.open({
      ...(this.deps.progress ? { progress: this.deps.progress } : {}),
      ...(shepherd
        ? { publish: (issue: Issue, outcome: RunOutcome) => shepherd.publish(issue, outcome), finishFixRound: (issue: Issue, outcome: RunOutcome) => shepherd.finishFixRound(issue, outcome) }
        : {}),
      policy: { ...config.dispatch, maxRuntimeMs: config.runs.maxRuntimeMs, stallLimitMs: config.runs.stallLimitMs, retryOom: config.resources.retryOom },
      triage: triageRulesFor(config),
      stages: config.teamStages,
      source: this.deps.source,
      store,
      epoch: this.#epoch,
      executor,
      clock,
      log,
      ...(this.deps.onOutcome ? { onOutcome: this.deps.onOutcome } : {}),
      onStateLost: (error) => this.#reportFatal(error),
      ...this.#admissionGate(),
      dailySpend,
      autoResume: this.mode === 'live',
    });
    for (const team of attached) this.#dispatcher.attach(team);
    const rewritten = await this.#dispatcher.retryPendingWritebacks();
    if (rewritten > 0) log.info({ count: rewritten }, 'wrote back outcomes the previous daemon recorded but did not write back');
    await this.#shepherd?.start();
    this.#armSupervisor();
    this.#transition('open');
    log.info(
      { epoch: this.#epoch, mode: this.mode, predecessor: { found: report.found, reaped: report.reaped, requeued: report.requeued.length, attached: report.attached.length } },
      'factory session open',
    );
  }

  /**
   * Local runs of a previous epoch died with their daemon: their agents are
   * reaped, then their claims go back in the queue (or are given up, see
   * claimAfterCrash). Runs placed on another node may still be going there:
   * they are attached, and only requeued when their node no longer has them.
   */
  async #resolvePredecessor(executor: TeamExecutor): Promise<{ report: PredecessorReport; attached: TeamExecution[] }> {
    const { config, store, clock, log } = this.deps;
    const previous = await this.deps.registryStore.read();
    if (previous.kind === 'unreadable') log.warn({ path: this.deps.registryStore.location }, `predecessor registry unreadable (${previous.reason}); sweeping by marker only`);
    const entries = previous.kind === 'ok' ? previous.value.file.agents : [];
    const { reaped, survivors } = await this.deps.reapPredecessor(entries);
    // Agents on another node are not ours to reap; their runs are attached below.
    const localSurvivors = survivors.filter((entry) => entry.node === LOCAL_NODE);
    const stamp = { epoch: this.#epoch, nowMs: clock.now() };
    const rewritten: IssueClaim[] = [];
    const requeued: string[] = [];
    const attached: TeamExecution[] = [];
    for (const claim of await store.listClaims()) {
      const action = claimOnOpen(claim, this.#epoch, LOCAL_NODE);
      if (action === 'keep') continue;
      if (action === 'attach') {
        const team = claim.runId === null ? undefined : await executor.attach(claim.runId);
        if (team) {
          attached.push(team);
          continue;
        }
        log.warn({ issue: claim.issueKey, run: claim.runId, node: claim.node }, 'the run is no longer going on its node; treating it as interrupted');
      }
      const next = claimAfterCrash(claim, config.dispatch, stamp);
      rewritten.push(next);
      if (next.status === 'gave-up') log.warn({ issue: claim.issueKey }, next.lastReason ?? 'gave up');
      else requeued.push(claim.issueKey);
    }
    if (rewritten.length > 0) await store.apply({ epoch: this.#epoch, claims: rewritten });
    const report: PredecessorReport = { found: entries.length, reaped, survivors: localSurvivors, requeued, attached: attached.map((team) => team.plan.runId) };
    if (entries.length > 0 || requeued.length > 0 || attached.length > 0) log.info({ found: entries.length, reaped, requeued, attached: report.attached }, 'resolved the previous daemon run');
    return { report, attached };
  }

  /**
   * Something outside the session says it must stop acting now (the fleet's
   * leader lease was lost): the same fatal stop as lost state.
   */
  stopActing(error: FactoryError): void {
    this.#reportFatal(error);
  }

  #reportFatal(error: FactoryError): void {
    // One stop per session: later writes refused for the same reason add nothing.
    if (this.#fatalReported) return;
    this.#fatalReported = true;
    this.#onFatal(error);
  }

  /** Whether `resources` sets any limit, and the composition root gave the means to enforce it. */
  #budgetsConfigured(): boolean {
    const { team, byRepo, byLabel } = this.deps.config.resources;
    return this.deps.resources !== undefined && [team, ...Object.values(byRepo), ...Object.values(byLabel)].some(hasAnyLimit);
  }

  /** The groups as teams use them, remembered while they live so admission can read their usage. */
  #trackedGroups(groups: TeamResourceGroups): TeamResourceGroups {
    const live = this.#teamGroups;
    return {
      mechanism: groups.mechanism,
      create(teamId, budget) {
        const group = groups.create(teamId, budget);
        live.set(teamId, group);
        return {
          teamId: group.teamId,
          name: group.name,
          budget: group.budget,
          joinCommand: (command) => group.joinCommand(command),
          pids: () => group.pids(),
          memory: () => group.memory(),
          killAll: () => group.killAll(),
          remove: () => group.remove().finally(() => live.delete(teamId)),
        };
      },
      listLeftovers: () => groups.listLeftovers(),
      adopt: (leftover) => groups.adopt(leftover),
    };
  }

  #createMemoryGate(resources: TeamResources): MemoryAdmissionGate {
    const { config, clock } = this.deps;
    return new MemoryAdmissionGate({
      policy: config.resources,
      availableMemory: resources.availableMemory,
      ...(resources.pressure ? { pressure: resources.pressure } : {}),
      clock,
      // Every team running or being started counts with its budget; what its group already uses is out of MemAvailable.
      running: () =>
        (this.#dispatcher?.teams() ?? []).map((team) => ({
          budgetBytes: admissionBudgetBytes(resolveTeamBudget(config.resources, { repo: team.plan.repo, labels: team.plan.issue.labels })),
          usedBytes: this.#teamGroups.get(team.plan.runId)?.memory().currentBytes ?? 0,
        })),
    });
  }

  #createPressureParking(gate: MemoryAdmissionGate): PressureParking {
    const { config, clock, log } = this.deps;
    // This machine's pressure says nothing about a worker's: only teams running here are parked for it.
    const teamsRunHere = this.deps.executor === undefined;
    if (config.resources.onPressure === 'park' && !teamsRunHere)
      log.warn({ onPressure: 'park' }, 'resources.onPressure "park" parks only teams running on this machine; teams on fleet workers are held, not parked');
    return new PressureParking({
      pressure: gate,
      parkTeams: config.resources.onPressure === 'park' && teamsRunHere,
      resumeParked: this.mode === 'live',
      clock,
      log,
      teams: () => this.#dispatcher?.teams() ?? [],
      claims: () => this.deps.store.listClaims(),
      resume: (issueKey, why) => this.dispatcher.resume(issueKey, why),
    });
  }

  /**
   * The resource part of a supervision round: the RSS sampler stops teams over
   * budget (cgroups need no help), PSI is sampled, and held claims are offered
   * again, so a team waiting for memory starts as soon as memory frees up.
   */
  /** Admission: the daily budget first (no start while today is over it), then memory; either may be absent. */
  #admissionGate(): { admissionGate?: DailyBudgetGate | MemoryAdmissionGate } {
    const budget = this.deps.config.budgets.daily;
    if (budget.maxCostUsd === undefined || !this.#dailySpend) return this.#memoryGate ? { admissionGate: this.#memoryGate } : {};
    return { admissionGate: new DailyBudgetGate({ spend: this.#dailySpend, budget, clock: this.deps.clock, next: this.#memoryGate }) };
  }

  /** `factory resume` requests left while this daemon runs: each parked issue goes back in the queue through the dispatcher. */
  async #takeResumeRequests(): Promise<void> {
    const requests = (await this.deps.resumeRequests?.take()) ?? [];
    for (const request of requests) {
      const result = await this.dispatcher.resume(request.issueKey, 'resumed by hand (factory resume)');
      if (!result.resumed) this.deps.log.warn({ issue: request.issueKey, status: result.status }, 'factory resume asked for an issue that is not parked; nothing to resume');
    }
  }

  /**
   * Resumes one parked issue now and returns its team (the `resume` verb with
   * no daemon running). The issue is taken in first, as `dispatch` does, so a
   * new revision or an issue out of scope is not resumed.
   */
  async resumeOne(issue: Issue): Promise<{ resumed: boolean; status: string; team: TeamExecution | undefined }> {
    const dispatcher = this.dispatcher;
    await dispatcher.intake([issue], { complete: false });
    const result = await dispatcher.resume(issue.key, 'resumed by hand (factory resume)');
    if (!result.resumed) return { resumed: false, status: result.status, team: undefined };
    const team = dispatcher.teams().find((candidate) => candidate.plan.issue.key === issue.key) ?? (await dispatcher.pump(issue.key))[0];
    return { resumed: true, status: dispatcher.claim(issue.key)?.status ?? 'unknown', team };
  }

  async #superviseResources(): Promise<void> {
    const { log } = this.deps;
    const groups = this.#budgetsConfigured() ? this.deps.resources?.groups : undefined;
    const stops = (await groups?.enforceBudgets?.()) ?? [];
    for (const stop of stops) log.warn({ run: stop.teamId, rssBytes: stop.rssBytes, limitBytes: stop.limitBytes, killed: stop.result.killed }, 'team over its memory budget; stopped');
    this.#memoryGate?.samplePressure();
    await this.#pressureParking?.tick();
    if (this.#dispatcher && this.#dispatcher.heldReasons().size > 0) await this.#dispatcher.pump();
  }

  /**
   * The heartbeat's resources block: detection's report (fixed at startup) and
   * admission's state now. Cheap on every refresh: the held map lists only
   * claims that had a slot (at most dispatch.batchSize) and PSI is the gate's
   * last sample, never a fresh read.
   */
  #resourcesGauge(): { resources?: () => HeartbeatResources } {
    const report = this.deps.resources?.report;
    if (!report) return {};
    const fixed = { mechanism: report.mechanism, summary: report.summary, enforces: report.enforces, killAll: report.killAll, budgeted: this.#budgetsConfigured() };
    return {
      resources: () => {
        const pressure = this.#memoryGate?.pressureState();
        return {
          ...fixed,
          pressure: { readable: report.pressure, someAvg10: pressure?.someAvg10 ?? null, holding: pressure?.holding ?? false },
          held: [...this.heldReasons()].map(([issueKey, reason]) => ({ issueKey, reason })),
        };
      },
    };
  }

  /** Why each claim admission holds is waiting (e.g. `waiting for memory: need 4.0 GB, 2.1 GB free`). */
  heldReasons(): ReadonlyMap<string, string> {
    return this.#dispatcher?.heldReasons() ?? new Map();
  }

  #armSupervisor(): void {
    const { clock, config, log } = this.deps;
    this.#superviseTimer = clock.setTimeout(() => {
      const round = Promise.all([this.#dispatcher?.supervise(), this.#superviseResources(), this.#takeResumeRequests()]);
      void round
        .catch((error: Error) => log.warn({ err: error.message }, 'supervision round failed; trying again next interval'))
        .finally(() => {
          if (!this.#closing) this.#armSupervisor();
        });
    }, config.runs.superviseIntervalMs);
  }

  /**
   * Live mode: subscribe, reconcile, refresh the heartbeat until close().
   * `onFatal` is called when intake cannot recover (the caller stops the
   * daemon with a non-zero exit so its supervisor restarts it).
   */
  async startLive(onFatal: (error: FactoryError) => void = () => undefined): Promise<IntakePass> {
    this.#transition('live');
    this.#onFatal = onFatal;
    const { config, source, clock, log } = this.deps;
    this.#intake = new LiveIntake({
      source,
      dispatcher: this.dispatcher,
      clock,
      log,
      transport: config.intake.transport,
      reconcileIntervalMs: config.intake.reconcileIntervalMs,
      debounceMs: config.intake.debounceMs,
      probeIntervalMs: config.intake.probeIntervalMs,
      probeTimeoutMs: config.intake.probeTimeoutMs,
      unhealthyLimitMs: config.intake.unhealthyLimitMs,
      onFatal: (error) => this.#reportFatal(error),
      ...(this.deps.onIntakePass ? { onPass: this.deps.onIntakePass } : {}),
      onVisibleChange: () => this.heartbeat.writeSoon(),
    });
    this.heartbeat.startRefreshing();
    this.#startWorktreeRetention();
    const first = await this.#intake.start();
    // Readers see the live subscription and what the startup reconcile skipped now, not one refresh interval
    // later; a stop that began meanwhile owns the heartbeat's status.
    if (this.#state === 'live') await this.heartbeat.write('running');
    return first;
  }

  /**
   * Worktree retention (docs/operations.md): a pass now, then every
   * `workspace.pruneIntervalMs`, beside dispatch. Only where teams run on this
   * machine: a fleet worker's worktrees are its own (the worker prunes them
   * itself), and its prepare() shares no lock with this process.
   */
  #startWorktreeRetention(): void {
    const { config, clock, log, store } = this.deps;
    const keepFinishedForMs = config.workspace.keepFinishedForMs;
    if (keepFinishedForMs === null || this.deps.executor !== undefined) return;
    const dispatcher = this.dispatcher;
    this.#worktreeJanitor = new WorktreeJanitor({
      workspace: this.deps.workspace,
      // The dispatcher's book is ahead of the store: a claim it marks queued or running is seen before the write lands.
      claimOf: async (issueKey) => dispatcher.claim(issueKey) ?? (await store.getClaim(issueKey)),
      teamRunning: (issueKey) => dispatcher.teams().some((team) => team.plan.issue.key === issueKey),
      clock,
      log: log.child({ component: 'worktree-retention' }),
    });
    this.#worktreeJanitor.start({ intervalMs: config.workspace.pruneIntervalMs, keepFinishedForMs });
  }

  /**
   * Runs one issue now, through the daemon's own intake rule (the `dispatch`
   * verb). With `force`, a revision that already ended runs again. Returns the
   * intake decision and the team, when one started.
   */
  async dispatchOne(issue: Issue, options: { force?: boolean } = {}): Promise<{ decision: IntakeDecision | undefined; team: TeamExecution | undefined }> {
    const dispatcher = this.dispatcher;
    const [decision] = await dispatcher.intake([issue], { complete: false });
    if (options.force && decision?.action === 'already-handled') await dispatcher.requeue(issue.key);
    const [team] = await dispatcher.pump(issue.key);
    return { decision, team };
  }

  /** Resolves when no team is running. */
  whenIdle(): Promise<void> {
    return this.#dispatcher?.whenIdle() ?? Promise.resolve();
  }

  /** Writes one heartbeat with `status` (bounded loops call it per iteration). */
  writeHeartbeat(status: DaemonStatus): Promise<void> {
    return this.heartbeat.write(status);
  }

  /**
   * The ordered stop: cancel the refresh timer, wait for a write in flight,
   * write `stopping`, release the agents, then write the registry and the
   * final heartbeat. Idempotent: a second call waits for the first.
   */
  close(finalStatus: DaemonStatus = 'stopped'): Promise<void> {
    this.#closing ??= this.#closeInOrder(finalStatus);
    return this.#closing;
  }

  async #closeInOrder(finalStatus: DaemonStatus): Promise<void> {
    this.#transition('closing');
    const { clock, log, store } = this.deps;
    const step = async (name: string, work: () => Promise<void> | void): Promise<void> => {
      // Each step is guarded so one failure does not skip the rest of the stop.
      try {
        await work();
      } catch (error) {
        log.error({ step: name, err: (error as Error).message }, 'stop step failed; continuing');
      }
    };
    clock.clearTimeout(this.#superviseTimer);
    if (this.#heartbeat) {
      await step('cancel heartbeat refresh', () => this.#heartbeat!.stopRefreshing());
      await step('write stopping heartbeat', () => this.#heartbeat!.write('stopping'));
    }
    await step('close intake', () => this.#intake?.close());
    await step('stop worktree retention', () => this.#worktreeJanitor?.close());
    await step('stop the shepherd', () => this.#shepherd?.close());
    if (this.deps.runsOutliveSession) log.info({ running: this.#dispatcher?.runningTeamCount ?? 0 }, 'leaving runs going on their workers for the next leader');
    else await step('release agents', () => this.#dispatcher?.releaseAll());
    await step('write registry', () => this.#registry?.flush());
    if (this.#heartbeat) await step('write final heartbeat', () => this.#heartbeat!.write(finalStatus));
    await step('close state store', () => store.close());
    this.#transition('closed');
    log.info({ status: finalStatus }, 'factory session closed');
  }
}

/**
 * Teams that run elsewhere (fleet workers) are held to this control plane's
 * run budget: each plan carries it, and the worker's team run enforces it on
 * every usage event exactly as a local run does. The daily budget stays here,
 * in admission.
 */
function withRunBudget(executor: TeamExecutor, runBudget: RunBudget): TeamExecutor {
  if ([runBudget.maxTokens, runBudget.maxCostUsd, runBudget.maxTurns].every((limit) => limit === undefined)) return executor;
  return {
    get node() {
      return executor.node;
    },
    start: (plan) => executor.start({ ...plan, runBudget }),
    attach: (runId) => executor.attach(runId),
    listRunning: () => executor.listRunning(),
  };
}
