import type { ProcessInfo, ProcessSnapshot, ProcessTable, SelfProcess } from '../../ports/process-table.js';

/**
 * A process table that exists only in memory, for unit and property tests of
 * identity rules: any world (pid reuse, zombies, hostile markers, a reaper with
 * ancestors) can be built in a line, and every signal is recorded instead of
 * sent. Signal effects follow Linux closely enough for the reaper: SIGKILL
 * always turns the target into a zombie, SIGTERM does unless the process
 * ignores it, and guard rails match LinuxProcessTable (0, 1, -1 are refused).
 */

export interface InMemoryProcess {
  readonly pid: number;
  readonly ppid?: number;
  readonly pgid?: number;
  readonly sid?: number;
  readonly state?: string;
  readonly startTime: number;
  readonly cpuTicks?: number;
  readonly comm?: string;
  readonly rssBytes?: number;
  readonly env?: Readonly<Record<string, string>>;
  /** Survives SIGTERM (a handler that ignores it). */
  readonly ignoresTerm?: boolean;
}

export interface RecordedSignal {
  readonly target: number;
  readonly signal: NodeJS.Signals;
  /** Whether the target existed (for a group: whether any member did). */
  readonly delivered: boolean;
}

interface StoredProcess {
  info: ProcessInfo;
  readonly env: Readonly<Record<string, string>>;
  readonly ignoresTerm: boolean;
}

export class InMemoryProcessTable implements ProcessTable {
  readonly #bootId: string;
  readonly #processes = new Map<number, StoredProcess>();
  readonly signals: RecordedSignal[] = [];
  snapshotCount = 0;
  /** Called before a signal takes effect, so a test can check the world as the signaller saw it. */
  onSignal: ((target: number, signal: NodeJS.Signals, table: InMemoryProcessTable) => void) | undefined;

  readonly #self: SelfProcess;

  /** `self` defaults to the real process, so worlds built around process.pid protect it as they would on Linux. */
  constructor(options: { bootId?: string; processes?: readonly InMemoryProcess[]; self?: SelfProcess } = {}) {
    this.#bootId = options.bootId ?? 'in-memory-boot';
    this.#self = options.self ?? { pid: process.pid, ppid: process.ppid };
    for (const process of options.processes ?? []) this.add(process);
  }

  add(process: InMemoryProcess): void {
    this.#processes.set(process.pid, {
      info: {
        pid: process.pid,
        ppid: process.ppid ?? 1,
        pgid: process.pgid ?? process.pid,
        sid: process.sid ?? process.pid,
        state: process.state ?? 'S',
        startTime: process.startTime,
        cpuTicks: process.cpuTicks ?? 0,
        comm: process.comm ?? 'fake',
        ...(process.rssBytes !== undefined ? { rssBytes: process.rssBytes } : {}),
      },
      env: process.env ?? {},
      ignoresTerm: process.ignoresTerm ?? false,
    });
  }

  remove(pid: number): void {
    this.#processes.delete(pid);
  }

  self(): SelfProcess {
    return this.#self;
  }

  bootId(): string {
    return this.#bootId;
  }

  snapshot(): ProcessSnapshot {
    this.snapshotCount += 1;
    const processes = new Map<number, ProcessInfo>();
    for (const [pid, stored] of this.#processes) processes.set(pid, stored.info);
    return { takenAtMs: Date.now(), bootId: this.#bootId, processes };
  }

  inspect(pid: number): ProcessInfo | undefined {
    return this.#processes.get(pid)?.info;
  }

  /** Paths each fake process holds open (see `holdsOpen`). */
  readonly openFiles = new Map<number, Set<string>>();

  holdsOpen(pid: number, path: string): boolean {
    return this.#processes.has(pid) && (this.openFiles.get(pid)?.has(path) ?? false);
  }

  readEnvironmentVariable(pid: number, name: string): string | undefined {
    const stored = this.#processes.get(pid);
    if (!stored || stored.info.state === 'Z') return undefined; // a zombie's environment is gone, as on Linux
    return stored.env[name];
  }

  signal(target: number, signal: NodeJS.Signals): boolean {
    if (!Number.isSafeInteger(target) || target === 0 || target === 1 || target === -1) {
      throw new RangeError(`refusing to signal ${target}`);
    }
    this.onSignal?.(target, signal, this);
    const victims = target > 0 ? [this.#processes.get(target)].filter((p) => p !== undefined) : [...this.#processes.values()].filter((p) => p.info.pgid === -target);
    this.signals.push({ target, signal, delivered: victims.length > 0 });
    for (const victim of victims) {
      if (signal === 'SIGKILL' || (signal === 'SIGTERM' && !victim.ignoresTerm)) victim.info = { ...victim.info, state: 'Z' };
    }
    return victims.length > 0;
  }
}
