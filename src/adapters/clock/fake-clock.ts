import type { Clock, TimerHandle } from '../../ports/clock.js';

interface PendingTimer {
  readonly id: number;
  readonly dueAtMs: number;
  readonly callback: () => void;
}

export interface FakeClockOptions {
  /**
   * What "let pending work finish" means between timers (default: a few event
   * loop turns). A harness whose code under test does real I/O passes one that
   * also waits for that I/O, so a timer never fires before work that would
   * have finished first in real time.
   */
  readonly settle?: () => Promise<void>;
}

/**
 * A clock that only moves when a test says so. `advance` runs due timers in
 * order and lets promise callbacks settle between them, so async chains driven
 * by timers (a heartbeat write, then the next schedule) behave as in real time.
 */
export class FakeClock implements Clock {
  #nowMs: number;
  #nextId = 1;
  #timers: PendingTimer[] = [];
  readonly #settle: () => Promise<void>;

  constructor(startMs = Date.UTC(2026, 0, 1), options: FakeClockOptions = {}) {
    this.#nowMs = startMs;
    this.#settle = options.settle ?? settle;
  }

  now(): number {
    return this.#nowMs;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.push({ id, dueAtMs: this.#nowMs + Math.max(0, delayMs), callback });
    return { id };
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle === undefined || !('id' in handle) || typeof handle.id !== 'number') return;
    this.#timers = this.#timers.filter((timer) => timer.id !== (handle as { id: number }).id);
  }

  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, delayMs));
  }

  /** Timers still waiting, for assertions such as "the refresh timer was cancelled". */
  pendingTimerCount(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.#nowMs + ms;
    for (;;) {
      await this.#settle();
      const next = this.#timers.filter((t) => t.dueAtMs <= target).sort((a, b) => a.dueAtMs - b.dueAtMs || a.id - b.id)[0];
      if (!next) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#nowMs = next.dueAtMs;
      next.callback();
    }
    this.#nowMs = target;
    await this.#settle();
  }
}

/** Lets queued promise callbacks and I/O completions run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
