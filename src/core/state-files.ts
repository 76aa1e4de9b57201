import { readFile } from 'node:fs/promises';
import { parseHeartbeat, type Heartbeat } from '../domain/heartbeat.js';
import { parseRegistry, type RegistryFile, type RegistryParse } from '../domain/registry.js';
import { writeJsonAtomic } from '../util/atomic-write.js';

/**
 * Reading the daemon's files as untrusted input. Every read returns a verdict
 * instead of throwing, so a torn or hostile file becomes a reported reason,
 * never a crash and never a signal.
 */
export type FileRead<T> =
  | { readonly kind: 'ok'; readonly value: T }
  | { readonly kind: 'missing' }
  | { readonly kind: 'unreadable'; readonly reason: string };

/** Heartbeat and registry files are small; anything larger is not ours. */
const MAX_STATE_FILE_BYTES = 64 * 1024 * 1024;

async function readText(path: string): Promise<FileRead<string>> {
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

export async function readHeartbeatFile(path: string): Promise<FileRead<Heartbeat>> {
  const text = await readText(path);
  if (text.kind !== 'ok') return text;
  const parsed = parseHeartbeat(text.value);
  return parsed.ok ? { kind: 'ok', value: parsed.value } : { kind: 'unreadable', reason: `${path}: ${parsed.reason}` };
}

export async function readRegistryFile(path: string): Promise<FileRead<RegistryParse>> {
  const text = await readText(path);
  if (text.kind !== 'ok') return text;
  const parsed = parseRegistry(text.value);
  return parsed.ok ? { kind: 'ok', value: parsed.value } : { kind: 'unreadable', reason: `${path}: ${parsed.reason}` };
}

export function writeRegistryFile(path: string, registry: RegistryFile): Promise<void> {
  return writeJsonAtomic(path, registry);
}

export function writeHeartbeatFile(path: string, heartbeat: Heartbeat): Promise<void> {
  return writeJsonAtomic(path, heartbeat);
}
