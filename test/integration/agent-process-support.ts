import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProcessTable } from '../../src/ports/process-table.js';

/** Helpers for integration tests that run real agent processes. */

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURE_AGENTS_DIR = join(here, '..', 'fixtures', 'agents');
export const DEMO_AGENT_PATH = join(here, '..', '..', 'examples', 'agents', 'demo-agent.mjs');

export function fixtureAgentCommand(name: string, ...args: string[]): string[] {
  return [process.execPath, join(FIXTURE_AGENTS_DIR, name), ...args];
}

/** The `{"role","pid"}` lines the fixture agents print, by role, from an agent log. */
export function readReportedPids(logPath: string): Map<string, number> {
  const pids = new Map<string, number>();
  let text: string;
  try {
    text = readFileSync(logPath, 'utf8');
  } catch {
    return pids;
  }
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const parsed = JSON.parse(line) as { role?: unknown; pid?: unknown };
      if (typeof parsed.role === 'string' && typeof parsed.pid === 'number') pids.set(parsed.role, parsed.pid);
    } catch {
      // a torn line while the agent is still writing
    }
  }
  return pids;
}

export { waitFor } from '../support/sandbox.js';
import { waitFor } from '../support/sandbox.js';

/** Waits until the fixture agent logged a pid for every role named. */
export function waitForPids(logPath: string, roles: readonly string[]): Promise<Map<string, number>> {
  return waitFor(`pids of ${roles.join(', ')} in ${logPath}`, () => {
    const pids = readReportedPids(logPath);
    return roles.every((role) => pids.has(role)) && pids;
  });
}

/** Gone, or a zombie waiting for a parent (in a container pid 1 may never reap it). */
export function isDead(table: ProcessTable, pid: number): boolean {
  const info = table.inspect(pid);
  return info === undefined || info.state === 'Z';
}

/**
 * Safety net for `after` hooks, independent of the fleet under test (which may
 * be the thing that failed): SIGKILLs every live process whose marker starts
 * with the test's own instance prefix, `factory:<instance>:`. Only processes the
 * test started carry it, so nothing else is ever hit.
 */
export function killProcessesWithMarkerPrefix(table: ProcessTable, markerPrefix: string): number {
  let killed = 0;
  for (const info of table.snapshot().processes.values()) {
    if (info.state === 'Z' || info.pid === process.pid) continue;
    if (!table.readEnvironmentVariable(info.pid, 'FACTORY_AGENT_MARKER')?.startsWith(markerPrefix)) continue;
    try {
      process.kill(info.pid, 'SIGKILL');
      killed += 1;
    } catch {
      // already gone
    }
  }
  return killed;
}
