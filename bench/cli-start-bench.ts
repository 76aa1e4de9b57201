import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { installTarball, packCheckout } from '../test/support/installed-package.js';
import { REPO_ROOT } from '../test/support/sandbox.js';
import { median, round } from './bench-support.js';

/**
 * Start time of `factory --help`, wall clock from spawn to exit, median of RUNS:
 * the installed package (compiled dist/, what `npm install --global` of the
 * tarball gives) against the sources run through tsx from this checkout (what
 * the v0.1 package did, since its src/ was newer than its dist/).
 * FACTORY_BENCH_PREFIX=<npm prefix> reuses an existing install instead of
 * packing and installing one (the install may compile better-sqlite3: minutes).
 */

const RUNS = 15;

function timeStart(command: string, args: readonly string[], cwd: string): number[] {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const times: number[] = [];
  for (let run = 0; run < RUNS + 2; run++) {
    const startedAt = performance.now();
    const result = spawnSync(command, args, { cwd, env, encoding: 'utf8' });
    const elapsed = performance.now() - startedAt;
    if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${result.stderr}`);
    if (run >= 2) times.push(elapsed); // two warm-up runs fill the page cache
  }
  return times;
}

export async function benchCliStart(): Promise<Record<string, unknown>> {
  const reused = process.env.FACTORY_BENCH_PREFIX;
  const scratch = reused ? undefined : mkdtempSync(join(tmpdir(), 'factory-bench-package-'));
  try {
    const bin = reused ? join(reused, 'bin', 'factory') : installTarball(scratch!, packCheckout(scratch!)).bin;
    if (!existsSync(bin)) throw new Error(`no installed factory at ${bin}`);
    const outside = tmpdir();
    const installedMs = median(timeStart(bin, ['--help'], outside));
    const tsxMs = median(timeStart(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), '--help'], REPO_ROOT));
    const nodeBaselineMs = median(timeStart(process.execPath, ['-e', ''], outside));
    return {
      name: 'cli-start',
      runs: RUNS,
      installedCompiledMs: round(installedMs, 1),
      checkoutThroughTsxMs: round(tsxMs, 1),
      tsxOverCompiled: round(tsxMs / installedMs, 2),
      bareNodeMs: round(nodeBaselineMs, 1),
    };
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}
