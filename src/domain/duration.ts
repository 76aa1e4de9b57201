/**
 * How a duration reads to a person, everywhere Factory shows one (CLI tables,
 * outcome reports): `850ms`, `42s`, `6m05s`, `2h03m`; `-` when unknown.
 */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1_000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A duration a person types (`--older-than 3d`): a whole number and a unit
 * (ms, s, m, h, d, w), or `0`. Undefined when it is not one.
 */
export function parseDuration(text: string): number | undefined {
  if (text.trim() === '0') return 0;
  const match = /^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$/.exec(text);
  if (!match) return undefined;
  const ms = Number(match[1]) * DURATION_UNITS_MS[match[2]!]!;
  return Number.isSafeInteger(ms) ? ms : undefined;
}
