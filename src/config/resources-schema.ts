import { z } from 'zod';
import { DEFAULT_MEMORY_RESERVE, parseSize, type MemoryReserve, type ResourcesPolicy, type TeamBudget } from '../domain/resource-budget.js';

/**
 * `resources`: per-team budgets and memory admission (docs/resources.md).
 * Every key is optional and the defaults set no limit, so a config without
 * `resources` runs exactly as before.
 */

const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a size such as "4G", "512M" or a whole number of bytes, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return bytes;
});

const budgetSchema = z
  .object({
    memoryMax: size.optional(),
    memoryHigh: size.optional(),
    cpuWeight: z.number().int('expected a whole CPU weight').min(1).max(10_000).optional(),
    /** Cores, e.g. 1.5. */
    cpuMax: z.number().positive('expected a positive number of cores, e.g. 1.5').max(4096).optional(),
    pidsMax: z.number().int('expected a whole number of processes').min(1).optional(),
  })
  .strict()
  .superRefine((budget, ctx) => {
    if (budget.memoryMax !== undefined && budget.memoryHigh !== undefined && budget.memoryHigh > budget.memoryMax) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['memoryHigh'], message: 'expected memoryHigh at most memoryMax (the soft limit sits below the hard one)' });
    }
  })
  .transform((budget): TeamBudget => {
    const out: { -readonly [K in keyof TeamBudget]: TeamBudget[K] } = {};
    if (budget.memoryMax !== undefined) out.memoryMaxBytes = budget.memoryMax;
    if (budget.memoryHigh !== undefined) out.memoryHighBytes = budget.memoryHigh;
    if (budget.cpuWeight !== undefined) out.cpuWeight = budget.cpuWeight;
    if (budget.cpuMax !== undefined) out.cpuMaxCores = budget.cpuMax;
    if (budget.pidsMax !== undefined) out.pidsMax = budget.pidsMax;
    return out;
  });

/** `0.1`, `"10%"` (a share of total memory) or `"2G"` (a fixed size). */
const reserveSchema = z.union([z.string(), z.number()]).transform((value, ctx): MemoryReserve => {
  if (typeof value === 'number' && value >= 0 && value < 1) return { fraction: value };
  const percent = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value) : null;
  if (percent && Number(percent[1]) < 100) return { fraction: Number(percent[1]) / 100 };
  const bytes = parseSize(value);
  if (typeof value === 'string' && bytes !== undefined) return { bytes };
  ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a share of memory ("10%" or 0.1) or a size ("2G"), got ${JSON.stringify(value)}` });
  return z.NEVER;
});

export const resourcesSchema = z
  .object({
    team: budgetSchema.default({}),
    byRepo: z.record(budgetSchema).default({}),
    byLabel: z.record(budgetSchema).default({}),
    reserve: reserveSchema.default(0.1),
    onPressure: z.enum(['hold', 'park', 'ignore']).default('hold'),
    /** Try a team again after outcome `oom` (within dispatch.maxAttempts); off by default, as the same budget would most likely run out again. */
    retryOom: z.boolean().default(false),
  })
  .strict()
  .default({})
  .transform((resources): ResourcesPolicy => ({ ...resources, reserve: resources.reserve ?? DEFAULT_MEMORY_RESERVE }));
