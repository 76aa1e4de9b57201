import type { FactoryConfig } from '../../config/load.js';
import { DEFAULT_DRIVER_EXECUTABLE } from '../../domain/agent-events/agent-driver.js';
import { FactoryError, isFactoryError } from '../../errors.js';
import { describeSpawnErrno, lookUpExecutable } from '../fleet/local-process-fleet.js';
import { inspectCheckout } from '../workspace/git-worktree-workspace.js';

/**
 * What would make every team of this config fail at spawn time, found before
 * anything starts: a routed repo that is not a git checkout with a commit, or
 * an agent program that is not installed. Without this, `run-once --dry-run`
 * says "would dispatch", the daemon is healthy, and each issue ends
 * spawn-failed and then gave-up. Checked the way the run does it (the
 * workspace's own checkout inspection, spawn()'s own lookup), so the check and
 * the run cannot disagree.
 */

export interface PreflightProblem {
  /** The config key to change, e.g. `repos.default`, `agents.implementer.command[0]`. */
  readonly key: string;
  readonly problem: string;
  readonly fix: string;
}

const INSTALL_HINT: Readonly<Record<string, string>> = {
  [DEFAULT_DRIVER_EXECUTABLE['claude-code']]: 'install Claude Code (`npm install -g @anthropic-ai/claude-code`)',
  [DEFAULT_DRIVER_EXECUTABLE.codex]: 'install Codex (`npm install -g @openai/codex`)',
};

/** Every repo a rule can route an issue to, under the key that names it. */
function routedRepos(config: FactoryConfig): { key: string; repo: string }[] {
  return [
    ...(config.repos.default === undefined ? [] : [{ key: 'repos.default', repo: config.repos.default }]),
    ...Object.entries(config.repos.byLabel).map(([label, repo]) => ({ key: `repos.byLabel.${label}`, repo })),
    ...config.repos.rules.map((rule, index) => ({ key: `repos.rules[${index}].repo`, repo: rule.repo })),
  ];
}

export async function findRepoProblems(config: FactoryConfig): Promise<PreflightProblem[]> {
  const verdicts = new Map<string, Promise<FactoryError | undefined>>();
  const problems: PreflightProblem[] = [];
  for (const { key, repo } of routedRepos(config)) {
    if (!verdicts.has(repo)) {
      verdicts.set(
        repo,
        inspectCheckout(repo).then(
          () => undefined,
          (error: unknown) => {
            if (isFactoryError(error, 'FACTORY_WORKSPACE_FAILED')) return error;
            throw error;
          },
        ),
      );
    }
    const failure = await verdicts.get(repo);
    if (failure) problems.push({ key, problem: failure.message, fix: failure.hint });
  }
  return problems;
}

/**
 * Each agent's program, looked up as spawn() will: a path as given, a bare
 * name on the PATH the agent gets (its `env.PATH`, else the daemon's). A
 * relative path without `./` is relative to the issue's worktree, which does
 * not exist yet, so it is left to the run.
 */
export function findAgentProgramProblems(config: FactoryConfig, daemonPath: string | undefined): PreflightProblem[] {
  const problems: PreflightProblem[] = [];
  for (const [role, agent] of Object.entries(config.agents)) {
    const program = agent?.command[0];
    if (agent === undefined || program === undefined) continue;
    const isPath = program.includes('/');
    if (isPath && !program.startsWith('/')) continue;
    const found = lookUpExecutable(program, '/', agent.env.PATH ?? daemonPath);
    if (found === 'found') continue;
    const key = `agents.${role}.command[0]`;
    const install = INSTALL_HINT[program];
    const fix =
      found === 'EACCES'
        ? `make it executable (\`chmod +x ${program}\`) or point ${key} at the program`
        : isPath
          ? `point ${key} at the agent program (a path that exists, or a name on PATH)`
          : `${install ? `${install}, ` : 'install it, '}add its folder to PATH, or set ${key} to its absolute path`;
    problems.push({ key, problem: describeSpawnErrno(program, Object.assign(new Error(found), { code: found })), fix });
  }
  return problems;
}

/** Both checks, for a node that runs the teams itself (the local fleet). */
export async function findPreflightProblems(config: FactoryConfig, daemonPath: string | undefined): Promise<PreflightProblem[]> {
  return [...(await findRepoProblems(config)), ...findAgentProgramProblems(config, daemonPath)];
}

export function formatPreflightProblem(problem: PreflightProblem): string {
  return `${problem.key}: ${problem.problem}; fix: ${problem.fix}`;
}

/** Refuses to start on any problem: one FactoryError naming every key and its fix. */
export function assertPreflight(config: FactoryConfig, problems: readonly PreflightProblem[]): void {
  if (problems.length === 0) return;
  const lines = problems.map((problem) => `  ${formatPreflightProblem(problem)}`);
  throw new FactoryError('FACTORY_PREFLIGHT_FAILED', `${config.configPath}: every team would fail to start (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n${lines.join('\n')}`, {
    details: { problems },
  });
}
