import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ClaudeCodeParser } from '../src/domain/agent-events/claude-code-parser.js';
import { CodexParser } from '../src/domain/agent-events/codex-parser.js';
import { JsonLinesReader } from '../src/domain/agent-events/json-lines.js';
import type { AgentEventParser } from '../src/domain/agent-events/run-events.js';
import { UsageLedger } from '../src/domain/agent-events/usage-ledger.js';
import { REPO_ROOT } from '../test/support/sandbox.js';
import { median, round, timeRuns } from './bench-support.js';

/**
 * What following an agent's stream costs the daemon: the recorded real-CLI
 * transcripts (test/fixtures/transcripts) repeated to ~20,000 lines, read in
 * 64 KB chunks through the JSON-lines reader and parsed, as a driver does with
 * a growing run log. Reported as input lines per second (median of runs); a
 * busy agent writes tens of lines a second, so anything in the tens of
 * thousands is negligible. Plus the usage ledger's cost per recorded run.
 */

const TRANSCRIPTS = join(REPO_ROOT, 'test', 'fixtures', 'transcripts');
const TARGET_LINES = 20_000;
const CHUNK_BYTES = 64 * 1024;

function corpusFor(prefix: string): { bytes: Buffer; lines: number } {
  const files = readdirSync(TRANSCRIPTS).filter((file) => file.startsWith(prefix) && file.endsWith('.jsonl'));
  const one = files.map((file) => readFileSync(join(TRANSCRIPTS, file), 'utf8')).join('');
  const linesPerCopy = one.split('\n').filter(Boolean).length;
  const copies = Math.ceil(TARGET_LINES / linesPerCopy);
  return { bytes: Buffer.from(one.repeat(copies)), lines: linesPerCopy * copies };
}

function parseAll(bytes: Buffer, parser: AgentEventParser): number {
  const reader = new JsonLinesReader();
  let events = 0;
  for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) {
    for (const line of reader.push(bytes.subarray(offset, offset + CHUNK_BYTES)).lines) events += parser.parseLine(line).length;
  }
  for (const line of reader.flush().lines) events += parser.parseLine(line).length;
  return events;
}

export async function benchAgentParsers(runs = 9): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = { name: 'agent-parser' };
  for (const [name, prefix, make] of [
    ['claudeCode', 'claude-code-', () => new ClaudeCodeParser()],
    ['codex', 'codex-', () => new CodexParser({ nowMs: () => 0 })],
  ] as const) {
    const corpus = corpusFor(prefix);
    let events = 0;
    const durations = await timeRuns(() => (events = parseAll(corpus.bytes, make())), runs, 2);
    const ms = median(durations);
    result[`${name}LinesPerSec`] = Math.round(corpus.lines / (ms / 1000));
    result[`${name}EventsPerSec`] = Math.round(events / (ms / 1000));
    result[`${name}MBPerSec`] = round(corpus.bytes.length / 1024 / 1024 / (ms / 1000), 1);
  }
  const records = 10_000;
  const ledgerMs = median(
    await timeRuns(
      () => {
        let ledger = UsageLedger.empty();
        for (let i = 0; i < records; i++)
          ledger = ledger.record({ agent: i % 2 ? 'implementer' : 'reviewer', usage: { input: 1000, output: 50, cacheRead: 300, cacheWrite: 10 }, costUsd: 0.01, turns: 3 });
        return ledger.total();
      },
      runs,
      2,
    ),
  );
  result.ledgerRecordMicros = round((ledgerMs * 1000) / records, 3);
  return result;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchAgentParsers(), null, 2));
}
