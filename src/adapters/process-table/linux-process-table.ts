import { readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import type { ProcessInfo, ProcessSnapshot, ProcessTable, SelfProcess } from '../../ports/process-table.js';

/**
 * The process table read straight from /proc: no `ps` child per lookup, one
 * directory pass per snapshot.
 */

/**
 * Parses /proc/<pid>/stat. The command name sits in parentheses and may itself
 * contain spaces and parentheses, so fields are split after the last ')'.
 */
export function parseProcStat(text: string, pageSizeBytes: number = systemPageSize()): ProcessInfo | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const comm = text.slice(open + 1, close);
  // After ')': state(3) ppid(4) pgrp(5) session(6) … utime(14) stime(15) … starttime(22) vsize(23) rss(24, pages)
  const fields = text.slice(close + 2).split(' ');
  const field = (n: number): number => Number(fields[n - 3]);
  const info: ProcessInfo = {
    pid,
    comm,
    state: fields[0] ?? '?',
    ppid: field(4),
    pgid: field(5),
    sid: field(6),
    cpuTicks: field(14) + field(15),
    startTime: field(22),
    // Read with the rest of stat: sampling a tree's memory costs no extra file per process.
    rssBytes: Math.max(0, field(24)) * pageSizeBytes || 0,
  };
  if (!Number.isSafeInteger(info.pid) || !Number.isSafeInteger(info.startTime)) return undefined;
  return info;
}

let pageSize: number | undefined;

/**
 * The kernel's page size, which stat's `rss` counts in: AT_PAGESZ (6) from
 * /proc/self/auxv (64-bit little-endian pairs), 4096 where that cannot be read.
 */
export function systemPageSize(): number {
  if (pageSize !== undefined) return pageSize;
  pageSize = 4096;
  try {
    const auxv = readFileSync('/proc/self/auxv');
    for (let offset = 0; offset + 16 <= auxv.length; offset += 16) {
      const type = auxv.readBigUInt64LE(offset);
      if (type === 0n) break;
      if (type === 6n) {
        const value = Number(auxv.readBigUInt64LE(offset + 8));
        if (Number.isSafeInteger(value) && value >= 1024 && (value & (value - 1)) === 0) pageSize = value;
        break;
      }
    }
  } catch {
    // No /proc/self/auxv (an unusual sandbox): the common page size stands.
  }
  return pageSize;
}

export function readBootId(): string {
  return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
}

export class LinuxProcessTable implements ProcessTable {
  readonly #procRoot: string;
  #bootId: string | undefined;

  constructor(options: { procRoot?: string } = {}) {
    this.#procRoot = options.procRoot ?? '/proc';
  }

  self(): SelfProcess {
    return { pid: process.pid, ppid: process.ppid };
  }

  bootId(): string {
    this.#bootId ??= readFileSync(`${this.#procRoot}/sys/kernel/random/boot_id`, 'utf8').trim();
    return this.#bootId;
  }

  inspect(pid: number): ProcessInfo | undefined {
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    try {
      return parseProcStat(readFileSync(`${this.#procRoot}/${pid}/stat`, 'utf8'));
    } catch {
      return undefined; // gone, or never existed
    }
  }

  snapshot(): ProcessSnapshot {
    const processes = new Map<number, ProcessInfo>();
    for (const name of readdirSync(this.#procRoot)) {
      const code = name.charCodeAt(0);
      if (code < 48 || code > 57) continue; // not a pid folder
      const info = this.inspect(Number(name));
      if (info) processes.set(info.pid, info);
    }
    return { takenAtMs: Date.now(), bootId: this.bootId(), processes };
  }

  holdsOpen(pid: number, path: string): boolean {
    if (!Number.isSafeInteger(pid) || pid <= 0) return false;
    let target: string;
    let fds: string[];
    try {
      target = realpathSync(path);
      fds = readdirSync(`${this.#procRoot}/${pid}/fd`);
    } catch {
      return false; // no such file, no such process, or not ours to look at
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`${this.#procRoot}/${pid}/fd/${fd}`) === target) return true;
      } catch {
        // closed while we looked
      }
    }
    return false;
  }

  readEnvironmentVariable(pid: number, name: string): string | undefined {
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    let environ: string;
    try {
      environ = readFileSync(`${this.#procRoot}/${pid}/environ`, 'latin1');
    } catch {
      return undefined; // gone, a zombie, or not ours to read
    }
    const prefix = `${name}=`;
    for (const entry of environ.split('\0')) {
      if (entry.startsWith(prefix)) return entry.slice(prefix.length);
    }
    return undefined;
  }

  signal(target: number, signal: NodeJS.Signals): boolean {
    // Guard rails below every caller: never pid 0/1/-1 (which mean "my group",
    // "init" and "everyone"), never a non-integer.
    if (!Number.isSafeInteger(target) || target === 0 || target === 1 || target === -1) {
      throw new RangeError(`refusing to signal ${target}`);
    }
    try {
      process.kill(target, signal);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
      throw error;
    }
  }
}
