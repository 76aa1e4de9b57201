/**
 * `npm run demo`: the whole factory on a bundled example, with no account and
 * no network. It lays out demo-work/ (a scratch git repo, a copy of the example
 * issues, a config whose agents are the scripted demo agent), starts the live
 * daemon, waits for the ready issues' outcomes, drops a new issue file in while
 * the daemon runs, shows `factory status`, stops the daemon with `kill-loop`
 * and shows the commits the agents made. With FACTORY_DEMO_KEEP=1 the daemon
 * stays up after the tour (dashboard, more issue files) until Ctrl-C.
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = resolve(process.env.FACTORY_DEMO_DIR ?? join(repoRoot, 'demo-work'));
const cli = join(repoRoot, 'bin', 'factory.js');
const configPath = join(work, 'factory.config.json');
const say = (text: string): void => void process.stdout.write(`\n▶ ${text}\n`);

function factory(...args: string[]): { code: number; out: string } {
  try {
    return { code: 0, out: execFileSync(process.execPath, [cli, ...args, '--config', configPath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (error) {
    const e = error as { status: number; stdout: string };
    return { code: e.status, out: e.stdout };
  }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`demo: timed out after ${timeoutMs}ms waiting for ${what}; see ${join(work, 'daemon.log')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

say(`laying out ${work}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(join(work, 'issues'), { recursive: true });
const repo = join(work, 'repo');
mkdirSync(repo);
const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.name=Demo', '-c', 'user.email=demo@factory.invalid', '-c', 'commit.gpgsign=false', '-C', repo, ...args], { encoding: 'utf8' });
git('init', '--quiet', '--initial-branch=main');
writeFileSync(join(repo, 'README.md'), '# scratch repo for the factory demo\n');
git('add', 'README.md');
git('commit', '--quiet', '-m', 'initial commit');
for (const file of readdirSync(join(repoRoot, 'examples', 'demo', 'issues'))) copyFileSync(join(repoRoot, 'examples', 'demo', 'issues', file), join(work, 'issues', file));
const agent = ['node', join(repoRoot, 'examples', 'agents', 'demo-agent.mjs'), '{{prompt}}'];
writeFileSync(
  configPath,
  `${JSON.stringify(
    {
      mount: { root: './issues' },
      repos: { default: './repo' },
      safety: { requireLabel: 'factory' },
      agents: { implementer: { command: agent, env: { FACTORY_DEMO_DELAY_MS: '300' } }, reviewer: { command: agent } },
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
if (dashboard) console.log(`  live dashboard: ${dashboard} (open it now to watch the teams; it closes with the daemon)`);

const outcome = (key: string): string => join(work, 'issues', `${key}.outcome.md`);
say('waiting for DEMO-1 and DEMO-2 (implementer commits, then reviewer reviews)');
await waitFor('DEMO-1 and DEMO-2 outcomes', () => existsSync(outcome('DEMO-1')) && existsSync(outcome('DEMO-2')));
console.log(readFileSync(outcome('DEMO-1'), 'utf8'));

say('dropping a new issue file, DEMO-5, into the mount while the daemon runs');
const dropped = Date.now();
writeFileSync(join(work, 'issues', 'DEMO-5.json'), JSON.stringify({ key: 'DEMO-5', title: 'Picked up live', body: 'Added while the daemon was running.', labels: ['factory'], state: 'ready' }));
await waitFor('DEMO-5 outcome', () => existsSync(outcome('DEMO-5')));
console.log(`  DEMO-5 went from file to finished team in ${Date.now() - dropped}ms`);

say('factory status');
console.log(factory('status').out);

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
console.log(`  daemon exited with code ${code}; loop-status now says: ${factory('loop-status').out.trim()}`);

say('the commits the agents made in the scratch repo');
console.log(git('log', '--all', '--oneline', '--graph'));
console.log(`Everything is in ${work}: issues/*.outcome.md, .factory/logs/, .factory/worktrees/.`);
if (code !== 0) process.exitCode = 1;
