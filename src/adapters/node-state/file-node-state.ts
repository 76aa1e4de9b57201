import { readFile, stat } from 'node:fs/promises';
import { parseHeartbeat, type Heartbeat } from '../../domain/heartbeat.js';
import { parseRegistry, type RegistryFile, type RegistryParse } from '../../domain/registry.js';
import type { StoredRead } from '../../domain/stored-read.js';
import type { HeartbeatStore, RegistryStore } from '../../ports/node-state-store.js';
import { writeJsonAtomic } from '../../util/atomic-write.js';

/** Heartbeat and registry files are small; anything larger is not ours. */
const MAX_STATE_FILE_BYTES = 64 * 1024 * 1024;

async function readText(path: string): Promise<StoredRead<string>> {
  try {
    const text = await readFile(path, 'utf8');
    if (text.length > MAX_STATE_FILE_BYTES) return { kind: 'unreadable', reason: `${path} is larger than ${MAX_STATE_FILE_BYTES} bytes` };
    return { kind: 'ok', value: text };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'unreadable', reason: `${path}: ${(error as Error).message}` };
  }
}

async function readParsed<T>(path: string, parse: (text: string) => { ok: true; value: T } | { ok: false; reason: string }): Promise<StoredRead<T>> {
  const text = await readText(path);
  if (text.kind !== 'ok') return text;
  const parsed = parse(text.value);
  return parsed.ok ? { kind: 'ok', value: parsed.value } : { kind: 'unreadable', reason: `${path}: ${parsed.reason}` };
}

/** The heartbeat as a JSON file, replaced by rename (one small write per refresh). */
export class FileHeartbeatStore implements HeartbeatStore {
  constructor(readonly location: string) {}

  read(): Promise<StoredRead<Heartbeat>> {
    return readParsed(this.location, parseHeartbeat);
  }

  write(heartbeat: Heartbeat): Promise<void> {
    return writeJsonAtomic(this.location, heartbeat);
  }
}

/** The registry as a JSON file, replaced by rename; its version is the file's inode, size and mtime. */
export class FileRegistryStore implements RegistryStore {
  constructor(readonly location: string) {}

  read(): Promise<StoredRead<RegistryParse>> {
    return readParsed(this.location, parseRegistry);
  }

  write(registry: RegistryFile): Promise<void> {
    return writeJsonAtomic(this.location, registry);
  }

  /** Atomic writes rename a new inode into place, so a replaced file has a new inode. */
  async version(): Promise<string> {
    try {
      const info = await stat(this.location);
      return `${info.ino}:${info.size}:${info.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }
}
