import { runLoop } from '../../core/bounded-run.js';
import { openSession } from '../../main.js';
import { flagBoolean, flagPositiveInt, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { formatCycleReport } from '../cycle-report.js';
import { printJson, type Output } from '../output.js';
import { openWithStopSignals } from '../signals.js';
import { printDryRun } from './run-once-run.js';

/** `factory loop` (its usage and flags are in loop.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const runtime = runtimeFromArgs(args);
  const json = flagBoolean(args, 'json');
  const maxIterations = flagPositiveInt(args, 'max-iterations', 10);
  if (flagBoolean(args, 'dry-run')) {
    await printDryRun(runtime, output, json);
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
}
