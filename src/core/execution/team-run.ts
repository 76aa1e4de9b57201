import { join } from 'node:path';
import { agentEnvironment, placeholderValues, type AgentReviewContext } from '../../domain/prompt.js';
import {
  decideStageReview,
  MAX_VERDICT_FILE_BYTES,
  readReviewerVerdict,
  reworkStageFor,
  summarizeComments,
  type ReviewRoundEntry,
  type StageReview,
  type VerdictReading,
} from '../../domain/review.js';
import { mayEndWithoutChanges, raisePeak, type AgentResult, type NoChangesPolicy, type RunOutcome, type RunOutcomeReason, type StopReason } from '../../domain/run.js';
import { agentNameFor, type StageAgent, type TeamStage } from '../../domain/team.js';
import type { Clock } from '../../ports/clock.js';
import type { AgentActivity, AgentExit, AgentHandle, Fleet } from '../../ports/fleet.js';
import type { Logger } from '../../ports/logger.js';
import type { Placement, RunEvent, RunningAgent, TeamExecution, TeamPlan } from '../../ports/team-executor.js';
import type { RunLogStore } from '../../ports/run-log-store.js';
import type { PreparedWorkspace, Workspace } from '../../ports/workspace.js';
import { maybeCrash } from '../fault-injection.js';
import { isFactoryError, type FactoryError } from '../../errors.js';
import type { RegistryKeeper } from '../registry-keeper.js';
import type { TeamResourceGroup } from '../../ports/team-resources.js';
import { closeTeamGroup, killTeamGroup, openTeamGroup, type TeamRunResources } from './team-group.js';
import type { AgentCliHost } from '../../ports/agent-cli.js';
import { prepareAgentLaunch, type AgentStreamWatch } from './agent-stream-watch.js';
import { automaticResumeAtMs, overDailyBudget, overRunBudget, parkRefFor, type DailyBudget, type ParkedReview, type ParkedRun, type ParkTrigger, type RunBudget } from '../../domain/budgets.js';
import type { AgentActivitySummary } from '../../domain/agent-events/agent-driver.js';
import { totalTokens } from '../../domain/agent-events/usage-ledger.js';

export interface TeamRunDeps {
  readonly fleet: Fleet;
  readonly workspace: Workspace;
  readonly registry: RegistryKeeper;
  readonly clock: Clock;
  readonly log: Logger;
  /** Where each agent's log and side files go. */
  readonly runLogs: Pick<RunLogStore, 'locateAgentLog' | 'readSideFile'>;
  readonly killGraceMs: number;
  /** Whether a team may end without a commit on its branch (`runs.allowNoChanges`). Absent: it may not. */
  readonly noChanges?: NoChangesPolicy;
  /** Budgets (`resources`): each team with a limit runs in its own group. Absent: no groups. */
  readonly resources?: TeamRunResources;
  /** Command lines and log following for CLI drivers (claude-code, codex). Absent: such an agent cannot start. */
  readonly agentCli?: AgentCliHost;
  /** `budgets.*`: a run over one is parked (stopped, its work kept), not failed. Absent: no budget. */
  readonly budgets?: TeamRunBudgets;
}

/** The usage budgets a run is held to, as its agents report usage. */
export interface TeamRunBudgets {
  readonly run: RunBudget;
  readonly daily: DailyBudget;
  /** What today's (UTC) recorded runs cost, from the usage ledger; this run's own cost so far is added to it. */
  readonly spentTodayUsd: () => number;
}

/** What a resumed agent is told: its session already holds the task. */
export function resumePrompt(park: ParkedRun): string {
  return `Factory paused this run (${park.reason}) and resumes it now. Your work so far is in the worktree as uncommitted changes. Continue the task where you left off and finish it.`;
}

/**
 * One team at work on one issue on this machine: a worktree, then each stage's
 * agents as real process trees. The team owns its agents' registry entries:
 * added right after spawn, removed right after exit.
 */
export class TeamRun implements TeamExecution {
  readonly plan: TeamPlan;
  readonly placement: Placement;
  readonly startedAtMs: number;
  readonly outcome: Promise<RunOutcome>;
  readonly #deps: TeamRunDeps;
  readonly #handles = new Map<string, { handle: AgentHandle; agent: RunningAgent; watch?: AgentStreamWatch }>();
  readonly #results: AgentResult[] = [];
  /** Who did what in which review round, for the outcome (empty for a team without a review stage). */
  readonly #rounds: ReviewRoundEntry[] = [];
  /** Why an agent could not be started, by agent name, for the outcome's detail. */
  readonly #spawnErrors = new Map<string, string>();
  readonly #events: RunEvent[] = [];
  readonly #listeners = new Set<(event: RunEvent) => void>();
  #stopReason: StopReason | undefined;
  #workspace: PreparedWorkspace | undefined;
  /**
   * The branch head this run counts its commits from: where the branch stood
   * when the run started (a resumed run: when its first part started), so
   * commits of earlier runs on the branch never count as this run's work.
   * Undefined when the head could not be read (then no count is reported).
   */
  #startCommit: string | undefined;
  /** The team's resource group, when its budget sets a limit. */
  #group: TeamResourceGroup | undefined;
  #lastActivity: { signature: string; atMs: number };
  /** Each CLI agent's figures so far (finished ones too), by agent name: the run budget counts them all together. */
  readonly #usageByAgent = new Map<string, AgentActivitySummary>();
  /** Why the run is being parked (set once, with the `parked` stop reason). */
  #parkTrigger: ParkTrigger | undefined;
  /** Each running agent's highest sampled tree RSS, by agent name: raised on every supervision sample, moved into its result at exit. */
  readonly #memoryPeaks = new Map<string, number>();

  constructor(plan: TeamPlan, deps: TeamRunDeps) {
    this.plan = plan;
    this.placement = { node: deps.fleet.node };
    this.#deps = deps;
    this.startedAtMs = deps.clock.now();
    this.#lastActivity = { signature: '', atMs: this.startedAtMs };
    this.outcome = this.#run()
      .then((outcome) => closeTeamGroup(this.#group, deps.resources?.groups.mechanism ?? '', outcome, deps.log.child({ run: plan.runId })))
      .then((outcome) => {
        this.#emit({ kind: 'outcome', runId: plan.runId, outcome, atMs: outcome.endedAtMs });
        return outcome;
      });
  }

  subscribe(listener: (event: RunEvent) => void): () => void {
    for (const event of this.#events) listener(event);
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: RunEvent): void {
    this.#events.push(event);
    for (const listener of this.#listeners) listener(event);
  }

  runningAgents(): RunningAgent[] {
    return [...this.#handles.values()].map((entry) => {
      const peak = this.#memoryPeaks.get(entry.agent.agentName);
      return { ...entry.agent, ...(entry.watch ? { activity: entry.watch.activity() } : {}), ...(peak !== undefined ? { memoryPeakBytes: peak } : {}) };
    });
  }

  get lastActivityAtMs(): number {
    return this.#lastActivity.atMs;
  }

  /**
   * Samples the agents' signs of work (output bytes and tree CPU time). Any
   * change counts as activity, so a silent agent that burns CPU is busy.
   * The same sample raises each agent's memory peak (its tree's RSS).
   * Called by the supervisor on its own timer, never by the heartbeat.
   */
  async sampleActivity(): Promise<number> {
    const entries = [...this.#handles.values()];
    const samples: AgentActivity[] = await Promise.all(entries.map(({ handle }) => handle.activity()));
    samples.forEach((sample, i) => {
      const name = entries[i]!.agent.agentName;
      // Only agents still running: one that exited while sampling already has its result.
      if (!this.#handles.has(name)) return;
      const peak = raisePeak(this.#memoryPeaks.get(name), sample.treeRssBytes);
      if (peak !== undefined) this.#memoryPeaks.set(name, peak);
    });
    // A CLI driver's parsed events are its output: stderr noise (a retry spinner) is not work.
    const signature = samples.map((s, i) => `${entries[i]?.watch ? `e${entries[i].watch.activity().events}` : s.outputBytes}/${s.treeCpuTicks ?? '?'}`).join(',');
    if (signature !== this.#lastActivity.signature) this.#lastActivity = { signature, atMs: this.#deps.clock.now() };
    return this.#lastActivity.atMs;
  }

  /** Stops the team's agents (whole process groups). The outcome carries `reason`; a park keeps the work and sessions, for `park`'s reason. */
  async cancel(reason: StopReason, park?: ParkTrigger): Promise<void> {
    if (reason === 'parked' && this.#stopReason === undefined) this.#parkTrigger ??= park ?? { kind: 'run-budget', reason: 'parked by the factory' };
    this.#stopReason ??= reason;
    await Promise.all([...this.#handles.values()].map(({ handle }) => handle.stop(this.#deps.killGraceMs)));
    // Whatever the trees left that is still in the team's group (a process that dropped its marker) goes too.
    await killTeamGroup(this.#group, this.#deps.log.child({ run: this.plan.runId }));
  }

  get stopReason(): StopReason | undefined {
    return this.#stopReason;
  }

  /**
   * Stops the team gracefully to park it (over a budget, or stopped by a usage
   * limit): the first stop reason wins, so a run already being stopped for
   * another reason is not parked.
   */
  #requestPark(trigger: ParkTrigger): void {
    if (this.#stopReason !== undefined) return;
    this.#parkTrigger = trigger;
    this.#deps.log.child({ issue: this.plan.issue.key, run: this.plan.runId }).warn({ trigger: trigger.kind }, `parking the run: ${trigger.reason}`);
    void this.cancel('parked');
  }

  /** The plan's run budget (a fleet job carries the control plane's), else this executor's. */
  #runBudget(): RunBudget {
    return this.plan.runBudget ?? this.#deps.budgets?.run ?? {};
  }

  /** Whether any usage budget is set: only then must usage be exact while the agent runs. */
  #budgeted(): boolean {
    const run = this.#runBudget();
    return [run.maxTokens, run.maxCostUsd, run.maxTurns, this.#deps.budgets?.daily.maxCostUsd].some((limit) => limit !== undefined);
  }

  /** Budgets, on every change of an agent's figures: all the run's agents together, then today's spending with this run's (where this executor knows it). */
  #checkBudgets(agentName: string, activity: AgentActivitySummary): void {
    const budgets = this.#deps.budgets;
    this.#usageByAgent.set(agentName, activity);
    if (!this.#budgeted() || this.#stopReason !== undefined) return;
    let tokens = 0;
    let turns = 0;
    let costUsd: number | undefined;
    for (const agent of this.#usageByAgent.values()) {
      tokens += totalTokens(agent.usage);
      turns += agent.turns;
      if (agent.costUsd !== undefined) costUsd = (costUsd ?? 0) + agent.costUsd;
    }
    const trigger = overRunBudget({ tokens, turns, costUsd }, this.#runBudget()) ?? (budgets ? overDailyBudget(budgets.spentTodayUsd() + (costUsd ?? 0), budgets.daily) : undefined);
    if (trigger) this.#requestPark(trigger);
  }

  async #run(): Promise<RunOutcome> {
    const { plan } = this;
    const parkToContinue = plan.resume?.commit ? { park: plan.resume } : {};
    try {
      this.#workspace = await this.#deps.workspace.prepare({ repo: plan.repo, issueKey: plan.issue.key, branch: plan.branch, ...parkToContinue });
    } catch (error) {
      if (plan.resume && isFactoryError(error, 'FACTORY_PARK_UNAVAILABLE')) return this.#parkedWorkUnavailable(plan.resume, error);
      return this.#finish('spawn-failed', `could not prepare the worktree: ${(error as Error).message}`);
    }
    try {
      this.#group = openTeamGroup(this.#deps.resources, plan);
    } catch (error) {
      return this.#finish('spawn-failed', `could not create the team's resource group: ${(error as Error).message}`);
    }
    const resume = plan.resume;
    const headNow = await this.#deps.workspace.branchHead(this.#workspace).catch(() => undefined);
    this.#startCommit = resume?.startCommit ?? headNow;
    if (resume) await this.#restoreParkedWork(resume);
    // Review rounds (domain/review.ts): a review stage that requests changes sends the team back to its work stages.
    // A resumed run counts on from where it parked, so a park cannot reset the count past review.maxRounds.
    const reviewsDone = new Map<number, number>(Object.entries(resume?.review?.changesRequested ?? {}).map(([stage, count]) => [Number(stage), count]));
    let review: { round: number; comments: string } | undefined = resume?.review && resume.review.round > 1 ? { round: resume.review.round, comments: resume.review.comments ?? '' } : undefined;
    // A resumed run starts at the stage it was parked in; that stage's agents (and only on this first pass) continue their sessions.
    const firstStage = resume ? Math.min(Math.max(0, resume.stage), plan.stages.length - 1) : 0;
    let resuming = resume !== undefined;
    for (let index = firstStage; index < plan.stages.length;) {
      if (this.#stopReason) break;
      const stage = plan.stages[index]!;
      const round = review?.round ?? 1;
      this.#emit({ kind: 'stage-started', runId: plan.runId, stage: index, roles: stage.agents.map((a) => a.role), atMs: this.#deps.clock.now() });
      const parallel = stage.agents.length > 1;
      const inReviewLoop = review !== undefined || stage.review !== undefined || plan.stages.some((s) => s.review !== undefined);
      const results = await Promise.all(
        stage.agents.map((agent) => {
          const reviewer = stage.review?.reviewers.includes(agent.slot) === true;
          const context = inReviewLoop ? { round, comments: review?.comments, verdictFile: reviewer ? this.#verdictFileFor(agent.slot, round) : undefined } : undefined;
          const resumeSessionId = resuming && plan.startNewSessions !== true ? resume?.sessions[agent.slot] : undefined;
          return this.#runAgent(agent, parallel, context, resumeSessionId);
        }),
      );
      resuming = false;
      // An agent that stopped on its own at a usage limit parks the run too (Codex exits on it).
      const limited = results.find((r) => r.report?.verdict === 'rate-limited');
      if (limited && this.#stopReason === undefined) {
        this.#stopReason = 'parked';
        this.#parkTrigger = { kind: 'usage-limit', reason: limited.report?.reason ?? 'usage limit reached', resetAtMs: limited.report?.resetAtMs };
      }
      if (this.#stopReason === 'parked') {
        const rounds = inReviewLoop ? { round, changesRequested: Object.fromEntries(reviewsDone), ...(review ? { comments: review.comments } : {}) } : undefined;
        return this.#park(index, stage, results, rounds);
      }
      const failed = results.find((r) => r.reason !== 'succeeded');
      if (failed) {
        const reason = this.#stopReason ?? failed.reason;
        return this.#finish(reason, describeAgentFailure(failed, this.#stopReason));
      }
      const decision = await this.#recordRound(stage, results, round);
      if (decision.kind === 'invalid') return this.#finish('failed', decision.reason);
      if (decision.kind === 'request-changes' && stage.review) {
        const reviews = (reviewsDone.get(index) ?? 0) + 1;
        reviewsDone.set(index, reviews);
        const rework = reworkStageFor(plan.stages, index);
        if (reviews >= stage.review.maxRounds || rework === undefined) {
          const why = rework === undefined ? 'no work stage comes before the review stage to send the changes to' : `after ${reviews} review round(s) (review.maxRounds ${stage.review.maxRounds})`;
          return this.#finish('changes-requested', `changes requested ${why}: ${summarizeComments(decision.comments)}`);
        }
        review = { round: round + 1, comments: decision.comments };
        index = rework;
        continue;
      }
      if (stage.review) review = undefined;
      index++;
    }
    if (this.#stopReason) return this.#finish(this.#stopReason, `stopped: ${this.#stopReason}`);
    const commits = await this.#commitsThisRun(headNow);
    const total = await this.#deps.workspace.commitsSince(this.#workspace).catch(() => undefined);
    // Commits of earlier runs are there but are not this run's work: say so, so the report is read right.
    const earlier = commits !== undefined && total !== undefined && total > commits ? `; ${total} on the branch in all` : '';
    if (commits === 0 && !mayEndWithoutChanges(plan.issue.labels, this.#deps.noChanges ?? { allowNoChanges: false })) {
      return this.#finish('no-changes', `${this.#results.length} agent(s) exited 0 but left no commit on ${plan.branch} this run${earlier} (runs.allowNoChanges is off)`);
    }
    const detail = commits !== undefined ? `${this.#results.length} agent(s) exited 0; ${commits} commit(s) this run on ${plan.branch}${earlier}` : `${this.#results.length} agent(s) exited 0`;
    return this.#finish('succeeded', detail);
  }

  /**
   * Commits on the branch since the run started. A resumed run counts from
   * its first part's start; when that commit is not in this clone (a park
   * recorded elsewhere), from where this part started. Undefined when
   * neither can be counted.
   */
  async #commitsThisRun(headAtThisPart: string | undefined): Promise<number | undefined> {
    for (const since of new Set([this.#startCommit, headAtThisPart])) {
      if (since === undefined) continue;
      const count = await this.#deps.workspace.commitsSince(this.#workspace!, since).catch(() => undefined);
      if (count !== undefined) return count;
    }
    return undefined;
  }

  /** Where `slot` writes its verdict in `round`: beside its log, outside the worktree, one file per round so a stale one is never read. */
  #verdictFileFor(slot: string, round: number): string {
    const { sideFilesDir, sideFileStem } = this.#deps.runLogs.locateAgentLog(this.plan.issue.key, this.plan.runId, slot);
    return join(sideFilesDir, `${sideFileStem}.review-${round}.json`);
  }

  /** Adds the stage's agents to the round history and, for a review stage, decides from its reviewers' verdicts. */
  async #recordRound(stage: TeamStage, results: readonly AgentResult[], round: number): Promise<StageReview> {
    const inLoop = stage.review !== undefined || this.plan.stages.some((s) => s.review !== undefined);
    if (!inLoop) return { kind: 'approve' };
    const commit = await this.#deps.workspace.branchHead(this.#workspace!).catch(() => null);
    const verdicts: { role: string; reading: VerdictReading }[] = [];
    for (const [index, stageAgent] of stage.agents.entries()) {
      const result = results[index]!;
      if (stage.review?.reviewers.includes(stageAgent.slot) !== true) {
        this.#rounds.push({ round, role: stageAgent.role, agentName: result.agentName, commit });
        continue;
      }
      let reading: VerdictReading;
      try {
        const fileText = await this.#deps.runLogs.readSideFile(this.#verdictFileFor(stageAgent.slot, round), MAX_VERDICT_FILE_BYTES);
        // A CLI driver that knows the final message can hand it in here (readReviewerVerdict reads a verdict from it).
        reading = readReviewerVerdict({ role: stageAgent.role, fileText });
      } catch (error) {
        reading = { ok: false, reason: `could not read the verdict of ${stageAgent.role}: ${(error as Error).message}` };
      }
      verdicts.push({ role: stageAgent.role, reading });
      const said = reading.ok
        ? { verdict: reading.verdict.verdict, verdictSource: reading.verdict.source, ...(reading.verdict.comments ? { commentsSummary: summarizeComments(reading.verdict.comments) } : {}) }
        : {};
      this.#rounds.push({ round, role: stageAgent.role, agentName: result.agentName, ...said, commit });
    }
    return decideStageReview(verdicts);
  }

  async #runAgent(stageAgent: StageAgent, hasSiblings: boolean, review?: AgentReviewContext, resumeSessionId?: string): Promise<AgentResult> {
    const { plan } = this;
    const { role, slot, agent } = stageAgent;
    const workspace = this.#workspace!;
    const agentName = agentNameFor(plan.issue.key, slot);
    const prompt = { issue: plan.issue, role, branch: workspace.branch, worktree: workspace.path, runId: plan.runId, attempt: plan.attempt, extraInstruction: agent.instruction, review };
    const rendered = placeholderValues(prompt);
    // A resumed session already holds the task: it is told to go on, not given the task again.
    const values = resumeSessionId !== undefined && plan.resume ? { ...rendered, prompt: resumePrompt(plan.resume) } : rendered;
    // Issue text reaches scripts as variables and files (beside the log, outside the worktree), never as code.
    const { logPath, sideFilesDir, sideFileStem } = this.#deps.runLogs.locateAgentLog(plan.issue.key, plan.runId, slot);
    const environment = agentEnvironment({ context: prompt, configEnv: agent.env, configEnvPassthrough: agent.envPassthrough, filesDir: sideFilesDir, fileStem: sideFileStem });
    const startedAtMs = this.#deps.clock.now();
    let needsInput: string | undefined;
    const launch = prepareAgentLaunch(
      agent,
      values,
      this.#deps.agentCli,
      {
        clock: this.#deps.clock,
        onActivity: (activity) => this.#emit({ kind: 'agent-activity', runId: plan.runId, agentName, role, activity, atMs: this.#deps.clock.now() }),
        // Nobody can answer a question in a non-interactive run: stop now, with why, rather than wait for a stall.
        onNeedsInput: (why) => {
          needsInput = why;
          const entry = this.#handles.get(agentName);
          if (entry) void entry.handle.stop(this.#deps.killGraceMs);
        },
        onUsage: (activity) => this.#checkBudgets(agentName, activity),
        // A limit with a reset time will not lift by retrying now: park, and come back at the reset.
        onRateLimited: (why, resetAtMs) => this.#requestPark({ kind: 'usage-limit', reason: why, resetAtMs }),
      },
      { ...(resumeSessionId !== undefined ? { resumeSessionId } : {}), ...(this.#budgeted() ? { liveUsage: true } : {}) },
    );
    if (!launch.ok) return this.#record({ role, agentName, exitCode: null, signal: null, reason: 'spawn-failed', logPath, startedAtMs, endedAtMs: this.#deps.clock.now() }, launch.reason);
    launch.watch?.start(logPath);
    let handle: AgentHandle;
    try {
      handle = await this.#deps.fleet.spawn({
        issueKey: plan.issue.key,
        runId: plan.runId,
        role,
        agentName,
        command: launch.command,
        cwd: workspace.path,
        env: environment.env,
        envPassthrough: environment.envPassthrough,
        files: environment.files,
        logPath,
        worktree: workspace.path,
        ...(this.#group ? { resourceGroup: this.#group } : {}),
      });
    } catch (error) {
      await launch.watch?.abandon();
      return this.#record({ role, agentName, exitCode: null, signal: null, reason: 'spawn-failed', logPath, startedAtMs, endedAtMs: this.#deps.clock.now() }, (error as Error).message);
    }
    const running: RunningAgent = { role, agentName, placement: { node: handle.identity.node, pid: handle.identity.pid }, startedAtMs: handle.identity.startedAtMs };
    this.#handles.set(agentName, { handle, agent: running, ...(launch.watch ? { watch: launch.watch } : {}) });
    // Asked for input before its handle was known: stop it now.
    if (needsInput !== undefined) void handle.stop(this.#deps.killGraceMs);
    const log = this.#deps.log.child({ issue: plan.issue.key, run: plan.runId, agent: agentName });
    maybeCrash('after-spawn');
    await this.#deps.registry.add({ ...handle.identity, teamStartedAtMs: this.startedAtMs });
    maybeCrash('after-registry-write');
    log.info({ agentPid: handle.identity.pid }, `${role} started`);
    this.#emit({ kind: 'agent-started', runId: plan.runId, agent: running, atMs: this.#deps.clock.now() });
    // A stop requested while we were spawning must still reach this agent.
    if (this.#stopReason) void handle.stop(this.#deps.killGraceMs);
    const exit: AgentExit = await handle.exited;
    // The leader is gone, but descendants it left behind (a dev server, a
    // watcher) still carry the marker: end them before the entry leaves the registry.
    await handle.stop(this.#deps.killGraceMs).catch((error: Error) => log.warn({ err: error.message }, 'could not clean up the agent tree after exit'));
    this.#handles.delete(agentName);
    const memoryPeakBytes = this.#memoryPeaks.get(agentName);
    this.#memoryPeaks.delete(agentName);
    await this.#deps.registry.remove(handle.identity.marker);
    // Truth over exit codes: a CLI driver's run is judged by what the agent reported.
    const report = await launch.watch?.finish({ code: exit.exitCode, signal: exit.signal });
    const succeeded = report ? report.verdict === 'succeeded' : exit.exitCode === 0;
    if (report) this.#usageByAgent.set(agentName, report);
    const reason: RunOutcomeReason = this.#stopReason ?? (succeeded ? 'succeeded' : report?.verdict === 'rate-limited' ? 'parked' : 'failed');
    log.info(
      { exitCode: exit.exitCode, signal: exit.signal, reason, ...(report ? { verdict: report.verdict, why: report.reason, turns: report.turns, usage: report.usage, costUsd: report.costUsd } : {}) },
      `${role} exited`,
    );
    if (reason === 'failed' && hasSiblings) {
      // The team has failed; the other agents of its stage would work on for nothing.
      for (const sibling of this.#handles.values()) void sibling.handle.stop(this.#deps.killGraceMs);
    }
    return this.#record({
      role,
      agentName,
      exitCode: exit.exitCode,
      signal: exit.signal,
      reason,
      logPath,
      startedAtMs,
      endedAtMs: exit.endedAtMs,
      ...(report ? { report } : {}),
      ...(memoryPeakBytes !== undefined ? { memoryPeakBytes } : {}),
    });
  }

  #record(result: AgentResult, spawnError?: string): AgentResult {
    this.#results.push(result);
    if (spawnError) this.#spawnErrors.set(result.agentName, spawnError);
    this.#emit({ kind: 'agent-exited', runId: this.plan.runId, result, atMs: result.endedAtMs });
    return result;
  }

  /** A parked run's work back in its worktree (it is usually still there; this covers a cleaned or re-created worktree). */
  async #restoreParkedWork(park: ParkedRun): Promise<void> {
    const log = this.#deps.log.child({ issue: this.plan.issue.key, run: this.plan.runId });
    if (park.commit === null) {
      log.warn({ parkedRun: park.runId }, 'the parked run left no park commit; resuming with the worktree as it is');
      return;
    }
    try {
      await this.#deps.workspace.restorePark(this.#workspace!, park.ref);
      log.info({ parkedRun: park.runId, ref: park.ref }, 'restored the parked work into the worktree');
    } catch (error) {
      // Refused when the branch moved on since: the worktree keeps what it has, and the ref stays for a person to look at.
      log.warn({ parkedRun: park.runId, ref: park.ref, err: (error as Error).message }, 'could not restore the parked work; resuming with the worktree as it is');
    }
  }

  /**
   * The agents are stopped: commits whatever they changed to the run's park ref
   * (the branch does not move), keeps their sessions, and ends the run parked.
   */
  async #park(stageIndex: number, stage: TeamStage, results: readonly AgentResult[], review: ParkedReview | undefined): Promise<RunOutcome> {
    const trigger = this.#parkTrigger ?? { kind: 'run-budget', reason: 'parked' };
    const ref = parkRefFor(this.plan.runId);
    const sessions: Record<string, string> = {};
    for (const [i, stageAgent] of stage.agents.entries()) {
      // A session id from the earlier part carries over when this part never got as far as naming its own.
      const sessionId = results[i]?.report?.sessionId ?? this.plan.resume?.sessions[stageAgent.slot];
      if (sessionId !== undefined) sessions[stageAgent.slot] = sessionId;
    }
    let commit: string | null = null;
    let kept: string;
    try {
      commit = (await this.#deps.workspace.park(this.#workspace!, ref, `factory: park ${this.plan.runId} (${trigger.reason})`)).commit;
      kept = `work kept at ${ref}`;
    } catch (error) {
      kept = `the work stays in ${this.#workspace?.path} (could not commit it to ${ref}: ${(error as Error).message})`;
    }
    const park: ParkedRun = {
      runId: this.plan.runId,
      ref,
      commit,
      trigger: trigger.kind,
      reason: trigger.reason,
      resumeAtMs: automaticResumeAtMs(trigger, this.#deps.clock.now()),
      stage: stageIndex,
      sessions,
      ...(review ? { review } : {}),
      ...(this.#startCommit !== undefined ? { startCommit: this.#startCommit } : {}),
    };
    return { ...this.#finish('parked', `parked: ${trigger.reason}; ${kept}`), park };
  }

  /**
   * The resumed run's parked work is not on this machine (it is on the worker
   * that parked it, whose push failed): the run ends parked again with the
   * same park, so nothing is lost and nothing starts over from scratch. Only
   * by hand from here (no resume time): resuming it again may land it where
   * the work is.
   */
  #parkedWorkUnavailable(park: ParkedRun, error: FactoryError): RunOutcome {
    this.#deps.log
      .child({ issue: this.plan.issue.key, run: this.plan.runId })
      .warn({ parkedRun: park.runId, ref: park.ref, code: error.code, err: error.message }, 'the parked work is not here; the run stays parked');
    return { ...this.#finish('parked', `${error.code}: ${error.message}`), park: { ...park, resumeAtMs: null } };
  }

  #finish(reason: RunOutcomeReason, detail: string): RunOutcome {
    const spawnErrors = this.#results.filter((r) => this.#spawnErrors.has(r.agentName)).map((r) => `${r.role}: ${this.#spawnErrors.get(r.agentName)}`);
    return {
      runId: this.plan.runId,
      issueKey: this.plan.issue.key,
      revision: this.plan.issue.revision,
      attempt: this.plan.attempt,
      reason,
      detail: spawnErrors.length > 0 && reason === 'spawn-failed' ? spawnErrors.join('; ') : detail,
      branch: this.#workspace?.branch ?? this.plan.branch,
      worktree: this.#workspace?.path ?? '',
      agents: [...this.#results],
      ...(this.#rounds.length > 0 ? { reviewRounds: [...this.#rounds] } : {}),
      startedAtMs: this.startedAtMs,
      endedAtMs: this.#deps.clock.now(),
    };
  }
}

function describeAgentFailure(result: AgentResult, stopReason: StopReason | undefined): string {
  if (stopReason) return `${result.role} stopped: ${stopReason}`;
  if (result.reason === 'spawn-failed') return `${result.role} could not be started`;
  if (result.report?.reason !== undefined) return `${result.role}: ${result.report.reason}`;
  if (result.signal) return `${result.role} was killed by ${result.signal}`;
  return `${result.role} exited with code ${result.exitCode}`;
}
