import { judgeLiveness } from '../../core/liveness.js';
import { nodeStateFor } from '../../main.js';
import { flagBoolean } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { printJson } from '../output.js';
import type { Verb } from '../verb.js';

export const loopStatusVerb: Verb = {
  name: 'loop-status',
  usage: 'factory loop-status [--config PATH] [--json]',
  summary: 'liveness verdict for cron: exit 0 healthy, 1 otherwise',
  details: [
    'Prints one line: the verdict (healthy, stale, wedged, stopping, stopped, missing, unreadable,',
    'subscription-unhealthy) and why.',
    'Exit codes: 0 healthy, 1 any other verdict, 2 config error.',
  ].join('\n'),
  flags: [],
  async run(args, output) {
    const { config, processTable, clock } = runtimeFromArgs(args);
    const liveness = judgeLiveness(await nodeStateFor(config).heartbeats.read(), {
      nowMs: clock.now(),
      staleMs: config.loop.heartbeatStaleMs,
      processTable,
    });
    if (flagBoolean(args, 'json')) printJson(output, liveness);
    else output.out(`${liveness.verdict}: ${liveness.detail}`);
    return liveness.healthy ? 0 : 1;
  },
};
