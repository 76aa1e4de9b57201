import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LinuxProcessTable } from '../../src/adapters/process-table/linux-process-table.js';
import { compileConfig, type FactoryConfig } from '../../src/config/load.js';
import { FileHeartbeatStore, FileRegistryStore } from '../../src/adapters/node-state/file-node-state.js';
import type { Heartbeat, SubscriptionHealth } from '../../src/domain/heartbeat.js';
import type { RegistryEntry } from '../../src/domain/registry.js';
import type { RunOutcome, RunOutcomeReason } from '../../src/domain/run.js';
import type { ProcessIdentity } from '../../src/ports/process-table.js';
import type { IssueClaim } from '../../src/ports/state-store.js';

/**
 * The files a running daemon leaves (heartbeat, registry, state database,
 * run logs), written by hand so readers (the status server, `factory logs`,
 * benches) can be tested against every state without running a daemon. The
 * identity is this test process's real one (pid, start time, boot id), so
 * liveness checks against /proc see a live daemon.
 */

export const processTable = new LinuxProcessTable();

export function ownIdentity(): ProcessIdentity {
  const self = processTable.inspect(process.pid);
  if (!self) throw new Error('cannot read this process from /proc');
  return { pid: process.pid, startTime: self.startTime, bootId: processTable.bootId() };
}

export function tempConfig(raw: Record<string, unknown> = {}): FactoryConfig {
  const dir = mkdtempSync(join(tmpdir(), 'factory-files-'));
  return compileConfig({ mount: { root: './issues' }, agents: { implementer: { command: ['true'] } }, ...raw }, join(dir, 'factory.config.json'));
}

export function subscriptionHealth(overrides: Partial<SubscriptionHealth> = {}): SubscriptionHealth {
  return {
    state: 'subscribed',
    transport: 'subscribe-and-poll',
    lastEventAtMs: null,
    lastProgressAtMs: Date.now(),
    reconcileStartedAtMs: null,
    reconcileStalledAfterMs: 90_000,
    unhealthySinceMs: null,
    lastError: null,
    ...overrides,
  };
}

export async function writeHeartbeatAs(config: FactoryConfig, overrides: Partial<Heartbeat> = {}, identity: ProcessIdentity = ownIdentity()): Promise<Heartbeat> {
  const nowMs = Date.now();
  const heartbeat: Heartbeat = {
    version: 1,
    pid: identity.pid,
    startTime: identity.startTime,
    bootId: identity.bootId,
    hostname: 'test-host',
    status: 'running',
    mode: 'live',
    iteration: 0,
    maxIterations: 0,
    startedAtMs: nowMs - 60_000,
    updatedAt: new Date(overrides.updatedAtMs ?? nowMs).toISOString(),
    updatedAtMs: nowMs,
    registryPath: config.loop.registryPath,
    statePath: config.paths.stateDb,
    configPath: config.configPath,
    epoch: 1,
    inFlightTeams: 0,
    queuedIssues: 0,
    subscription: subscriptionHealth(),
    ...overrides,
  };
  await new FileHeartbeatStore(config.loop.heartbeatPath).write(heartbeat);
  return heartbeat;
}

export function runIdFor(issueKey: string, attempt = 1, epoch = 1): string {
  return `${issueKey}-e${epoch}-a${attempt}-${(0xabc000 + attempt).toString(16)}`;
}

/** A registry entry for an agent that is really this process (alive, identity matching). */
export function liveAgentEntry(config: FactoryConfig, issueKey: string, runId: string, role: 'implementer' | 'reviewer' = 'implementer', identity: ProcessIdentity = ownIdentity()): RegistryEntry {
  return {
    issueKey,
    runId,
    role,
    agentName: `${issueKey}-${role}`,
    node: 'local',
    pid: identity.pid,
    pgid: identity.pid,
    startTime: identity.startTime,
    bootId: identity.bootId,
    marker: `factory:test:${runId}:${issueKey}-${role}`,
    logPath: join(config.paths.logsDir, issueKey, `${runId}-${role}.log`),
    worktree: join(config.paths.worktreesDir, issueKey),
    startedAtMs: Date.now() - 30_000,
  };
}

export async function writeRegistryOf(config: FactoryConfig, agents: readonly RegistryEntry[], identity: ProcessIdentity = ownIdentity()): Promise<void> {
  await new FileRegistryStore(config.loop.registryPath).write({ version: 1, owner: { ...identity, hostname: 'test-host', epoch: 1 }, updatedAtMs: Date.now(), agents });
}

export function claimFor(issueKey: string, overrides: Partial<IssueClaim> = {}): IssueClaim {
  const nowMs = Date.now();
  return {
    issueKey,
    revision: `rev-${issueKey}`,
    status: 'queued',
    attempt: 0,
    nextAttemptAtMs: null,
    runId: null,
    repo: '/repos/main',
    priority: null,
    createdAtMs: nowMs - 120_000,
    updatedAtMs: nowMs - 10_000,
    lastReason: 'routed by default',
    epoch: 1,
    ...overrides,
  };
}

export function outcomeFor(issueKey: string, runId: string, reason: RunOutcomeReason, endedAtMs = Date.now()): RunOutcome {
  return {
    runId,
    issueKey,
    revision: `rev-${issueKey}`,
    attempt: 1,
    reason,
    detail: reason === 'succeeded' ? '1 agent(s) exited 0; 1 commit(s)' : 'implementer exited with code 3',
    branch: `factory/${issueKey}`,
    worktree: `/worktrees/${issueKey}`,
    agents: [],
    startedAtMs: endedAtMs - 90_000,
    endedAtMs,
  };
}
