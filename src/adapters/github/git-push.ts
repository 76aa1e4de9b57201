import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FactoryError } from '../../errors.js';
import { runBounded } from '../../util/run-bounded.js';

/**
 * Pushing a run's branch with a credential that lives for one git command
 * only. The token travels in that command's environment (`FACTORY_GIT_TOKEN`),
 * and git asks for it through a helper script (`GIT_ASKPASS`) that holds no
 * secret itself: nothing is written to the worktree, to `.git/config` or to a
 * credential store (`credential.helper` is emptied for the command, so a
 * helper configured on the machine neither supplies nor saves anything).
 */

export const TOKEN_VARIABLE = 'FACTORY_GIT_TOKEN';

/** The askpass helper: answers git's username prompt with GitHub's token user, the password prompt with the token from its environment. */
const ASKPASS_SCRIPT = `#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' 'x-access-token' ;;
  *) printf '%s\\n' "$${TOKEN_VARIABLE}" ;;
esac
`;

let askpassPath: string | undefined;

/** Writes the helper once per process, in a folder only this user can read, removed when the process exits (a long-lived host would otherwise collect one per daemon start). */
export function askpassHelperPath(): string {
  if (askpassPath !== undefined) return askpassPath;
  const dir = mkdtempSync(join(tmpdir(), 'factory-askpass-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o700);
  const path = join(dir, 'askpass.sh');
  writeFileSync(path, ASKPASS_SCRIPT, { mode: 0o700 });
  askpassPath = path;
  return path;
}

export interface GitCommand {
  readonly argv: readonly string[];
  /** Added to a minimal environment (PATH, HOME), never to the daemon's own. */
  readonly env: Readonly<Record<string, string>>;
}

/** `git <args>` in `cwd` with the per-command credential; the argv never carries the token. */
export function credentialedGitCommand(cwd: string, args: readonly string[], token: string, helperPath: string): GitCommand {
  return {
    argv: ['-C', cwd, '-c', 'credential.helper=', '-c', 'core.askPass=', ...args],
    env: { GIT_ASKPASS: helperPath, GIT_TERMINAL_PROMPT: '0', [TOKEN_VARIABLE]: token },
  };
}

export function pushCommand(worktree: string, remote: string, branch: string, token: string, helperPath: string): GitCommand {
  return credentialedGitCommand(worktree, ['push', '--porcelain', remote, `refs/heads/${branch}:refs/heads/${branch}`], token, helperPath);
}

/**
 * A credential for the git commands that reach one host: a fleet worker's
 * clone, fetches and pushes use it (through {@link credentialedGitCommand})
 * for the repos it applies to, and reach every other remote as before.
 */
export interface RemoteCredential {
  /** Whether `repo` (as routed: a path or a URL) is on the host this credential belongs to; the token is never offered to any other. */
  appliesTo(repo: string): boolean;
  /** A token for one git command. */
  token(): Promise<string>;
  /** Scrubs the credential's secrets from text (git's answers, before they reach a log or an outcome). */
  redact(text: string): string;
  /** Where the token comes from, for messages (never the token): "the GitHub token in GITHUB_TOKEN". */
  readonly describe: string;
}

export interface GitRunner {
  (command: GitCommand, timeoutMs: number): Promise<string>;
}

/** Runs git with only the variables git needs plus the command's own; output redacted by the caller. */
export const runGit: GitRunner = (command, timeoutMs) =>
  // Past the timeout git's whole process group goes, its network helpers included.
  runBounded('git', command.argv, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir(), LANG: 'C', ...command.env }, timeoutMs });

export interface BranchPusher {
  /** Pushes `branch` from `worktree` to `remote`; returns the commit pushed. */
  push(worktree: string, remote: string, branch: string): Promise<string>;
  /** The remote's default branch (`main`), for the pull request's base. */
  defaultBranch(worktree: string, remote: string): Promise<string>;
}

export function createBranchPusher(options: { token: () => Promise<string>; redact: (text: string) => string; run?: GitRunner; timeoutMs?: number }): BranchPusher {
  const run = options.run ?? runGit;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const fail = (what: string, error: unknown): FactoryError =>
    new FactoryError('FACTORY_GIT_PUSH_FAILED', `could not ${what}: ${options.redact((error as Error).message)}`, {
      hint: 'Check publish.remote, that the branch can fast-forward, and that the credential may push (Contents: read and write).',
    });
  return {
    async push(worktree, remote, branch) {
      const token = await options.token();
      try {
        await run(pushCommand(worktree, remote, branch, token, askpassHelperPath()), timeoutMs);
        return (await run({ argv: ['-C', worktree, 'rev-parse', `refs/heads/${branch}`], env: {} }, timeoutMs)).trim();
      } catch (error) {
        throw fail(`push ${branch} to ${remote}`, error);
      }
    },
    async defaultBranch(worktree, remote) {
      try {
        const local = (await run({ argv: ['-C', worktree, 'symbolic-ref', '--quiet', '--short', `refs/remotes/${remote}/HEAD`], env: {} }, timeoutMs).catch(() => '')).trim();
        if (local.startsWith(`${remote}/`)) return local.slice(remote.length + 1);
        const token = await options.token();
        const listed = await run(credentialedGitCommand(worktree, ['ls-remote', '--symref', remote, 'HEAD'], token, askpassHelperPath()), timeoutMs);
        const match = /^ref: refs\/heads\/(\S+)\s+HEAD$/m.exec(listed);
        if (match === null) throw new Error(`${remote} names no default branch`);
        return match[1]!;
      } catch (error) {
        throw fail(`find the default branch of ${remote} (set publish.base)`, error);
      }
    },
  };
}
