/**
 * `npm run demo`: the whole factory on a bundled example, with no account and
 * no network. It lays out demo-work/ (a scratch git repo, a copy of the example
 * issues, a config whose agents are the scripted demo agent), starts the live
 * daemon, waits for the ready issues' outcomes, drops a new issue file in while
 * the daemon runs, shows `factory status`, stops the daemon with `kill-loop`
 * and shows the commits the agents made. With FACTORY_DEMO_KEEP=1 the daemon
 * stays up after the tour (dashboard, more issue files) until Ctrl-C.
 *
 * `npm run demo:claude` (`--claude`): the same story with the real Claude Code
 * CLI (the claude-code driver) as implementer and reviewer, talking to a
 * scripted model server on 127.0.0.1 instead of Anthropic's API: no account,
 * no network beyond installing the pinned CLI into .cache/agent-clis on first
 * use. The scripted model answers each conversation by its state: the
 * implementer's Bash tool call commits a file, the reviewer's writes an approve
 * verdict to FACTORY_REVIEW_FILE; the CLI runs those commands for real.
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureAgentCli } from '../../src/dev/agent-clis.js';
import {
  conversationHasToolResult,
  FAKE_API_KEY,
  requestText,
  SCRIPTED_MODEL,
  startScriptedModelServer,
  type ModelRequestView,
  type ScriptedModelServer,
  type ScriptedTurn,
} from '../../src/dev/scripted-model-server.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = resolve(process.env.FACTORY_DEMO_DIR ?? join(repoRoot, 'demo-work'));
const cli = join(repoRoot, 'bin', 'factory.js');
const configPath = join(work, 'factory.config.json');
const say = (text: string): void => void process.stdout.write(`\n▶ ${text}\n`);
const withClaude = process.argv.includes('--claude');
/** A real CLI starts slower than the scripted demo agent, and this machine may be busy. */
const outcomeTimeoutMs = Number(process.env.FACTORY_DEMO_TIMEOUT_MS ?? (withClaude ? 240_000 : 60_000));

function factory(...args: string[]): { code: number; out: string } {
  try {
    return { code: 0, out: execFileSync(process.execPath, [cli, ...args, '--config', configPath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (error) {
    const e = error as { status: number; stdout: string };
    return { code: e.status, out: e.stdout };
  }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = outcomeTimeoutMs): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`demo: timed out after ${timeoutMs}ms waiting for ${what}; see ${join(work, 'daemon.log')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The commands the scripted model has Claude Code run: real shell, in the worktree, with the agent's environment. */
const IMPLEMENT_AND_COMMIT = [
  'f="CLAUDE-$FACTORY_ISSUE_KEY.md"',
  `printf '# %s\\n\\nImplemented by Claude Code (scripted model) for the Factory demo.\\n' "$FACTORY_ISSUE_KEY" >> "$f"`,
  'git add -- "$f"',
  'git -c user.name="Claude Code (demo)" -c user.email=claude-demo@factory.invalid -c commit.gpgsign=false -c core.hooksPath=/dev/null commit -q -m "$FACTORY_ISSUE_KEY: change by Claude Code"',
].join(' && ');
const REVIEW_AND_APPROVE = `git log --oneline -1 && printf '%s\\n' '{"verdict":"approve"}' > "$FACTORY_REVIEW_FILE"`;

/**
 * The scripted model: each conversation gets the turn its own state calls for,
 * so teams running side by side never take each other's turns. A reviewer is
 * the agent whose prompt names FACTORY_REVIEW_FILE; a conversation that holds a
 * tool result has had its command run and ends with a message.
 */
function demoModel(request: ModelRequestView): ScriptedTurn {
  const reviewer = requestText(request).includes('FACTORY_REVIEW_FILE');
  const usage = { input: 1_800, output: 90, cacheRead: 1_200, cacheWrite: 300 };
  if (conversationHasToolResult(request))
    return { kind: 'text', text: reviewer ? 'Reviewed the commit: it does what the issue asks. Approved.' : 'Done: the change is committed on the issue branch.', usage: { ...usage, output: 24 } };
  return reviewer
    ? { kind: 'shell', text: 'Let me look at the commit, then record my verdict.', command: REVIEW_AND_APPROVE, usage }
    : { kind: 'shell', text: 'I will write the change and commit it.', command: IMPLEMENT_AND_COMMIT, usage };
}

/** The agents config: the scripted demo agent, or the real Claude Code against the scripted model server. */
async function demoAgents(): Promise<{ agents: Record<string, unknown>; server?: ScriptedModelServer }> {
  if (!withClaude) {
    const agent = ['node', join(repoRoot, 'examples', 'agents', 'demo-agent.mjs'), '{{prompt}}'];
    return { agents: { implementer: { command: agent, env: { FACTORY_DEMO_DELAY_MS: '300' } }, reviewer: { command: agent } } };
  }
  say('the real Claude Code CLI, pinned (installed into .cache/agent-clis on first use, ~345 MB download)');
  const cli = await ensureAgentCli('claude-code', (line) => console.log(`  ${line}`));
  if (!cli.ok) throw new Error(`demo: cannot run Claude Code: ${cli.reason}`);
  console.log(`  claude ${cli.version}: ${cli.bin}`);
  const server = await startScriptedModelServer(demoModel);
  console.log(`  scripted model server (stands in for Anthropic's API): ${server.url}`);
  const home = join(work, 'claude-home');
  mkdirSync(home);
  const claude = {
    driver: 'claude-code',
    command: [cli.bin],
    claudeCode: { model: SCRIPTED_MODEL, maxTurns: 5, allowedTools: ['Bash'] },
    // A private HOME and a fake key aimed at the local server: no account, and no real key can reach it.
    env: { HOME: home, ANTHROPIC_BASE_URL: server.url, ANTHROPIC_API_KEY: FAKE_API_KEY, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' },
  };
  return { agents: { implementer: claude, reviewer: claude }, server };
}

say(`laying out ${work}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(join(work, 'issues'), { recursive: true });
const repo = join(work, 'repo');
mkdirSync(repo);
const git = (...args: string[]): string =>
  execFileSync('git', ['-c', 'user.name=Demo', '-c', 'user.email=demo@factory.invalid', '-c', 'commit.gpgsign=false', '-C', repo, ...args], { encoding: 'utf8' });
git('init', '--quiet', '--initial-branch=main');
writeFileSync(join(repo, 'README.md'), '# scratch repo for the factory demo\n');
git('add', 'README.md');
git('commit', '--quiet', '-m', 'initial commit');
for (const file of readdirSync(join(repoRoot, 'examples', 'demo', 'issues'))) copyFileSync(join(repoRoot, 'examples', 'demo', 'issues', file), join(work, 'issues', file));
const { agents, server: modelServer } = await demoAgents();
writeFileSync(
  configPath,
  `${JSON.stringify(
    {
      mount: { root: './issues' },
      repos: { default: './repo' },
      safety: { requireLabel: 'factory' },
      agents,
      dispatch: { batchSize: 2, maxAttempts: 2 },
      runs: { killGraceMs: 2000 },
      loop: { heartbeatIntervalMs: 2000, heartbeatStaleMs: 10000 },
      // Any free port, so the demo never collides with a daemon already on 7420.
      http: { port: 0 },
    },
    null,
    2,
  )}\n`,
);
console.log(`  issues: ${readdirSync(join(work, 'issues')).join(', ')}`);

say('factory run-once --dry-run (what would happen; changes nothing)');
console.log(factory('run-once', '--dry-run').out);

say('factory start --mode live (logs in demo-work/daemon.log)');
const log = join(work, 'daemon.log');
writeFileSync(log, '');
const daemon = spawn(process.execPath, [cli, 'start', '--mode', 'live', '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
daemon.stderr.on('data', (chunk: Buffer) => writeFileSync(log, chunk, { flag: 'a' }));
const daemonExit = new Promise<number>((r) => daemon.on('exit', (code) => r(code ?? 1)));
await waitFor('the running heartbeat', () => factory('loop-status').code === 0, 20_000);
console.log(`  ${factory('loop-status').out.trim()}`);
const dashboardUrl = (): string | undefined => (JSON.parse(readFileSync(join(work, '.factory', 'heartbeat.json'), 'utf8')) as { http?: { url?: string } }).http?.url;
await waitFor('the dashboard address in the heartbeat', () => dashboardUrl() !== undefined, 10_000).catch(() => undefined);
const dashboard = dashboardUrl();
// The demo's teams finish in seconds, before anyone could open the page: say so, and how to keep it up.
if (dashboard && process.env.FACTORY_DEMO_KEEP === '1') console.log(`  live dashboard: ${dashboard} (the daemon stays up after the demo: open it to watch, drop more issues in)`);
else if (dashboard) console.log(`  dashboard: ${dashboard} (the demo ends in a few seconds and the dashboard closes with the daemon; \`FACTORY_DEMO_KEEP=1 npm run demo\` keeps both up to explore)`);

const outcome = (key: string): string => join(work, 'issues', `${key}.outcome.md`);
try {
  say('waiting for DEMO-1 and DEMO-2 (implementer commits, then reviewer reviews)');
  await waitFor('DEMO-1 and DEMO-2 outcomes', () => existsSync(outcome('DEMO-1')) && existsSync(outcome('DEMO-2')));
  console.log(readFileSync(outcome('DEMO-1'), 'utf8'));
  if (withClaude) {
    say("factory logs DEMO-1 (Claude Code's JSON stream, one line per session, turn, message and tool call)");
    console.log(factory('logs', 'DEMO-1').out);
  }

  say('dropping a new issue file, DEMO-5, into the mount while the daemon runs');
  const dropped = Date.now();
  writeFileSync(join(work, 'issues', 'DEMO-5.json'), JSON.stringify({ key: 'DEMO-5', title: 'Picked up live', body: 'Added while the daemon was running.', labels: ['factory'], state: 'ready' }));
  await waitFor('DEMO-5 outcome', () => existsSync(outcome('DEMO-5')));
  console.log(`  DEMO-5 went from file to finished team in ${Date.now() - dropped}ms`);
} catch (error) {
  // Nothing left behind: the daemon stops in order and the model server closes before the demo fails.
  daemon.kill('SIGTERM');
  await daemonExit;
  await modelServer?.close();
  throw error;
}

say('factory status');
console.log(factory('status').out);
if (modelServer) {
  say('the usage ledger (factory status --json: usage.today), against what the scripted model server reported');
  type Totals = { usage: { input: number; output: number; cacheRead: number; cacheWrite: number }; costUsd: number | null; turns: number; runs: number };
  const ledger = (JSON.parse(factory('status', '--json').out) as { usage: { today: { total: Totals } } }).usage.today.total;
  const sent = modelServer.usageSent();
  const tokens = (u: Totals['usage']): string => `${u.input} input, ${u.output} output, ${u.cacheRead} cache-read, ${u.cacheWrite} cache-write tokens`;
  console.log(`  ledger: ${ledger.runs} agent runs, ${ledger.turns} turns, ${tokens(ledger.usage)}, $${(ledger.costUsd ?? 0).toFixed(4)} as Claude Code reported it`);
  console.log(`  server: ${modelServer.modelRequests().length} model requests, ${tokens(sent)}`);
}

if (process.env.FACTORY_DEMO_KEEP === '1') {
  // Leave the daemon up to explore: drop more issue files into demo-work/issues, open the dashboard.
  say(`the daemon keeps running (FACTORY_DEMO_KEEP=1); Ctrl-C here, or: node bin/factory.js kill-loop --config ${configPath}`);
  // Ctrl-C reaches the daemon too (same terminal): it stops in order while this script waits for it.
  process.on('SIGINT', () => undefined);
  await daemonExit;
}

if (daemon.exitCode === null) {
  say('factory kill-loop (SIGTERM after proving the daemon identity; ordered stop)');
  console.log(factory('kill-loop').out.trim());
}
const code = await daemonExit;
await modelServer?.close();
console.log(`  daemon exited with code ${code}; loop-status now says: ${factory('loop-status').out.trim()}`);

say('the commits the agents made in the scratch repo');
console.log(git('log', '--all', '--oneline', '--graph'));
console.log(`Everything is in ${work}: issues/*.outcome.md, .factory/logs/, .factory/worktrees/.`);
if (code !== 0) process.exitCode = 1;
