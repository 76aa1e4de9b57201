import { runLoop } from '../../core/bounded-run.js';
import { openSession } from '../../main.js';
import { flagBoolean, flagPositiveInt } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { formatCycleReport } from '../cycle-report.js';
import { printJson } from '../output.js';
import { openWithStopSignals } from '../signals.js';
import type { Verb } from '../verb.js';
import { dryRunCycle } from './run-once.js';

export const loopVerb: Verb = {
  name: 'loop',
  usage: 'factory loop [--max-iterations N] [--dry-run] [--config PATH] [--json]',
  summary: 'a bounded loop of cycles with a heartbeat per iteration',
  details: [
    'Runs up to N cycles (default 10), loop.iterationDelayMs apart, writing a heartbeat each',
    'iteration and `idle` at the end. Stops early after loop.maxConsecutiveFailures failed',
    'iterations in a row, or on SIGINT/SIGTERM (ordered stop). --dry-run plans one cycle only.',
    'Exit codes: 0 finished, 1 stopped after consecutive failures, 2 usage or config error,',
    '3 another daemon uses this config.',
  ].join('\n'),
  outlivesItsOutput: true,
  flags: [
    { name: 'max-iterations', takesValue: true, description: 'number of cycles (default 10)' },
    { name: 'dry-run', takesValue: false, description: 'plan one cycle; change nothing' },
  ],
  async run(args, output) {
    const runtime = runtimeFromArgs(args);
    const json = flagBoolean(args, 'json');
    const maxIterations = flagPositiveInt(args, 'max-iterations', 10);
    if (flagBoolean(args, 'dry-run')) {
      const report = await dryRunCycle(runtime);
      if (json) printJson(output, report);
      else output.out(formatCycleReport(report, runtime.clock.now()));
      return 0;
    }
    const { opened, signals } = await openWithStopSignals(
      () => openSession(runtime, 'loop', { maxIterations }),
      (session) => void session.session.dispatcher.releaseAll(),
    );
    try {
      const report = await runLoop(opened.session, {
        maxIterations,
        maxConsecutiveFailures: runtime.config.loop.maxConsecutiveFailures,
        iterationDelayMs: runtime.config.loop.iterationDelayMs,
        shouldStop: signals.requested,
        onIteration: (index, cycle) => {
          if (!json) output.out(`\n== iteration ${index} of ${maxIterations} ==\n${formatCycleReport(cycle, runtime.clock.now())}`);
        },
      });
      const failed = report.stoppedBecause === 'consecutive-failures';
      await opened.close(failed ? 'failed' : 'idle');
      if (json) printJson(output, report);
      else output.out(`\nloop ended: ${report.stoppedBecause} after ${report.iterations.length} iteration(s)${report.lastError ? ` (last error: ${report.lastError})` : ''}`);
      return failed ? 1 : 0;
    } finally {
      signals.dispose();
      await opened.close('idle');
    }
  },
};
