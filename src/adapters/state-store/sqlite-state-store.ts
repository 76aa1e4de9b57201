import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { RunOutcome } from '../../domain/run.js';
import { FactoryError, isFactoryError, filesystemError, staleEpochError, type PathUse } from '../../errors.js';
import { ACTIVE_CLAIM_STATUSES, type FixRound } from '../../domain/claim.js';
import type { ParkedRun } from '../../domain/budgets.js';
import type { AgentUsageRecord, DaemonOwner, IssueClaim, SkipRecord, StateBatch, StateStore, UsageSummary } from '../../ports/state-store.js';
import { summaryOfRows } from '../../domain/agent-events/usage-records.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
  issue_key TEXT PRIMARY KEY,
  revision TEXT NOT NULL,
  status TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  next_attempt_at_ms INTEGER,
  run_id TEXT,
  repo TEXT NOT NULL,
  priority REAL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  last_reason TEXT,
  epoch INTEGER NOT NULL,
  interruptions INTEGER NOT NULL DEFAULT 0,
  node TEXT,
  park_json TEXT,
  fix_json TEXT
);
CREATE TABLE IF NOT EXISTS outcomes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL UNIQUE,
  issue_key TEXT NOT NULL,
  reason TEXT NOT NULL,
  ended_at_ms INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  written_back INTEGER NOT NULL DEFAULT 0,
  body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outcomes_by_issue ON outcomes(issue_key, seq);
CREATE INDEX IF NOT EXISTS claims_by_status ON claims(status);
CREATE TABLE IF NOT EXISTS skips (issue_key TEXT PRIMARY KEY, reason TEXT NOT NULL, at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS agent_usage (
  run_id TEXT NOT NULL,
  agent_name TEXT NOT NULL,
  issue_key TEXT NOT NULL,
  role TEXT NOT NULL,
  driver TEXT NOT NULL,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cache_read_tokens INTEGER NOT NULL,
  cache_write_tokens INTEGER NOT NULL,
  cost_usd REAL,
  turns INTEGER NOT NULL,
  ended_at_ms INTEGER NOT NULL,
  PRIMARY KEY (run_id, agent_name)
);
CREATE INDEX IF NOT EXISTS agent_usage_by_end ON agent_usage(ended_at_ms);
`;

interface UsageRow {
  role: string;
  driver: AgentUsageRecord['driver'];
  input: number;
  output: number;
  cache_read: number;
  cache_write: number;
  cost_usd: number | null;
  turns: number;
  runs: number;
}

const USAGE_SUMMARY_SQL = `SELECT role, driver, SUM(input_tokens) AS input, SUM(output_tokens) AS output, SUM(cache_read_tokens) AS cache_read,
  SUM(cache_write_tokens) AS cache_write, SUM(cost_usd) AS cost_usd, SUM(turns) AS turns, COUNT(*) AS runs
  FROM agent_usage WHERE ended_at_ms >= ? GROUP BY role, driver`;

interface ClaimRow {
  issue_key: string;
  revision: string;
  status: IssueClaim['status'];
  attempt: number;
  next_attempt_at_ms: number | null;
  run_id: string | null;
  repo: string;
  priority: number | null;
  created_at_ms: number;
  updated_at_ms: number;
  last_reason: string | null;
  epoch: number;
  interruptions: number;
  node: string | null;
  /** The parked run the claim continues (domain ParkedRun as JSON), or null. */
  park_json: string | null;
  /** The fix round the claim's run is (domain FixRound as JSON), or null. */
  fix_json: string | null;
}

function claimFromRow(row: ClaimRow): IssueClaim {
  return {
    issueKey: row.issue_key,
    revision: row.revision,
    status: row.status,
    attempt: row.attempt,
    nextAttemptAtMs: row.next_attempt_at_ms,
    runId: row.run_id,
    repo: row.repo,
    priority: row.priority,
    createdAtMs: row.created_at_ms,
    updatedAtMs: row.updated_at_ms,
    lastReason: row.last_reason,
    epoch: row.epoch,
    interruptions: row.interruptions,
    node: row.node,
    park: row.park_json === null || row.park_json === undefined ? null : (JSON.parse(row.park_json) as ParkedRun),
    ...(row.fix_json === null || row.fix_json === undefined ? {} : { fix: JSON.parse(row.fix_json) as FixRound }),
  };
}

/**
 * The state store on SQLite (WAL, synchronous=FULL): a daemon killed at any
 * instruction loses no committed claim, and `factory status` reads the same
 * file concurrently without blocking the daemon. better-sqlite3 answers
 * synchronously; the port is async so networked stores fit the same seam.
 */
/** SQLite's answers that mean the user made the file or its folder unusable (modes, a read-only mount, a full disk), not a damaged database. */
const SQLITE_PATH_REFUSALS = /^SQLITE_(CANTOPEN|READONLY|PERM|FULL|IOERR)/;

function sqlitePathError(error: unknown, use: PathUse): FactoryError | undefined {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string' || !SQLITE_PATH_REFUSALS.test(code)) return undefined;
  return new FactoryError(
    use.access === 'read' ? 'FACTORY_PATH_UNREADABLE' : 'FACTORY_PATH_UNWRITABLE',
    `cannot ${use.action} ${use.path} (${use.setting}): SQLite says "${(error as Error).message}" (${code})`,
    {
      cause: error,
      details: { path: use.path, sqliteCode: code },
    },
  );
}

export class SqliteStateStore implements StateStore {
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #statements;

  /** Opens for reading only: status readers and dry runs, never an epoch or a write. */
  static openReadOnly(path: string): SqliteStateStore {
    return new SqliteStateStore(path, { readonly: true });
  }

  constructor(path: string, options: { readonly?: boolean } = {}) {
    this.#path = path;
    try {
      if (!options.readonly) mkdirSync(dirname(path), { recursive: true });
      this.#db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false, timeout: 5_000 });
      if (options.readonly) waitForSchema(this.#db, path);
      else {
        this.#db.pragma('journal_mode = WAL');
        this.#db.pragma('synchronous = FULL');
        this.#db.exec(SCHEMA);
        migrate(this.#db);
      }
    } catch (error) {
      if (isFactoryError(error)) throw error;
      const use: PathUse = { path, action: options.readonly ? 'read the state database' : 'open the state database', access: options.readonly ? 'read' : 'write', setting: 'state.dir' };
      throw (
        filesystemError(error, use) ??
        sqlitePathError(error, use) ??
        new FactoryError('FACTORY_STATE_UNREADABLE', `cannot open the state database ${path}: ${(error as Error).message}`, { cause: error })
      );
    }
    const db = this.#db;
    const writable = !options.readonly;
    this.#statements = preparedOrExplained(path, () => ({
      epoch: db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'epoch'"),
      setMeta: writable ? db.prepare('INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value') : undefined,
      getClaim: db.prepare<[string], ClaimRow>('SELECT * FROM claims WHERE issue_key = ?'),
      listClaims: db.prepare<[], ClaimRow>('SELECT * FROM claims ORDER BY updated_at_ms DESC'),
      listActiveClaims: db.prepare<[], ClaimRow>(`SELECT * FROM claims WHERE status IN (${ACTIVE_CLAIM_STATUSES.map((status) => `'${status}'`).join(', ')}) ORDER BY updated_at_ms DESC`),
      upsertClaim: writable
        ? db.prepare(`INSERT INTO claims(issue_key, revision, status, attempt, next_attempt_at_ms, run_id, repo, priority, created_at_ms, updated_at_ms, last_reason, epoch, interruptions, node, park_json, fix_json)
          VALUES (@issue_key, @revision, @status, @attempt, @next_attempt_at_ms, @run_id, @repo, @priority, @created_at_ms, @updated_at_ms, @last_reason, @epoch, @interruptions, @node, @park_json, @fix_json)
          ON CONFLICT(issue_key) DO UPDATE SET revision=excluded.revision, status=excluded.status, attempt=excluded.attempt,
          next_attempt_at_ms=excluded.next_attempt_at_ms, run_id=excluded.run_id, repo=excluded.repo, priority=excluded.priority,
          created_at_ms=excluded.created_at_ms, updated_at_ms=excluded.updated_at_ms, last_reason=excluded.last_reason, epoch=excluded.epoch,
          interruptions=excluded.interruptions, node=excluded.node, park_json=excluded.park_json, fix_json=excluded.fix_json`)
        : undefined,
      insertOutcome: writable ? db.prepare('INSERT OR REPLACE INTO outcomes(run_id, issue_key, reason, ended_at_ms, epoch, body) VALUES (?, ?, ?, ?, ?, ?)') : undefined,
      markWrittenBack: writable ? db.prepare('UPDATE outcomes SET written_back = 1 WHERE run_id = ?') : undefined,
      pendingWritebacks: db.prepare<[], { body: string }>('SELECT body FROM outcomes WHERE written_back = 0 ORDER BY seq'),
      recentOutcomes: db.prepare<[number], { body: string }>('SELECT body FROM outcomes ORDER BY seq DESC LIMIT ?'),
      outcomeCount: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM outcomes'),
      upsertSkip: writable ? db.prepare('INSERT INTO skips VALUES (?, ?, ?) ON CONFLICT(issue_key) DO UPDATE SET reason=excluded.reason, at_ms=excluded.at_ms') : undefined,
      deleteSkip: writable ? db.prepare('DELETE FROM skips WHERE issue_key = ?') : undefined,
      listSkips: db.prepare<[], { issue_key: string; reason: string; at_ms: number }>('SELECT * FROM skips ORDER BY at_ms DESC'),
      upsertUsage: writable
        ? db.prepare(`INSERT OR REPLACE INTO agent_usage(run_id, agent_name, issue_key, role, driver, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, turns, ended_at_ms)
          VALUES (@runId, @agentName, @issueKey, @role, @driver, @input, @output, @cacheRead, @cacheWrite, @costUsd, @turns, @endedAtMs)`)
        : undefined,
      // A database written before the ledger existed, opened read-only, has no table yet: it reads as an empty ledger.
      usageSummary: hasTable(db, 'agent_usage') ? db.prepare<[number], UsageRow>(USAGE_SUMMARY_SQL) : undefined,
    }));
  }

  #writable<T>(statement: T | undefined): T {
    if (statement === undefined) throw new FactoryError('FACTORY_STATE_READ_ONLY', `the state database ${this.#path} was opened read-only and cannot be written`);
    return statement;
  }

  #epochNow(): number {
    const row = this.#statements.epoch.get();
    return row ? Number(row.value) : 0;
  }

  /** Refuses a write from a daemon that a newer one has replaced. */
  #assertEpoch(epoch: number): void {
    const current = this.#epochNow();
    if (epoch < current) throw staleEpochError(epoch, current);
  }

  async beginEpoch(owner: DaemonOwner, nowMs: number): Promise<number> {
    const setMeta = this.#writable(this.#statements.setMeta);
    return this.#db
      .transaction(() => {
        const next = this.#epochNow() + 1;
        setMeta.run('epoch', String(next));
        setMeta.run('owner', JSON.stringify({ ...owner, epoch: next, sinceMs: nowMs }));
        return next;
      })
      .immediate();
  }

  async currentEpoch(): Promise<number> {
    return this.#epochNow();
  }

  async getClaim(issueKey: string): Promise<IssueClaim | undefined> {
    const row = this.#statements.getClaim.get(issueKey);
    return row && claimFromRow(row);
  }

  async listClaims(): Promise<IssueClaim[]> {
    return this.#statements.listClaims.all().map(claimFromRow);
  }

  async listActiveClaims(): Promise<IssueClaim[]> {
    return this.#statements.listActiveClaims.all().map(claimFromRow);
  }

  async apply(batch: StateBatch): Promise<void> {
    const upsertClaim = this.#writable(this.#statements.upsertClaim);
    const insertOutcome = this.#writable(this.#statements.insertOutcome);
    const upsertSkip = this.#writable(this.#statements.upsertSkip);
    const deleteSkip = this.#writable(this.#statements.deleteSkip);
    // One IMMEDIATE transaction: the epoch check and every write commit together (one fsync).
    this.#db
      .transaction(() => {
        this.#assertEpoch(batch.epoch);
        for (const claim of batch.claims ?? []) upsertClaim.run(claimToRow(claim));
        for (const skip of batch.skips ?? []) upsertSkip.run(skip.issueKey, skip.reason, skip.atMs);
        for (const issueKey of batch.clearedSkips ?? []) deleteSkip.run(issueKey);
        if (batch.outcome) {
          const { outcome, nextClaim } = batch.outcome;
          insertOutcome.run(outcome.runId, outcome.issueKey, outcome.reason, outcome.endedAtMs, batch.epoch, JSON.stringify(outcome));
          upsertClaim.run(claimToRow(nextClaim));
        }
      })
      .immediate();
  }

  async markWrittenBack(runId: string): Promise<void> {
    this.#writable(this.#statements.markWrittenBack).run(runId);
  }

  async pendingWritebacks(): Promise<RunOutcome[]> {
    return this.#statements.pendingWritebacks.all().map((row) => JSON.parse(row.body) as RunOutcome);
  }

  async recentOutcomes(limit: number): Promise<RunOutcome[]> {
    return this.#statements.recentOutcomes.all(limit).map((row) => JSON.parse(row.body) as RunOutcome);
  }

  async outcomeCount(): Promise<number> {
    return this.#statements.outcomeCount.get()?.n ?? 0;
  }

  async listSkips(): Promise<SkipRecord[]> {
    return this.#statements.listSkips.all().map((row) => ({ issueKey: row.issue_key, reason: row.reason, atMs: row.at_ms }));
  }

  async recordUsage(records: readonly AgentUsageRecord[]): Promise<void> {
    const upsertUsage = this.#writable(this.#statements.upsertUsage);
    this.#db.transaction(() => {
      for (const record of records) {
        upsertUsage.run({
          runId: record.runId,
          agentName: record.agentName,
          issueKey: record.issueKey,
          role: record.role,
          driver: record.driver,
          ...record.usage,
          costUsd: record.costUsd ?? null,
          turns: record.turns,
          endedAtMs: record.endedAtMs,
        });
      }
    })();
  }

  async usageSummary(sinceMs: number): Promise<UsageSummary> {
    const rows = this.#statements.usageSummary?.all(sinceMs) ?? [];
    return summaryOfRows(
      rows.map((row) => ({
        role: row.role,
        driver: row.driver,
        usage: { input: row.input, output: row.output, cacheRead: row.cache_read, cacheWrite: row.cache_write },
        costUsd: row.cost_usd,
        turns: row.turns,
        runs: row.runs,
      })),
    );
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

function claimToRow(claim: IssueClaim): ClaimRow {
  return {
    issue_key: claim.issueKey,
    revision: claim.revision,
    status: claim.status,
    attempt: claim.attempt,
    next_attempt_at_ms: claim.nextAttemptAtMs,
    run_id: claim.runId,
    repo: claim.repo,
    priority: claim.priority,
    created_at_ms: claim.createdAtMs,
    updated_at_ms: claim.updatedAtMs,
    last_reason: claim.lastReason,
    epoch: claim.epoch,
    interruptions: claim.interruptions ?? 0,
    node: claim.node ?? null,
    park_json: claim.park ? JSON.stringify(claim.park) : null,
    fix_json: claim.fix ? JSON.stringify(claim.fix) : null,
  };
}

function hasTable(db: Database.Database, name: string): boolean {
  return db.prepare<[string], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

/** Databases written before a column existed get it added; old rows read its default. */
/** Tables SCHEMA creates, read from it so the list cannot drift. */
const SCHEMA_TABLES = [...SCHEMA.matchAll(/CREATE TABLE IF NOT EXISTS (\w+)/g)].map((match) => match[1]!);
const SCHEMA_WAIT_MS = 2_000;

/**
 * A reader can open the file between the daemon creating it and creating its
 * tables (a `factory status` right at startup): wait briefly for the schema
 * instead of failing on "no such table". A database that still lacks tables
 * (an older Factory wrote it) is a coded error with the fix, never exit 70.
 */
function waitForSchema(db: Database.Database, path: string): void {
  const deadline = Date.now() + SCHEMA_WAIT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const present = new Set(
      db
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all()
        .map((row) => row.name),
    );
    const missing = SCHEMA_TABLES.filter((table) => !present.has(table));
    if (missing.length === 0) return;
    if (Date.now() > deadline) {
      throw new FactoryError('FACTORY_STATE_UNREADABLE', `the state database ${path} has no ${missing.join(', ')} table(s): it is being created, or an older Factory wrote it`, {
        hint: 'Run `factory start` (or any verb that opens the state for writing) once with this version to upgrade it, then retry.',
      });
    }
    // The constructor is synchronous (better-sqlite3); a short blocking pause keeps it so.
    Atomics.wait(pause, 0, 0, 50);
  }
}

/** Preparing fails on a database an older Factory wrote (a column added since): say so instead of crashing. */
function preparedOrExplained<T>(path: string, prepare: () => T): T {
  try {
    return prepare();
  } catch (error) {
    throw new FactoryError('FACTORY_STATE_UNREADABLE', `the state database ${path} does not have the layout this version reads (${(error as Error).message}): an older Factory wrote it`, {
      hint: 'Run `factory start` (or any verb that opens the state for writing) once with this version to upgrade it, then retry.',
      cause: error,
    });
  }
}

function migrate(db: Database.Database): void {
  const columns = new Set(
    db
      .prepare<[], { name: string }>('PRAGMA table_info(claims)')
      .all()
      .map((c) => c.name),
  );
  if (!columns.has('node')) db.exec('ALTER TABLE claims ADD COLUMN node TEXT');
  if (!columns.has('park_json')) db.exec('ALTER TABLE claims ADD COLUMN park_json TEXT');
  if (!columns.has('fix_json')) db.exec('ALTER TABLE claims ADD COLUMN fix_json TEXT');
}
