import type { RegistryEntry, RegistryOwner } from '../domain/registry.js';
import type { Clock } from '../ports/clock.js';
import type { RegistryStore } from '../ports/node-state-store.js';

/**
 * The daemon's in-flight registry. Entries change on spawn, exit, release and
 * reap, and only then is the file rewritten (atomically). Concurrent changes
 * are coalesced: while a write is in flight, later changes are folded into one
 * follow-up write, so the file always ends at the latest state.
 */
export class RegistryKeeper {
  readonly #entries = new Map<string, RegistryEntry>();
  readonly #store: Pick<RegistryStore, 'write'>;
  readonly #owner: RegistryOwner;
  readonly #clock: Clock;
  #writing: Promise<void> | undefined;
  #dirty = false;
  #writeCount = 0;

  constructor(options: { store: Pick<RegistryStore, 'write'>; owner: RegistryOwner; clock: Clock }) {
    this.#store = options.store;
    this.#owner = options.owner;
    this.#clock = options.clock;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** How many times the file was written; tests use it to prove the heartbeat never writes it. */
  get writeCount(): number {
    return this.#writeCount;
  }

  entries(): RegistryEntry[] {
    return [...this.#entries.values()];
  }

  add(entry: RegistryEntry): Promise<void> {
    this.#entries.set(entry.marker, entry);
    return this.flush();
  }

  remove(marker: string): Promise<void> {
    if (!this.#entries.delete(marker)) return this.#writing ?? Promise.resolve();
    return this.flush();
  }

  /** Writes the current entries; resolves once a write that includes every change so far is done. */
  flush(): Promise<void> {
    this.#dirty = true;
    if (!this.#writing) {
      this.#writing = this.#drain().finally(() => {
        this.#writing = undefined;
      });
    }
    return this.#writing;
  }

  async #drain(): Promise<void> {
    while (this.#dirty) {
      this.#dirty = false;
      this.#writeCount++;
      await this.#store.write({
        version: 1,
        owner: this.#owner,
        updatedAtMs: this.#clock.now(),
        agents: this.entries(),
      });
    }
  }
}
