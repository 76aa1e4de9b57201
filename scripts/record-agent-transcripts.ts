import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_CLI_PINS, ensureAgentCli, type AgentCliName } from '../src/dev/agent-clis.js';
import { runAgentCli } from '../test/support/agent-cli-runs.js';
import { createScratchRepo, git, REPO_ROOT } from '../test/support/sandbox.js';
import { startScriptedModelServer, type ScriptedTurn } from '../src/dev/scripted-model-server.js';

/**
 * Records the parser fixtures in test/fixtures/transcripts/ from the REAL
 * pinned CLIs against the scripted model server: stdout as the CLI wrote it
 * (temp paths replaced by /scratch), and beside it `<name>.expected.json` with
 * what the server sent and how the CLI exited, which the unit tests check the
 * parsers against. Re-run after bumping a pin:
 *   node --import tsx scripts/record-agent-transcripts.ts [name-filter]
 */

const OUT = join(REPO_ROOT, 'test', 'fixtures', 'transcripts');
const COMMIT = 'printf "hello\\n" > hello.txt && git add hello.txt && git commit -q -m "Add hello"';
/** Fixed so the recorded rate-limit text is stable: 2 hours after recording, rounded to the minute. */
const resetIn = (seconds: number): number => Math.floor((Date.now() / 1000 + seconds) / 60) * 60;

interface Scenario {
  readonly cli: AgentCliName;
  readonly name: string;
  readonly script: readonly ScriptedTurn[];
  readonly extraArgs?: readonly string[];
  readonly permissions?: 'bypass' | 'ask';
}

const scenarios: Scenario[] = [];
for (const cli of ['claude-code', 'codex'] as const) {
  scenarios.push(
    {
      cli,
      name: 'commit',
      script: [
        { kind: 'shell', text: 'I will add hello.txt and commit it.', command: COMMIT, usage: { input: 1200, output: 40, cacheRead: 300, cacheWrite: 100 } },
        { kind: 'text', text: 'Committed hello.txt.', usage: { input: 1500, output: 12, cacheRead: 1200, cacheWrite: 0 } },
      ],
    },
    { cli, name: 'api-error', script: [{ kind: 'api-error', status: 500, errorType: cli === 'codex' ? 'server_error' : 'api_error', message: 'Internal server error' }] },
    { cli, name: 'rate-limit', script: [{ kind: 'rate-limit', resetAtEpochSeconds: resetIn(2 * 3600) }] },
  );
}
scenarios.push(
  {
    cli: 'claude-code',
    name: 'permission-denied',
    permissions: 'ask',
    script: [
      { kind: 'shell', command: COMMIT, usage: { input: 900, output: 30 } },
      { kind: 'text', text: 'Committed hello.txt.', usage: { input: 1000, output: 8 } },
    ],
  },
  {
    cli: 'claude-code',
    name: 'max-turns',
    extraArgs: ['--max-turns', '1'],
    script: [
      { kind: 'shell', command: 'echo one', usage: { input: 100, output: 10 } },
      { kind: 'text', text: 'never reached', usage: { input: 100, output: 10 } },
    ],
  },
  {
    cli: 'claude-code',
    name: 'partial-messages',
    extraArgs: ['--include-partial-messages'],
    script: [
      { kind: 'shell', text: 'Listing files.', command: 'ls', usage: { input: 700, output: 25, cacheRead: 50, cacheWrite: 20 } },
      { kind: 'text', text: 'Done listing.', usage: { input: 800, output: 9 } },
    ],
  },
  { cli: 'codex', name: 'rate-limit-days', script: [{ kind: 'rate-limit', resetAtEpochSeconds: resetIn(3 * 86400) }] },
);

const filter = process.argv[2];
mkdirSync(OUT, { recursive: true });
for (const scenario of scenarios) {
  const fileName = `${scenario.cli}-${scenario.name}`;
  if (filter && !fileName.includes(filter)) continue;
  const cli = await ensureAgentCli(scenario.cli, (line) => console.log(line));
  if (!cli.ok) throw new Error(cli.reason);
  const server = await startScriptedModelServer(scenario.script);
  const dir = mkdtempSync(join(tmpdir(), 'factory-transcript-'));
  try {
    const repo = join(dir, 'repo');
    createScratchRepo(repo);
    git(repo, 'config', 'user.name', 'Agent');
    git(repo, 'config', 'user.email', 'agent@factory.invalid');
    const run = await runAgentCli({
      cli: scenario.cli,
      bin: cli.bin,
      server,
      cwd: repo,
      home: join(dir, 'home'),
      prompt: 'Add hello.txt and commit it.',
      extraArgs: scenario.extraArgs,
      permissions: scenario.permissions,
      timeoutMs: 120_000,
    });
    const scrub = (text: string): string => text.split(dir).join('/scratch');
    writeFileSync(join(OUT, `${fileName}.jsonl`), scrub(run.stdout));
    const expected = {
      cli: scenario.cli,
      cliVersion: AGENT_CLI_PINS[scenario.cli].version,
      recordedAt: new Date().toISOString(),
      exitCode: run.exitCode,
      usageSent: server.usageSent(),
      modelRequests: server.modelRequests().length,
      unknownRequests: server.unknownRequests().map((r) => `${r.method} ${r.url}`),
      commits: git(repo, 'rev-list', '--count', 'HEAD').trim(),
    };
    writeFileSync(join(OUT, `${fileName}.expected.json`), `${JSON.stringify(expected, null, 2)}\n`);
    console.log(`${fileName}: exit ${run.exitCode}, ${run.stdout.split('\n').filter(Boolean).length} lines, ${run.durationMs} ms, usage sent ${JSON.stringify(expected.usageSent)}`);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
