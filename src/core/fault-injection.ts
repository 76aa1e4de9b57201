/**
 * Crash points for fault-injection tests: armed with a point and N, the
 * daemon dies the Nth time (default 1st) it reaches that point of the
 * dispatch path, exactly as a kill -9 or an OOM kill would. The composition
 * root arms it from FACTORY_CRASH_AT=<point>[:N] and supplies how to die;
 * unarmed (always, in production) `maybeCrash` is one comparison.
 */
export const CRASH_POINTS = ['after-claim', 'after-spawn', 'after-registry-write', 'during-writeback', 'after-publish'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export interface CrashPlan {
  readonly point: CrashPoint;
  /** Crash on the Nth time the point is reached. */
  readonly onHit: number;
}

/** Reads `<point>[:N]`; undefined for an empty setting or an unknown point (a typo must not crash a daemon). */
export function parseCrashSetting(setting: string | undefined): CrashPlan | undefined {
  if (!setting) return undefined;
  const [point, count] = setting.split(':');
  const onHit = count === undefined ? 1 : Number(count);
  if (!CRASH_POINTS.includes(point as CrashPoint) || !Number.isSafeInteger(onHit) || onHit < 1) return undefined;
  return { point: point as CrashPoint, onHit };
}

let armed: { readonly plan: CrashPlan; readonly crash: () => void; hits: number } | undefined;

/** Arms one crash point for this process (or disarms with undefined); `crash` must not return. */
export function armCrashPoint(plan: CrashPlan | undefined, crash: () => void): void {
  armed = plan ? { plan, crash, hits: 0 } : undefined;
}

export function maybeCrash(point: CrashPoint): void {
  if (armed?.plan.point !== point) return;
  armed.hits++;
  if (armed.hits === armed.plan.onHit) armed.crash();
}
