import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { agentClisRequired, ensureAgentCli } from '../support/agent-clis.js';
import { git, REPO_ROOT } from '../support/sandbox.js';

/**
 * `npm run demo:claude` itself: the demo's whole story (live daemon, two ready
 * issues, one dropped in while it runs, kill-loop) with the real Claude Code
 * CLI as implementer and reviewer against the scripted model server. Each team
 * must succeed through Claude Code's own Bash tool calls: the implementer's
 * commit on the issue branch, the reviewer's approve verdict read from
 * FACTORY_REVIEW_FILE, and the usage ledger equal to what the server sent.
 */

const work = mkdtempSync(join(tmpdir(), 'factory-demo-claude-'));
after(() => rmSync(work, { recursive: true, force: true }));

function runDemo(timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, FACTORY_DEMO_DIR: work, FACTORY_DEMO_TIMEOUT_MS: '120000' };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  delete env.FACTORY_DEMO_KEEP;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join('examples', 'demo', 'run-demo.ts'), '--claude'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('npm run demo:claude: the real Claude Code implements and approves each demo issue through its Bash tool; the ledger equals what the model server sent', { timeout: 300_000 }, async (t) => {
  const cli = await ensureAgentCli('claude-code', (line) => t.diagnostic(line));
  if (!cli.ok) {
    if (agentClisRequired()) assert.fail(`FACTORY_REQUIRE_AGENT_CLIS=1 but claude-code is unavailable: ${cli.reason}`);
    t.skip(`claude-code CLI unavailable: ${cli.reason}`);
    return;
  }
  const demo = await runDemo(240_000);
  assert.equal(demo.code, 0, `the demo failed:\n${demo.stdout}\n${demo.stderr}`);

  const repo = join(work, 'repo');
  for (const key of ['DEMO-1', 'DEMO-2', 'DEMO-5']) {
    const report = readFileSync(join(work, 'issues', `${key}.outcome.md`), 'utf8');
    assert.match(report, new RegExp(`^# ${key}: succeeded`), report);
    // The verdict came from the file Claude Code's Bash tool wrote, not from an exit code.
    assert.match(report, /round 1, reviewer: \*\*approve\*\* at `[0-9a-f]+`/, report);
    assert.equal(git(repo, 'log', '-1', '--format=%s', `factory/${key}`).trim(), `${key}: change by Claude Code`);
    assert.match(git(repo, 'show', `factory/${key}:CLAUDE-${key}.md`), new RegExp(`^# ${key}\\n`));
  }
  // What Factory parsed from Claude Code's stream: its tool calls, rendered by `factory logs`.
  assert.match(demo.stdout, /\$ Bash: f="CLAUDE-\$FACTORY_ISSUE_KEY\.md"/);
  assert.match(demo.stdout, /\$ Bash: git log --oneline -1 && printf/);
  assert.match(demo.stdout, /↳ ok: [0-9a-f]+ DEMO-1: change by Claude Code/);
  // Three teams of two agents, two model turns each; the ledger counts exactly what the server reported.
  const ledger = /ledger: 6 agent runs, 12 turns, (.+ tokens), \$\d+\.\d+ as Claude Code reported it/.exec(demo.stdout);
  const server = /server: 12 model requests, (.+ tokens)/.exec(demo.stdout);
  assert.ok(ledger && server, demo.stdout);
  assert.equal(ledger[1], server[1]);
  assert.match(demo.stdout, /daemon exited with code 0/);
});
