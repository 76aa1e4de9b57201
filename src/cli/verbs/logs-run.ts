import type { FactoryConfig } from '../../config/load.js';
import { isValidIssueKey } from '../../domain/issue.js';
import { LOCAL_NODE } from '../../domain/registry.js';
import { isStillRunning, verifyProcessIdentity } from '../../domain/process-identity.js';
import { parseRunId } from '../../domain/run-id.js';
import { nodeStateFor, readStateStore, runLogStoreFor } from '../../main.js';
import type { RunOutcome } from '../../domain/run.js';
import { FactoryError } from '../../errors.js';
import type { ProcessTable } from '../../ports/process-table.js';
import type { RunLogFile, RunLogStore } from '../../ports/run-log-store.js';
import type { IssueClaim } from '../../ports/state-store.js';
import { flagBoolean, flagPositiveInt, flagString, type ParsedArgs } from '../args.js';
import { AgentStreamRenderer } from '../../domain/agent-events/stream-render.js';
import { runtimeFromArgs } from '../context.js';
import { printJson, type Output } from '../output.js';
import { onStopSignal } from '../signals.js';
import { issueArgument } from './triage-run.js';

/** How often `--follow` looks for new output, and how often it asks whether the run is still going. */
const FOLLOW_POLL_MS = 200;
const FOLLOW_STATUS_EVERY_MS = 1_000;

/** `factory logs` (its usage and flags are in logs.ts): loaded only when the verb runs. */
export async function run(args: ParsedArgs, output: Output): Promise<number> {
  const { config, processTable } = runtimeFromArgs(args);
  const issueKey = issueArgument(args, 'logs', 'one issue key (not a file path)');
  if (!isValidIssueKey(issueKey)) throw new FactoryError('FACTORY_USAGE', `\`factory logs\` takes an issue key (letters, digits, ".", "_", "-"), got "${issueKey}"`);
  const tail = flagString(args, 'tail') === undefined ? undefined : flagPositiveInt(args, 'tail', 1);
  const raw = flagBoolean(args, 'raw');
  const claim = await readClaim(config, issueKey);
  // The claim names the run at work now; the files name every run that ever logged.
  const current = claim?.status === 'running' && claim.runId ? parseRunId(claim.runId) : undefined;
  const logs = runLogStoreFor(config);
  const latest = (await logs.listIssueRuns(issueKey))[0];
  const follow = flagBoolean(args, 'follow');
  if (follow && current && current.runId !== latest?.run.runId) return followRun(config, current.runId, { output, processTable, logs, tail, raw, printed: new Map() });
  if (!latest) {
    // A fleet run logs on the worker that ran it: say which one, since this host cannot show it.
    const node = claim?.node && claim.node !== LOCAL_NODE ? claim.node : undefined;
    throw new FactoryError(
      'FACTORY_RUN_LOGS_NOT_FOUND',
      `no agent logs for ${issueKey} in ${config.paths.logsDir}${claim ? ` (its claim is ${claim.status}${node ? `, placed on worker ${node}` : ''})` : ' (Factory has no claim for it)'}`,
      node ? { hint: `Fleet runs keep their logs on the worker: on worker ${node}'s host, run \`factory logs ${issueKey} --config <that worker's config>\`.` } : {},
    );
  }
  if (flagBoolean(args, 'json') && !follow) {
    const agents = await Promise.all(
      latest.files.map(async (file) => ({
        role: file.agent,
        path: file.path,
        ...(await logs.tail(file, { lines: tail ?? Number.MAX_SAFE_INTEGER, maxBytes: tail ? undefined : Number.MAX_SAFE_INTEGER })),
      })),
    );
    printJson(output, { issueKey, runId: latest.run.runId, attempt: latest.run.attempt, agents });
    return 0;
  }
  const printed = new Map<string, number>();
  for (const file of latest.files) printed.set(file.path, await printFile(file, { output, logs, tail, raw }));
  if (!follow) return 0;
  return followRun(config, latest.run.runId, { output, processTable, logs, tail, raw, printed });
}

function readClaim(config: FactoryConfig, issueKey: string): Promise<IssueClaim | undefined> {
  return readStateStore(config, (store) => store.getClaim(issueKey), undefined);
}

function readOutcome(config: FactoryConfig, runId: string): Promise<RunOutcome | undefined> {
  return readStateStore(config, async (store) => (await store.recentOutcomes(100)).find((outcome) => outcome.runId === runId), undefined);
}

function header(file: RunLogFile): string {
  return `==> ${file.agent} ${file.run.runId} (${file.path}) <==`;
}

/** Prints one log (all of it, or its last `tail` lines); returns the offset printed up to. */
async function printFile(file: RunLogFile, options: { output: Output; logs: RunLogStore; tail: number | undefined; raw: boolean }): Promise<number> {
  options.output.out(header(file));
  if (options.tail !== undefined) {
    const tail = await options.logs.tail(file, { lines: options.tail });
    const lines = new LineBuffer(options.output, options.raw);
    if (tail.text) lines.push(Buffer.from(tail.text));
    lines.flush();
    return tail.sizeBytes;
  }
  const lines = new LineBuffer(options.output, options.raw);
  let offset = 0;
  for (;;) {
    const { chunk, nextOffset } = await options.logs.readFrom(file, offset);
    if (chunk.length === 0) break;
    lines.push(chunk);
    offset = nextOffset;
  }
  lines.flush();
  return offset;
}

/** Output prints whole lines; logs arrive in arbitrary chunks. A CLI driver's JSON lines are rendered readably unless `raw`. */
class LineBuffer {
  #pending = '';
  readonly #renderer: AgentStreamRenderer | undefined;
  constructor(
    readonly output: Output,
    raw = false,
  ) {
    this.#renderer = raw ? undefined : new AgentStreamRenderer();
  }
  push(chunk: Buffer): void {
    const text = this.#pending + chunk.toString('utf8');
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      this.#pending = text;
      return;
    }
    this.#print(text.slice(0, end));
    this.#pending = text.slice(end + 1);
  }
  flush(): void {
    if (this.#pending) this.#print(this.#pending);
    this.#pending = '';
  }
  #print(text: string): void {
    const renderer = this.#renderer;
    if (!renderer) return this.output.out(text);
    const lines = text.split('\n').flatMap((line) => renderer.render(line));
    if (lines.length > 0) this.output.out(lines.join('\n'));
  }
}

/**
 * Prints new output of one run's logs as it is written, until the run is
 * over: none of its agents is alive (identity-checked, not just the pid), and
 * either the daemon has moved its claim on or the daemon itself is gone.
 */
async function followRun(
  config: FactoryConfig,
  runId: string,
  options: { output: Output; processTable: ProcessTable; logs: RunLogStore; tail: number | undefined; raw: boolean; printed: Map<string, number> },
): Promise<number> {
  const { output, processTable, printed } = options;
  const buffers = new Map<string, LineBuffer>();
  let lastSource: string | undefined = [...printed.keys()].at(-1);
  let interrupted = false;
  const signals = onStopSignal(() => (interrupted = true));
  let statusCheckedAtMs = 0;
  let running = true;
  if (printed.size === 0) output.err(`factory: waiting for run ${runId} to write its first log line (Ctrl-C to stop)`);
  try {
    for (;;) {
      // Checked before reading, so output written just before the agents exited is still printed below.
      if (Date.now() - statusCheckedAtMs >= FOLLOW_STATUS_EVERY_MS) {
        running = await isRunActive(config, runId, processTable);
        statusCheckedAtMs = Date.now();
      }
      const run = await options.logs.findRun(runId);
      for (const file of run?.files ?? []) {
        if (!printed.has(file.path)) {
          // A log that appeared while following (the reviewer after the implementer) starts in full, or at its tail.
          if (options.tail !== undefined && file.sizeBytes > 0) {
            printed.set(file.path, await printFile(file, { output, logs: options.logs, tail: options.tail, raw: options.raw }));
            lastSource = file.path;
            continue;
          }
          printed.set(file.path, 0);
        }
        const { chunk, nextOffset } = await options.logs.readFrom(file, printed.get(file.path)!);
        if (chunk.length === 0) continue;
        if (lastSource !== file.path) {
          buffers.get(lastSource ?? '')?.flush();
          output.out(header(file));
          lastSource = file.path;
        }
        let buffer = buffers.get(file.path);
        if (!buffer) buffers.set(file.path, (buffer = new LineBuffer(output, options.raw)));
        buffer.push(chunk);
        printed.set(file.path, nextOffset);
      }
      if (!running || interrupted) break;
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    }
  } finally {
    signals.dispose();
    for (const buffer of buffers.values()) buffer.flush();
  }
  if (interrupted) return 0;
  const outcome = await readOutcome(config, runId);
  output.err(outcome ? `factory: run ${runId} ended: ${outcome.reason}: ${outcome.detail}` : `factory: run ${runId} is no longer running`);
  return 0;
}

async function isRunActive(config: FactoryConfig, runId: string, processTable: ProcessTable): Promise<boolean> {
  const records = nodeStateFor(config);
  const registry = await records.registry.read();
  const agents = registry.kind === 'ok' ? registry.value.file.agents.filter((agent) => agent.runId === runId && agent.node === 'local') : [];
  const bootId = processTable.bootId();
  if (agents.some((agent) => agent.bootId === bootId && isStillRunning(processTable, { pid: agent.pid, startTime: agent.startTime }))) return true;
  // No agent alive: between the implementer and the reviewer the claim still says running, as long as the daemon lives.
  const run = parseRunId(runId);
  const claim = run ? await readClaim(config, run.issueKey) : undefined;
  if (claim?.status !== 'running' || claim.runId !== runId) return false;
  const heartbeat = await records.heartbeats.read();
  return heartbeat.kind === 'ok' && verifyProcessIdentity(heartbeat.value, processTable).verdict === 'alive';
}
