import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FakeClock } from '../../src/adapters/clock/fake-clock.js';
import type { AgentActivitySummary } from '../../src/domain/agent-events/agent-driver.js';
import { AgentStreamWatch } from '../../src/core/execution/agent-stream-watch.js';
import type { AgentCliHost } from '../../src/ports/agent-cli.js';
import { REPO_ROOT } from '../support/sandbox.js';

/**
 * The watch's activity events (what the state API, the dashboard and a fleet's
 * control plane see of a running CLI agent), on the fake clock with the real
 * Claude Code's recorded stream fed in as the log grows.
 */

const TRANSCRIPT = readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'transcripts', 'claude-code-commit.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean);

function watchWithLog(clock: FakeClock): { watch: AgentStreamWatch; emitted: AgentActivitySummary[]; append: (line: string) => void } {
  let deliver: (chunk: Uint8Array) => void = () => undefined;
  const host: AgentCliHost = {
    commandFor: () => [],
    sizeOf: () => 0,
    follow: (_path, _from, onChunk) => {
      deliver = onChunk;
      return { stop: async () => undefined };
    },
  };
  const emitted: AgentActivitySummary[] = [];
  const watch = new AgentStreamWatch({ driver: { kind: 'claude-code', options: {} }, host, clock, onActivity: (activity) => emitted.push(activity), onNeedsInput: () => undefined });
  watch.start('/run.log');
  return { watch, emitted, append: (line) => deliver(new TextEncoder().encode(`${line}\n`)) };
}

test('a change inside the one-second throttle is emitted when the second ends, while the agent is quiet in its tool call', async () => {
  const clock = new FakeClock();
  const { watch, emitted, append } = watchWithLog(clock);
  append(TRANSCRIPT[0]!); // session: emitted at once
  assert.equal(emitted.length, 1);
  assert.equal(emitted[0]!.turns, 0);
  await clock.advance(50);
  append(TRANSCRIPT[1]!); // the first message's text
  append(TRANSCRIPT[2]!); // its Bash tool call; then the agent is silent while the command runs
  assert.equal(emitted.length, 1, 'throttled: at most one event a second');
  await clock.advance(949);
  assert.equal(emitted.length, 1);
  await clock.advance(1);
  assert.equal(emitted.length, 2, 'the owed event goes out when the second is over, with no further line');
  assert.equal(emitted[1]!.turns, 1);
  assert.match(emitted[1]!.lastActivity?.summary ?? '', /^Bash: printf "hello\\n" > hello\.txt/);
  await clock.advance(10_000);
  assert.equal(emitted.length, 2, 'nothing new, nothing emitted');
  await watch.finish({ code: 0, signal: null });
  assert.equal(clock.pendingTimerCount(), 0);
});

test('finishing inside the throttle emits the last figures once and leaves no timer', async () => {
  const clock = new FakeClock();
  const { watch, emitted, append } = watchWithLog(clock);
  for (const line of TRANSCRIPT) append(line);
  assert.equal(emitted.length, 1);
  const report = await watch.finish({ code: 0, signal: null });
  assert.equal(report.verdict, 'succeeded');
  assert.equal(emitted.length, 2);
  assert.deepEqual(emitted[1]!.usage, { input: 2700, output: 52, cacheRead: 1500, cacheWrite: 100 });
  assert.equal(clock.pendingTimerCount(), 0);
  await clock.advance(5_000);
  assert.equal(emitted.length, 2);
});
