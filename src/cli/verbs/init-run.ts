import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compileConfig, DEFAULT_CONFIG_FILE } from '../../config/load.js';
import { FactoryError } from '../../errors.js';
import { flagBoolean, flagString, type ParsedArgs } from '../args.js';
import type { Output } from '../output.js';
import { formatPreflightWarnings, preflightWarnings } from '../preflight-warnings.js';

/** The starter config `factory init` writes: every key a new user is likely to touch. */
export function starterConfig(): Record<string, unknown> {
  return {
    mount: { root: './issues' },
    repos: { default: '.', byLabel: {}, rules: [] },
    safety: { requireLabel: 'factory', titlePrefix: '' },
    agents: {
      // Agents get only an allowlist of the daemon's environment: each CLI's API key is passed on by name.
      implementer: { command: ['claude', '-p', '{{prompt}}'], envPassthrough: ['ANTHROPIC_API_KEY'] },
      reviewer: { command: ['codex', 'exec', '{{prompt}}'], envPassthrough: ['OPENAI_API_KEY'] },
    },
    dispatch: { batchSize: 1, maxAttempts: 2, teamMode: 'sequential' },
    runs: { maxRuntimeMs: 3_600_000, stallLimitMs: 900_000 },
    loop: { heartbeatPath: '.factory/heartbeat.json', registryPath: '.factory/registry.json', heartbeatStaleMs: 60_000 },
  };
}

const EXAMPLE_ISSUE = {
  key: 'EXAMPLE-1',
  title: 'Add a CONTRIBUTING.md',
  body: 'Write a short CONTRIBUTING.md that explains how to run the tests.\n\nChange "state" to "ready" when you want an agent team to pick this up.',
  labels: ['factory'],
  state: 'draft',
};

/** `factory init` (its usage and flags are in init.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const configPath = resolve(flagString(args, 'config') ?? DEFAULT_CONFIG_FILE);
  if (existsSync(configPath) && !flagBoolean(args, 'force')) {
    throw new FactoryError('FACTORY_INIT_CONFIG_EXISTS', `${configPath} already exists`);
  }
  writeFileSync(configPath, `${JSON.stringify(starterConfig(), null, 2)}\n`);
  const issues = join(resolve(configPath, '..'), 'issues');
  mkdirSync(issues, { recursive: true });
  const example = join(issues, `${EXAMPLE_ISSUE.key}.json`);
  if (!existsSync(example)) writeFileSync(example, `${JSON.stringify(EXAMPLE_ISSUE, null, 2)}\n`);
  // Said now, not at the first run: `claude`/`codex` not installed, or a folder that is not a git checkout yet.
  const warnings = formatPreflightWarnings(await preflightWarnings(compileConfig(starterConfig(), configPath)));
  output.out(
    `wrote ${configPath}\nwrote ${example} (state "draft": set it to "ready" to dispatch)\n${warnings.length > 0 ? `\n${warnings.join('\n')}\n` : ''}\nnext: add .factory/ to .gitignore, check agents.*.command, then run \`factory run-once --dry-run\``,
  );
  return 0;
}
