import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createCallbackLogger } from '../../src/adapters/logging/callback-logger.js';
import { assertRedisSuitable, connectRedis, connectSuitableRedis, redactRedisUrl, redisSuitabilityProblems } from '../../src/adapters/redis/connection.js';
import { formatErrorLine, isFactoryError } from '../../src/errors.js';
import { freePort, startTestRedis, type TestRedis } from '../support/redis-server.js';

/**
 * Factory refuses a Redis that cannot hold the fleet's state, with one line
 * naming the setting and the fix, and never shows a password.
 */

describe('redactRedisUrl', () => {
  it('hides the password, keeps host, port, user and database', () => {
    assert.equal(redactRedisUrl('redis://ops:s3cr3t@redis.internal:6380/2'), 'redis://ops:***@redis.internal:6380/2');
    assert.equal(redactRedisUrl('rediss://:hunter2@10.0.0.5:6379'), 'rediss://:***@10.0.0.5:6379');
    assert.equal(redactRedisUrl('redis://onlysecret@host:6379'), 'redis://***@host:6379');
    assert.equal(redactRedisUrl('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
    assert.ok(!redactRedisUrl('not a url://a:b@c').includes('b@'), 'an unparseable URL still loses its credentials');
  });
});

describe('redisSuitabilityProblems', () => {
  const fine = { version: '7.2.4', maxmemoryPolicy: 'noeviction', aofEnabled: true, appendfsync: 'always' };
  it('accepts Redis 7 with noeviction and AOF', () => {
    assert.deepEqual(redisSuitabilityProblems(fine, 'redis://h:1'), []);
  });
  it('refuses Redis 6 and names the upgrade', () => {
    const [problem] = redisSuitabilityProblems({ ...fine, version: '6.2.14' }, 'redis://h:1');
    assert.equal(problem?.setting, 'version');
    assert.match(problem?.message ?? '', /version 6\.2\.14; the fleet needs Redis 7 or newer/);
  });
  it('lists every problem at once, in a fixed order', () => {
    const problems = redisSuitabilityProblems({ version: '5.0.0', maxmemoryPolicy: 'allkeys-lru', aofEnabled: false, appendfsync: null }, 'redis://h:1');
    assert.deepEqual(
      problems.map((p) => p.setting),
      ['version', 'maxmemory-policy', 'appendonly'],
    );
    for (const p of problems) assert.ok(!p.message.includes('\n'), 'one line each');
  });
});

describe('against a real redis-server', () => {
  let server: TestRedis;
  before(async () => {
    server = await startTestRedis();
    // Set after start: the support's readiness probe pings without a password.
    const admin = await connectRedis({ url: server.url });
    await admin.config('SET', 'requirepass', 'p4ss-w0rd');
    admin.disconnect();
  });
  after(async () => server.stop());
  const url = (): string => `redis://:p4ss-w0rd@127.0.0.1:${server.port}`;

  it('a correctly configured server is accepted; appendfsync other than always is a warning, not a refusal', async () => {
    const warnings: string[] = [];
    const log = createCallbackLogger((level, _fields, message) => void (level === 'warn' && warnings.push(message)));
    const redis = await connectSuitableRedis({ url: url(), log });
    try {
      assert.equal(await redis.ping(), 'PONG');
      assert.deepEqual(warnings, [], 'the test server fsyncs always');
      await redis.config('SET', 'appendfsync', 'everysec');
      await assertRedisSuitable(redis, url(), log);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /appendfsync is everysec/);
    } finally {
      await redis.config('SET', 'appendfsync', 'always');
      redis.disconnect();
    }
  });

  it('maxmemory-policy other than noeviction is refused with the CONFIG SET and redis.conf fix, password redacted', async () => {
    const admin = await connectRedis({ url: url() });
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      await assert.rejects(connectSuitableRedis({ url: url() }), (error) => {
        assert.ok(isFactoryError(error, 'FACTORY_REDIS_UNSUITABLE'));
        assert.equal(error.details.setting, 'maxmemory-policy');
        assert.match(error.message, /maxmemory-policy allkeys-lru; the fleet needs noeviction/);
        assert.match(error.message, /CONFIG SET maxmemory-policy noeviction/);
        assert.match(error.message, /"maxmemory-policy noeviction" in redis\.conf/);
        const line = formatErrorLine(error);
        assert.ok(!line.includes('p4ss-w0rd') && !JSON.stringify(error.details).includes('p4ss-w0rd'), 'no password in the error');
        assert.equal(error.message.split('\n').length, 1);
        return true;
      });
    } finally {
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      admin.disconnect();
    }
  });

  it('AOF off is refused, naming appendonly and the fix', async () => {
    // A server of its own: turning AOF off and on at run time starts a rewrite that keeps the shared server from stopping.
    const noAof = await startTestRedis({ extraArgs: ['--appendonly', 'no'] });
    try {
      await assert.rejects(connectSuitableRedis({ url: noAof.url }), (error) => {
        assert.ok(isFactoryError(error, 'FACTORY_REDIS_UNSUITABLE'));
        assert.equal(error.details.setting, 'appendonly');
        assert.match(error.message, /appendonly no; the fleet needs AOF/);
        assert.match(error.message, /CONFIG SET appendonly yes/);
        assert.match(error.message, /"appendonly yes" in redis\.conf/);
        return true;
      });
    } finally {
      await noAof.stop();
    }
  });

  it('a wrong password or a dead port is FACTORY_REDIS_UNREACHABLE, and the password never shows', async () => {
    await assert.rejects(connectRedis({ url: `redis://:wr0ng-secret@127.0.0.1:${server.port}` }), (error) => {
      assert.ok(isFactoryError(error, 'FACTORY_REDIS_UNREACHABLE'));
      assert.ok(!formatErrorLine(error).includes('wr0ng-secret'), formatErrorLine(error));
      assert.match(error.message, /redis:\/\/:\*\*\*@127\.0\.0\.1/);
      return true;
    });
    const deadPort = await freePort();
    await assert.rejects(connectRedis({ url: `redis://:s3cret-x@127.0.0.1:${deadPort}`, connectTimeoutMs: 500 }), (error) => {
      assert.ok(isFactoryError(error, 'FACTORY_REDIS_UNREACHABLE'));
      assert.ok(!formatErrorLine(error).includes('s3cret-x'));
      return true;
    });
  });
});
