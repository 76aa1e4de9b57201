import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { StatusSnapshot } from '../../src/core/status-snapshot.js';
import type { RunOutcome } from '../../src/domain/run.js';
import { agentClisRequired, ensureAgentCli } from '../support/agent-clis.js';
import { FAKE_API_KEY, SCRIPTED_MODEL } from '../support/agent-cli-runs.js';
import { runFactoryCli } from '../support/factory-cli.js';
import { createScratchProject, git } from '../support/sandbox.js';
import { startScriptedModelServer, type RecordedRequest, type ScriptedTurn } from '../support/scripted-model-server.js';

/**
 * Budgets park, `factory resume` finishes: the REAL Claude Code CLI against the
 * scripted model server, through `factory dispatch` and `factory resume` (no
 * daemon running: both run the team in their own process). The run goes over
 * budgets.run.maxTokens on its second model turn, after its Bash tool wrote a
 * file: it is stopped, its worktree change is committed to the park ref (the
 * branch does not move), the claim shows parked with the reason and keeps the
 * session id. The resume restores the work, runs `claude --resume <session>`
 * with a fresh budget, and the agent commits.
 */

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

// Tokens per turn: the first stays under the 2,000-token run budget, the second goes over it.
const script: readonly ScriptedTurn[] = [
  { kind: 'shell', text: 'Writing the first half.', command: 'printf "first half\\n" > partial.txt', usage: { input: 400, output: 20 } },
  { kind: 'shell', text: 'Thinking hard about the second half.', command: 'timeout 30 tail -f /dev/null', usage: { input: 3000, output: 30, cacheRead: 100 } },
  // After `factory resume`: the same session goes on.
  { kind: 'shell', text: 'Finishing.', command: 'printf "second half\\n" >> partial.txt && git add partial.txt && git commit -q -m "Write both halves"', usage: { input: 500, output: 25 } },
  { kind: 'text', text: 'Both halves are committed.', usage: { input: 600, output: 10 } },
];

/** The session id Claude Code names in a model request (a header, or the metadata user id). */
function sessionOf(request: RecordedRequest): string | undefined {
  const header = request.headers['x-claude-code-session-id'];
  if (typeof header === 'string') return header;
  const userId = (request.body as { metadata?: { user_id?: string } } | undefined)?.metadata?.user_id;
  return userId === undefined ? undefined : /session_([0-9a-f-]{36})/.exec(userId)?.[1];
}

describe('park over a run budget and resume, with the real Claude Code CLI', { timeout: 240_000 }, () => {
  test('maxTokens overrun parks with the partial work in refs/factory/park/<run>; factory resume continues the same session and commits', async (t) => {
    const resolved = await ensureAgentCli('claude-code', (line) => t.diagnostic(line));
    if (!resolved.ok) {
      if (agentClisRequired()) assert.fail(`claude-code unavailable: ${resolved.reason}`);
      t.skip(`claude-code CLI unavailable: ${resolved.reason}`);
      return;
    }
    const server = await startScriptedModelServer(script);
    const home = mkdtempSync(join(tmpdir(), 'factory-park-home-'));
    const gitIdentity = { GIT_AUTHOR_NAME: 'Agent', GIT_AUTHOR_EMAIL: 'agent@factory.invalid', GIT_COMMITTER_NAME: 'Agent', GIT_COMMITTER_EMAIL: 'agent@factory.invalid' };
    const project = createScratchProject('park-claude', {
      agents: {
        implementer: {
          driver: 'claude-code',
          command: [resolved.bin],
          claudeCode: { model: SCRIPTED_MODEL, allowedTools: ['Bash'] },
          env: { ...gitIdentity, HOME: home, ANTHROPIC_BASE_URL: server.url, ANTHROPIC_API_KEY: FAKE_API_KEY, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' },
        },
      },
      budgets: { run: { maxTokens: 2000 } },
      runs: { killGraceMs: 1_000 },
      http: { enabled: false },
    });
    cleanups.push(async () => {
      await server.close();
      rmSync(project.dir, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    });
    project.writeIssue('PK-1', { title: 'Write partial.txt', body: 'Write both halves of partial.txt and commit.' });
    const baseHead = git(project.repo, 'rev-parse', 'HEAD').trim();

    // Part 1: over the budget on the second turn.
    const first = await runFactoryCli(['dispatch', 'PK-1', '--json', '--config', project.configPath], 90_000);
    const parkedOutcome = (JSON.parse(first.stdout) as { outcome: RunOutcome }).outcome;
    assert.equal(parkedOutcome.reason, 'parked', `${parkedOutcome.detail}\n${first.stderr}`);
    assert.equal(first.code, 1, 'a parked run is not a success');
    const park = parkedOutcome.park!;
    assert.equal(park.trigger, 'run-budget');
    assert.match(park.reason, /^used \d+ tokens of budgets\.run\.maxTokens 2000$/);
    assert.equal(park.ref, `refs/factory/park/${parkedOutcome.runId}`);
    assert.equal(park.resumeAtMs, null, 'a run budget resumes only by hand');
    const sessionId = park.sessions.implementer;
    assert.match(sessionId ?? '', /^[0-9a-f-]{36}$/, 'the session id is kept');
    assert.equal(server.turnsServed(), 2, 'stopped on the second turn: no third request before the resume');
    // The partial work is in the park ref, the branch did not move.
    assert.equal(git(project.repo, 'show', `${park.ref}:partial.txt`), 'first half\n');
    assert.equal(git(project.repo, 'rev-parse', park.ref).trim(), park.commit);
    assert.equal(git(project.repo, 'rev-parse', 'factory/PK-1').trim(), baseHead, 'the branch did not move');
    // The claim shows parked with the reason (durably: a separate process reads it).
    const status = JSON.parse((await runFactoryCli(['status', '--json', '--config', project.configPath])).stdout) as StatusSnapshot;
    const parkedClaim = status.parked.find((claim) => claim.issueKey === 'PK-1');
    assert.ok(parkedClaim, `PK-1 is listed as parked: ${JSON.stringify(status.parked)}`);
    assert.equal(parkedClaim.status, 'parked');
    assert.equal(parkedClaim.park?.sessions.implementer, sessionId);
    assert.match(parkedClaim.why, /^parked \(run-budget\): used \d+ tokens of budgets\.run\.maxTokens 2000; resume it with `factory resume PK-1`$/);
    const paidFirst = status.usage.allTime.total;
    // Someone cleans the worktree meanwhile: the resume brings the work back from the park ref.
    rmSync(join(parkedOutcome.worktree, 'partial.txt'));

    // Part 2: factory resume continues the same session with a fresh budget.
    const second = await runFactoryCli(['resume', 'PK-1', '--json', '--config', project.configPath], 90_000);
    const resumed = JSON.parse(second.stdout) as { resumed: boolean; outcome: RunOutcome };
    assert.equal(resumed.outcome.reason, 'succeeded', `${resumed.outcome.detail}\n${second.stderr}`);
    assert.equal(second.code, 0);
    assert.equal(resumed.outcome.agents[0]?.report?.sessionId, sessionId, 'the resumed agent reports the same session');
    const requests = server.modelRequests();
    assert.equal(requests.length, 4);
    const sessions = requests.map(sessionOf);
    t.diagnostic(`sessions per model request: ${sessions.join(', ')}`);
    assert.deepEqual(sessions, [sessionId, sessionId, sessionId, sessionId], 'every request, before and after the park, carries the one session id');
    // The resumed request carries the conversation so far: the first tool call is in it.
    assert.match(JSON.stringify(requests[2]!.body), /first half/);
    assert.equal(git(project.repo, 'show', 'factory/PK-1:partial.txt'), 'first half\nsecond half\n');
    assert.equal(git(project.repo, 'log', '-1', '--format=%s', 'factory/PK-1').trim(), 'Write both halves');

    // The ledger holds both parts: exactly what the server sent.
    const after = JSON.parse((await runFactoryCli(['status', '--json', '--config', project.configPath])).stdout) as StatusSnapshot;
    const sent = server.usageSent();
    assert.deepEqual(after.usage.allTime.total.usage, { input: sent.input, output: sent.output, cacheRead: sent.cacheRead, cacheWrite: sent.cacheWrite });
    assert.equal(after.usage.allTime.total.runs, 2, 'one ledger record per part');
    assert.deepEqual(paidFirst.usage, { input: 3400, output: 50, cacheRead: 100, cacheWrite: 0 }, 'the parked part was recorded when it parked');
    assert.equal(after.parked.length, 0);
  });
});
