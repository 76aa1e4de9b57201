import { formatPreflightProblem, type PreflightProblem } from '../adapters/preflight/local-preflight.js';
import type { FactoryConfig } from '../config/load.js';
import { preflightProblemsFor } from '../main.js';

/**
 * The problems `start` would refuse on, for the verbs that only look (`triage`
 * and the dry runs): shown as warnings, so "would dispatch" is not the last
 * word on a config whose every team would end spawn-failed. With
 * `fleet.backend: "bullmq"` the teams run on workers, which check their own.
 */
export async function preflightWarnings(config: FactoryConfig): Promise<readonly PreflightProblem[]> {
  return config.fleet.backend === 'bullmq' ? [] : preflightProblemsFor(config);
}

export function formatPreflightWarnings(problems: readonly PreflightProblem[]): string[] {
  if (problems.length === 0) return [];
  return ['warning: every team would fail to start, and `factory start` refuses this config until it is fixed:', ...problems.map((problem) => `  ${formatPreflightProblem(problem)}`)];
}
