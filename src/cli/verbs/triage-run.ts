import { placeholderValues, renderArgument, renderPrompt } from '../../domain/prompt.js';
import { branchNameFor, triageIssue, triageRulesFor } from '../../domain/triage.js';
import { createIssueSource } from '../../main.js';
import { flagBoolean, type ParsedArgs } from '../args.js';
import { runtimeFromArgs } from '../context.js';
import { printJson, type Output } from '../output.js';
import { formatPreflightWarnings, preflightWarnings } from '../preflight-warnings.js';
import { FactoryError } from '../../errors.js';
import { readClaimsReadOnly } from './run-once-run.js';

/** The one issue argument; `takes` says what the verb accepts (`logs` reads logs by key, having no issue file to look at). */
export function issueArgument(args: ParsedArgs, verb: string, takes = 'one issue key or file path'): string {
  const target = args.positionals[0];
  if (target === undefined || args.positionals.length > 1) throw new FactoryError('FACTORY_USAGE', `\`factory ${verb}\` takes exactly ${takes}`);
  return target;
}

/** `factory triage` (its usage and flags are in triage.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const runtime = runtimeFromArgs(args);
  const { config } = runtime;
  const issue = await (await createIssueSource(runtime)).read(issueArgument(args, 'triage'));
  const decision = triageIssue(issue, triageRulesFor(config));
  const branch = branchNameFor(issue.key, config.dispatch.branchPrefix);
  const claim = (await readClaimsReadOnly(runtime)).get(issue.key) ?? null;
  const contextFor = (role: string, instruction: string | undefined) => ({ issue, role, branch, worktree: '(worktree)', runId: '(run)', attempt: 1, extraInstruction: instruction });
  // The team as the run gets it; the prompt shown is the first agent's (the role that starts the work).
  const first = config.teamStages[0]?.agents[0];
  const prompt = first ? renderPrompt(contextFor(first.role, first.agent.instruction)) : '';
  // Every agent's argv as the run renders it (the same renderer), with the (long) prompt shown below instead of inline.
  const agents = config.teamStages.flatMap((stage, index) =>
    stage.agents.map(({ role, slot, agent }) => ({
      stage: index + 1,
      slot,
      role,
      command: agent.command.map((arg) => renderArgument(arg, { ...placeholderValues(contextFor(role, agent.instruction)), prompt: '<prompt>' })),
    })),
  );
  const command = agents[0]?.command ?? [];
  const warnings = await preflightWarnings(config);
  const result = {
    issue: { key: issue.key, title: issue.title, labels: issue.labels, state: issue.state, revision: issue.revision, location: issue.location },
    decision,
    branch,
    claim,
    command,
    agents,
    prompt,
    warnings,
  };
  if (flagBoolean(args, 'json')) printJson(output, result);
  else {
    output.out(`${issue.key}: ${issue.title}`);
    output.out(decision.verdict === 'dispatch' ? `  in scope: dispatch to ${decision.repo} (routed by ${decision.routedBy}) on branch ${branch}` : `  skipped: ${decision.reason}`);
    for (const line of formatPreflightWarnings(warnings)) output.out(`  ${line}`);
    output.out(`  claim: ${claim ? `${claim.status}, attempt ${claim.attempt}${claim.revision === issue.revision ? '' : ' (an earlier revision)'}` : 'none'}`);
    // JSON quoting shows where each argument starts and ends, which a space-joined line hides.
    for (const agent of agents) output.out(`  ${agent.slot} (stage ${agent.stage}): ${JSON.stringify(agent.command)}`);
    if (first) output.out(`\n--- ${first.role} prompt ---\n${prompt}`);
  }
  return decision.verdict === 'dispatch' ? 0 : 1;
}
