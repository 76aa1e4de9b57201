import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLogLine } from '../../src/adapters/logging/pino-logger.js';

/** The readable log format used when stderr is a terminal. */

test('a record reads as time, level, message, then issue, run and agent before other fields', () => {
  const record = JSON.stringify({
    level: 40,
    time: new Date(2026, 0, 2, 3, 4, 5, 678).getTime(),
    pid: 42,
    hostname: 'box',
    exitCode: 3,
    agent: 'FAC-1-implementer',
    run: 'FAC-1-e1-a1-abc',
    issue: 'FAC-1',
    msg: 'implementer exited',
  });
  assert.equal(formatLogLine(`${record}\n`, { color: false }), '03:04:05.678 WARN  implementer exited  issue=FAC-1 run=FAC-1-e1-a1-abc agent=FAC-1-implementer exitCode=3\n');
});

test('values with spaces are quoted, objects are JSON, and colour is only added when asked', () => {
  const record = JSON.stringify({ level: 30, time: 0, msg: 'resolved the previous daemon run', requeued: ['A', 'B'], err: 'disk full now' });
  const plain = formatLogLine(record, { color: false });
  assert.match(plain, /requeued=\["A","B"\] err="disk full now"\n$/);
  assert.doesNotMatch(plain, /\x1b\[/);
  assert.match(formatLogLine(record, { color: true }), /\x1b\[36mINFO \x1b\[0m/);
});

test('a line that is not JSON passes through unchanged', () => {
  assert.equal(formatLogLine('not json at all', { color: false }), 'not json at all\n');
});
