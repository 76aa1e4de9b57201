import { readFile } from 'node:fs/promises';
import type { EpochFloor } from '../../ports/team-run-queue.js';
import { writeJsonAtomic } from '../../util/atomic-write.js';

/**
 * The highest control-plane epoch a worker has seen, in a small JSON file in
 * its state folder, so a restarted worker still refuses runs and cancels of
 * a control plane that lost its lease. Raises are written (fsync + rename)
 * before they return, one at a time.
 */
export class FileEpochFloor implements EpochFloor {
  readonly path: string;
  #highest: number | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(path: string) {
    this.path = path;
  }

  async highest(): Promise<number> {
    if (this.#highest === undefined) this.#highest = await this.#read();
    return this.#highest;
  }

  raise(epoch: number): Promise<void> {
    this.#writing = this.#writing.then(async () => {
      if (epoch <= (await this.highest())) return;
      await writeJsonAtomic(this.path, { highestEpoch: epoch });
      this.#highest = epoch;
    });
    return this.#writing;
  }

  async #read(): Promise<number> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
    const value = (JSON.parse(text) as { highestEpoch?: unknown }).highestEpoch;
    // A torn or edited file must not lower the floor to zero silently.
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Error(`${this.path}: expected {"highestEpoch": <integer>}, found ${text.slice(0, 80)}`);
    return value;
  }
}
