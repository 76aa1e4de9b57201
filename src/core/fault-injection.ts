/**
 * Crash points for fault-injection tests: with FACTORY_CRASH_AT=<point>[:N]
 * in the environment, the daemon SIGKILLs itself the Nth time (default 1st)
 * it reaches that point of the dispatch path, exactly as a kill -9 or an OOM
 * kill would. Unset (always, in production) this is one comparison.
 */
export type CrashPoint = 'after-claim' | 'after-spawn' | 'after-registry-write' | 'during-writeback';

const setting = process.env.FACTORY_CRASH_AT;
const [crashPoint, crashOnHit] = setting ? [setting.split(':')[0], Number(setting.split(':')[1] ?? 1)] : [undefined, 0];
let hits = 0;

export function maybeCrash(point: CrashPoint): void {
  if (crashPoint !== point) return;
  hits++;
  if (hits === crashOnHit) process.kill(process.pid, 'SIGKILL');
}
