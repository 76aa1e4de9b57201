import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runCli } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';
import type { FactoryConfig } from '../../src/config/load.js';
import { SqliteStateStore } from '../../src/adapters/state-store/sqlite-state-store.js';
import { claimAfterIntake, claimOnStart } from '../../src/domain/claim-lifecycle.js';
import type { Issue } from '../../src/domain/issue.js';
import { liveAgentEntry, processTable, runIdFor, tempConfig, writeRegistryOf } from '../support/daemon-files.js';
import { waitFor } from './agent-process-support.js';

/** `factory logs` against real log files, a real registry and a real agent process for --follow. */

function capture(): Output & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (text) => stdout.push(text), err: (text) => stderr.push(text) };
}

function configOnDisk(): FactoryConfig {
  const config = tempConfig();
  writeFileSync(config.configPath, JSON.stringify({ mount: { root: './issues' }, agents: { implementer: { command: ['true'] } } }));
  return config;
}

function writeLog(config: FactoryConfig, issueKey: string, runId: string, role: string, text: string): string {
  const path = join(config.paths.logsDir, issueKey, `${runId}-${role}.log`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}

describe('factory logs', () => {
  test('prints both agents of the latest run (by epoch, then attempt), implementer first', async () => {
    const config = configOnDisk();
    writeLog(config, 'LOG-1', runIdFor('LOG-1', 1, 1), 'implementer', 'old run\n');
    writeLog(config, 'LOG-1', runIdFor('LOG-1', 2, 1), 'implementer', 'second attempt\n');
    const latest = runIdFor('LOG-1', 1, 2);
    writeLog(config, 'LOG-1', latest, 'reviewer', 'looks good\n');
    writeLog(config, 'LOG-1', latest, 'implementer', 'did the work\nmade a commit\n');
    const output = capture();
    assert.equal(await runCli(['logs', 'LOG-1', '--config', config.configPath], output), 0);
    const text = output.stdout.join('\n');
    assert.match(text, new RegExp(`==> implementer ${latest} .*<==\\ndid the work\\nmade a commit\\n==> reviewer ${latest} .*<==\\nlooks good`));
    assert.doesNotMatch(text, /old run|second attempt/);
  });

  test('--tail N prints the last N lines of each log', async () => {
    const config = configOnDisk();
    const runId = runIdFor('LOG-2');
    writeLog(config, 'LOG-2', runId, 'implementer', Array.from({ length: 50 }, (_, i) => `line ${i + 1}`).join('\n') + '\n');
    const output = capture();
    assert.equal(await runCli(['logs', 'LOG-2', '--tail', '2', '--config', config.configPath], output), 0);
    assert.deepEqual(output.stdout.slice(1), ['line 49\nline 50']);
  });

  test('an issue without logs exits 1 with FACTORY_RUN_LOGS_NOT_FOUND; a key that is a path exits 2', async () => {
    const config = configOnDisk();
    const missing = capture();
    assert.equal(await runCli(['logs', 'NEVER-RAN', '--config', config.configPath], missing), 1);
    assert.match(missing.stderr.join('\n'), /no agent logs for NEVER-RAN .*\[FACTORY_RUN_LOGS_NOT_FOUND\]/);
    const none = capture();
    assert.equal(await runCli(['logs', '--config', config.configPath], none), 2);
    assert.match(none.stderr.join('\n'), /`factory logs` takes exactly one issue key \(not a file path\)/, 'it does not offer a file path it would refuse');
    const traversal = capture();
    assert.equal(await runCli(['logs', '../../etc', '--config', config.configPath], traversal), 2);
    assert.match(traversal.stderr.join('\n'), /FACTORY_USAGE/);
  });

  test("a fleet run's logs are on its worker: the error names the worker and says how to read them there", async () => {
    const config = configOnDisk();
    const store = new SqliteStateStore(config.paths.stateDb);
    try {
      const epoch = await store.beginEpoch({ pid: 1, startTime: 1, bootId: 'b', hostname: 'control' }, 0);
      const claim = claimOnStart(
        claimAfterIntake({ key: 'FLEET-1', revision: 'r1', title: 't', body: '', labels: [], createdAtMs: 0 } as unknown as Issue, { repo: '/repos/api', routedBy: 'test' }, { epoch, nowMs: 0 }),
        { runId: runIdFor('FLEET-1'), node: 'worker-b' },
        { epoch, nowMs: 1 },
      );
      await store.apply({ epoch, claims: [claim] });
    } finally {
      await store.close();
    }
    const missing = capture();
    assert.equal(await runCli(['logs', 'FLEET-1', '--config', config.configPath], missing), 1);
    const stderr = missing.stderr.join('\n');
    assert.match(stderr, /no agent logs for FLEET-1 .*\(its claim is running, placed on worker worker-b\)/);
    assert.match(stderr, /on worker worker-b's host, run `factory logs FLEET-1 --config <that worker's config>`/);
  });

  test('--follow prints output as the agent writes it and returns once the agent has exited', async () => {
    const config = configOnDisk();
    const runId = runIdFor('LOG-3');
    const logPath = writeLog(config, 'LOG-3', runId, 'implementer', 'started\n');
    // A stand-in agent: appends a line every 150 ms for about a second, then exits.
    const agent = spawn(
      process.execPath,
      ['-e', `const fs=require('fs');let i=0;const t=setInterval(()=>{fs.appendFileSync(${JSON.stringify(logPath)},'tick '+(++i)+'\\n');if(i===6){clearInterval(t);}},150);`],
      { stdio: 'ignore' },
    );
    const info = await waitFor('the agent in /proc', () => processTable.inspect(agent.pid!));
    await writeRegistryOf(config, [{ ...liveAgentEntry(config, 'LOG-3', runId), pid: agent.pid!, pgid: agent.pid!, startTime: info.startTime }]);
    const exited = new Promise((resolve) => agent.once('exit', resolve));
    const output = capture();
    const started = Date.now();
    assert.equal(await runCli(['logs', 'LOG-3', '--follow', '--config', config.configPath], output), 0);
    await exited;
    const text = output.stdout.join('\n');
    assert.match(text, /started\n/);
    for (let i = 1; i <= 6; i++) assert.match(text, new RegExp(`tick ${i}\\b`), `tick ${i} was followed`);
    assert.ok(Date.now() - started < 10_000, 'follow ended soon after the agent exited');
    assert.match(output.stderr.join('\n'), new RegExp(`run ${runId} is no longer running`));
  });
});
