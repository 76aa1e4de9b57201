import { z } from 'zod';
import { describeBranchNameProblem } from '../domain/git-ref-format.js';
import { labelIdentity } from '../domain/triage.js';
import { describeScriptPlaceholderFix, findPlaceholdersInScripts } from '../domain/prompt.js';
import { ENV_PASSTHROUGH_PATTERN } from '../domain/env-passthrough.js';
import { resourcesSchema } from './resources-schema.js';
import { sourceSchema } from './source-schema.js';
import { publishSchema, shepherdSchema } from './publish-schema.js';
import { agentDriverFields, checkAgentDriver, compileAgentDriver } from './agent-driver-schema.js';

/**
 * The config file's schema with every default. Raw JSON is validated once at
 * startup, every problem reported at once, then compiled into a frozen
 * `FactoryConfig` with absolute paths (see load.ts). docs/configuration.md
 * documents each key; keep the two in step.
 */

const nonEmpty = z.string().min(1, 'expected a non-empty string');

/**
 * A routed repo: a path, or a remote URL a fleet worker clones. A URL that
 * carries a credential (`https://TOKEN@host/…`, `https://user:pass@host/…`)
 * would be written by `git clone` into the clone's .git/config, which every
 * worktree shares and every agent can read: refused. `ssh://git@host/…` and
 * `git@host:…` name a user, not a secret, and pass.
 */
const repoRef = nonEmpty.refine((repo) => !/^https?:\/\/[^/@\s]+@/i.test(repo) && !/^[a-z][a-z0-9+.-]*:\/\/[^/@\s:]+:[^/@\s]*@/i.test(repo), {
  message:
    "expected a repo URL without credentials: git would write them into each worker's clone (.git/config), where agents can read them. Remove them and give git the credential another way: an SSH deploy key, or a credential helper on the worker",
});
const positiveMs = z.number().int('expected a whole number of milliseconds').positive('expected a positive number of milliseconds');
const argv = z.array(nonEmpty).min(1, 'expected a command as a non-empty array of strings, e.g. ["claude", "-p", "{{prompt}}"]');

/** A placeholder inside a shell script (or `python -c` code) would run issue text as code: refused, with the variable to use instead. */
const agentCommand = argv.superRefine((command, ctx) => {
  for (const found of findPlaceholdersInScripts(command)) {
    const what = found.placeholders.map((name) => `{{${name}}}`).join(', ');
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: [found.index], message: `expected no ${what} inside the ${found.program} script: ${describeScriptPlaceholderFix(found.placeholders)}` });
  }
});

const agentSchema = z
  .object({
    /** With a CLI driver: the executable (default `claude` / `codex`). */
    command: agentCommand.optional(),
    ...agentDriverFields,
    env: z.record(z.string()).default({}),
    /** Names (or `PREFIX_*` globs) of daemon environment variables the agent gets, besides PATH, HOME, LANG, LC_*, TERM, TMPDIR, USER, SHELL. */
    envPassthrough: z.array(z.string().regex(ENV_PASSTHROUGH_PATTERN, 'expected a variable name such as "ANTHROPIC_API_KEY", or a prefix glob such as "OPENAI_*"')).default([]),
    /** Extra instruction appended to the role's built-in one. */
    instruction: z.string().optional(),
    /** This role reports a review verdict (FACTORY_REVIEW_FILE), and its stage is a review stage; default on for `reviewer` only. */
    reviews: z.boolean().optional(),
  })
  .strict()
  .superRefine(checkAgentDriver)
  .transform(compileAgentDriver);

/**
 * Loopback binds are the default because the status API shows issue text and
 * agent logs; anything else must be asked for with `http.allowNonLoopback`.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

const httpSchema = z
  .object({
    /** `factory start` serves the status API, metrics and dashboard. */
    enabled: z.boolean().default(true),
    host: nonEmpty.default('127.0.0.1'),
    /** 0 picks any free port; the heartbeat's `http.url` names the one chosen. */
    port: z.number().int('expected a whole port number').min(0).max(65_535).default(7420),
    allowNonLoopback: z.boolean().default(false),
  })
  .strict()
  .superRefine((http, ctx) => {
    if (!http.allowNonLoopback && !isLoopbackHost(http.host)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['host'],
        message: 'expected a loopback address (127.0.0.1, ::1 or localhost), since the API shows issue text and agent logs; set http.allowNonLoopback to true to bind it anyway',
      });
    }
  });

/** Pool names go into Redis keys and queue names, so they stay plain. */
const poolName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');

const fleetSchema = z
  .object({
    backend: z.enum(['local', 'bullmq']).default('local'),
    redis: z
      .object({
        /** redis://[user:password@]host:port[/db] or rediss:// for TLS; the password is never logged. */
        url: z.string().regex(/^rediss?:\/\/./, 'expected a redis:// or rediss:// URL, e.g. "redis://127.0.0.1:6379"'),
        /** Prefix of every key Factory writes, before the pool: `<keyPrefix>:{<pool>}:...`. */
        keyPrefix: poolName.default('factory'),
      })
      .strict()
      .optional(),
    /** Queue name suffix and key namespace: control planes and workers of one pool share a lease and a state. */
    pool: poolName.default('default'),
    /** The control-plane leader lease (docs/fleet.md): a standby takes over within ttlMs of the leader's death. */
    lease: z
      .object({
        ttlMs: positiveMs.default(15_000),
        renewEveryMs: positiveMs.default(5_000),
        /** The leader stops acting this long before its lease could expire. */
        safetyMarginMs: positiveMs.default(2_000),
      })
      .strict()
      .default({})
      .refine((lease) => 2 * lease.renewEveryMs < lease.ttlMs - lease.safetyMarginMs, {
        message: 'expected renewEveryMs under half of (ttlMs - safetyMarginMs), so two renewals fit before the leader stops',
      }),
    /** Team-run queue timing; control planes and workers of one pool must agree (docs/fleet.md). */
    queue: z
      .object({
        /** A worker that has not renewed a run's lock for this long loses the run (it self-fences before). */
        lockDurationMs: positiveMs.default(120_000),
        /** How often lapsed locks are looked for; a lost run is declared after its lock lapsed plus this. */
        stalledIntervalMs: positiveMs.default(30_000),
        /** Entries kept per run event stream (XADD MAXLEN ~). */
        eventsMaxLen: z.number().int().min(10).max(100_000).default(1_000),
        /** How long a finished run's job and event stream stay in Redis once its outcome is recorded (for inspection and a restart racing the record). */
        finishedRetentionMs: positiveMs.default(3_600_000),
        /** At most this many completed jobs are kept (BullMQ removeOnComplete count), whatever their age. */
        finishedJobsKept: z.number().int().min(0).max(100_000).default(1_000),
        /** How long a failed job (a run a worker refused or lost) stays in Redis for inspection. */
        failedRetentionMs: positiveMs.default(24 * 3_600_000),
        /** At most this many failed jobs are kept (BullMQ removeOnFail count), whatever their age. */
        failedJobsKept: z.number().int().min(0).max(100_000).default(1_000),
      })
      .strict()
      .default({}),
    /** `factory worker` on this machine. */
    worker: z
      .object({
        /** Team runs at once. */
        slots: z.number().int().min(1).max(256).default(1),
        /** This worker's name in events and status; default the host name. */
        node: poolName.optional(),
        /** On SIGTERM, runs get this long to finish before they are stopped and handed back to the queue. */
        shutdownGraceMs: positiveMs.default(30_000),
        /** Folder of per-worker clones of each routed repo (path or URL), fetched before each run; absent: the repo path is used as is. */
        repoCacheDir: nonEmpty.optional(),
        /** How long one git command against the remote (clone, fetch, push) may take before the run fails: a stalled network must not hold a slot forever. */
        remoteGitTimeoutMs: positiveMs.default(1_800_000),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((fleet, ctx) => {
    if (fleet.backend === 'bullmq' && fleet.redis === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['redis'], message: 'expected fleet.redis.url when fleet.backend is "bullmq", e.g. { "url": "redis://127.0.0.1:6379" }' });
    }
  });

const positiveCount = z.number().int('expected a whole number').positive('expected a positive number');
const positiveUsd = z.number().positive('expected a positive amount in US dollars').finite();

const budgetsSchema = z
  .object({
    /** Per run of a team, all its agents together (usage as the agents report it). */
    run: z
      .object({
        maxTokens: positiveCount.optional(),
        maxCostUsd: positiveUsd.optional(),
        maxTurns: positiveCount.optional(),
      })
      .strict()
      .default({}),
    /** Per calendar day (UTC), every run together. */
    daily: z
      .object({
        maxCostUsd: positiveUsd.optional(),
      })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

export const configSchema = z
  .object({
    mount: z.object({ root: nonEmpty }).strict(),
    repos: z
      .object({
        default: repoRef.optional(),
        byLabel: z.record(repoRef).superRefine(refuseLabelsEqualIgnoringCase).default({}),
        /** Keyword rules: the first rule whose keyword appears in the title or body (case-insensitive) routes the issue. */
        rules: z.array(z.object({ keyword: nonEmpty, repo: repoRef }).strict()).default([]),
      })
      .strict()
      .default({}),
    safety: z
      .object({
        requireLabel: z.string().default('factory'),
        titlePrefix: z.string().default(''),
      })
      .strict()
      .default({}),
    /** One command per role. Roles other than implementer and reviewer must be used by `team.stages`. */
    agents: z
      .object({
        implementer: agentSchema,
        reviewer: agentSchema.optional(),
      })
      .catchall(agentSchema),
    /** The team as stages of role names; without it, implementer then reviewer per `dispatch.teamMode`. */
    team: z
      .object({
        stages: z.array(z.array(nonEmpty).min(1, 'expected at least one role in each stage')).min(1, 'expected at least one stage').optional(),
      })
      .strict()
      .default({}),
    dispatch: z
      .object({
        batchSize: z.number().int().min(1).max(4096).default(1),
        maxAttempts: z.number().int().min(1).max(100).default(2),
        backoffBaseMs: positiveMs.default(10_000),
        backoffMaxMs: positiveMs.default(300_000),
        /** `sequential`: implementer, then reviewer on its branch. `parallel`: both at once, as the seed's pairs. */
        teamMode: z.enum(['sequential', 'parallel']).default('sequential'),
        /** Runs of one issue cut short by daemon crashes in a row before Factory gives the issue up. */
        maxCrashInterruptions: z.number().int().min(1).max(1000).default(3),
        branchPrefix: z
          .string()
          .regex(/^[A-Za-z0-9._/-]*$/, 'expected letters, digits, ".", "_", "-" or "/"')
          .refine(
            isUsableBranchPrefix,
            'expected a prefix that makes a valid git branch name with every issue key (no "//", no leading "/" or "-", no part starting with "." or ending in ".lock", no "..", not ending in "." or ".lo"), e.g. "factory/"',
          )
          .default('factory/'),
      })
      .strict()
      .default({}),
    runs: z
      .object({
        maxRuntimeMs: positiveMs.default(3_600_000),
        stallLimitMs: positiveMs.default(900_000),
        /** How often running teams are checked for stall and timeout. */
        superviseIntervalMs: positiveMs.default(5_000),
        killGraceMs: positiveMs.default(5_000),
        /** A team whose agents all exited 0 but left no commit on its branch ends `no-changes` (not retried) unless this is on. */
        allowNoChanges: z.boolean().default(false),
        /** An issue with this label (any case) may end without a commit even when allowNoChanges is off. */
        allowNoChangesLabel: nonEmpty.optional(),
      })
      .strict()
      .default({}),
    intake: z
      .object({
        transport: z.enum(['subscribe', 'poll', 'subscribe-and-poll']).default('subscribe-and-poll'),
        reconcileIntervalMs: positiveMs.default(60_000),
        /** Events within this window are coalesced into one intake pass. */
        debounceMs: z.number().int().min(0).default(20),
        /** How often a probe is written into the source to prove events flow end to end. */
        probeIntervalMs: positiveMs.default(30_000),
        /** A probe not seen back within this time marks the subscription wedged: resubscribe and reconcile. */
        probeTimeoutMs: positiveMs.default(5_000),
        /** Unhealthy (wedged, reconnecting, failing reconciles) for longer than this: the daemon exits non-zero. */
        unhealthyLimitMs: positiveMs.default(300_000),
      })
      .strict()
      .default({}),
    loop: z
      .object({
        /** Absent: `<state.dir>/heartbeat.json`, so two configs with their own state.dir never share one. */
        heartbeatPath: nonEmpty.optional(),
        /** Absent: `<state.dir>/registry.json` (see heartbeatPath). */
        registryPath: nonEmpty.optional(),
        heartbeatStaleMs: positiveMs.default(60_000),
        heartbeatIntervalMs: positiveMs.default(15_000),
        /** Bounded loops stop after this many consecutive failed iterations. */
        maxConsecutiveFailures: z.number().int().min(1).default(3),
        /** Pause between bounded-loop iterations. */
        iterationDelayMs: z.number().int().min(0).default(1_000),
      })
      .strict()
      .default({}),
    state: z
      .object({
        /** Folder for the state database, run logs and worktrees. */
        dir: nonEmpty.default('.factory'),
      })
      .strict()
      .default({}),
    /** Worktree retention (docs/operations.md): how long a finished issue's worktree stays on disk. */
    workspace: z
      .object({
        /** A worktree whose issue finished is removed once untouched this long (its branch stays, uncommitted work goes to a ref); 0 or "never": kept for good. */
        keepFinishedForMs: z
          .union([z.number().int('expected a whole number of milliseconds').min(0, 'expected 0 (never remove) or more milliseconds'), z.literal('never')])
          .default(7 * 86_400_000)
          .transform((value) => (value === 'never' || value === 0 ? null : value)),
        /** How often the live daemon applies that rule (also once at start). */
        pruneIntervalMs: positiveMs.default(3_600_000),
      })
      .strict()
      .default({}),
    reaper: z
      .object({
        graceMs: positiveMs.default(5_000),
      })
      .strict()
      .default({}),
    /** Review rounds (docs/agents.md): reviews per review stage before the run ends `changes-requested`. */
    review: z
      .object({
        maxRounds: z.number().int('expected a whole number of rounds').min(1).max(20).default(2),
      })
      .strict()
      .default({}),
    /** Usage budgets per run and per day (docs/agents.md); over one, the run is parked, not failed. */
    budgets: budgetsSchema,
    /** Per-team budgets and memory admission (docs/resources.md); absent, nothing is limited. */
    resources: resourcesSchema,
    /** Where issues come from: the mount (default) or GitHub (docs/github.md). */
    source: sourceSchema,
    /** GitHub issues: push the branch and open a draft pull request (docs/github.md). */
    publish: publishSchema,
    /** GitHub issues: follow each pull request through CI and review (docs/github.md). */
    shepherd: shepherdSchema,
    http: httpSchema.default({}),
    /** Where teams run: this machine (`local`), or BullMQ workers on Redis with a fenced leader lease (`bullmq`, docs/fleet.md). */
    fleet: fleetSchema.default({}),
  })
  .strict()
  .superRefine((config, ctx) => checkTeamRoles(config.agents, config.team.stages, ctx));

const BUILT_IN_ROLES = new Set(['implementer', 'reviewer']);

/** Every stage role names a configured agent, and every extra agent is used by a stage (a misspelt role is an error, not a silent no-op). */
function checkTeamRoles(agents: Record<string, unknown>, stages: readonly (readonly string[])[] | undefined, ctx: z.RefinementCtx): void {
  const used = new Set(stages?.flat() ?? []);
  stages?.forEach((roles, stage) =>
    roles.forEach((role, index) => {
      if (agents[role] === undefined) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['team', 'stages', stage, index], message: `expected a role configured under agents (${Object.keys(agents).join(', ')})` });
      }
    }),
  );
  for (const role of Object.keys(agents)) {
    if (!BUILT_IN_ROLES.has(role) && !used.has(role)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['agents', role], message: `expected a role used by team.stages; "${role}" is in no stage (check the spelling, or add it to a stage)` });
    }
  }
}

/** Labels compare without case (domain/triage.ts), so `API` and `api` would be one label routed two ways. */
function refuseLabelsEqualIgnoringCase(byLabel: Record<string, string>, ctx: z.RefinementCtx): void {
  const seen = new Map<string, string>();
  for (const label of Object.keys(byLabel)) {
    const first = seen.get(labelIdentity(label));
    if (first !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected each label once, ignoring case: "${first}" and "${label}" are the same label` });
    }
    seen.set(labelIdentity(label), label);
  }
}

/**
 * Valid keys are git-valid branch names that start with a letter or digit
 * (domain/issue.ts); `prefix + key` is then valid whenever `prefix + "X"` is
 * and the prefix does not end in the start of ".lock" ("factory." + "lock"
 * or "factory.lo" + "ck" would end in ".lock").
 */
function isUsableBranchPrefix(prefix: string): boolean {
  return !/\.(?:l|lo|loc)?$/.test(prefix) && describeBranchNameProblem(`${prefix}X`) === undefined;
}

export type RawFactoryConfig = z.input<typeof configSchema>;
export type ParsedFactoryConfig = z.output<typeof configSchema>;
