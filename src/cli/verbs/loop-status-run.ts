import { judgeLiveness } from '../../core/liveness.js';
import { nodeStateFor } from '../../main.js';
import { flagBoolean, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { printJson, type Output } from '../output.js';

/** `factory loop-status` (its usage and flags are in loop-status.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const { config, processTable, clock } = runtimeFromArgs(args);
  const liveness = judgeLiveness(await nodeStateFor(config).heartbeats.read(), {
    nowMs: clock.now(),
    staleMs: config.loop.heartbeatStaleMs,
    processTable,
  });
  if (flagBoolean(args, 'json')) printJson(output, liveness);
  else output.out(`${liveness.verdict}: ${liveness.detail}`);
  return liveness.healthy ? 0 : 1;
}
