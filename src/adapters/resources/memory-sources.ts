import { join } from 'node:path';
import type { AvailableMemory, AvailableMemorySource, MemoryPressure, MemoryPressureSource } from '../../ports/team-resources.js';
import { readKeyedNumbers, readNumber, readText } from './cgroup-files.js';

/**
 * Available memory as admission sees it: /proc/meminfo's MemAvailable, or,
 * when the daemon's own group has a lower limit (a container), that limit
 * minus what the group uses that cannot be reclaimed.
 */

/** Limits at or above this mean "none" (v1 prints a page-aligned 2^63). */
const NO_LIMIT = 2 ** 62;

export interface ProcAvailableMemoryOptions {
  readonly meminfoPath?: string;
  /** The daemon's own memory group folder and its version, when it has one; its limit caps what teams can get. */
  readonly ownMemoryGroup?: { readonly path: string; readonly version: 1 | 2 };
}

export class ProcAvailableMemorySource implements AvailableMemorySource {
  readonly #options: ProcAvailableMemoryOptions;

  constructor(options: ProcAvailableMemoryOptions = {}) {
    this.#options = options;
  }

  read(): AvailableMemory {
    const meminfo = parseMeminfo(readText(this.#options.meminfoPath ?? '/proc/meminfo') ?? '');
    const machine: AvailableMemory = { availableBytes: meminfo.availableBytes, totalBytes: meminfo.totalBytes, source: 'meminfo' };
    const group = this.#options.ownMemoryGroup;
    if (!group) return machine;
    const limited = group.version === 1 ? readV1GroupLimit(group.path) : readV2GroupLimit(group.path);
    if (!limited || limited.totalBytes >= machine.totalBytes) return machine;
    return { availableBytes: Math.min(machine.availableBytes, limited.availableBytes), totalBytes: limited.totalBytes, source: group.version === 1 ? 'cgroup-v1-limit' : 'cgroup-v2-limit' };
  }
}

export function parseMeminfo(text: string): { totalBytes: number; availableBytes: number } {
  const kb = (key: string): number | undefined => {
    const match = new RegExp(`^${key}:\\s+(\\d+)\\s*kB`, 'm').exec(text);
    return match ? Number(match[1]) * 1024 : undefined;
  };
  const totalBytes = kb('MemTotal') ?? 0;
  // Kernels before 3.14 lack MemAvailable; free plus page cache is the usual stand-in.
  const availableBytes = kb('MemAvailable') ?? (kb('MemFree') ?? 0) + (kb('Cached') ?? 0);
  return { totalBytes, availableBytes };
}

function readV1GroupLimit(path: string): { totalBytes: number; availableBytes: number } | undefined {
  const stat = readKeyedNumbers(join(path, 'memory.stat'));
  // hierarchical_memory_limit folds in every ancestor's limit.
  const limit = Math.min(stat.get('hierarchical_memory_limit') ?? NO_LIMIT, readNumber(join(path, 'memory.limit_in_bytes')) ?? NO_LIMIT);
  if (limit >= NO_LIMIT) return undefined;
  const usage = readNumber(join(path, 'memory.usage_in_bytes')) ?? 0;
  const reclaimable = stat.get('total_inactive_file') ?? 0;
  return { totalBytes: limit, availableBytes: Math.max(0, limit - (usage - reclaimable)) };
}

function readV2GroupLimit(path: string): { totalBytes: number; availableBytes: number } | undefined {
  const limit = readNumber(join(path, 'memory.max'));
  if (limit === undefined || limit >= NO_LIMIT) return undefined;
  const current = readNumber(join(path, 'memory.current')) ?? 0;
  const reclaimable = readKeyedNumbers(join(path, 'memory.stat')).get('inactive_file') ?? 0;
  return { totalBytes: limit, availableBytes: Math.max(0, limit - (current - reclaimable)) };
}

/** PSI memory pressure: /proc/pressure/memory, or a v2 group's memory.pressure. */
export class PsiMemoryPressureSource implements MemoryPressureSource {
  readonly #path: string;

  constructor(path = '/proc/pressure/memory') {
    this.#path = path;
  }

  read(): MemoryPressure | undefined {
    const text = readText(this.#path);
    return text === undefined ? undefined : parsePressure(text);
  }
}

export function parsePressure(text: string): MemoryPressure | undefined {
  const avg10 = (kind: 'some' | 'full'): number | undefined => {
    const match = new RegExp(`^${kind} .*?avg10=(\\d+(?:\\.\\d+)?)`, 'm').exec(text);
    return match ? Number(match[1]) : undefined;
  };
  const some = avg10('some');
  if (some === undefined) return undefined;
  return { someAvg10: some, fullAvg10: avg10('full') ?? 0 };
}

/** A settable source for tests and dry runs: admission sees exactly the figures given. */
export class FixedAvailableMemorySource implements AvailableMemorySource {
  #current: AvailableMemory;

  constructor(availableBytes: number, totalBytes: number) {
    this.#current = { availableBytes, totalBytes, source: 'meminfo' };
  }

  set(availableBytes: number, totalBytes = this.#current.totalBytes): void {
    this.#current = { availableBytes, totalBytes, source: 'meminfo' };
  }

  read(): AvailableMemory {
    return this.#current;
  }
}
