import { z } from 'zod';
import { DEFAULT_TRUSTED_ASSOCIATIONS } from '../domain/shepherd.js';
import { githubLoginSchema } from './source-schema.js';

/**
 * `publish` and `shepherd`: what Factory does with a team's branch when the
 * issue came from GitHub (docs/github.md). Ignored for the local mount, which
 * has nowhere to open a pull request.
 */

export const MERGE_METHODS = ['never', 'squash', 'merge', 'rebase'] as const;
export type MergeMethod = (typeof MERGE_METHODS)[number];

export const publishSchema = z
  .object({
    /** The remote of the repository's checkout that the branch is pushed to. */
    remote: z.string().min(1, 'expected a remote name such as "origin"').default('origin'),
    /** Base branch of the pull request; default: the repository's default branch as GitHub reports it. */
    base: z.string().min(1).optional(),
    /** Merge the pull request once CI and review pass; `never` leaves merging to people. */
    merge: z.enum(MERGE_METHODS).default('never'),
  })
  .strict()
  .default({});

/** GitHub's `author_association` values (the pull request review object). */
export const AUTHOR_ASSOCIATIONS = ['OWNER', 'MEMBER', 'COLLABORATOR', 'CONTRIBUTOR', 'FIRST_TIME_CONTRIBUTOR', 'FIRST_TIMER', 'MANNEQUIN', 'NONE'] as const;

export const shepherdSchema = z
  .object({
    /** Fix rounds per pull request (CI failures and change requests together) before a human is asked. */
    maxRounds: z.number().int('expected a whole number of rounds').min(0).max(20).default(3),
    /** Time between two looks at each open pull request Factory watches. */
    pollIntervalMs: z.number().int().positive('expected a positive number of milliseconds').default(60_000),
    /**
     * Whose pull request reviews count, for the merge and for fix rounds:
     * anyone can review on a public repository. Factory's own reviews never count.
     */
    trustedReviewers: z
      .object({
        associations: z.array(z.enum(AUTHOR_ASSOCIATIONS)).default([...DEFAULT_TRUSTED_ASSOCIATIONS]),
        logins: z.array(githubLoginSchema).default([]),
      })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

export type PublishConfig = z.output<typeof publishSchema>;
export type ShepherdConfig = z.output<typeof shepherdSchema>;
