import { Redis } from 'ioredis';
import { FactoryError } from '../../errors.js';
import type { Logger } from '../../ports/logger.js';

/**
 * Redis connections for the fleet, and the checks that make Factory refuse a
 * Redis that cannot keep its promises: the leader lease and the state store
 * are only as durable as the server under them.
 *
 * - Redis >= 7: the Lua scripts use features of the 7 line, and older lines
 *   are out of support.
 * - `maxmemory-policy noeviction`: any other policy may silently evict the
 *   lease epoch, a claim or a queued job under memory pressure. noeviction
 *   turns pressure into refused writes, which Factory reports.
 * - `appendonly yes`: without AOF a restart rolls the server back to the
 *   last snapshot (or to nothing), and with it the epoch: a fencing token
 *   that goes backwards fences nothing.
 */

export const MIN_REDIS_MAJOR = 7;

/** The URL with its password (or a lone user part) replaced by `***`: the only form of it that reaches logs and errors. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    // `redis://secret@host` passes the secret as the password in some clients: hide a lone user too.
    else if (parsed.username) parsed.username = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    // Not parseable as a URL: hide everything between the scheme and the last "@", if any.
    return url.replace(/\/\/[^/]*@/, '//***@');
  }
}

export interface RedisConnectionOptions {
  readonly url: string;
  /** Shown in CLIENT LIST, so an operator can tell control planes and workers apart. */
  readonly connectionName?: string;
  /**
   * A command without a reply within this time fails instead of waiting on a
   * frozen server, so the lease can judge its deadline. Default 2 s.
   */
  readonly commandTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
}

/**
 * Opens a connection and waits until it is ready. Commands are not queued
 * while disconnected (a lease renewal that cannot be sent fails at once) and
 * the client reconnects on its own after Redis comes back.
 */
export async function connectRedis(options: RedisConnectionOptions): Promise<Redis> {
  const redacted = redactRedisUrl(options.url);
  const redis = new Redis(options.url, {
    lazyConnect: true,
    connectionName: options.connectionName,
    commandTimeout: options.commandTimeoutMs ?? 2_000,
    connectTimeout: options.connectTimeoutMs ?? 5_000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // Reconnect forever with a capped backoff: Redis restarting is an outage to ride out, not a reason to exit.
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2_000),
  });
  // ioredis emits 'error' on every failed reconnect; without a listener Node would crash the process.
  // The last one is kept: a refused password shows there, while connect() only says the connection closed.
  let lastError: Error | undefined;
  redis.on('error', (error: Error) => (lastError = error));
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    const refused = lastError && /WRONGPASS|NOAUTH|invalid password|invalid username-password/i.test(lastError.message) ? lastError : undefined;
    if (refused) {
      throw new FactoryError('FACTORY_REDIS_UNREACHABLE', `Redis at ${redacted} refused the connection's credentials: ${scrub(refused.message, options.url)}`, {
        details: { url: redacted },
        hint: 'Check the user and password in fleet.redis.url against the server (requirepass or its ACL users); the daemon retries when restarted.',
      });
    }
    throw new FactoryError('FACTORY_REDIS_UNREACHABLE', `cannot connect to Redis at ${redacted}: ${scrub((error as Error).message, options.url)}`, {
      details: { url: redacted },
    });
  }
  return redis;
}

/** Error texts from the client may quote the URL; never let the password through. */
function scrub(message: string, url: string): string {
  try {
    const password = new URL(url).password;
    return password ? message.split(password).join('***').split(decodeURIComponent(password)).join('***') : message;
  } catch {
    return message;
  }
}

export interface RedisServerFacts {
  readonly version: string;
  readonly maxmemoryPolicy: string;
  readonly aofEnabled: boolean;
  /** `always`, `everysec` or `no`; null when CONFIG is not allowed (managed Redis). */
  readonly appendfsync: string | null;
}

/** Parses `INFO` output (`key:value` lines) into a map. */
export function parseRedisInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/** Reads what the checks need from INFO, which managed Redis services allow even where CONFIG is renamed away. */
export async function readRedisServerFacts(redis: Redis): Promise<RedisServerFacts> {
  const info = parseRedisInfo(await redis.info());
  let appendfsync: string | null;
  try {
    const reply = (await redis.config('GET', 'appendfsync')) as string[];
    appendfsync = reply[1] ?? null;
  } catch {
    appendfsync = null;
  }
  return {
    version: info.get('redis_version') ?? '0',
    maxmemoryPolicy: info.get('maxmemory_policy') ?? 'unknown',
    aofEnabled: info.get('aof_enabled') === '1',
    appendfsync,
  };
}

export interface RedisSuitabilityProblem {
  readonly setting: 'version' | 'maxmemory-policy' | 'appendonly';
  readonly found: string;
  /** One line: what was found, what is needed, the command and the redis.conf line that fix it. */
  readonly message: string;
}

/** Every reason this server cannot hold the fleet's state, in a fixed order; empty when it can. */
export function redisSuitabilityProblems(facts: RedisServerFacts, redactedUrl: string): RedisSuitabilityProblem[] {
  const problems: RedisSuitabilityProblem[] = [];
  const major = Number.parseInt(facts.version.split('.')[0] ?? '0', 10);
  if (!(major >= MIN_REDIS_MAJOR)) {
    problems.push({
      setting: 'version',
      found: facts.version,
      message: `Redis at ${redactedUrl} is version ${facts.version}; the fleet needs Redis ${MIN_REDIS_MAJOR} or newer: upgrade the server`,
    });
  }
  if (facts.maxmemoryPolicy !== 'noeviction') {
    problems.push({
      setting: 'maxmemory-policy',
      found: facts.maxmemoryPolicy,
      message: `Redis at ${redactedUrl} has maxmemory-policy ${facts.maxmemoryPolicy}; the fleet needs noeviction (it could evict the lease or a claim): run CONFIG SET maxmemory-policy noeviction and put "maxmemory-policy noeviction" in redis.conf`,
    });
  }
  if (!facts.aofEnabled) {
    problems.push({
      setting: 'appendonly',
      found: 'no',
      message: `Redis at ${redactedUrl} has appendonly no; the fleet needs AOF (a restart must not roll the lease epoch back): run CONFIG SET appendonly yes and put "appendonly yes" in redis.conf`,
    });
  }
  return problems;
}

/**
 * Refuses a server that cannot hold the fleet's state: throws
 * FACTORY_REDIS_UNSUITABLE for the first problem (its message is one line
 * naming the setting and the fix; details list them all). Warns when AOF is
 * not fsynced on every write: a host crash may then lose the last second.
 */
export async function assertRedisSuitable(redis: Redis, url: string, log?: Logger): Promise<RedisServerFacts> {
  const redacted = redactRedisUrl(url);
  let facts: RedisServerFacts;
  try {
    facts = await readRedisServerFacts(redis);
  } catch (error) {
    throw new FactoryError('FACTORY_REDIS_UNREACHABLE', `cannot read INFO from Redis at ${redacted}: ${scrub((error as Error).message, url)}`, { details: { url: redacted } });
  }
  const problems = redisSuitabilityProblems(facts, redacted);
  const first = problems[0];
  if (first) {
    throw new FactoryError('FACTORY_REDIS_UNSUITABLE', first.message, {
      details: { url: redacted, setting: first.setting, found: first.found, problems: problems.map((p) => p.message) },
    });
  }
  if (facts.appendfsync !== null && facts.appendfsync !== 'always') {
    log?.warn(
      { url: redacted, appendfsync: facts.appendfsync },
      `Redis appendfsync is ${facts.appendfsync}: a crash of the Redis host (not just the process) may lose the last second of writes; "appendfsync always" closes that window`,
    );
  }
  return facts;
}

/** Connects and checks the server; the connection is closed again when the server is refused. */
export async function connectSuitableRedis(options: RedisConnectionOptions & { readonly log?: Logger }): Promise<Redis> {
  const redis = await connectRedis(options);
  try {
    await assertRedisSuitable(redis, options.url, options.log);
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  return redis;
}
