#!/usr/bin/env node
// A scripted stand-in for a coding agent, so the bundled demo and the tests run
// a real team without an AI CLI. It reads what the factory fleet puts in its
// environment (FACTORY_ISSUE_KEY, FACTORY_AGENT_ROLE) and works in its cwd, the
// issue's git worktree:
//   implementer: writes <ISSUE_KEY>.md and makes a real commit naming the issue;
//   reviewer:    finds that commit on the branch (git log) and prints a short review,
//                exiting 1 when there is nothing to review.
// Any arguments (the rendered prompt) are echoed, shortened, for the log.
// FACTORY_DEMO_DELAY_MS makes it "think" first, to watch a run in `factory status`.
import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const issueKey = process.env.FACTORY_ISSUE_KEY;
const role = process.env.FACTORY_AGENT_ROLE;
if (!issueKey || (role !== 'implementer' && role !== 'reviewer')) {
  console.error('demo-agent: expected FACTORY_ISSUE_KEY and FACTORY_AGENT_ROLE=implementer|reviewer in the environment (the factory fleet sets both)');
  process.exit(2);
}

// A fixed identity and no hooks or signing: the demo must commit in any checkout,
// whatever the user's git configuration asks of humans.
const GIT_OPTIONS = ['-c', 'user.name=Factory demo agent', '-c', 'user.email=demo-agent@factory.invalid', '-c', 'commit.gpgsign=false', '-c', 'core.hooksPath=/dev/null'];
function git(...args) {
  return execFileSync('git', [...GIT_OPTIONS, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

const prompt = process.argv.slice(2).join(' ');
console.log(`demo-agent: ${role} for ${issueKey} in ${process.cwd()}`);
if (prompt) console.log(`demo-agent: prompt: ${prompt.length > 200 ? `${prompt.slice(0, 200)}…` : prompt}`);

const delayMs = Number(process.env.FACTORY_DEMO_DELAY_MS ?? 0);
if (Number.isFinite(delayMs) && delayMs > 0) await sleep(delayMs);

if (role === 'implementer') {
  const fileName = `${issueKey.replace(/[^A-Za-z0-9._-]/g, '_')}.md`;
  // Appending means a retry also has a change to commit.
  appendFileSync(fileName, `# ${issueKey}\n\nImplemented by the Factory demo agent at ${new Date().toISOString()}.\n\n`);
  git('add', '--', fileName);
  git('commit', '--quiet', '-m', `${issueKey}: demo change by the implementer`, '-m', `Adds ${fileName}.`);
  console.log(`demo-agent: committed ${git('rev-parse', '--short', 'HEAD')} "${issueKey}: demo change by the implementer"`);
} else {
  const found = git('log', '--fixed-strings', `--grep=${issueKey}`, '--format=%H %s', 'HEAD');
  const [latest] = found.split('\n').filter(Boolean);
  if (!latest) {
    console.log(`demo-agent: review of ${issueKey}: no commit mentioning ${issueKey} on this branch; nothing to approve`);
    process.exit(1);
  }
  const [sha, ...subject] = latest.split(' ');
  const files = git('show', '--name-only', '--format=', sha).split('\n').filter(Boolean);
  console.log(`demo-agent: review of ${issueKey}: ${sha.slice(0, 8)} "${subject.join(' ')}" changes ${files.join(', ')}; looks good (scripted demo review)`);
}
