import { parseHeartbeat, type Heartbeat } from '../../domain/heartbeat.js';
import { parseRegistry, type RegistryFile, type RegistryParse } from '../../domain/registry.js';
import type { StoredRead } from '../../domain/stored-read.js';
import type { HeartbeatStore, RegistryStore } from '../../ports/node-state-store.js';

/**
 * The heartbeat and registry kept in memory, for tests of what reads them. A
 * record is kept as the text a file would hold and read back through the same
 * parser, so a reader sees exactly what it would see from the file adapter
 * (rejected registry entries, defaults filled in). Share one `NodeStateCell`
 * between stores to have a writer and readers see the same record.
 */
export class NodeStateCell {
  text: string | undefined;
  /** Bumped on every write: the registry's version token. */
  writes = 0;
}

function readCell<T>(cell: NodeStateCell, location: string, parse: (text: string) => { ok: true; value: T } | { ok: false; reason: string }): StoredRead<T> {
  if (cell.text === undefined) return { kind: 'missing' };
  const parsed = parse(cell.text);
  return parsed.ok ? { kind: 'ok', value: parsed.value } : { kind: 'unreadable', reason: `${location}: ${parsed.reason}` };
}

export class InMemoryHeartbeatStore implements HeartbeatStore {
  constructor(
    readonly cell: NodeStateCell = new NodeStateCell(),
    readonly location = 'memory:heartbeat',
  ) {}

  async read(): Promise<StoredRead<Heartbeat>> {
    return readCell(this.cell, this.location, parseHeartbeat);
  }

  async write(heartbeat: Heartbeat): Promise<void> {
    this.cell.text = JSON.stringify(heartbeat);
    this.cell.writes++;
  }
}

export class InMemoryRegistryStore implements RegistryStore {
  constructor(
    readonly cell: NodeStateCell = new NodeStateCell(),
    readonly location = 'memory:registry',
  ) {}

  async read(): Promise<StoredRead<RegistryParse>> {
    return readCell(this.cell, this.location, parseRegistry);
  }

  async write(registry: RegistryFile): Promise<void> {
    this.cell.text = JSON.stringify(registry);
    this.cell.writes++;
  }

  async version(): Promise<string> {
    return this.cell.text === undefined ? 'missing' : `write-${this.cell.writes}`;
  }
}
