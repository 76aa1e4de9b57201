/**
 * The error catalog. Every error a user can cause or meet has a code
 * (FACTORY_<AREA>_<WHAT>), a message that says what was expected and what was
 * found, and a hint to fix it. docs/errors.md lists them all; a test fails when
 * the two drift apart. Match on `code`, never on message text.
 */

export const ERROR_CATALOG = {
  FACTORY_CONFIG_NOT_FOUND: { exitCode: 2, hint: 'Run `factory init` to write a starter config, or pass --config PATH.' },
  FACTORY_CONFIG_UNREADABLE: { exitCode: 2, hint: 'The config file exists but could not be read; check its permissions (and that it is a file, not a folder).' },
  FACTORY_CONFIG_INVALID: { exitCode: 2, hint: 'Fix each listed key; docs/configuration.md lists every key with its default.' },
  FACTORY_USAGE: { exitCode: 2, hint: 'Run `factory --help` for the verbs and their flags.' },
  FACTORY_ISSUE_NOT_FOUND: { exitCode: 2, hint: 'Check the key or path; `factory run-once --dry-run` lists the issues Factory can see.' },
  FACTORY_ISSUE_SOURCE_UNAVAILABLE: { exitCode: 2, hint: 'Create the folder, or point mount.root in the config at the folder that holds your issue files.' },
  FACTORY_ISSUE_INVALID: { exitCode: 2, hint: 'An issue is JSON {"key","title","body","labels","state"} or Markdown with front matter; see docs/issues.md.' },
  FACTORY_DAEMON_ALREADY_RUNNING: { exitCode: 3, hint: 'Stop the running daemon with `factory kill-loop`, or use another config (its own heartbeat, registry and state paths).' },
  FACTORY_DAEMON_NOT_RUNNING: { exitCode: 3, hint: 'Start it with `factory start --mode live`; `factory loop-status` shows the verdict.' },
  FACTORY_DAEMON_IDENTITY_MISMATCH: { exitCode: 3, hint: 'The heartbeat names a process that is no longer the daemon that wrote it; nothing was signalled. Run `factory reap-orphans` to clean up.' },
  FACTORY_HEARTBEAT_UNREADABLE: { exitCode: 1, hint: 'The heartbeat file is torn or was edited by hand; a running daemon rewrites it on its next refresh.' },
  FACTORY_STATE_STALE_EPOCH: { exitCode: 3, hint: 'A newer daemon took over this state; this one must stop. Check for two daemons on one config.' },
  FACTORY_STATE_READ_ONLY: { exitCode: 1, hint: 'A status reader tried to write the state; only the daemon (or a bounded run) that holds the daemon lock writes it.' },
  FACTORY_STATE_UNREADABLE: { exitCode: 1, hint: 'The state database could not be opened; check the `state.dir` path and its permissions.' },
  FACTORY_SESSION_STATE: { exitCode: 1, hint: 'A factory session was used out of order (before open, or opened twice); this is a bug in the caller, not in the config.' },
  FACTORY_PREDECESSOR_UNRESOLVED: { exitCode: 3, hint: 'The previous daemon left agents that could not be reaped; run `factory reap-orphans` and read its report.' },
  FACTORY_REAPER_LOCKED: { exitCode: 4, hint: 'Another reaper holds the lock; it is retried on the next cron run.' },
  FACTORY_REAPER_SURVIVORS: {
    exitCode: 1,
    hint: 'Some orphaned agent processes are still running; the report lists each pid and why. Processes stuck in uninterruptible I/O die when it completes; rerun `factory reap-orphans`.',
  },
  FACTORY_DAEMON_WEDGED: {
    exitCode: 3,
    hint: 'The daemon process is alive but its heartbeat is stale; no agent was touched. Inspect it (is it stopped or hung?), or rerun `factory reap-orphans --terminate-wedged-daemon` to stop it by identity and reap its agents.',
  },
  FACTORY_REGISTRY_UNREADABLE: {
    exitCode: 1,
    hint: 'The in-flight registry is torn or was edited by hand, so no agent can be proven; restore it or remove it after checking for stray processes carrying FACTORY_AGENT_MARKER.',
  },
  FACTORY_AGENT_SPAWN_FAILED: { exitCode: 1, hint: 'Check agents.<role>.command in the config: its first element must be an executable on PATH (or an absolute path), and the worktree must exist.' },
  FACTORY_PREFLIGHT_FAILED: {
    exitCode: 2,
    hint: 'Fix each listed key: a routed repo must be a git checkout with at least one commit, and each agent program must exist (a path) or be on PATH; `factory triage <KEY>` shows the same problems as warnings.',
  },
  FACTORY_WORKSPACE_FAILED: { exitCode: 1, hint: 'Check that the routed repo is a git checkout with at least one commit.' },
  FACTORY_PARK_UNAVAILABLE: {
    exitCode: 1,
    hint: "A resumed run's parked work is neither on the repo's remote nor in this worker's clone; resume it again so it lands on the worker that parked it, or start over with `factory dispatch <KEY> --force`.",
  },
  FACTORY_INIT_CONFIG_EXISTS: { exitCode: 2, hint: 'Pass --force to overwrite it, or --config PATH to write another file.' },
  FACTORY_HTTP_BIND_FAILED: { exitCode: 2, hint: 'Pick a free `http.port` (0 takes any free port; the heartbeat names it), fix `http.host`, or set `http.enabled` to false.' },
  FACTORY_RUN_LOGS_NOT_FOUND: { exitCode: 1, hint: 'Check the issue key; logs live in <state.dir>/logs/<KEY>/ and exist once a team has started on the issue (`factory status` lists runs).' },
  FACTORY_SUBSCRIPTION_FAILED: { exitCode: 5, hint: 'The issue source stopped delivering events and could not recover; the supervisor should restart the daemon.' },
  FACTORY_GITHUB_AUTH_FAILED: { exitCode: 2, hint: 'Check source.github auth: the token variable or file (docs/github.md lists the scopes), or the App id, private key file and installation id.' },
  FACTORY_GITHUB_REQUEST_FAILED: {
    exitCode: 1,
    hint: "GitHub refused or kept failing a request after retries; the message names the request and status. Check the repo name, the token's access to it, and githubstatus.com.",
  },
  FACTORY_GIT_PUSH_FAILED: {
    exitCode: 1,
    hint: "Pushing a run's branch failed; the message has git's answer (credential redacted). Check publish.remote, that the branch fast-forwards, and that the credential may push.",
  },
  FACTORY_GITHUB_IDENTITY_UNKNOWN: {
    exitCode: 2,
    hint: 'Factory trusts its markers only in what its own login wrote, so it must know that login: let the credential read GET /user (token) or GET /app (App), or set source.github.identity.',
  },
  FACTORY_GITHUB_BRANCH_TAKEN: {
    exitCode: 1,
    hint: "Someone else opened a pull request from Factory's branch for this issue; Factory does not adopt it. Close it; the next start publishes the outcome again and opens Factory's own.",
  },
  FACTORY_GITHUB_WRITEBACK_UNVERIFIED: { exitCode: 1, hint: 'A label change did not show when read back (another actor may be editing the labels); it is retried on the next writeback.' },
  FACTORY_RESOURCES_GROUP_FAILED: {
    exitCode: 1,
    hint: "The kernel refused a team's resource group (create, limit, join or remove); `factory status` shows what the machine offers. Run as root, or delegate a cgroup subtree to the daemon (systemd Delegate=yes, docs/resources.md).",
  },
  FACTORY_REDIS_UNREACHABLE: { exitCode: 5, hint: 'Check fleet.redis.url (host, port, password) and that Redis is running and reachable from this machine; the supervisor restarts the daemon.' },
  FACTORY_REDIS_UNSUITABLE: {
    exitCode: 2,
    hint: 'The fleet needs Redis >= 7 with `maxmemory-policy noeviction` and `appendonly yes`; the message names the setting and the line to fix (docs/fleet.md explains why).',
  },
  FACTORY_LEASE_HELD: { exitCode: 4, hint: 'Another control plane holds the leader lease; this one stands by and takes over when the lease expires. `factory status` names the holder.' },
  FACTORY_LEASE_LOST: {
    exitCode: 3,
    hint: 'This control plane lost its leader lease (it could not renew in time, or another took over); it stopped acting and must take a new lease before it writes again.',
  },
  FACTORY_PATH_UNWRITABLE: {
    exitCode: 2,
    hint: 'Factory could not create or write a file or folder it needs. Make it writable by the user that runs factory (or run factory as its owner), free disk space, or point the setting named in the message (state.dir, loop.heartbeatPath, loop.registryPath) at another path.',
  },
  FACTORY_PATH_UNREADABLE: {
    exitCode: 2,
    hint: 'Factory could not read a file or folder it needs. Make it readable by the user that runs factory, or point the setting named in the message (state.dir, loop.heartbeatPath, loop.registryPath) at the right path.',
  },
} as const satisfies Record<string, { exitCode: number; hint: string }>;

export type FactoryErrorCode = keyof typeof ERROR_CATALOG;

/**
 * An error with a code from the catalog. Generic over its code, so a caller
 * that narrowed with `isFactoryError(error, 'FACTORY_X')` holds a
 * `FactoryError<'FACTORY_X'>` and a switch on `code` is checked for
 * exhaustiveness.
 */
export class FactoryError<C extends FactoryErrorCode = FactoryErrorCode> extends Error {
  readonly code: C;
  readonly hint: string;
  readonly exitCode: (typeof ERROR_CATALOG)[C]['exitCode'];
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: C, message: string, options: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FactoryError';
    this.code = code;
    this.hint = options.hint ?? ERROR_CATALOG[code].hint;
    this.exitCode = ERROR_CATALOG[code].exitCode;
    this.details = options.details ?? {};
  }
}

/** Whether `error` is a FactoryError (with `code`, when given); narrows to that code. */
export function isFactoryError<C extends FactoryErrorCode = FactoryErrorCode>(error: unknown, code?: C): error is FactoryError<C> {
  return error instanceof FactoryError && (code === undefined || error.code === code);
}

/** The state store refused a write: a newer daemon epoch owns the state. */
export function staleEpochError(epoch: number, current: number): FactoryError<'FACTORY_STATE_STALE_EPOCH'> {
  return new FactoryError('FACTORY_STATE_STALE_EPOCH', `a write from daemon epoch ${epoch} was refused: epoch ${current} owns the state now`);
}

/** One line for stderr: what went wrong, then how to fix it. */
export function formatErrorLine(error: FactoryError): string {
  return `factory: ${error.message} [${error.code}]\n  hint: ${error.hint}`;
}

/**
 * Filesystem errors a user causes (modes, owners, read-only mounts, full
 * disks, a path through a file), in words for the person who can fix them.
 * Anything else from the filesystem is a bug and keeps its stack.
 */
const USER_FILESYSTEM_ERRNOS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied for the user running factory',
  EPERM: 'operation not permitted for the user running factory',
  EROFS: 'the file system is mounted read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is used up',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'the path is a folder, not a file',
  ELOOP: 'too many symbolic links in the path',
  ENAMETOOLONG: 'the path is too long',
};

/** Where Factory was working when the filesystem refused: what it tried, on which path, and the setting that names it. */
export interface PathUse {
  readonly path: string;
  /** What was being done, as a verb phrase: `create the daemon lock`, `read the heartbeat`. */
  readonly action: string;
  readonly access: 'read' | 'write';
  /** The config key that chooses this path (`state.dir`), when there is one. */
  readonly setting?: string;
}

/**
 * The coded, one-line error for a filesystem error a user caused at `use`
 * (exit 2, naming the path, the operation and the errno), or undefined when
 * `error` is something else. ENOENT counts only when the caller knows it
 * means a missing parent folder: a missing file is not a user mistake here.
 */
export function filesystemError(error: unknown, use: PathUse, options: { missingParent?: boolean } = {}): FactoryError<'FACTORY_PATH_UNWRITABLE' | 'FACTORY_PATH_UNREADABLE'> | undefined {
  if (isFactoryError(error) || typeof error !== 'object' || error === null) return undefined;
  const { code, path: failedPath, syscall } = error as { code?: unknown; path?: unknown; syscall?: unknown };
  if (typeof code !== 'string') return undefined;
  const why =
    code === 'ENOENT'
      ? options.missingParent
        ? 'its parent folder does not exist'
        : undefined
      : // mkdir -p answers EEXIST when a part of the path is a file.
        code === 'EEXIST' && syscall === 'mkdir'
        ? USER_FILESYSTEM_ERRNOS.ENOTDIR
        : USER_FILESYSTEM_ERRNOS[code];
  if (why === undefined) return undefined;
  const where = typeof failedPath === 'string' && failedPath !== use.path ? `, ${typeof syscall === 'string' ? syscall : 'at'} ${failedPath}` : '';
  const setting = use.setting ? ` (${use.setting})` : '';
  return new FactoryError(use.access === 'read' ? 'FACTORY_PATH_UNREADABLE' : 'FACTORY_PATH_UNWRITABLE', `cannot ${use.action} ${use.path}${setting}: ${why} (${code}${where})`, {
    cause: error,
    details: { path: use.path, errno: code, ...(typeof syscall === 'string' ? { syscall } : {}), ...(where ? { failedPath } : {}) },
  });
}
