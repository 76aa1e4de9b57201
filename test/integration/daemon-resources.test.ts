import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { detectResourceSupport } from '../../src/adapters/resources/detect-resources.js';
import { groupNamePrefix } from '../../src/adapters/resources/team-resource-groups.js';
import { loadConfig } from '../../src/config/load.js';
import { instanceIdFor } from '../../src/main.js';
import { createScratchProject, REPO_ROOT, spawnDaemon, waitFor, type ScratchProject } from '../support/sandbox.js';

/**
 * Budgets through the real daemon (`factory start`) on this machine's cgroups
 * (v1 here; v2 where it is writable): a team over its memory budget ends
 * `oom` with its peak in the report while a sibling team keeps running, a
 * setsid escapee is in the team's group and dies with it, no group is left
 * behind, and a kill -9'd daemon's groups are removed by `factory reap-orphans`.
 */

const report = detectResourceSupport();
const skip = report.mechanism === 'rss-sampling' ? `needs a writable cgroup hierarchy with memory; this machine offers: ${report.summary}` : false;
const table = new LinuxProcessTable();
const HOG = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'memory-hog.mjs');
const execFileAsync = promisify(execFile);

/** Where this machine creates team groups for memory: the daemon's own group of the memory hierarchy (the test's, which the daemon inherits). */
function memoryGroupParent(): string {
  if (report.mechanism === 'cgroup-v2') return report.v2.delegatedPath!;
  return report.v1.find((hierarchy) => hierarchy.controller === 'memory' && hierarchy.writable)!.parentPath;
}

function groupsOf(project: ScratchProject): string[] {
  const prefix = groupNamePrefix(instanceIdFor(loadConfig(project.configPath)));
  return readdirSync(memoryGroupParent()).filter((name) => name.startsWith(prefix));
}

function isRunning(pid: number): boolean {
  const info = table.inspect(pid);
  return info !== undefined && info.state !== 'Z';
}

function pidIn(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  const pid = Number(readFileSync(path, 'utf8').trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** The memory group a process is in, from /proc/<pid>/cgroup (v1 memory line, or the v2 line). */
function memoryGroupOf(pid: number): string | undefined {
  try {
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
    const line = report.mechanism === 'cgroup-v2' ? lines.find((entry) => entry.startsWith('0::')) : lines.find((entry) => entry.split(':')[1]?.split(',').includes('memory'));
    return line?.split(':').slice(2).join(':');
  } catch {
    return undefined;
  }
}

function outcomeFile(project: ScratchProject, key: string): string | undefined {
  const path = join(project.issuesDir, `${key}.outcome.md`);
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

/**
 * One agent for every issue, told apart by its key: HOG-* runs the memory hog
 * (with a setsid escapee), anything else writes its pid and sleeps.
 */
function makeProject(name: string): ScratchProject {
  const script = [
    'case "$FACTORY_ISSUE_KEY" in',
    '  HOG-*) exec "$HOG_NODE" "$HOG" --step-mb 10 --interval-ms 60 --escapee "$PIDS_DIR/$FACTORY_ISSUE_KEY.escapee" ;;',
    '  *) echo $$ > "$PIDS_DIR/$FACTORY_ISSUE_KEY.pid"; exec sleep 600 ;;',
    'esac',
  ].join('\n');
  const agent = (pidsDir: string) => ({ implementer: { command: ['/bin/sh', '-c', script], env: { HOG_NODE: process.execPath, HOG, PIDS_DIR: pidsDir } } });
  const settings = {
    agents: agent('.'),
    dispatch: { batchSize: 2, maxAttempts: 3, backoffBaseMs: 60_000 },
    runs: { killGraceMs: 300, superviseIntervalMs: 200, stallLimitMs: 600_000 },
    reaper: { graceMs: 300 },
    loop: { heartbeatIntervalMs: 200, heartbeatStaleMs: 1_500 },
    http: { enabled: false },
    resources: { team: { memoryMax: '100M' } },
  };
  const project = createScratchProject(name, settings);
  // Pid files go into the project folder, outside the agents' worktrees.
  writeFileSync(project.configPath, JSON.stringify({ mount: { root: './issues' }, repos: { default: './repo' }, ...settings, agents: agent(project.dir) }));
  return project;
}

test('daemon with a 100 MB team budget (real cgroups)', { skip }, async (t) => {
  await t.test('the hog ends oom with its peak in the report, its setsid escapee dies with it, the sibling keeps running, and no group is left', async () => {
    const project = makeProject('resources-oom');
    project.writeIssue('SIB-1');
    const daemon = spawnDaemon(project.configPath);
    try {
      const siblingPid = await waitFor('the sibling agent to start', () => pidIn(join(project.dir, 'SIB-1.pid')), 20_000);
      assert.match(memoryGroupOf(siblingPid) ?? '', /factory-[0-9a-f]+-SIB-1-/, 'the sibling runs inside its own team group');
      project.writeIssue('HOG-1');
      const escapee = await waitFor('the escapee to start', () => pidIn(join(project.dir, 'HOG-1.escapee')), 20_000);
      const escapeeGroup = memoryGroupOf(escapee);
      assert.match(escapeeGroup ?? '', /factory-[0-9a-f]+-HOG-1-/, `the setsid escapee is inside the hog's group (it is in ${escapeeGroup})`);

      const text = await waitFor('the HOG-1 outcome', () => outcomeFile(project, 'HOG-1'), 30_000);
      assert.match(text, /^# HOG-1: oom$/m, text);
      assert.match(text, /\*\*Memory:\*\* peak (\d+) MB of a 100 MB budget, \d+ OOM kills? \(cgroup-v[12]\)/, text);
      const peakMb = Number(/\*\*Memory:\*\* peak (\d+) MB/.exec(text)![1]);
      assert.ok(peakMb >= 80 && peakMb <= 100, `peak ${peakMb} MB is near the budget`);
      assert.equal(isRunning(escapee), false, 'the escapee died with its team');
      assert.equal(isRunning(siblingPid), true, 'the sibling team keeps running');
      const left = groupsOf(project);
      assert.ok(left.length === 1 && left[0]!.includes('-SIB-1-'), `the hog's group is removed; only the sibling's is left: ${left.join(', ')}`);

      const status = await execFileAsync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'status', '--json', '--config', project.configPath], { cwd: REPO_ROOT });
      const snapshot = JSON.parse(status.stdout) as { recentOutcomes: { issueKey: string; reason: string; memory?: { peakBytes: number } }[]; queue: unknown[]; retries: unknown[] };
      const hog = snapshot.recentOutcomes.find((outcome) => outcome.issueKey === 'HOG-1');
      assert.equal(hog?.reason, 'oom');
      assert.ok((hog?.memory?.peakBytes ?? 0) > 50 * 2 ** 20, 'status --json carries the peak');
      assert.equal(snapshot.retries.length, 0, 'an oom is not retried by default (resources.retryOom false)');
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    assert.deepEqual(groupsOf(project), [], 'no team group is left after the daemon stops');
    rmSync(project.dir, { recursive: true, force: true });
  });

  await t.test("a kill -9'd daemon's team group is killed and removed by factory reap-orphans", async () => {
    const project = makeProject('resources-reap');
    project.writeIssue('SIB-2');
    const daemon = spawnDaemon(project.configPath);
    const agentPid = await waitFor('the agent to start', () => pidIn(join(project.dir, 'SIB-2.pid')), 20_000);
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    try {
      assert.equal(groupsOf(project).length, 1, "the dead daemon's group is still there");
      assert.equal(isRunning(agentPid), true);
      await new Promise((resolve) => setTimeout(resolve, 1_800)); // past heartbeatStaleMs
      const reaped = await execFileAsync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'reap-orphans', '--config', project.configPath], { cwd: REPO_ROOT }).catch(
        (error: { stdout: string; stderr: string }) => error,
      );
      const reapReport = JSON.parse(reaped.stdout) as { groups: { name: string; outcome: string; pids: number[] }[]; exitCode: number };
      assert.equal(reapReport.groups.length, 1, reaped.stderr);
      assert.equal(reapReport.groups[0]!.outcome, 'removed');
      assert.ok(reapReport.groups[0]!.pids.includes(agentPid));
      assert.equal(reapReport.exitCode, 0, reaped.stderr);
      assert.equal(isRunning(agentPid), false, 'the agent died with its group');
      assert.deepEqual(groupsOf(project), [], 'the group is removed');
    } finally {
      if (isRunning(agentPid)) process.kill(agentPid, 'SIGKILL');
      rmSync(project.dir, { recursive: true, force: true });
    }
  });
});
