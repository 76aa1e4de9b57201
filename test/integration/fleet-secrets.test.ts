import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { parseTeamRunJob } from '../../src/adapters/bullmq/team-run-job.js';
import { waitFor } from '../support/sandbox.js';
import { AGENT, finishedRuns, useFleetPerTest } from '../fixtures/fleet/harness.js';

/**
 * A fleet job carries no secret: the control plane's and the worker's config
 * hold `agents.implementer.env.API_TOKEN`, a real run goes through a real
 * redis-server to a real `factory worker`, and afterwards nothing Redis holds
 * (every key, read by its type) nor anything it ever wrote to disk (the AOF,
 * which keeps deleted keys' writes too) contains the secret, while the agent
 * got it in its environment from the worker's own config.
 */

const fleets = useFleetPerTest();
const envOut = mkdtempSync(join(tmpdir(), 'factory-fleet-env-'));
after(() => rmSync(envOut, { recursive: true, force: true }));

/** Every value Redis holds now, read by each key's type, as text (the key names included). */
async function everythingInRedis(client: Redis): Promise<{ keys: number; text: string }> {
  const parts: string[] = [];
  let keys = 0;
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'COUNT', 500);
    cursor = next;
    for (const key of batch) {
      keys += 1;
      parts.push(key);
      const type = await client.type(key);
      if (type === 'string') parts.push((await client.get(key)) ?? '');
      else if (type === 'hash') parts.push(JSON.stringify(await client.hgetall(key)));
      else if (type === 'list') parts.push(JSON.stringify(await client.lrange(key, 0, -1)));
      else if (type === 'set') parts.push(JSON.stringify(await client.smembers(key)));
      else if (type === 'zset') parts.push(JSON.stringify(await client.zrange(key, '0', '-1', 'WITHSCORES')));
      else if (type === 'stream') parts.push(JSON.stringify(await client.xrange(key, '-', '+')));
      // A key that expired or was deleted between SCAN and TYPE (a run's lock released meanwhile) holds nothing to leak.
      else if (type !== 'none') assert.fail(`key ${key} has type ${type}, which this scan cannot read`);
    }
  } while (cursor !== '0');
  return { keys, text: parts.join('\n') };
}

/** Every file under `dir` (the AOF's base and increment files, the server log), as text. */
function filesUnder(dir: string): { path: string; text: string }[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [{ path, text: readFileSync(path, 'latin1') }];
  });
}

test("a run's agent gets API_TOKEN from the worker's config while no Redis key, AOF write or log line ever holds it", { timeout: 90_000 }, async () => {
  const redis = fleets.redis();
  const secret = `sk-${randomBytes(18).toString('hex')}`;
  const fleet = await fleets.start({
    agentWorkMs: 200,
    extraConfig: { agents: { implementer: { command: ['node', AGENT, '200'], env: { API_TOKEN: secret, FLEET_ENV_OUT: envOut } } } },
  });
  await fleet.startWorker('w1');
  fleet.project.writeIssue('SECRET-1');
  const finished = await waitFor('the run to finish', () => finishedRuns(fleet.controlPlane)[0], 45_000);
  assert.equal(finished.reason, 'succeeded', fleet.controlPlane.stderr());

  // The agent received the secret, from the worker's config (Redis never had it: below).
  const agentEnv = JSON.parse(readFileSync(join(envOut, `${finished.run}.json`), 'utf8')) as Record<string, string>;
  assert.equal(agentEnv.API_TOKEN, secret, 'the agent got API_TOKEN');

  const client = new Redis(redis.url);
  try {
    const held = await everythingInRedis(client);
    assert.ok(held.keys > 5 && held.text.includes(finished.run), `Redis holds the run (${held.keys} keys)`);
    assert.equal(held.text.includes(secret), false, 'no Redis key holds the secret');
    assert.equal(held.text.includes(envOut), false, "no Redis key holds the agent's env at all (FLEET_ENV_OUT)");
    // The scan is not vacuous: the run's job is still there (kept an hour after it completes), naming the role only.
    const jobs = (await client.keys('*:team-runs:*')).filter((key) => key.endsWith(finished.run)).map(async (key) => parseTeamRunJob(JSON.parse((await client.hget(key, 'data')) ?? 'null')));
    const [job] = await Promise.all(jobs);
    assert.ok(job?.ok, "the run's job is in Redis and parses");
    assert.deepEqual(job.job.plan.stages, [{ agents: [{ role: 'implementer', slot: 'implementer' }] }], 'the job names the role and slot, nothing of how the role runs');
  } finally {
    client.disconnect();
  }
  // Redis wrote every command to its AOF (appendfsync always): removed keys' writes would still be there.
  const files = filesUnder(redis.dir);
  assert.ok(
    files.some((file) => file.path.includes('appendonly') && file.text.includes(finished.run)),
    'the AOF holds the run',
  );
  assert.deepEqual(
    files.filter((file) => file.text.includes(secret)).map((file) => file.path),
    [],
    'no file Redis wrote holds the secret',
  );
  assert.equal(fleet.controlPlane.stderr().includes(secret), false, "the control plane's log does not hold the secret");
  assert.equal(fleet.workers.get('w1')!.stderr().includes(secret), false, "the worker's log does not hold the secret");
});
