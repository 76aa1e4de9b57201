import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createScratchProject, REPO_ROOT } from '../support/sandbox.js';

/**
 * Per-agent memory peaks through the real CLI (`factory run-once`): the
 * implementer is the memory hog holding 60 MB for 2 s under a 200 MB team
 * budget; the supervision tick samples its tree's RSS, and the outcome file
 * and `status --json` carry its sampled peak.
 */

const execFileAsync = promisify(execFile);
const HOG = join(REPO_ROOT, 'test', 'fixtures', 'agents', 'memory-hog.mjs');
const MB = 2 ** 20;

function cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return execFileAsync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...args], { cwd: REPO_ROOT, env: { ...process.env, FACTORY_LOG_LEVEL: 'warn' } }).then(
    (result) => ({ ...result, code: 0 }),
    (error: { stdout: string; stderr: string; code: number }) => ({ stdout: error.stdout, stderr: error.stderr, code: error.code }),
  );
}

test("run-once: the implementer's sampled memory peak is in the outcome file and status --json", async () => {
  const project = createScratchProject('agent-memory', {
    agents: { implementer: { command: [process.execPath, HOG, '--step-mb', '10', '--interval-ms', '20', '--max-mb', '60', '--hold-ms', '2000'] } },
    runs: { superviseIntervalMs: 200, killGraceMs: 300, allowNoChanges: true },
    http: { enabled: false },
    resources: { team: { memoryMax: '200M' } },
  });
  try {
    project.writeIssue('MEM-1');
    const run = await cli(['run-once', '--config', project.configPath]);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);

    const report = readFileSync(join(project.issuesDir, 'MEM-1.outcome.md'), 'utf8');
    assert.match(report, /^# MEM-1: succeeded$/m, report);
    const line = /^### implementer: [\s\S]*?^- \*\*Memory:\*\* peak (\d+) MB \(sampled RSS of its process tree\)$/m.exec(report);
    assert.ok(line, `the implementer's section has its sampled peak:\n${report}`);
    const reportedMb = Number(line[1]);
    // 60 MB held plus Node's own (tens of MB), under the 200 MB budget it never hit.
    assert.ok(reportedMb >= 40 && reportedMb <= 200, `sampled peak ${reportedMb} MB is in a sane range`);

    const status = await cli(['status', '--json', '--config', project.configPath]);
    assert.equal(status.code, 0, status.stderr);
    const snapshot = JSON.parse(status.stdout) as { recentOutcomes: { issueKey: string; agents: { role: string; memoryPeakBytes?: number }[]; memory?: { peakBytes: number } }[] };
    const outcome = snapshot.recentOutcomes.find((candidate) => candidate.issueKey === 'MEM-1');
    const implementer = outcome?.agents.find((agent) => agent.role === 'implementer');
    const peak = implementer?.memoryPeakBytes ?? 0;
    assert.ok(peak >= 40 * MB && peak <= 200 * MB, `status --json carries the implementer's peak (${peak} bytes)`);
    assert.equal(Math.round(peak / MB), reportedMb, 'the report and status show the same figure');
    if (outcome?.memory) assert.ok(outcome.memory.peakBytes >= 40 * MB, "the team's own peak is there too");
  } finally {
    rmSync(project.dir, { recursive: true, force: true });
  }
});
