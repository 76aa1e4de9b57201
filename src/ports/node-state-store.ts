import type { Heartbeat } from '../domain/heartbeat.js';
import type { RegistryFile, RegistryParse } from '../domain/registry.js';
import type { StoredRead } from '../domain/stored-read.js';

/**
 * The two records a daemon keeps about itself for everyone else to read: its
 * heartbeat (rewritten every refresh: must stay O(1)) and its in-flight
 * registry (rewritten on change only). A file pair written atomically today
 * (adapters/node-state/); a Redis hash per node when daemons run on several
 * machines. Reads never throw: see `StoredRead`.
 */

export interface HeartbeatStore {
  /** Where it lives, for messages and logs: a path, a key. */
  readonly location: string;
  read(): Promise<StoredRead<Heartbeat>>;
  /** Replaces the heartbeat atomically: a reader sees the old one or the new one, never a mix. */
  write(heartbeat: Heartbeat): Promise<void>;
}

export interface RegistryStore {
  readonly location: string;
  read(): Promise<StoredRead<RegistryParse>>;
  /** Replaces the registry atomically. */
  write(registry: RegistryFile): Promise<void>;
  /**
   * A cheap token that changes whenever the registry is replaced: a reader
   * that rewrites the registry (the reaper) checks it did not change meanwhile.
   */
  version(): Promise<string>;
}
