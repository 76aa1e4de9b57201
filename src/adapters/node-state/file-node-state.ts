import { readFile, stat } from 'node:fs/promises';
import { parseHeartbeat, type Heartbeat } from '../../domain/heartbeat.js';
import { parseRegistry, type RegistryFile, type RegistryParse } from '../../domain/registry.js';
import type { StoredRead } from '../../domain/stored-read.js';
import type { HeartbeatStore, RegistryStore } from '../../ports/node-state-store.js';
import { filesystemError } from '../../errors.js';
import { writeJsonAtomic } from '../../util/atomic-write.js';

/** Heartbeat and registry files are small; anything larger is not ours. */
const MAX_STATE_FILE_BYTES = 64 * 1024 * 1024;

/** What each file is, for the error a user gets when the filesystem refuses it. */
const HEARTBEAT_FILE = { what: 'the heartbeat', setting: 'loop.heartbeatPath' } as const;
const REGISTRY_FILE = { what: 'the in-flight registry', setting: 'loop.registryPath' } as const;
type NodeStateFile = typeof HEARTBEAT_FILE | typeof REGISTRY_FILE;

async function readText(path: string, file: NodeStateFile): Promise<StoredRead<string>> {
  try {
    const text = await readFile(path, 'utf8');
    if (text.length > MAX_STATE_FILE_BYTES) return { kind: 'unreadable', reason: `${path} is larger than ${MAX_STATE_FILE_BYTES} bytes` };
    return { kind: 'ok', value: text };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    // Not torn content but a path the user made unusable (a mode, a path through a file): a coded error, not a verdict.
    const refused = filesystemError(error, { path, action: `read ${file.what}`, access: 'read', setting: file.setting });
    if (refused) throw refused;
    return { kind: 'unreadable', reason: `${path}: ${(error as Error).message}` };
  }
}

async function readParsed<T>(path: string, file: NodeStateFile, parse: (text: string) => { ok: true; value: T } | { ok: false; reason: string }): Promise<StoredRead<T>> {
  const text = await readText(path, file);
  if (text.kind !== 'ok') return text;
  const parsed = parse(text.value);
  return parsed.ok ? { kind: 'ok', value: parsed.value } : { kind: 'unreadable', reason: `${path}: ${parsed.reason}` };
}

/** The heartbeat as a JSON file, replaced by rename (one small write per refresh). */
export class FileHeartbeatStore implements HeartbeatStore {
  constructor(readonly location: string) {}

  read(): Promise<StoredRead<Heartbeat>> {
    return readParsed(this.location, HEARTBEAT_FILE, parseHeartbeat);
  }

  write(heartbeat: Heartbeat): Promise<void> {
    return writeJsonAtomic(this.location, heartbeat, { action: `write ${HEARTBEAT_FILE.what}`, setting: HEARTBEAT_FILE.setting });
  }
}

/** The registry as a JSON file, replaced by rename; its version is the file's inode, size and mtime. */
export class FileRegistryStore implements RegistryStore {
  constructor(readonly location: string) {}

  read(): Promise<StoredRead<RegistryParse>> {
    return readParsed(this.location, REGISTRY_FILE, parseRegistry);
  }

  write(registry: RegistryFile): Promise<void> {
    return writeJsonAtomic(this.location, registry, { action: `write ${REGISTRY_FILE.what}`, setting: REGISTRY_FILE.setting });
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
