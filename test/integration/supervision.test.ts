import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { loadConfig } from '../../src/config/load.js';
import { runCycle } from '../../src/core/bounded-run.js';
import { createSilentLogger } from '../../src/adapters/logging/pino-logger.js';
import { createRuntime, openSession } from '../../src/main.js';
import { createScratchProject } from '../support/sandbox.js';
import { fixtureAgentCommand } from './agent-process-support.js';

test('a silent agent that burns CPU is busy, not stalled; an idle silent one is stopped as stalled', async () => {
  // Each issue names its fixture agent in its body, rendered into the command.
  const [node, busyScript] = fixtureAgentCommand('output-then-cpu.mjs');
  const [, idleScript] = fixtureAgentCommand('idle-silent.mjs');
  const { dir, configPath, writeIssue } = createScratchProject('supervision', {
    agents: { implementer: { command: [node, '{{body}}'] } },
    dispatch: { batchSize: 2, maxAttempts: 1 },
    runs: { stallLimitMs: 1_500, superviseIntervalMs: 200, maxRuntimeMs: 5_000, killGraceMs: 300 },
    http: { enabled: false },
  });
  writeIssue('BUSY-1', { body: busyScript });
  writeIssue('IDLE-1', { body: idleScript });
  const opened = await openSession(createRuntime(loadConfig(configPath), createSilentLogger()), 'once');
  try {
    const report = await runCycle(opened.session);
    const byKey = new Map(report.outcomes.map((o) => [o.issueKey, o]));
    const idle = byKey.get('IDLE-1')!;
    const busy = byKey.get('BUSY-1')!;
    assert.equal(idle.reason, 'stalled', idle.detail);
    assert.ok(idle.endedAtMs - idle.startedAtMs < 4_000, `stalled within the limit plus a check interval, took ${idle.endedAtMs - idle.startedAtMs} ms`);
    assert.equal(busy.reason, 'timed-out', `the CPU-busy agent ran until runs.maxRuntimeMs instead of being called stalled: ${busy.reason} ${busy.detail}`);
    assert.ok(busy.endedAtMs - busy.startedAtMs >= 5_000);
  } finally {
    await opened.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
