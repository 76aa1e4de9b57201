import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTable } from '../../src/cli/output.js';

test('a status table keeps one line per row when a cell holds several (git stderr in a failure detail), so later columns stay aligned', () => {
  const detail = 'spawn-failed: git clone failed\nfatal: repository not found\r\n\n  hint: check the URL\t(routed)';
  const table = formatTable(
    ['issue', 'outcome', 'detail', 'when'],
    [
      ['FAC-1', 'failed', detail, '2m ago'],
      ['FAC-22', 'succeeded', '1 commit this run', '5m ago'],
    ],
  );
  const lines = table.split('\n');
  assert.equal(lines.length, 3, table);
  assert.match(lines[1]!, /spawn-failed: git clone failed \| fatal: repository not found \| hint: check the URL \(routed\)/);
  // The last column starts at the same place on every line.
  assert.equal(lines[1]!.indexOf('2m ago'), lines[2]!.indexOf('5m ago'), table);
  assert.equal(lines[0]!.indexOf('when'), lines[1]!.indexOf('2m ago'), table);
});
