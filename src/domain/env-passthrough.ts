/**
 * Which of the daemon's environment variables reach an agent. An allowlist,
 * because the daemon's environment holds what agents must not see: tokens the
 * daemon itself uses, and variables such as GIT_DIR or GIT_WORK_TREE that
 * would point an agent's git at another repository. docs/security.md.
 */

/** What every agent gets from the daemon's environment; `agents.<role>.envPassthrough` adds to it. */
export const DEFAULT_ENV_PASSTHROUGH: readonly string[] = ['PATH', 'HOME', 'LANG', 'LC_*', 'TERM', 'TMPDIR', 'USER', 'SHELL'];

/** A variable name, or a name prefix followed by `*` (`LC_*`, `OPENAI_*`). */
export const ENV_PASSTHROUGH_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*\*?$/;

/** The full allowlist for a role: the defaults, then what its config names. */
export function envPassthroughFor(configured: readonly string[] | undefined): string[] {
  return [...new Set([...DEFAULT_ENV_PASSTHROUGH, ...(configured ?? [])])];
}

/** The variables of `environment` whose names `allowlist` matches; nothing else. */
export function passThroughEnvironment(environment: Readonly<Record<string, string | undefined>>, allowlist: readonly string[]): Record<string, string> {
  const names = new Set(allowlist.filter((pattern) => !pattern.endsWith('*')));
  const prefixes = allowlist.filter((pattern) => pattern.endsWith('*')).map((pattern) => pattern.slice(0, -1));
  const passed: Record<string, string> = {};
  for (const [name, value] of Object.entries(environment)) {
    if (value === undefined) continue;
    if (names.has(name) || prefixes.some((prefix) => name.startsWith(prefix))) passed[name] = value;
  }
  return passed;
}
