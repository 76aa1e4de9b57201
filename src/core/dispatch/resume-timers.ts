import type { Clock, TimerHandle } from '../../ports/clock.js';

/**
 * One timer per parked issue that resumes it by itself at its time (a usage
 * limit's reset, the next day for the daily budget). Re-arming replaces the
 * earlier timer; a resume by hand disarms it, so an issue is never resumed
 * twice. Times come from domain/budgets.ts (automaticResumeAtMs).
 */
export class ResumeTimers {
  readonly #clock: Clock;
  readonly #onDue: (issueKey: string) => void;
  readonly #timers = new Map<string, { handle: TimerHandle; atMs: number }>();

  constructor(clock: Clock, onDue: (issueKey: string) => void) {
    this.#clock = clock;
    this.#onDue = onDue;
  }

  arm(issueKey: string, atMs: number): void {
    this.disarm(issueKey);
    const handle = this.#clock.setTimeout(
      () => {
        this.#timers.delete(issueKey);
        this.#onDue(issueKey);
      },
      Math.max(0, atMs - this.#clock.now()),
    );
    this.#timers.set(issueKey, { handle, atMs });
  }

  disarm(issueKey: string): void {
    const timer = this.#timers.get(issueKey);
    if (!timer) return;
    this.#clock.clearTimeout(timer.handle);
    this.#timers.delete(issueKey);
  }

  /** When each armed issue resumes, for status. */
  armed(): ReadonlyMap<string, number> {
    return new Map([...this.#timers].map(([key, timer]) => [key, timer.atMs]));
  }

  disarmAll(): void {
    for (const key of [...this.#timers.keys()]) this.disarm(key);
  }
}
