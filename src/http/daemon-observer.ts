import type { FactorySession, FactorySessionDeps } from '../core/factory-session.js';
import type { IntakePass } from '../core/live-intake.js';
import type { RunOutcome } from '../domain/run.js';
import type { FactoryMetrics } from './metrics.js';

/**
 * Listens to a daemon session (team starts, outcomes, intake passes), keeps
 * the metrics' counters, and tells the status server that the state changed
 * so the dashboard is pushed a fresh snapshot at once instead of at the next
 * tick. The hooks must be handed to `openSession` before the session exists;
 * `attach` is called once it is open.
 */
export class DaemonObserver {
  readonly #metrics: FactoryMetrics;
  readonly #listeners = new Set<() => void>();
  /** Teams started since the last intake pass: the pass that started them says which event they answer. */
  #recentStarts: { issueKey: string; startedAtMs: number }[] = [];

  constructor(metrics: FactoryMetrics) {
    this.#metrics = metrics;
  }

  readonly hooks: Required<Pick<FactorySessionDeps, 'onOutcome' | 'onIntakePass'>> = {
    onOutcome: (outcome: RunOutcome) => {
      this.#metrics.countOutcome(outcome.reason);
      this.#metrics.countAgentUsage(outcome);
      this.#metrics.observeTeamMemory(outcome);
      this.#metrics.observeAgentMemory(outcome);
      this.#changed();
    },
    onIntakePass: (pass: IntakePass) => {
      this.#measureEventToDispatch(pass);
      if (pass.decisions.length > 0 || pass.skippedFiles.length > 0) this.#changed();
    },
  };

  /** Starts counting the session's dispatches; returns the detach. */
  attach(session: FactorySession): () => void {
    this.#metrics.countPredecessorReaps(session.predecessor?.reaped ?? 0);
    return session.dispatcher.observeStarts((team) => {
      this.#metrics.countDispatch();
      this.#recentStarts.push({ issueKey: team.plan.issue.key, startedAtMs: team.startedAtMs });
      // Starts outside intake passes (retries, freed slots) are dropped at the next pass; bound them meanwhile.
      if (this.#recentStarts.length > 10_000) this.#recentStarts.splice(0, 5_000);
      this.#changed();
    });
  }

  /** Calls `listener` whenever the daemon's state changed; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Dispatcher.pump() runs inside the pass, so a team the pass started was
   * recorded just before this. Only teams whose issue this pass queued count:
   * an issue that waited for a free slot measures queue time, not intake.
   */
  #measureEventToDispatch(pass: IntakePass): void {
    const starts = this.#recentStarts;
    this.#recentStarts = [];
    if (pass.firstEventAtMs === null) return;
    const queued = new Set(pass.decisions.filter((d) => d.action === 'queued').map((d) => d.issueKey));
    for (const start of starts) if (queued.has(start.issueKey)) this.#metrics.observeEventToDispatch(start.startedAtMs - pass.firstEventAtMs);
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}
