import { z } from 'zod';

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

export const shepherdSchema = z
  .object({
    /** Fix rounds per pull request (CI failures and change requests together) before a human is asked. */
    maxRounds: z.number().int('expected a whole number of rounds').min(0).max(20).default(3),
    /** Time between two looks at each open pull request Factory watches. */
    pollIntervalMs: z.number().int().positive('expected a positive number of milliseconds').default(60_000),
  })
  .strict()
  .default({});

export type PublishConfig = z.output<typeof publishSchema>;
export type ShepherdConfig = z.output<typeof shepherdSchema>;
