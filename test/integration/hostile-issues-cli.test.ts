import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createScratchProject, REPO_ROOT, type ScratchProject } from '../support/sandbox.js';

/**
 * An attacker's issue folder against the real CLI: a link to a secret outside
 * the mount, and a title that is shell code. Each test runs
 * `node --import tsx src/cli/main.ts` as a user would.
 */

const projects: ScratchProject[] = [];
after(() => {
  for (const project of projects) rmSync(project.dir, { recursive: true, force: true });
});

function project(name: string, config: Record<string, unknown>): ScratchProject {
  // These agents only print what they see: a run without a commit counts as done here (runs.allowNoChanges).
  const created = createScratchProject(name, { runs: { allowNoChanges: true }, ...config });
  projects.push(created);
  return created;
}

function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const base = { ...process.env };
  delete base.NODE_TEST_CONTEXT;
  delete base.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO_ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** Every agent log of the project, concatenated. */
function agentLogs(p: ScratchProject): string {
  const logs = join(p.dir, '.factory', 'logs');
  if (!existsSync(logs)) return '';
  return readdirSync(logs, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.log'))
    .map((name) => readFileSync(join(logs, name), 'utf8'))
    .join('\n');
}

describe('hostile issue files through the CLI', () => {
  it('a link to a secret outside the mount is neither dispatched nor quoted by run-once, status or triage', async () => {
    const p = project('hostile-link', { agents: { implementer: { command: ['true'] } } });
    const outside = mkdtempSync(join(tmpdir(), 'factory-secret-'));
    try {
      const secret = 'TOKEN-never-print-0451';
      writeFileSync(join(outside, 'issue.json'), JSON.stringify({ key: 'SEC-1', title: secret, state: 'ready', labels: ['factory'] }));
      writeFileSync(join(outside, 'shadow'), `root:${secret}:19000:0:99999:7:::\n`);
      symlinkSync(join(outside, 'issue.json'), join(p.issuesDir, 'LINK-1.json'));
      symlinkSync(join(outside, 'shadow'), join(p.issuesDir, 'LINK-2.json'));
      p.writeIssue('FAC-1');

      const dry = await runCli(['run-once', '--dry-run', '--json', '--config', p.configPath]);
      const real = await runCli(['run-once', '--json', '--config', p.configPath]);
      const status = await runCli(['status', '--json', '--config', p.configPath]);
      const triage = await runCli(['triage', join(p.issuesDir, 'LINK-2.json'), '--config', p.configPath]);
      for (const result of [dry, real, status, triage]) {
        assert.ok(!`${result.stdout}${result.stderr}`.includes(secret), `the secret leaked:\n${result.stdout}\n${result.stderr}`);
        assert.ok(!`${result.stdout}${result.stderr}`.includes('SEC-1'), 'the linked issue must not be seen at all');
      }
      assert.equal(real.code, 0, real.stderr);
      assert.match(dry.stdout, /LINK-1\.json: links outside the mount are not followed/);
      assert.match(dry.stdout, /LINK-2\.json: links outside the mount are not followed/);
      assert.match(real.stdout, /FAC-1/);
      assert.equal(triage.code, 2);
      assert.match(triage.stderr, /LINK-2\.json: links outside the mount are not followed/);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('a title that is shell code stays text, the agent sees only allowed variables, and triage shows each argv', async () => {
    const witness = join(tmpdir(), `factory-injected-${process.pid}-${Date.now()}`);
    const title = `Fix $(touch ${witness}) now`;
    const script = 'printf "title=%s\\n" "$FACTORY_ISSUE_TITLE"; env | sort';
    const p = project('hostile-title', {
      agents: {
        implementer: { command: ['sh', '-c', script], envPassthrough: ['FACTORY_TEST_PASSED_*'] },
        reviewer: { command: ['/bin/sh', '-c', 'true', 'sh', '{{title}}'] },
      },
    });
    p.writeIssue('FAC-7', { title });
    const daemonEnv = { SECRET_TOKEN: 'sk-daemon-only', GIT_DIR: join(p.repo, '.git'), FACTORY_TEST_PASSED_ONE: 'yes' };

    const triage = await runCli(['triage', 'FAC-7', '--json', '--config', p.configPath]);
    assert.equal(triage.code, 0, triage.stderr);
    const plan = JSON.parse(triage.stdout) as { agents: { slot: string; stage: number; command: string[] }[] };
    assert.deepEqual(plan.agents, [
      { stage: 1, slot: 'implementer', role: 'implementer', command: ['sh', '-c', script] },
      { stage: 2, slot: 'reviewer', role: 'reviewer', command: ['/bin/sh', '-c', 'true', 'sh', title] },
    ]);

    const run = await runCli(['run-once', '--config', p.configPath], daemonEnv);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.equal(existsSync(witness), false, 'the title ran as a command');
    const log = agentLogs(p);
    assert.ok(log.includes(`title=${title}\n`), log);
    assert.match(log, /^PATH=/m);
    assert.match(log, /^FACTORY_TEST_PASSED_ONE=yes$/m);
    assert.doesNotMatch(log, /^SECRET_TOKEN=/m);
    assert.doesNotMatch(log, /^GIT_DIR=/m);
  });
});
