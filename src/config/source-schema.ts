import { z } from 'zod';
import { parseRepoSlug } from '../domain/github-issue.js';

/**
 * `source`: where issues come from (docs/github.md for GitHub). `mount`, the
 * folder of issue files under `mount.root`, is the default, so a config
 * without `source` runs exactly as before.
 */

const nonEmpty = z.string().min(1, 'expected a non-empty string');
const positiveMs = z.number().int('expected a whole number of milliseconds').positive('expected a positive number of milliseconds');

/** A GitHub user or App bot login. */
export const githubLoginSchema = z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}(?:\[bot\])?$/, 'expected a GitHub login such as "factory-bot" or "my-app[bot]"');

const repoSlug = z.string().superRefine((slug, ctx) => {
  const parsed = parseRepoSlug(slug);
  if (!parsed.ok) ctx.addIssue({ code: z.ZodIssueCode.custom, message: parsed.reason });
});

const githubSourceSchema = z
  .object({
    /** `owner/name` of every repository whose issues Factory takes. */
    repos: z.array(repoSlug).min(1, 'expected at least one "owner/name"'),
    /** An open issue with any of these labels (case-insensitive) is ready. Empty: every open issue is. */
    labels: z.array(nonEmpty).default(['factory']),
    /** REST base URL; `https://HOST/api/v3` for GitHub Enterprise Server. */
    apiUrl: z.string().url('expected a URL such as https://api.github.com').default('https://api.github.com'),
    /** Environment variable holding the token (default `GITHUB_TOKEN` when neither a file nor an App is given). */
    tokenEnv: nonEmpty.optional(),
    /** File holding the token alone. */
    tokenFile: nonEmpty.optional(),
    /** Authenticate as a GitHub App installation instead of with a token. */
    app: z
      .object({
        appId: z.number().int().positive('expected the App id, a positive whole number'),
        privateKeyFile: nonEmpty,
        installationId: z.number().int().positive('expected the installation id, a positive whole number'),
      })
      .strict()
      .optional(),
    /**
     * The login Factory writes as (`<app-slug>[bot]` for an App). Default:
     * learned at start (`GET /user` for a token, `GET /app` for an App). Only
     * markers in comments and pull requests by this login are trusted.
     */
    identity: githubLoginSchema.optional(),
    /** Label name → priority (lower runs first), e.g. {"P0": 0, "P1": 1}. */
    priorityLabels: z.record(z.number().int().min(0)).default({}),
    /** Names of Factory's lifecycle labels. */
    lifecycleLabels: z
      .object({
        queued: nonEmpty.default('factory:queued'),
        working: nonEmpty.default('factory:working'),
        done: nonEmpty.default('factory:done'),
        failed: nonEmpty.default('factory:failed'),
        parked: nonEmpty.default('factory:parked'),
        prOpen: nonEmpty.default('factory:pr-open'),
        needsHuman: nonEmpty.default('factory:needs-human'),
      })
      .strict()
      .default({}),
    /** Shortest time between two polls of one repository; an idle poll is one conditional request, a free 304. */
    pollIntervalMs: positiveMs.default(60_000),
    /**
     * Requests a minute an idle source may make, all repositories together:
     * each repository is polled every max(pollIntervalMs, repos x 60 s / budget),
     * the polls spread evenly. Webhooks bring changes in at once regardless.
     */
    requestBudgetPerMinute: z.number().positive('expected a positive number of requests a minute').default(10),
    /** Environment variable holding the webhook secret (`/webhooks/github` answers 404 without a secret). */
    webhookSecretEnv: nonEmpty.optional(),
    /** File holding the webhook secret alone. */
    webhookSecretFile: nonEmpty.optional(),
    /** Bound on each attempt of each API request. */
    requestTimeoutMs: positiveMs.default(30_000),
  })
  .strict()
  .superRefine((github, ctx) => {
    const ways = [github.tokenEnv !== undefined, github.tokenFile !== undefined, github.app !== undefined].filter(Boolean).length;
    if (ways > 1) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected one of tokenEnv, tokenFile or app, not several' });
    if (github.webhookSecretEnv !== undefined && github.webhookSecretFile !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected one of webhookSecretEnv or webhookSecretFile, not both' });
    }
  });

export const sourceSchema = z
  .object({
    kind: z.enum(['mount', 'github']).default('mount'),
    github: githubSourceSchema.optional(),
  })
  .strict()
  .superRefine((source, ctx) => {
    if (source.kind === 'github' && source.github === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['github'], message: 'expected source.github (at least "repos") when source.kind is "github"' });
    }
  })
  .default({});

export type SourceConfig = z.output<typeof sourceSchema>;
