import { hostname } from 'node:os';
import { FactoryError } from '../../errors.js';
import { openWorker } from '../../main.js';
import { flagString } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { onStopSignal } from '../signals.js';
import type { ParsedArgs } from '../args.js';
import type { Output } from '../output.js';

/** `factory worker` (its usage and flags are in worker.ts): loaded only when the verb runs; main.ts wires the worker. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const runtime = runtimeFromArgs(args);
  const { config, log } = runtime;
  // A "local" config's daemon runs its teams itself and queues nothing: a worker on it would idle on a queue no control plane fills.
  if (config.fleet.backend !== 'bullmq')
    throw new FactoryError(
      'FACTORY_CONFIG_INVALID',
      `${config.configPath}: factory worker needs fleet.backend "bullmq", got "${config.fleet.backend}" (with "local" the daemon runs every team on its own machine and queues nothing for workers; docs/fleet.md)`,
    );
  if (!config.fleet.redis) throw new FactoryError('FACTORY_USAGE', `factory worker needs fleet.redis.url in ${config.configPath} (the queue it consumes)`);
  const slotsFlag = flagString(args, 'slots');
  const slots = slotsFlag === undefined ? config.fleet.worker.slots : Number(slotsFlag);
  if (!Number.isInteger(slots) || slots < 1 || slots > 256) throw new FactoryError('FACTORY_USAGE', `--slots: expected a whole number from 1 to 256, got "${slotsFlag}"`);
  const node = config.fleet.worker.node ?? hostname();

  let stopRequested: Promise<void> = new Promise(() => undefined);
  const armStop = (): void => {
    stopRequested = new Promise<void>((resolveStop) => {
      const signals = onStopSignal((signal) => {
        log.info({ signal }, 'stop requested: no new runs');
        signals.dispose();
        resolveStop();
      });
    });
  };
  const worker = await openWorker(runtime, { slots, node, armStop });
  try {
    output.err(`factory: worker ${node} consuming pool ${config.fleet.pool} with ${slots} slot(s) (pid ${process.pid}); Ctrl-C to stop`);
    await stopRequested;
    await worker.drain();
    output.err(`factory: worker ${node} stopped (${worker.counters.completed} run(s) reported, ${worker.counters.handedBack} handed back)`);
    return 0;
  } finally {
    await worker.close();
  }
}
