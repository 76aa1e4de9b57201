import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClaudeCodeParser } from '../../src/domain/agent-events/claude-code-parser.js';
import { CodexParser, resolveWallClockTime, unwrapShell } from '../../src/domain/agent-events/codex-parser.js';
import { JsonLinesReader } from '../../src/domain/agent-events/json-lines.js';
import type { AgentEventParser, AgentRunEvent } from '../../src/domain/agent-events/run-events.js';
import { judgeAgentRun } from '../../src/domain/agent-events/run-verdict.js';
import { UsageLedger, ZERO_USAGE, type TokenUsage } from '../../src/domain/agent-events/usage-ledger.js';
import { REPO_ROOT } from '../support/sandbox.js';

/**
 * The agent event parsers on transcripts recorded from the real CLIs
 * (test/fixtures/transcripts, see its README), each fed through the JSON-lines
 * reader in awkward chunks the way a growing log file arrives.
 */

const TRANSCRIPTS = join(REPO_ROOT, 'test', 'fixtures', 'transcripts');
const COMMIT_COMMAND = 'printf "hello\\n" > hello.txt && git add hello.txt && git commit -q -m "Add hello"';

interface Expected {
  readonly cliVersion: string;
  readonly recordedAt: string;
  readonly exitCode: number;
  readonly usageSent: TokenUsage;
  readonly modelRequests: number;
  readonly unknownRequests: readonly string[];
  readonly commits: string;
}

function expectedOf(name: string): Expected {
  return JSON.parse(readFileSync(join(TRANSCRIPTS, `${name}.expected.json`), 'utf8')) as Expected;
}

function parserFor(name: string, options: { nowMs?: number } = {}): AgentEventParser {
  return name.startsWith('codex') ? new CodexParser({ nowMs: () => options.nowMs ?? Date.now(), utcOffsetMinutes: 0 }) : new ClaudeCodeParser();
}

/** Feeds a transcript through the reader in chunks of `chunkSize` bytes (cutting lines and UTF-8 characters). */
function replay(name: string, chunkSize = 37, options: { nowMs?: number } = {}): { parser: AgentEventParser; events: AgentRunEvent[]; perLine: AgentRunEvent[][] } {
  const bytes = readFileSync(join(TRANSCRIPTS, `${name}.jsonl`));
  const parser = parserFor(name, options);
  const reader = new JsonLinesReader();
  const perLine: AgentRunEvent[][] = [];
  const take = (lines: readonly string[]): void => {
    for (const line of lines) perLine.push(parser.parseLine(line));
  };
  for (let offset = 0; offset < bytes.length; offset += chunkSize) take(reader.push(bytes.subarray(offset, offset + chunkSize)).lines);
  take(reader.flush().lines);
  return { parser, events: perLine.flat(), perLine };
}

function ofKind<K extends AgentRunEvent['kind']>(events: readonly AgentRunEvent[], kind: K): Extract<AgentRunEvent, { kind: K }>[] {
  return events.filter((event): event is Extract<AgentRunEvent, { kind: K }> => event.kind === kind);
}

function usage(input: number, output: number, cacheRead = 0, cacheWrite = 0): TokenUsage {
  return { input, output, cacheRead, cacheWrite };
}

describe('JsonLinesReader', () => {
  test('any chunking gives the same complete lines; the torn last line waits for flush', () => {
    const text = '{"a":"é✓"}\r\n\n{"b":2}\n{"torn":';
    const bytes = Buffer.from(text, 'utf8');
    for (const size of [1, 2, 3, 5, bytes.length]) {
      const reader = new JsonLinesReader();
      const lines: string[] = [];
      for (let i = 0; i < bytes.length; i += size) lines.push(...reader.push(bytes.subarray(i, i + size)).lines);
      assert.deepEqual(lines, ['{"a":"é✓"}', '{"b":2}'], `chunk size ${size}`);
      assert.deepEqual(reader.flush().lines, ['{"torn":']);
      assert.deepEqual(reader.flush().lines, []);
    }
  });

  test('a line over the limit is dropped and counted, and the lines after it still come out', () => {
    const reader = new JsonLinesReader(16);
    const first = reader.push('{"ok":1}\n' + 'x'.repeat(10));
    assert.deepEqual(first.lines, ['{"ok":1}']);
    const second = reader.push('y'.repeat(30));
    assert.equal(second.oversizeDropped, 1);
    const third = reader.push('zzz\n{"ok":2}\n' + 'q'.repeat(20) + '\n');
    assert.deepEqual(third.lines, ['{"ok":2}']);
    assert.equal(third.oversizeDropped, 1);
  });
});

describe('Claude Code transcripts (2.1.332)', () => {
  test('commit: session, tool call, tool result, text, usage counted once per message, exact result totals and cost', () => {
    const expected = expectedOf('claude-code-commit');
    assert.equal(expected.cliVersion, '2.1.332');
    const { parser, events, perLine } = replay('claude-code-commit');
    const snapshot = parser.snapshot();
    const session = ofKind(events, 'session')[0];
    assert.ok(session && /^[0-9a-f-]{36}$/.test(session.sessionId));
    assert.equal(session.cliVersion, '2.1.332');
    assert.equal(snapshot.sessionId, session.sessionId);

    const calls = ofKind(events, 'tool-call');
    assert.deepEqual(
      calls.map((call) => [call.tool, call.summary]),
      [['Bash', COMMIT_COMMAND]],
    );
    const results = ofKind(events, 'tool-result');
    assert.equal(results.length, 1);
    assert.equal(results[0]!.tool, 'Bash');
    assert.equal(results[0]!.isError, false);
    assert.deepEqual(
      ofKind(events, 'text').map((t) => t.text),
      ['I will add hello.txt and commit it.', 'Committed hello.txt.'],
    );
    assert.deepEqual(
      ofKind(events, 'turn-started').map((t) => t.turn),
      [1, 2],
    );

    // Message 1 arrives as two assistant events repeating its usage: input must count once (1200 + 1500, not 1200 * 2 + 1500).
    const resultLine = perLine.findIndex((line) => line.some((e) => e.kind === 'result'));
    const beforeResult = ofKind(perLine.slice(0, resultLine).flat(), 'usage').at(-1)!.total;
    assert.equal(beforeResult.input, expected.usageSent.input);
    assert.equal(beforeResult.cacheRead, expected.usageSent.cacheRead);
    assert.equal(beforeResult.cacheWrite, expected.usageSent.cacheWrite);

    assert.deepEqual(snapshot.usage, expected.usageSent);
    assert.equal(snapshot.result?.ok, true);
    assert.equal(snapshot.result?.text, 'Committed hello.txt.');
    assert.ok(snapshot.costUsd !== undefined && snapshot.costUsd > 0, 'the CLI reports a cost');
    assert.equal(snapshot.turns, 2);
    assert.deepEqual(snapshot.lastActivity, { kind: 'text', summary: 'Committed hello.txt.' });
    assert.equal(snapshot.skippedLines, 0);
    assert.deepEqual(judgeAgentRun(snapshot, { code: expected.exitCode, signal: null }), { verdict: 'succeeded' });
  });

  test('partial messages: raw stream events give the exact usage before the result arrives', () => {
    const expected = expectedOf('claude-code-partial-messages');
    const { parser, perLine } = replay('claude-code-partial-messages', 11);
    const resultLine = perLine.findIndex((line) => line.some((e) => e.kind === 'result'));
    const beforeResult = ofKind(perLine.slice(0, resultLine).flat(), 'usage').at(-1)!.total;
    assert.deepEqual(beforeResult, expected.usageSent);
    assert.deepEqual(parser.snapshot().usage, expected.usageSent);
    assert.equal(parser.snapshot().turns, 2);
  });

  test('an error result is a failure with its API status, even if the CLI had exited 0', () => {
    const expected = expectedOf('claude-code-api-error');
    assert.equal(expected.exitCode, 1, 'this CLI version exits 1 on an error result');
    const { parser, events } = replay('claude-code-api-error');
    const snapshot = parser.snapshot();
    assert.equal(snapshot.result?.ok, false);
    assert.equal(snapshot.result?.failure?.kind, 'api-error');
    assert.equal(snapshot.result?.failure?.apiErrorStatus, 500);
    assert.equal(ofKind(events, 'warning').length, 1, 'the synthetic error message is a warning, not model text');
    assert.equal(ofKind(events, 'text').length, 0);
    for (const code of [0, 1]) {
      const verdict = judgeAgentRun(snapshot, { code, signal: null });
      assert.equal(verdict.verdict, 'failed');
      assert.match(verdict.verdict === 'failed' ? verdict.reason : '', /API status 500/);
    }
  });

  test('a 429 is a rate limit (park), not a failure; this CLI does not say when it resets', () => {
    const { parser, events } = replay('claude-code-rate-limit');
    assert.equal(ofKind(events, 'rate-limited').length, 1, 'reported once though both the message and the result show it');
    const verdict = judgeAgentRun(parser.snapshot(), { code: 1, signal: null });
    assert.equal(verdict.verdict, 'rate-limited');
    assert.equal(verdict.verdict === 'rate-limited' ? verdict.resetAtMs : 'x', undefined);
  });

  test('a rate_limit_event with status rejected carries the reset time (synthetic: subscription logins only)', () => {
    const { parser, events } = replay('claude-code-rate-limit-event.synthetic');
    assert.equal(ofKind(events, 'warning').length, 1, 'allowed_warning is a warning');
    const verdict = judgeAgentRun(parser.snapshot(), { code: 0, signal: null });
    assert.deepEqual(verdict, { verdict: 'rate-limited', reason: 'five_hour limit reached', resetAtMs: 1796212800_000 });
  });

  test('a denied tool call is an approval nobody could give: a failure although the CLI exited 0 and claimed success', () => {
    const expected = expectedOf('claude-code-permission-denied');
    assert.equal(expected.exitCode, 0);
    assert.equal(expected.commits, '1', 'nothing was committed');
    const { parser, events } = replay('claude-code-permission-denied');
    const snapshot = parser.snapshot();
    assert.equal(snapshot.result?.ok, true, 'the CLI itself reports success');
    assert.deepEqual(
      ofKind(events, 'approval-needed').map((a) => [a.tool, a.summary]),
      [['Bash', COMMIT_COMMAND]],
    );
    assert.equal(ofKind(events, 'tool-result')[0]?.isError, true);
    const verdict = judgeAgentRun(snapshot, { code: 0, signal: null });
    assert.equal(verdict.verdict, 'needs-approval');
    assert.match(verdict.verdict === 'needs-approval' ? verdict.reason : '', /Bash/);
  });

  test('max turns reached is a failure of its own kind', () => {
    const { parser } = replay('claude-code-max-turns');
    assert.equal(parser.snapshot().result?.failure?.kind, 'max-turns');
    assert.match(parser.snapshot().result?.failure?.message ?? '', /maximum number of turns/);
  });
});

describe('Codex transcripts (0.171.0)', () => {
  test("commit: thread id, shell call with the model's command, exit code, text, usage exactly as sent", () => {
    const expected = expectedOf('codex-commit');
    assert.equal(expected.cliVersion, '0.171.0');
    assert.equal(expected.commits, '2');
    const { parser, events } = replay('codex-commit', 13);
    const snapshot = parser.snapshot();
    assert.match(snapshot.sessionId ?? '', /^[0-9a-f-]{36}$/);
    assert.deepEqual(
      ofKind(events, 'tool-call').map((c) => [c.tool, c.summary]),
      [['shell', COMMIT_COMMAND]],
    );
    const result = ofKind(events, 'tool-result')[0];
    assert.equal(result?.exitCode, 0);
    assert.equal(result?.isError, false);
    assert.deepEqual(
      ofKind(events, 'text').map((t) => t.text),
      ['I will add hello.txt and commit it.', 'Committed hello.txt.'],
    );
    assert.equal(ofKind(events, 'warning').length, 1, 'the unknown-model notice is an error item: a warning');
    assert.deepEqual(snapshot.usage, expected.usageSent);
    assert.equal(snapshot.turns, 1);
    assert.equal(snapshot.result?.ok, true);
    assert.equal(snapshot.costUsd, undefined, 'Codex reports no cost');
    assert.deepEqual(judgeAgentRun(snapshot, { code: expected.exitCode, signal: null }), { verdict: 'succeeded' });
  });

  test('a failed turn is a failure even if the CLI had exited 0', () => {
    const { parser } = replay('codex-api-error');
    const snapshot = parser.snapshot();
    assert.equal(snapshot.result?.failure?.kind, 'turn-failed');
    assert.equal(judgeAgentRun(snapshot, { code: 0, signal: null }).verdict, 'failed');
  });

  test("a usage limit parks with the reset time resolved from the CLI's words", () => {
    for (const [name, seconds] of [
      ['codex-rate-limit', 2 * 3600],
      ['codex-rate-limit-days', 3 * 86400],
    ] as const) {
      const recordedAt = Date.parse(expectedOf(name).recordedAt);
      const { parser, events } = replay(name, 29, { nowMs: recordedAt });
      assert.equal(ofKind(events, 'rate-limited').length, 1, `${name}: once, though error and turn.failed both say it`);
      const verdict = judgeAgentRun(parser.snapshot(), { code: 1, signal: null });
      assert.equal(verdict.verdict, 'rate-limited', name);
      const resetAt = verdict.verdict === 'rate-limited' ? verdict.resetAtMs : undefined;
      assert.ok(resetAt !== undefined, `${name}: a reset time`);
      const expectedReset = Math.floor((recordedAt / 1000 + seconds) / 60) * 60_000;
      assert.ok(Math.abs(resetAt - expectedReset) <= 60_000, `${name}: reset ${new Date(resetAt).toISOString()}, expected about ${new Date(expectedReset).toISOString()}`);
    }
  });
});

describe('every recorded transcript', () => {
  const names = readdirSync(TRANSCRIPTS)
    .filter((file) => file.endsWith('.jsonl'))
    .map((file) => file.slice(0, -'.jsonl'.length));

  test('parses without a skipped line, chunked or whole, to the same events; together they cover every event kind', () => {
    assert.ok(names.length >= 10);
    const kinds = new Set<string>();
    for (const name of names) {
      const whole = replay(name, 1 << 20);
      const chunked = replay(name, 7);
      assert.deepEqual(chunked.events, whole.events, name);
      assert.equal(whole.parser.snapshot().skippedLines, 0, name);
      assert.ok(whole.parser.snapshot().result, `${name} ends with a result`);
      for (const event of whole.events) kinds.add(event.kind);
    }
    const handled: AgentRunEvent['kind'][] = ['session', 'turn-started', 'turn-completed', 'text', 'tool-call', 'tool-result', 'usage', 'approval-needed', 'rate-limited', 'warning', 'result'];
    for (const kind of handled) assert.ok(kinds.has(kind), `no transcript shows a ${kind} event`);
  });

  test('the server never saw a request it did not know, and each run asked for the turns scripted', () => {
    for (const name of names.filter((n) => !n.endsWith('.synthetic'))) {
      const expected = expectedOf(name);
      assert.deepEqual(expected.unknownRequests, [], name);
      assert.ok(expected.modelRequests >= 1, name);
    }
  });
});

describe('hostile and unknown input', () => {
  const hostile = [
    '',
    'not json',
    '[1,2,3]',
    '42',
    'null',
    '{"type":',
    '['.repeat(100_000) + ']'.repeat(100_000),
    '{"type":"assistant","message":"not an object"}',
    '{"type":"assistant","message":{"id":"m1","content":"nope","usage":{"input_tokens":-5,"output_tokens":"9","cache_read_input_tokens":1e400}}}',
    '{"type":"user","message":{"content":[null,{"type":"tool_result","content":[{"text":7}]}]}}',
    '{"__proto__":{"polluted":true},"type":"result","usage":{"input_tokens":NaN}}',
    '{"type":"result","is_error":"yes","num_turns":-3,"total_cost_usd":"free","usage":{"input_tokens":3}}',
    '{"type":"item.completed","item":{"type":"command_execution","command":null,"exit_code":"0"}}',
    '{"type":"turn.completed","usage":{"input_tokens":5,"cached_input_tokens":50}}',
    '{"type":"thread.started"}',
  ];

  for (const make of [() => new ClaudeCodeParser(), () => new CodexParser()]) {
    test(`${make().agent}: never throws, skips what is not an event object, keeps counts non-negative`, () => {
      const parser = make();
      for (const line of hostile) assert.doesNotThrow(() => parser.parseLine(line), line.slice(0, 60));
      const snapshot = parser.snapshot();
      assert.ok(snapshot.skippedLines >= 5);
      for (const value of Object.values(snapshot.usage)) assert.ok(Number.isInteger(value) && value >= 0, JSON.stringify(snapshot.usage));
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });
  }

  test('an unknown event type is kept as unknown and the run goes on to its result', () => {
    const claude = new ClaudeCodeParser();
    assert.deepEqual(claude.parseLine('{"type":"brand_new_event","x":1}'), [{ kind: 'unknown', type: 'brand_new_event' }]);
    assert.deepEqual(claude.parseLine('{"type":"system","subtype":"compact_boundary"}'), [{ kind: 'unknown', type: 'system/compact_boundary' }]);
    claude.parseLine('{"type":"result","subtype":"success","is_error":false,"num_turns":1,"usage":{"input_tokens":3,"output_tokens":4}}');
    assert.equal(claude.snapshot().unknownEvents, 2);
    assert.equal(claude.snapshot().result?.ok, true);

    const codex = new CodexParser();
    assert.deepEqual(codex.parseLine('{"type":"item.completed","item":{"type":"hologram","id":"i"}}'), [{ kind: 'unknown', type: 'item/hologram' }]);
    assert.deepEqual(codex.parseLine('{"type":"thread.archived"}'), [{ kind: 'unknown', type: 'thread.archived' }]);
    codex.parseLine('{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":4,"output_tokens":2}}');
    assert.deepEqual(codex.snapshot().usage, usage(6, 2, 4));
  });
});

describe('usage and reset helpers', () => {
  test('the ledger adds runs per agent and overall; cost stays unknown until someone reports one', () => {
    const empty = UsageLedger.empty();
    const one = empty.record({ agent: 'implementer', usage: usage(100, 10, 5, 1), costUsd: 0.5, turns: 3 });
    const two = one.record({ agent: 'reviewer', usage: usage(50, 5), turns: 1 }).record({ agent: 'implementer', usage: usage(1, 1), costUsd: 0.25, turns: 1 });
    assert.deepEqual(empty.total(), { usage: ZERO_USAGE, costUsd: undefined, turns: 0, runs: 0 });
    assert.deepEqual(one.agent('reviewer').usage, ZERO_USAGE, 'recording returns a new ledger');
    assert.deepEqual(two.agent('implementer'), { usage: usage(101, 11, 5, 1), costUsd: 0.75, turns: 4, runs: 2 });
    assert.deepEqual(two.agent('reviewer'), { usage: usage(50, 5), costUsd: undefined, turns: 1, runs: 1 });
    assert.deepEqual(two.total(), { usage: usage(151, 16, 5, 1), costUsd: 0.75, turns: 5, runs: 3 });
    assert.deepEqual(two.agents(), ['implementer', 'reviewer']);
  });

  test("reset times: a clock time is the next such instant in the CLI's zone; a date is that date; anything else is unknown", () => {
    const now = Date.parse('2026-11-30T12:29:30Z');
    assert.equal(resolveWallClockTime('2:29 PM', now, 0), Date.parse('2026-11-30T14:29:00Z'));
    assert.equal(resolveWallClockTime('12:29 PM', now, 0), Date.parse('2026-11-30T12:29:00Z'), 'rounded down to the minute: now, not tomorrow');
    assert.equal(resolveWallClockTime('11:00 AM', now, 0), Date.parse('2026-12-01T11:00:00Z'));
    assert.equal(resolveWallClockTime('12:05 AM', now, 0), Date.parse('2026-12-01T00:05:00Z'));
    assert.equal(resolveWallClockTime('14:29', now, 60), Date.parse('2026-11-30T13:29:00Z'), 'in UTC+1');
    assert.equal(resolveWallClockTime('Dec 3rd, 2026 12:29 PM', now, 0), Date.parse('2026-12-03T12:29:00Z'));
    assert.equal(resolveWallClockTime('Jan 1, 2027 9:00 AM', now, -300), Date.parse('2027-01-01T14:00:00Z'));
    for (const text of ['soon', '25:00', '13:00 PM', 'Foo 3rd, 2026 1:00 PM', '']) assert.equal(resolveWallClockTime(text, now, 0), undefined, text);
  });

  test('the shell wrapper Codex adds is taken off, quotes restored', () => {
    assert.equal(unwrapShell(`/bin/bash -lc 'git commit -m "x"'`), 'git commit -m "x"');
    assert.equal(unwrapShell(`bash -lc 'echo '\\''hi'\\'''`), "echo 'hi'");
    assert.equal(unwrapShell('/bin/bash -lc "printf \\"a\\\\n\\" \\$HOME"'), 'printf "a\\n" $HOME');
    assert.equal(unwrapShell('ls -la'), 'ls -la');
  });

  test('a run that ends without a result, or by a signal, is a failure whatever the exit code', () => {
    const parser = new ClaudeCodeParser();
    parser.parseLine('{"type":"system","subtype":"init","session_id":"s"}');
    assert.equal(judgeAgentRun(parser.snapshot(), { code: 0, signal: null }).verdict, 'failed');
    parser.parseLine('{"type":"result","subtype":"success","is_error":false,"num_turns":1,"usage":{}}');
    assert.equal(judgeAgentRun(parser.snapshot(), { code: null, signal: 'SIGKILL' }).verdict, 'failed');
    assert.equal(judgeAgentRun(parser.snapshot(), { code: 2, signal: null }).verdict, 'failed');
    assert.equal(judgeAgentRun(parser.snapshot(), { code: 0, signal: null }).verdict, 'succeeded');
  });
});
