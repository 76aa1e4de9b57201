import { constants as fsConstants, lstat as lstatCallback, readFile as readFileCallback, stat as statCallback, watch, type BigIntStats, type FSWatcher } from 'node:fs';
import { open, readdir, readlink, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { FactoryError } from '../../errors.js';
import { isValidIssueKey, type Issue } from '../../domain/issue.js';
import { MAX_ISSUE_FILE_BYTES, deriveIssueKeyFromFileName, describeOversizeIssueFile, issueFileFormatOf, parseIssueFile, type IssueParseResult } from '../../domain/issue-parse.js';
import { renderOutcomeReport } from '../../domain/outcome-report.js';
import type { RunOutcome } from '../../domain/run.js';
import type { Clock } from '../../ports/clock.js';
import type { IssueScan, IssueSource, IssueSourceEvent, IssueSubscription, IssueSubscriptionHandlers, SkippedIssueFile } from '../../ports/issue-source.js';
import { writeFileAtomic } from '../../util/atomic-write.js';

export const DEFAULT_OUTCOME_SUFFIX = '.outcome.md';

/** Enough parallel reads to hide disk latency, few enough to stay far below the open-file limit. */
export const DEFAULT_READ_CONCURRENCY = 64;

/**
 * A parse is reused only for files whose last change is older than this when
 * they were read. File-system timestamps are coarse, so two writes in the same
 * tick can leave identical stats; a margin this wide makes that impossible for
 * a cached entry (git calls this the "racy clean" problem).
 */
const CACHE_RACY_MARGIN_MS = 2000;

/**
 * Probe files prove the watch delivers events end to end. Hidden, so scans
 * never see them; one name per token, so two daemons sharing a mount cannot
 * overwrite each other's probe before their watch reports it.
 */
const PROBE_FILE_PREFIX = '.factory-probe-';
const PROBE_TOKEN_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export interface LocalMountIssueSourceOptions {
  /** The mount folder; resolved against the current directory once, at construction. */
  readonly root: string;
  /** Stamps events with the time they were observed. */
  readonly clock: Clock;
  /** Name ending of outcome reports written next to the issues; default `.outcome.md`. */
  readonly outcomeSuffix?: string;
  /** Files read in parallel during a scan; default 64. */
  readonly readConcurrency?: number;
}

/**
 * Whether a file name in the mount is an issue file: `*.json` or `*.md`, not a
 * dotfile (editor swap files, our own atomic-write temp files, probes), and not
 * one of our outcome reports. Editor backups such as `FAC-1.md~` fail the
 * extension test.
 */
export function isIssueFileName(fileName: string, outcomeSuffix: string = DEFAULT_OUTCOME_SUFFIX): boolean {
  if (fileName.startsWith('.')) return false;
  if (fileName.toLowerCase().endsWith(outcomeSuffix.toLowerCase())) return false;
  return issueFileFormatOf(fileName) !== undefined;
}

/** The identity of one file version: if none of this changed, neither did the content. */
interface FileStamp {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

/** A file version as one short string: what a skipped file is reported once per. */
function revisionOf(stamp: FileStamp): string {
  return `${stamp.dev}:${stamp.ino}:${stamp.size}:${stamp.mtimeNs}:${stamp.ctimeNs}`;
}

interface CachedParse {
  readonly stamp: FileStamp;
  readonly result: IssueParseResult;
}

/** The skip reason for a link in the mount whose target resolves outside it. */
export const LINK_OUTSIDE_MOUNT_REASON = 'links outside the mount are not followed';

/** What reading one file yields: a parse verdict, or nothing because the file is gone or not a regular file. */
type FileReadVerdict = { readonly kind: 'parsed'; readonly result: IssueParseResult; readonly revision?: string } | { readonly kind: 'missing' } | { readonly kind: 'not-a-file' };

/**
 * The embedded default issue source: a folder of issue files (docs/issues.md),
 * watched with one `fs.watch` on the folder. Outcomes are written back as
 * `<KEY>.outcome.md` next to the issues, and that name is filtered from both
 * scans and events, so a writeback never re-triggers intake.
 */
export class LocalMountIssueSource implements IssueSource {
  readonly description: string;
  readonly root: string;
  readonly outcomeSuffix: string;
  readonly #clock: Clock;
  readonly #readConcurrency: number;
  /** Parses by path, so a reconcile pass over unchanged files costs one stat each. */
  #parseCache = new Map<string, CachedParse>();
  /**
   * Which file holds each key, from the last scan and reads since. Lets
   * read(path) apply the scan's duplicate rule without rescanning per event.
   * Undefined until the first scan.
   */
  #pathByKey: Map<string, string> | undefined;
  /** The probe file this source wrote last; removed at the next probe or when a subscription closes. */
  #lastProbePath: string | undefined;

  constructor(options: LocalMountIssueSourceOptions) {
    const outcomeSuffix = options.outcomeSuffix ?? DEFAULT_OUTCOME_SUFFIX;
    if (!/^\.[^/\\]+$/.test(outcomeSuffix)) {
      throw new TypeError(`outcomeSuffix: expected a file name ending that starts with "." such as ".outcome.md", got ${JSON.stringify(outcomeSuffix)}`);
    }
    const readConcurrency = options.readConcurrency ?? DEFAULT_READ_CONCURRENCY;
    if (!Number.isSafeInteger(readConcurrency) || readConcurrency < 1) {
      throw new TypeError(`readConcurrency: expected a positive integer, got ${String(readConcurrency)}`);
    }
    this.root = resolve(options.root);
    this.outcomeSuffix = outcomeSuffix;
    this.description = `local mount ${this.root}`;
    this.#clock = options.clock;
    this.#readConcurrency = readConcurrency;
  }

  /** Where the outcome report for `key` is written. */
  outcomePathFor(key: string): string {
    return join(this.root, `${key}${this.outcomeSuffix}`);
  }

  async scan(): Promise<IssueScan> {
    const fileNames = (await this.#listRoot()).filter((name) => isIssueFileName(name, this.outcomeSuffix));
    fileNames.sort(compareFileNames);

    const verdicts = await mapWithConcurrency(fileNames, this.#readConcurrency, (name) => this.#readIssueFile(join(this.root, name)));

    const parsed: { path: string; issue: Issue }[] = [];
    const skipped: SkippedIssueFile[] = [];
    const claimants = new Map<string, string[]>();
    const liveCache = new Map<string, CachedParse>();
    verdicts.forEach((verdict, index) => {
      const name = fileNames[index] as string;
      const path = join(this.root, name);
      const cached = this.#parseCache.get(path);
      if (cached !== undefined) liveCache.set(path, cached);
      if (verdict.kind !== 'parsed') return;
      if (!verdict.result.ok) {
        skipped.push({ path, reason: verdict.result.reason, ...(verdict.revision ? { revision: verdict.revision } : {}) });
        return;
      }
      parsed.push({ path, issue: verdict.result.value });
      claimants.set(verdict.result.value.key, [...(claimants.get(verdict.result.value.key) ?? []), path]);
    });
    const pathByKey = new Map<string, string>();
    for (const [key, paths] of claimants) pathByKey.set(key, this.#holderAmong(key, paths));
    const issues: Issue[] = [];
    for (const { path, issue } of parsed) {
      const holder = pathByKey.get(issue.key) as string;
      if (holder === path) issues.push(issue);
      else skipped.push({ path, reason: describeDuplicateKey(path, issue.key, holder) });
    }
    // Forget files that are gone, so the cache never outgrows the folder.
    this.#parseCache = liveCache;
    this.#pathByKey = pathByKey;
    return { issues, skipped };
  }

  /**
   * Which of the files (in name order) that claim `key` holds it: the one
   * that held it already (a file added with a key in use never takes the
   * issue over), else the one named after the key, else the first by name.
   */
  #holderAmong(key: string, paths: readonly string[]): string {
    const known = this.#pathByKey?.get(key);
    if (known !== undefined && paths.includes(known)) return known;
    return paths.find((path) => deriveIssueKeyFromFileName(path) === key) ?? (paths[0] as string);
  }

  async read(keyOrPath: string): Promise<Issue> {
    const paths = this.#candidatePaths(keyOrPath);
    if (paths.length === 0) return this.#readByKey(keyOrPath);

    for (const path of paths) {
      if (!isIssueFileName(basename(path), this.outcomeSuffix)) {
        throw new FactoryError('FACTORY_ISSUE_INVALID', `${path} is not an issue file: issues are *.json or *.md, not dotfiles or *${this.outcomeSuffix} reports`, {
          details: { path },
        });
      }
      const verdict = await this.#readIssueFile(path);
      if (verdict.kind === 'missing') continue;
      if (verdict.kind === 'not-a-file') {
        throw new FactoryError('FACTORY_ISSUE_INVALID', `${path} is not a regular file`, { details: { path } });
      }
      if (!verdict.result.ok) throw new FactoryError('FACTORY_ISSUE_INVALID', verdict.result.reason, { details: { path, ...(verdict.revision ? { revision: verdict.revision } : {}) } });
      await this.#refuseShadowedDuplicate(verdict.result.value, path);
      return verdict.result.value;
    }
    throw new FactoryError('FACTORY_ISSUE_NOT_FOUND', `no issue file at ${paths.join(' or ')}`, { details: { paths } });
  }

  async subscribe(handlers: IssueSubscriptionHandlers): Promise<IssueSubscription> {
    const rootStamp = await this.#statRootForWatch();
    let watcher: FSWatcher;
    try {
      watcher = watch(this.root, { persistent: true });
    } catch (error) {
      throw this.#watchFailure(`cannot watch issue folder ${this.root} (${(error as Error).message})`, error);
    }

    let open = true;
    const closeWatcher = (): Promise<void> => {
      open = false;
      watcher.close();
      return this.#removeLastProbe();
    };
    const fail = (error: Error): void => {
      if (!open) return;
      void closeWatcher();
      handlers.onError(error);
    };
    // Every event goes through one chain, so the handler sees events in the
    // order the folder reported them even though each waits for its own stat.
    // A handler that throws ends the subscription through onError instead of
    // crashing the process or silently breaking the chain.
    let delivery: Promise<void> = Promise.resolve();
    const deliver = (produce: () => Promise<IssueSourceEvent | undefined>): void => {
      delivery = delivery
        .then(produce)
        .then((event) => {
          if (event !== undefined && open) handlers.onEvent(event);
        })
        .catch((error: unknown) => fail(error instanceof Error ? error : new Error(String(error))));
    };
    const describeChange = async (fileName: string, atMs: number): Promise<IssueSourceEvent> => {
      const path = join(this.root, fileName);
      // The kind is a hint (consumers re-read the source), so a stat racing a later change is harmless.
      const exists = await stat(path).then(
        () => true,
        (error: NodeJS.ErrnoException) => error.code !== 'ENOENT',
      );
      return { kind: exists ? 'changed' : 'removed', path, atMs };
    };
    // inotify does not report the watched folder's own removal as an error: Node
    // emits a 'rename' named after the folder and then goes silent. Check the
    // folder itself so a removed or replaced mount is reported, not a quiet wedge.
    const checkRootStillWatched = async (): Promise<undefined> => {
      const current = await stat(this.root, { bigint: true }).catch(() => undefined);
      if (current === undefined || current.ino !== rootStamp.ino || current.dev !== rootStamp.dev) {
        fail(this.#watchFailure(`issue folder ${this.root} was removed or replaced; its watch delivers no more events`));
      }
      return undefined;
    };

    watcher.on('change', (_eventType, fileName) => {
      if (!open) return;
      const atMs = this.#clock.now();
      // Some platforms omit the name; the consumer then has to reconcile the whole folder.
      if (fileName === null || fileName === undefined) {
        deliver(async () => ({ kind: 'overflow', atMs }));
        return;
      }
      const name = fileName.toString();
      if (name === basename(this.root)) deliver(checkRootStillWatched);
      // Every event on a probe file echoes its token, removal included: the
      // consumer ignores tokens it is not waiting for, and gating on the file
      // still existing would lose a probe another daemon's cleanup removed first.
      if (name.startsWith(PROBE_FILE_PREFIX)) {
        const token = name.slice(PROBE_FILE_PREFIX.length);
        if (PROBE_TOKEN_PATTERN.test(token)) deliver(async () => ({ kind: 'probe', token, atMs }));
        return;
      }
      if (isIssueFileName(name, this.outcomeSuffix)) deliver(() => describeChange(name, atMs));
    });
    watcher.on('error', (error) => fail(this.#watchFailure(`watch on issue folder ${this.root} failed (${error.message})`, error)));

    return {
      close: async () => {
        if (open) await closeWatcher();
      },
    };
  }

  /**
   * Creates `.factory-probe-<token>` in the mount; the subscription reports it
   * back as a `probe` event. The previous probe file is removed, so at most one
   * is left while the daemon runs and none after its subscription closes.
   */
  async probe(token: string): Promise<void> {
    if (!PROBE_TOKEN_PATTERN.test(token)) {
      throw new TypeError(`probe token: expected 1 to 64 letters, digits, "_" or "-", got ${JSON.stringify(token)}`);
    }
    await this.#removeLastProbe();
    const path = join(this.root, `${PROBE_FILE_PREFIX}${token}`);
    this.#lastProbePath = path;
    // Not an atomic write: the content does not matter, creating the file is the event.
    await writeFile(path, `${token}\n`);
  }

  async #removeLastProbe(): Promise<void> {
    const path = this.#lastProbePath;
    this.#lastProbePath = undefined;
    if (path !== undefined) await rm(path, { force: true }).catch(() => undefined);
  }

  async writeBack(issue: Issue, outcome: RunOutcome): Promise<void> {
    // The key becomes a file name: never let one from any source escape the folder.
    if (!isValidIssueKey(issue.key)) {
      throw new FactoryError('FACTORY_ISSUE_INVALID', `cannot write an outcome for issue key ${JSON.stringify(issue.key)}: not a valid key`, {
        details: { key: issue.key },
      });
    }
    // A report beside a deleted issue would be a stray file nobody asked for,
    // and one beside a file that now holds another issue would be wrong.
    const holder = await this.#fileHoldingKey(issue.key, issue.location);
    if (holder === undefined) return;
    const outcomePath = this.outcomePathFor(issue.key);
    await writeFileAtomic(outcomePath, renderOutcomeReport(issue, outcome));
    // The issue may have gone while the report was written: look again, and
    // take back our report (only ours: its inode) if it has.
    const written = await stat(outcomePath).catch(() => undefined);
    if ((await this.#fileHoldingKey(issue.key, holder)) !== undefined || written === undefined) return;
    const current = await stat(outcomePath).catch(() => undefined);
    if (current !== undefined && current.ino === written.ino && current.dev === written.dev) await rm(outcomePath, { force: true });
  }

  /**
   * The file in the mount that holds `key` now: `likelyPath` first (where it
   * was read), then the last scan's file for the key, then a fresh scan (the
   * file may have been renamed). Undefined when no file holds it any more.
   */
  async #fileHoldingKey(key: string, likelyPath: string): Promise<string | undefined> {
    const holds = async (path: string | undefined): Promise<boolean> => {
      if (path === undefined || dirname(path) !== this.root) return false;
      const verdict = await this.#readIssueFile(path);
      return verdict.kind === 'parsed' && verdict.result.ok && verdict.result.value.key === key;
    };
    if (await holds(likelyPath)) return likelyPath;
    const indexed = this.#pathByKey?.get(key);
    if (indexed !== likelyPath && (await holds(indexed))) return indexed;
    const { issues } = await this.scan();
    return issues.find((candidate) => candidate.key === key)?.location;
  }

  async #listRoot(): Promise<string[]> {
    try {
      return await readdir(this.root);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const problem = code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a folder' : `cannot be read (${(error as Error).message})`;
      // Not FACTORY_ISSUE_NOT_FOUND: intake reads that code as "this issue was removed", and a missing mount removes nothing.
      throw new FactoryError('FACTORY_ISSUE_SOURCE_UNAVAILABLE', `issue folder ${this.root} ${problem}`, {
        details: { root: this.root },
        cause: error,
      });
    }
  }

  /**
   * Reads and parses one file, reusing the cached parse when the file's stamp
   * is unchanged. Never throws: an unreadable file is a parse failure with a reason.
   *
   * Files in the mount are read without following links, except links whose
   * target resolves inside the mount: anyone who can drop a file in the mount
   * must not be able to make the daemon read (and dispatch, or report on) a
   * file elsewhere that only the daemon's user may read.
   */
  async #readIssueFile(path: string, retriesLeft = 1): Promise<FileReadVerdict> {
    const name = basename(path);
    const inMount = dirname(path) === this.root;
    const statStartedAtMs = Date.now();
    let stats;
    try {
      // A file named from outside the mount (`factory triage ./X.json`) is the user's own choice: follow it.
      stats = inMount ? await lstatForScan(path) : await statForScan(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Gone between listing and reading: its removal event will say so; not a malformed file.
      if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
      return { kind: 'parsed', result: { ok: false, reason: `${name}: cannot read (${(error as Error).message})` } };
    }
    if (stats.isSymbolicLink()) return this.#readLinkInMount(path);
    if (!stats.isFile()) return { kind: 'not-a-file' };

    const stamp: FileStamp = { dev: stats.dev, ino: stats.ino, size: stats.size, mtimeNs: stats.mtimeNs, ctimeNs: stats.ctimeNs };
    const cached = this.#parseCache.get(path);
    const revision = revisionOf(stamp);
    if (cached !== undefined && sameStamp(cached.stamp, stamp)) return { kind: 'parsed', result: cached.result, revision };

    let result: IssueParseResult | undefined;
    try {
      result = await readAndParse(path, name, stats.size, Number(stats.mtimeNs / 1_000_000n), inMount);
    } catch (error) {
      // Replaced by a link since the lstat: judge it again as the link it now is.
      if ((error as NodeJS.ErrnoException).code === 'ELOOP' && retriesLeft > 0) return this.#readIssueFile(path, retriesLeft - 1);
      return { kind: 'parsed', result: { ok: false, reason: `${name}: cannot read (${(error as Error).message})` } };
    }
    if (result === undefined) return { kind: 'missing' };
    // Wall time on purpose, not the clock port: it is compared with file-system timestamps.
    const settledLongEnough = Number(stats.ctimeNs / 1_000_000n) < statStartedAtMs - CACHE_RACY_MARGIN_MS;
    if (settledLongEnough) this.#parseCache.set(path, { stamp, result });
    else this.#parseCache.delete(path);
    return { kind: 'parsed', result, revision };
  }

  /**
   * A link in the mount: read only when where it ends up is inside the mount,
   * judged on the opened file itself (via /proc/self/fd), so retargeting the
   * link between the check and the read cannot slip another file in. Links
   * are rare, so they are never cached: every scan checks them again.
   */
  async #readLinkInMount(path: string): Promise<FileReadVerdict> {
    const name = basename(path);
    const refused: FileReadVerdict = { kind: 'parsed', result: { ok: false, reason: `${name}: ${LINK_OUTSIDE_MOUNT_REASON}` } };
    let realRoot: string;
    let target: string;
    try {
      realRoot = await realpath(this.root);
      target = await realpath(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // A dangling link or a loop: there is nothing to read.
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return { kind: 'missing' };
      return { kind: 'parsed', result: { ok: false, reason: `${name}: cannot read (${(error as Error).message})` } };
    }
    if (!isInsideFolder(target, realRoot)) return refused;

    let handle;
    try {
      handle = await open(target, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
      if (code === 'ELOOP') return refused;
      return { kind: 'parsed', result: { ok: false, reason: `${name}: cannot read (${(error as Error).message})` } };
    }
    try {
      const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => target);
      if (!isInsideFolder(opened, realRoot)) return refused;
      const stats = await handle.stat();
      if (!stats.isFile()) return { kind: 'not-a-file' };
      if (stats.size > MAX_ISSUE_FILE_BYTES) return { kind: 'parsed', result: { ok: false, reason: describeOversizeIssueFile(name, stats.size) } };
      const text = await handle.readFile('utf8');
      return { kind: 'parsed', result: parseIssueFile({ path, text, mtimeMs: stats.mtimeMs }) };
    } catch (error) {
      return { kind: 'parsed', result: { ok: false, reason: `${name}: cannot read (${(error as Error).message})` } };
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  /**
   * Paths `keyOrPath` may name, or none when it is a key. A bare file name with
   * an issue extension is tried in the current folder, then in the mount, so
   * `factory triage FAC-1.json` works from anywhere.
   */
  #candidatePaths(keyOrPath: string): string[] {
    const hasSeparator = keyOrPath.includes('/') || keyOrPath.includes('\\');
    if (isAbsolute(keyOrPath) || hasSeparator) return [resolve(keyOrPath)];
    if (issueFileFormatOf(keyOrPath) === undefined && !keyOrPath.endsWith(this.outcomeSuffix)) return [];
    const inCwd = resolve(keyOrPath);
    const inRoot = join(this.root, keyOrPath);
    return inCwd === inRoot ? [inRoot] : [inCwd, inRoot];
  }

  /**
   * The daemon reads the files named by events one by one; without this, an
   * event for a file whose key another file holds would hand it the
   * duplicate a scan skips, and the issue would flip between the two files'
   * revisions (a run of the duplicate, then of the first file again when the
   * duplicate goes). The file that holds a key keeps it, whatever the names.
   */
  async #refuseShadowedDuplicate(issue: Issue, path: string): Promise<void> {
    // A file outside the mount (`factory triage ./elsewhere/X.json`) competes with nothing.
    if (dirname(path) !== this.root) return;
    if (this.#pathByKey === undefined) await this.scan();
    const pathByKey = this.#pathByKey ?? new Map<string, string>();
    const holder = pathByKey.get(issue.key);
    if (holder !== undefined && holder !== path) {
      // The index may be stale: the holder only keeps the key if it still holds it.
      const verdict = await this.#readIssueFile(holder);
      if (verdict.kind === 'parsed' && verdict.result.ok && verdict.result.value.key === issue.key) {
        throw new FactoryError('FACTORY_ISSUE_INVALID', describeDuplicateKey(path, issue.key, holder), { details: { path, key: issue.key, firstPath: holder } });
      }
    }
    pathByKey.set(issue.key, path);
  }

  async #readByKey(key: string): Promise<Issue> {
    const { issues, skipped } = await this.scan();
    const issue = issues.find((candidate) => candidate.key === key);
    if (issue !== undefined) return issue;
    // A file named after the key that failed to parse is almost certainly the one meant: say why it was skipped.
    const namesake = skipped.find((entry) => deriveIssueKeyFromFileName(entry.path) === key);
    if (namesake !== undefined) throw new FactoryError('FACTORY_ISSUE_INVALID', namesake.reason, { details: { key, path: namesake.path } });
    throw new FactoryError('FACTORY_ISSUE_NOT_FOUND', `no issue with key ${JSON.stringify(key)} in ${this.root}`, { details: { key, root: this.root } });
  }

  async #statRootForWatch(): Promise<{ dev: bigint; ino: bigint }> {
    try {
      const stats = await stat(this.root, { bigint: true });
      if (!stats.isDirectory()) throw new Error('not a folder');
      return { dev: stats.dev, ino: stats.ino };
    } catch (error) {
      throw this.#watchFailure(`cannot watch issue folder ${this.root} (${(error as Error).message})`, error);
    }
  }

  #watchFailure(message: string, cause?: unknown): FactoryError {
    return new FactoryError('FACTORY_SUBSCRIPTION_FAILED', message, {
      hint: 'Check that mount.root exists and is a folder (recreating it does not revive a watch on the old one).',
      details: { root: this.root },
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

/**
 * Reads a file already known to exist; undefined when it vanished in between.
 * With `noFollow`, a file swapped for a link since it was checked fails with
 * ELOOP (thrown, for the caller to judge the link) instead of being read.
 */
async function readAndParse(path: string, name: string, size: bigint, mtimeMs: number, noFollow: boolean): Promise<IssueParseResult | undefined> {
  // Refuse before reading: a huge file would cost memory just to be rejected.
  if (size > BigInt(MAX_ISSUE_FILE_BYTES)) {
    return { ok: false, reason: describeOversizeIssueFile(name, size) };
  }
  let text: string;
  try {
    text = await readTextForScan(path, noFollow);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP' && noFollow) throw error;
    return { ok: false, reason: `${name}: cannot read (${(error as Error).message})` };
  }
  return parseIssueFile({ path, text, mtimeMs });
}

/** Whether `path` (already resolved, no links) is inside `folder` (also resolved). */
function isInsideFolder(path: string, folder: string): boolean {
  return path.startsWith(folder.endsWith(sep) ? folder : `${folder}${sep}`);
}

// A scan makes one stat per file and one read per changed file, 10,000 of each
// for a large mount. fs.promises costs about twice the CPU of the callback API
// per call (measured on 10k files: stat 150 vs 95 ms, readFile 750 vs 320 ms),
// so the per-file calls use the callback API behind a promise.
function statForScan(path: string): Promise<BigIntStats> {
  return new Promise((resolvePromise, reject) => {
    statCallback(path, { bigint: true }, (error, stats) => (error ? reject(error) : resolvePromise(stats)));
  });
}

function lstatForScan(path: string): Promise<BigIntStats> {
  return new Promise((resolvePromise, reject) => {
    lstatCallback(path, { bigint: true }, (error, stats) => (error ? reject(error) : resolvePromise(stats)));
  });
}

const NO_FOLLOW_READ_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW;

function readTextForScan(path: string, noFollow: boolean): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    // Numeric flags are accepted at run time; the typings only list the string forms.
    const flag = (noFollow ? NO_FOLLOW_READ_FLAGS : 'r') as string;
    readFileCallback(path, { encoding: 'utf8', flag }, (error: NodeJS.ErrnoException | null, text: string) => (error ? reject(error) : resolvePromise(text)));
  });
}

/** Code-unit order, not locale order: "the later file by name" must not depend on the host's locale. */
function compareFileNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function describeDuplicateKey(path: string, key: string, firstPath: string): string {
  return `${basename(path)}: duplicate key "${key}", already used by ${basename(firstPath)}; give one of them another key`;
}

function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/** Maps with at most `limit` calls in flight; results keep the input order. */
async function mapWithConcurrency<T, R>(items: readonly T[], limit: number, map: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await map(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
