import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { FileHeartbeatStore } from '../../src/adapters/node-state/file-node-state.js';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { loadConfig } from '../../src/config/load.js';
import type { StatusSnapshot } from '../../src/core/status-snapshot.js';
import { createScratchProject, REPO_ROOT, waitFor, type ScratchProject } from '../support/sandbox.js';

/**
 * Budgets through the real daemon where no cgroup is writable: `factory start`
 * runs as `nobody` (setpriv), so detection picks RSS sampling. A team over its
 * 100 MB budget is stopped by the daemon's sampler and ends `oom` with its
 * peak, its setsid escapee dies with it, a sibling team keeps running, and a
 * team whose budget the machine cannot cover waits with its reason. `status
 * --json`, `status`, `/api/v1/state` and `/metrics` show the detection report,
 * the held reason and the oom.
 */

const NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];
const CLI = join(REPO_ROOT, 'src', 'cli', 'main.ts');
const HOG = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'memory-hog.mjs');
const table = new LinuxProcessTable();
const execFileAsync = promisify(execFile);

function cannotRunAsNobody(): string | false {
  if (process.getuid?.() !== 0) return 'needs root to drop to nobody with setpriv';
  try {
    execFileSync('setpriv', [...NOBODY, 'true']);
    return false;
  } catch (error) {
    return `setpriv cannot drop to nobody here (${(error as Error).message.split('\n')[0]})`;
  }
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

/** HOG-* runs the memory hog (capped at 400 MB, so a broken sampler cannot hurt the machine) with a setsid escapee; anything else writes its pid and sleeps. */
function makeProject(): ScratchProject {
  const script = [
    'case "$FACTORY_ISSUE_KEY" in',
    '  HOG-*) exec "$HOG_NODE" "$HOG" --step-mb 10 --interval-ms 60 --max-mb 400 --escapee "$PIDS_DIR/$FACTORY_ISSUE_KEY.escapee" ;;',
    '  *) echo $$ > "$PIDS_DIR/$FACTORY_ISSUE_KEY.pid"; exec sleep 600 ;;',
    'esac',
  ].join('\n');
  const settings = {
    dispatch: { batchSize: 3, maxAttempts: 3, backoffBaseMs: 60_000 },
    runs: { killGraceMs: 300, superviseIntervalMs: 200, stallLimitMs: 600_000 },
    reaper: { graceMs: 300 },
    loop: { heartbeatIntervalMs: 200, heartbeatStaleMs: 1_500 },
    http: { enabled: true, host: '127.0.0.1', port: 0 },
    // No machine here has 4 TB: an issue labelled huge can only wait for memory.
    resources: { team: { memoryMax: '100M' }, byLabel: { huge: { memoryMax: '4096G' } } },
  };
  const project = createScratchProject('rss-daemon', settings);
  writeFileSync(
    project.configPath,
    JSON.stringify({
      mount: { root: './issues' },
      repos: { default: './repo' },
      ...settings,
      agents: { implementer: { command: ['/bin/sh', '-c', script], env: { HOG_NODE: process.execPath, HOG, PIDS_DIR: project.dir } } },
    }),
  );
  // Everything the daemon writes or reads lives here, owned by the user it runs as.
  execFileSync('chown', ['-R', 'nobody:nogroup', project.dir]);
  return project;
}

async function heartbeatUrl(project: ScratchProject): Promise<string> {
  return waitFor(
    'the daemon to advertise its HTTP server',
    async () => {
      const read = await new FileHeartbeatStore(loadConfig(project.configPath).loop.heartbeatPath).read();
      return read.kind === 'ok' ? read.value.http?.url : undefined;
    },
    20_000,
  );
}

test(
  'daemon as nobody (no writable cgroup): RSS sampling stops a team over budget with outcome oom, and status, the state API and metrics show why a team waits',
  { skip: cannotRunAsNobody(), timeout: 120_000 },
  async () => {
    const project = makeProject();
    const owned = (key: string, fields?: Record<string, unknown>) => {
      execFileSync('chown', ['nobody:nogroup', project.writeIssue(key, fields)]);
    };
    owned('SIB-1');
    owned('HOG-1');
    const daemon = spawn('setpriv', [...NOBODY, process.execPath, '--import', 'tsx', CLI, 'start', '--mode', 'live', '--config', project.configPath], {
      cwd: REPO_ROOT,
      env: { ...process.env, HOME: project.dir, FACTORY_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    daemon.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise((resolve) => daemon.once('exit', resolve));
    try {
      const siblingPid = await waitFor('the sibling agent to start', () => pidIn(join(project.dir, 'SIB-1.pid')), 30_000);
      const escapee = await waitFor('the escapee to start', () => pidIn(join(project.dir, 'HOG-1.escapee')), 30_000);
      assert.equal(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${siblingPid}/status`, 'utf8'))?.[1], '65534', 'the agents run as nobody');

      const outcomePath = join(project.issuesDir, 'HOG-1.outcome.md');
      const text = await waitFor('the HOG-1 outcome', () => (existsSync(outcomePath) ? readFileSync(outcomePath, 'utf8') : undefined), 30_000);
      assert.match(text, /^# HOG-1: oom$/m, `${text}\n${stderr}`);
      assert.match(text, /\*\*Memory:\*\* peak \d+ MB of a 100 MB budget, 1 OOM kill \(rss-sampling\)/, text);
      await waitFor('the escapee to die with its team', () => !isRunning(escapee), 5_000);
      assert.equal(isRunning(siblingPid), true, 'the sibling team keeps running');

      // A team the machine cannot hold: a free slot, but admission keeps it waiting.
      owned('BIG-1', { labels: ['factory', 'huge'] });
      const status = await waitFor(
        'status --json to show BIG-1 held',
        async () => {
          const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', CLI, 'status', '--json', '--config', project.configPath], { cwd: REPO_ROOT });
          const snapshot = JSON.parse(stdout) as StatusSnapshot;
          return snapshot.resources?.held.some((entry) => entry.issueKey === 'BIG-1') ? snapshot : undefined;
        },
        20_000,
        200,
      );
      const resources = status.resources!;
      assert.equal(resources.mechanism, 'rss-sampling');
      assert.match(resources.summary, /^no writable cgroup: team memory is sampled from \/proc/);
      assert.deepEqual(resources.enforces, { memory: true, pids: false, cpu: false });
      assert.equal(resources.killAll, 'marker-sweep');
      assert.equal(resources.budgeted, true);
      const reason = resources.held.find((entry) => entry.issueKey === 'BIG-1')!.reason;
      assert.match(reason, /^waiting for memory: need 4[0-9]{3}\.\d GB, \d+\.\d GB free$/);
      assert.equal(status.queue.find((claim) => claim.issueKey === 'BIG-1')?.why, reason, 'the queue says why BIG-1 waits: memory, not a slot');
      assert.equal(status.recentOutcomes.find((outcome) => outcome.issueKey === 'HOG-1')?.reason, 'oom');

      const { stdout: textStatus } = await execFileAsync(process.execPath, ['--import', 'tsx', CLI, 'status', '--config', project.configPath], { cwd: REPO_ROOT });
      assert.match(textStatus, /^resources: rss-sampling: no writable cgroup/m);
      assert.match(textStatus, /enforces memory; kill-all marker-sweep; .*; 1 held for memory/);
      assert.match(textStatus, /BIG-1 .*waiting for memory: need/);

      const url = await heartbeatUrl(project);
      const state = (await (await fetch(`${url}/api/v1/state`)).json()) as StatusSnapshot;
      assert.equal(state.resources?.mechanism, 'rss-sampling');
      // Free memory moves between two reads, so the API is checked against its own snapshot.
      const apiReason = state.resources?.held.find((entry) => entry.issueKey === 'BIG-1')?.reason;
      assert.match(apiReason ?? '', /^waiting for memory: need 4[0-9]{3}\.\d GB, \d+\.\d GB free$/);
      assert.equal(state.queue.find((claim) => claim.issueKey === 'BIG-1')?.why, apiReason);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /^factory_team_oom_total 1$/m);
      assert.match(metrics, /^factory_run_outcomes_total\{reason="oom"\} 1$/m);
      assert.match(metrics, /^factory_team_memory_peak_bytes_count 1$/m);
      assert.match(metrics, /^factory_issues_held_for_memory 1$/m);
    } finally {
      daemon.kill('SIGTERM');
      await exited;
      for (const file of ['SIB-1.pid', 'HOG-1.escapee']) {
        const pid = pidIn(join(project.dir, file));
        if (pid !== undefined && isRunning(pid)) process.kill(pid, 'SIGKILL');
      }
      rmSync(project.dir, { recursive: true, force: true });
    }
  },
);
