import { READY_STATE, type Issue } from './issue.js';

/**
 * Triage: is an issue in scope, and which checkout does it go to? Pure rules,
 * so `factory triage <KEY>` shows exactly what the daemon would decide.
 */

export interface TriageRules {
  readonly requireLabel: string;
  readonly titlePrefix: string;
  readonly repos: {
    readonly default?: string | undefined;
    readonly byLabel: Readonly<Record<string, string>>;
    readonly rules: readonly { readonly keyword: string; readonly repo: string }[];
  };
}

/** The triage rules of a loaded config: the one place they are picked out of it (daemon, dry run, triage). */
export function triageRulesFor(config: { readonly safety: { readonly requireLabel: string; readonly titlePrefix: string }; readonly repos: TriageRules['repos'] }): TriageRules {
  return { requireLabel: config.safety.requireLabel, titlePrefix: config.safety.titlePrefix, repos: config.repos };
}

export type TriageDecision = { readonly verdict: 'dispatch'; readonly repo: string; readonly routedBy: string } | { readonly verdict: 'skip'; readonly reason: string };

export function triageIssue(issue: Issue, rules: TriageRules): TriageDecision {
  if (issue.state !== READY_STATE) {
    return { verdict: 'skip', reason: `state is "${issue.state}", not "${READY_STATE}"` };
  }
  if (rules.requireLabel !== '' && !issue.labels.some((label) => sameLabel(label, rules.requireLabel))) {
    return { verdict: 'skip', reason: `missing the required label "${rules.requireLabel}"` };
  }
  if (rules.titlePrefix !== '' && !issue.title.startsWith(rules.titlePrefix)) {
    return { verdict: 'skip', reason: `title does not start with "${rules.titlePrefix}"` };
  }
  return routeIssue(issue, rules.repos);
}

/**
 * Labels compare without case, as GitHub and Linear compare them: `Factory`
 * is the label `factory`. (The config refuses two byLabel keys that differ only by case.)
 */
export function labelIdentity(label: string): string {
  return label.toLowerCase();
}

export function sameLabel(a: string, b: string): boolean {
  return labelIdentity(a) === labelIdentity(b);
}

function routeIssue(issue: Issue, repos: TriageRules['repos']): TriageDecision {
  const repoByLabel = new Map(Object.entries(repos.byLabel).map(([label, repo]) => [labelIdentity(label), repo]));
  for (const label of issue.labels) {
    const repo = repoByLabel.get(labelIdentity(label));
    if (repo !== undefined) return { verdict: 'dispatch', repo, routedBy: `label "${label}"` };
  }
  const text = `${issue.title}\n${issue.body}`.toLowerCase();
  for (const rule of repos.rules) {
    if (text.includes(rule.keyword.toLowerCase())) return { verdict: 'dispatch', repo: rule.repo, routedBy: `keyword "${rule.keyword}"` };
  }
  if (repos.default !== undefined) return { verdict: 'dispatch', repo: repos.default, routedBy: 'repos.default' };
  return { verdict: 'skip', reason: 'no repo matches: no repos.byLabel label, no repos.rules keyword, and no repos.default' };
}

/** `factory/FAC-12`: one branch per issue, shared by its implementer and reviewer. */
export function branchNameFor(issueKey: string, prefix: string): string {
  return `${prefix}${issueKey}`;
}
