import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { agentClisRequired, ensureAgentCli } from '../support/agent-clis.js';
import { FAKE_API_KEY, SCRIPTED_MODEL } from '../support/agent-cli-runs.js';
import { dispatchForOutcome } from '../support/factory-cli.js';
import { createScratchProject, git, REPO_ROOT, type ScratchProject } from '../support/sandbox.js';
import { startScriptedModelServer, type ScriptedModelServer } from '../support/scripted-model-server.js';

/**
 * The real Claude Code CLI as the reviewer, offline against the scripted model
 * server: its Bash tool writes the verdict to FACTORY_REVIEW_FILE, exactly as
 * the built-in reviewer prompt tells it to. Round 1 requests changes, the
 * (fixture) implementer fixes, round 2 approves.
 */

const projects: ScratchProject[] = [];
const servers: ScriptedModelServer[] = [];
after(async () => {
  for (const server of servers) await server.close();
  for (const project of projects) rmSync(project.dir, { recursive: true, force: true });
});

const usage = { input: 40, output: 12 };
const writeVerdict = (verdict: Record<string, string>): string => `printf '%s\\n' '${JSON.stringify(verdict)}' > "$FACTORY_REVIEW_FILE"`;

describe('review rounds with the real Claude Code CLI as reviewer', { timeout: 180_000 }, () => {
  it('its Bash tool writes request-changes, the implementer fixes, then it approves: succeeded after 2 rounds', async (t) => {
    const cli = await ensureAgentCli('claude-code', (line) => t.diagnostic(line));
    if (!cli.ok) {
      if (agentClisRequired()) assert.fail(`FACTORY_REQUIRE_AGENT_CLIS=1 but claude-code is unavailable: ${cli.reason}`);
      t.skip(`claude-code CLI unavailable: ${cli.reason}`);
      return;
    }
    const server = await startScriptedModelServer([
      { kind: 'shell', command: writeVerdict({ verdict: 'request-changes', comments: 'handle the empty input' }), usage },
      { kind: 'text', text: 'I asked for changes.', usage },
      { kind: 'shell', command: writeVerdict({ verdict: 'approve' }), usage },
      { kind: 'text', text: 'Approved.', usage },
    ]);
    servers.push(server);
    // The config is written below, once the server port is known.
    const project = createScratchProject('review-claude', {});
    projects.push(project);
    const home = join(project.dir, 'claude-home');
    mkdirSync(home);
    writeFileSync(
      project.configPath,
      JSON.stringify({
        mount: { root: './issues' },
        repos: { default: './repo' },
        agents: {
          implementer: { command: [process.execPath, join(REPO_ROOT, 'test', 'fixtures', 'agents', 'review-implementer.mjs')] },
          reviewer: {
            command: [cli.bin, '-p', '{{prompt}}', '--output-format', 'stream-json', '--verbose', '--model', SCRIPTED_MODEL, '--dangerously-skip-permissions'],
            // A private HOME and the fake server: no real account or key is involved. IS_SANDBOX: root may skip permission prompts in a declared sandbox.
            env: { HOME: home, ANTHROPIC_BASE_URL: server.url, ANTHROPIC_API_KEY: FAKE_API_KEY, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', IS_SANDBOX: '1' },
          },
        },
        runs: { killGraceMs: 500, superviseIntervalMs: 200 },
        http: { enabled: false },
      }),
    );
    project.writeIssue('CLR-1', { title: 'Parse the config' });
    const { outcome } = await dispatchForOutcome(project.configPath, 'CLR-1', 150_000);
    assert.equal(outcome.reason, 'succeeded', outcome.detail);
    assert.deepEqual(
      outcome.reviewRounds?.map((r) => `${r.round} ${r.role}${r.verdict ? ` ${r.verdict} (${r.verdictSource})` : ''}`),
      ['1 implementer', '1 reviewer request-changes (file)', '2 implementer', '2 reviewer approve (file)'],
    );
    assert.equal(outcome.reviewRounds?.[1]?.commentsSummary, 'handle the empty input');
    assert.match(git(project.repo, 'show', 'factory/CLR-1:WORK.md'), /round 2: addressed "handle the empty input"/);
    // The reviewer was told, in its prompt, where and how to write its verdict; both reviews reached the server.
    const requests = server.modelRequests();
    assert.equal(requests.length, 4);
    assert.match(JSON.stringify(requests[0]!.body), /FACTORY_REVIEW_FILE/);
    assert.deepEqual(server.overrunRequests(), []);
  });
});
